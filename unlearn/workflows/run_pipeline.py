"""memorize -> unlearn -> evaluate, chained from one resolved config into one run directory."""
import json
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import OmegaConf

from unlearn import ranks
from unlearn.attacks import run_attacks, validate_attacks
from unlearn.data.encode import EncodedSplit, encode_split, shares_gpt2_vocab
from unlearn.data.muse import pre_release_note
from unlearn.data.records import Splits
from unlearn.data.prompts import GENERAL_PROMPTS
from unlearn.data.sources import QA_SOURCES, load_splits
from unlearn.data.utility import base_model_samples, utility_texts
from unlearn.errors import ConfigError, require
from unlearn.tracking.loggers import build_logger, log_final, to_container
from unlearn.methods import get_method
from unlearn.metrics import EvalEnv
from unlearn.models.load import load_model, peek_config, save_model
from unlearn.metrics.sanity import metric_sanity
from unlearn.storage.results import markdown_table, write_json
from unlearn.tracking.run_metadata import run_metadata, stage_fingerprints
from unlearn.seeding import seed_everything
from unlearn.stages.device import placement
from unlearn.stages.evaluate import build_contexts, eval_settings, evaluate, validate_metrics
from unlearn.stages.given_target import given_target, memorize_none, validate_oracle
from unlearn.stages.memorize import key_material, mark_target, memorize, memorize_forget
from unlearn.stages.recited import keep_recited
from unlearn.stages.requirements import check_requirements
from unlearn.stages.reference_cache import ReferenceCache
from unlearn.stages.trainer import validate_strategy
from unlearn.stages.trajectory import trajectory, validate_during
from unlearn.stages.unlearn import RESUME_DIR, unlearn
from unlearn.workflows.input_checks import validate_input, validate_records
from unlearn.stages.checkpoints import discard
from unlearn.stages.divergence import RunDiverged
from unlearn.stages.result_store import ResultStore
from unlearn.storage.atomic import write_text
from unlearn.sweeps.jobs import apply_strength, strength_of, sweep_group, wandb_tags

MODEL_ROLES = ("original", "target", "unlearned", "oracle")
EVAL_STORE = "evaluation-in-progress"  # the per-metric store of an unfinished evaluation; removed at the end


def validate_config(cfg) -> None:
    """Everything that can be checked without loading a model, so bad input fails in a second."""
    validate_input(cfg)
    method_cls = get_method(cfg.method.name)
    method_cls.validate_config(cfg.method)
    validate_strategy(cfg, method_cls)
    architecture = peek_config(cfg.model, Path(cfg.paths.cache_dir).expanduser())
    if architecture is not None:
        method_cls.validate_for_model(cfg.method, architecture)
    if method_cls.needs_qa:
        require(cfg.data.source in QA_SOURCES,
                f"method {cfg.method.name} needs question/answer data but data.source={cfg.data.source!r}; use one of {QA_SOURCES} (data=tofu)")
    validate_metrics(cfg.eval)
    validate_during(cfg.eval)
    validate_attacks(cfg)
    for role in cfg.eval.models:
        require(role in MODEL_ROLES, f"eval.models has {role!r}; use any of {MODEL_ROLES}")
    d = cfg.data
    require(d.n_forget >= 1, f"the forget set is empty (data.n_forget={d.n_forget}); ask for at least one record")
    require(d.n_retain >= 0 and d.n_holdout >= 0, "data.n_retain and data.n_holdout must be >= 0")
    if method_cls.needs_retain:
        require(d.n_retain >= 1, f"method {cfg.method.name} trains on a retain set but data.n_retain=0; set data.n_retain")
    require(cfg.eval.prefix_len >= 1, f"eval.prefix_len must be >= 1 (got {cfg.eval.prefix_len})")
    if not memorize_none(cfg.memorize):
        require(0 < cfg.memorize.ma_threshold <= 1, f"memorize.ma_threshold must be in (0, 1] (got {cfg.memorize.ma_threshold})")
    validate_oracle(cfg)
    check_requirements(cfg)  # size=paper: hub models / data sets, before any model loads


def build_splits(cfg, root) -> Splits:
    forget, retain, holdout = load_splits(cfg, root)
    require(len(forget) > 0, "the forget set is empty: the data source gave no records; check data.path / data.n_forget")
    splits = Splits(forget, retain, holdout)
    validate_records(splits)
    return splits


class Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        if ranks.is_main():
            print(f"[unlearn] {name}: {self.seconds[name]:.1f}s")


def encode_splits(cfg, named_records: dict[str, list], model, tokenizer) -> dict:
    """Record lists (by split name) as this model's token ids."""
    vocab = model.get_input_embeddings().num_embeddings
    use_ids = cfg.data.get("use_source_ids", "auto")
    use_ids = shares_gpt2_vocab(tokenizer) if use_ids == "auto" else bool(use_ids)
    return {
        name: encode_split(records, tokenizer, vocab, use_ids, cfg.eval.prefix_len, cfg.data.get("max_length"),
                           cfg.data.get("use_chat_template", True))
        for name, records in named_records.items()
    }


def run_pipeline(cfg, run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    apply_strength(cfg)
    validate_config(cfg)
    method_cls = get_method(cfg.method.name)
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.get("threads") or torch.get_num_threads())
    cache_dir = Path(cfg.paths.cache_dir).expanduser()
    root = cfg.paths.data_root
    timer = Timer()

    with timer("data"):
        splits = build_splits(cfg.data, root)
    place = placement(cfg.trainer, cfg.eval)  # one device/precision policy for every stage (stages/device.py)
    with timer("load_model"), ranks.main_first():  # rank 0 fills the model cache (a dequantized GGUF), the rest read it
        base, tokenizer = load_model(cfg.model, cache_dir, corpus=splits.texts(), seed=cfg.seed)
        place.to_device(base)

    def encode_all(splits):
        return (encode_splits(cfg, {name: splits.by_name(name) for name in ("forget", "retain", "holdout")}, base, tokenizer),
                encode_splits(cfg, method_cls.training_records(splits, cfg.method), base, tokenizer))

    encoded, train_splits = encode_all(splits)
    with timer("utility_text"), ranks.main_first():  # rank 0 samples and caches the texts, the rest read them
        material = key_material(cfg, splits, cache_dir)  # the model by its config and content (models/identity.py)
        model_tag = json.dumps(material["model"], sort_keys=True)
        utility, validation = utility_texts(cfg.data.utility, root, base, tokenizer, cfg.seed, cache_dir, model_tag)
        texts = {"utility": [tokenizer.encode(t, add_special_tokens=False) for t in utility],
                 "validation": [tokenizer.encode(t, add_special_tokens=False) for t in validation]}
        # Disjoint prompts and seed from the utility samples: the memorize mix never contains evaluation text.
        n_general = cfg.memorize.get("general_samples", 0)
        general_texts = base_model_samples(base, tokenizer, n_general, cfg.data.utility.get("max_new_tokens", 40),
                                           cfg.seed + 7919, cache_dir, model_tag, GENERAL_PROMPTS) if n_general else []
        general = EncodedSplit([f"general-{i}" for i in range(len(general_texts))],
                               [tokenizer.encode(t, add_special_tokens=False) for t in general_texts], [1] * len(general_texts))

    with timer("memorize"):
        if memorize_none(cfg.memorize):
            target, oracle, card = given_target(base, cfg, cache_dir, material)
        else:
            target, oracle, card = memorize(base, tokenizer, encoded, cfg.memorize, cfg.trainer, cache_dir, material, cfg.seed, general)
    recited = None
    if cfg.data.get("min_target_ma") is not None:
        splits, recited = keep_recited(splits, place.to_device(target), encoded["forget"], tokenizer.pad_token_id,
                                       cfg.data.min_target_ma, cfg.eval.batch_size)
        encoded, train_splits = encode_all(splits)
    memorized = None
    if method_cls.needs_memorized:
        with timer("memorize_forget"):
            memorized = memorize_forget(target, tokenizer, encoded["forget"], cfg.method.memorized, cfg.trainer, cache_dir,
                                        card["key"], cfg.model.get("dtype", "float32"), cfg.seed)

    resolved = to_container(cfg)
    logger = build_logger(cfg.logger, run_dir, cfg.run_name, resolved, sweep_group(), wandb_tags(cfg)) if ranks.is_main() else False
    # "original_model" in metric parameters = the model unlearning starts from: the memorized target.
    env = EvalEnv(data_root=root, cache_dir=cache_dir, seed=cfg.seed, settings=eval_settings(cfg.eval), original_role="target",
                  placement=place)
    during = trajectory(cfg.eval, tokenizer, encoded, texts, env, run_dir, target)  # eval.during; None when off
    with timer("unlearn"):
        unlearned, info = unlearn(target, tokenizer, train_splits, texts["validation"], cfg.method, cfg.trainer, run_dir, logger,
                                  cfg.seed, memorized, place, during)
    if cfg.save_model and ranks.is_main():  # before evaluating: eval.precision=bf16 casts the models in place
        with timer("save_model"):
            save_model(unlearned, tokenizer, run_dir / "model", {"method": cfg.method.name, "memorized": card.get("key")})

    # Before evaluation, which may cast the models to eval.precision in place.
    fingerprints = ranks.is_main() and stage_fingerprints({"base": base, "target": target, "oracle": oracle, "unlearned": unlearned},
                                      {"utility": utility, "validation": validation, "general": general_texts})
    # memorize=none: the loaded model is the target, so there is no separate original.
    available = {"original": base if target is not base else None, "target": target, "unlearned": unlearned, "oracle": oracle}
    available = {role: place.for_eval(m) for role, m in available.items() if m is not None}
    models = [role for role in cfg.eval.models if role in available]
    same = {role: tokenizer for role in available}
    contexts = build_contexts(available, same, {r: encoded for r in available}, {r: texts for r in available}, cfg.eval, env)
    reference_cache = None  # read and written by rank 0 alone, like the store (its decisions reach every rank)
    if cfg.eval.get("reuse_reference", True) and ranks.is_main():
        # Model, data and seed are in the memorize key that names the folder; the rest can differ per run.
        identity = {"prefix_len": cfg.eval.prefix_len, "batch_size": cfg.eval.batch_size, **place.details(),
                    "forget_ids": recited["kept"] if recited else None}
        reference_cache = ReferenceCache(cache_dir / "memorized" / card["key"] / "eval", identity)
    # Per metric on disk: a re-run resumes.
    store = ResultStore(run_dir / EVAL_STORE, {"run_name": cfg.run_name}) if ranks.is_main() else None
    with timer("evaluate"):
        evaluate(contexts, models, cfg.eval, store, reference_cache=reference_cache, details=place.details())
    if not ranks.is_main():  # the rest is rank 0's alone: attacks (short fits, one process) and every file
        return {}
    ranks.go_alone()
    records, per_item = store.records, store.per_item
    if cfg.eval.get("attacks"):  # unlearn/attacks/: attacked copies of the evaluated models, re-measured
        with timer("attacks"):
            attacked, attacked_items = run_attacks(cfg, {r: available[r] for r in models}, tokenizer, encoded, texts, splits, env, reference_cache)
        records, per_item = records + attacked, {**per_item, **attacked_items}

    table = mark_target(markdown_table(records, list(models)), card) + pre_release_note(records, [cfg.data.name])
    results = {
        "run_name": cfg.run_name,
        "method": cfg.method.name,
        "model": cfg.model.name,
        "data": cfg.data.name,
        "seed": cfg.seed,
        "strength": strength_of(cfg),
        "memorize": card,
        "unlearn": info,
        "trajectory": info.get("trajectory"),  # eval.during: {"points", "file": "trajectory.json", schedule}; None when off
        "eval_placement": place.details(),
        "forget_filter": recited,
        "timings_s": timer.seconds,
        "status": "diverged" if info.get("diverged") else "complete",
        "run": run_metadata(cfg, unlearned, info),
        "fingerprints": fingerprints,
        "sanity": metric_sanity(per_item),
        "records": records,
    }
    write_json(run_dir / "per_item.json", per_item)
    write_json(run_dir / "generations.json", store.generations)
    banner = f"**diverged**: {info['diverged']['message']}\n\n" if info.get("diverged") else ""
    write_text(run_dir / "results.md", f"# {cfg.run_name}\n\n{banner}{table}\n")
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    write_json(run_dir / "results.json", results)  # last: a results.json on disk is a finished run
    discard(run_dir / RESUME_DIR)
    discard(run_dir / EVAL_STORE)
    log_final(logger, records, {"selected_blocks": json.dumps([h for h in info["history"] if "blocks" in h]),
                                "strength": strength_of(cfg)})
    if hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
        logger.experiment.finish()
    print(f"\n{table}\n\nresults: {run_dir / 'results.json'}")
    if info.get("diverged"):
        raise RunDiverged(f"{info['diverged']['message']}; results in {run_dir / 'results.json'} (status diverged)")
    return results


__all__ = ["ConfigError", "run_pipeline", "validate_config"]
