"""`python -m unlearn.evaluate`: one suite of metrics on one saved model, into one output directory.

Loads the model (and, when given, the original model and the retrain oracle it is compared with),
only the data the suite's metrics read, then runs the evaluate stage with a `ResultStore`: each
record is written as soon as it exists, and a re-run into the same directory skips what is done.
"""
import json
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from unlearn import ranks
from unlearn.storage.atomic import write_text
from unlearn.data.utility import utility_texts
from unlearn.errors import ConfigError
from unlearn.tracking.loggers import to_container
from unlearn.metrics import EvalEnv
from unlearn.models.identity import model_identity
from unlearn.models.load import load_model
from unlearn.storage.results import markdown_table, write_json
from unlearn.tracking.run_metadata import run_metadata
from unlearn.seeding import seed_everything
from unlearn.stages.device import placement
from unlearn.stages.evaluate import build_contexts, eval_settings, evaluate, validate_metrics
from unlearn.stages.result_store import ResultStore
from unlearn.workflows.input_checks import validate_paths

CONF = Path(__file__).resolve().parents[2] / "conf"
RECORD_SPLITS = {"forget", "retain", "holdout"}
TEXT_SPLITS = {"utility", "validation"}


def model_spec(ref):
    """A model given as a conf/model option name (`smollm2`), a saved folder, or a full spec node."""
    if ref is None or OmegaConf.is_dict(ref) or isinstance(ref, dict):
        return ref
    ref = str(ref)
    option = CONF / "model" / f"{ref}.yaml"
    if option.is_file():
        return OmegaConf.load(option)
    path = Path(ref).expanduser()
    if path.is_dir():
        return OmegaConf.create({"name": path.name, "source": "local", "name_or_path": str(path.resolve()), "dtype": "float32"})
    options = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
    raise ConfigError(f"model {ref!r} is neither a saved model folder nor one of {options}")


def model_label(spec) -> str:
    return Path(spec.name_or_path).name if spec.source == "local" and spec.name == "local" else spec.name


def _needed(eval_cfg) -> set[str]:
    return {s for entry in eval_cfg.metrics for s in entry.splits}


def _model_data(cfg, spec, model, tokenizer, needed: set[str], cache_dir: Path):
    """(encoded record splits, tokenized text splits) for one model: only what the suite reads."""
    from unlearn.workflows.run_pipeline import build_splits, encode_splits

    encoded, texts = {}, {}
    if needed & RECORD_SPLITS:
        splits = build_splits(cfg.data, cfg.paths.data_root)
        encoded = encode_splits(cfg, {name: splits.by_name(name) for name in ("forget", "retain", "holdout")}, model, tokenizer)
    if needed & TEXT_SPLITS:
        with ranks.main_first():  # rank 0 samples and caches them, the other ranks read them
            utility, validation = utility_texts(cfg.data.utility, cfg.paths.data_root, model, tokenizer, cfg.seed, cache_dir,
                                                json.dumps(model_identity(spec, cache_dir), sort_keys=True))
        texts = {"utility": [tokenizer.encode(t, add_special_tokens=False) for t in utility],
                 "validation": [tokenizer.encode(t, add_special_tokens=False) for t in validation]}
    return encoded, texts


def run_evaluation(cfg, out_dir: Path) -> dict:
    validate_paths(cfg)
    validate_metrics(cfg.eval)
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.get("threads") or torch.get_num_threads())
    cache_dir = Path(cfg.paths.cache_dir).expanduser()
    place = placement(cfg.trainer, cfg.eval)  # the same device/precision policy as the pipeline (stages/device.py)
    specs = {"model": cfg.model, "original": model_spec(cfg.get("original")), "oracle": model_spec(cfg.get("oracle"))}
    label = model_label(cfg.model)
    header = ranks.is_main() and {
        "model": label,
        "model_spec": model_identity(cfg.model, cache_dir),  # the weights' content too: an overwritten folder is another model
        "eval": cfg.eval.get("name"),
        "data": cfg.data.name,
        "data_spec": to_container(cfg.data),
        "original": model_identity(specs["original"], cache_dir) if specs["original"] is not None else None,
        "oracle": model_identity(specs["oracle"], cache_dir) if specs["oracle"] is not None else None,
        "seed": cfg.seed,
        "eval_placement": place.details(),
    }
    store, problem = None, None  # the store is rank 0's (unlearn/ranks.py); a refusal to reuse it stops every rank
    if ranks.is_main():
        try:
            store = ResultStore(out_dir, header, cfg.get("overwrite", False),
                                identity_keys=("model_spec", "data_spec", "original", "oracle", "seed", "eval_placement"))
        except ConfigError as err:
            problem = str(err)
    if problem := ranks.broadcast(problem):
        raise ConfigError(problem)

    start = time.perf_counter()
    first_role: dict[str, str] = {}  # a model given twice (model=smollm2 original=smollm2) is loaded and evaluated once
    aliases: dict[str, str] = {}
    models, tokenizers, encoded, texts = {}, {}, {}, {}
    needed = _needed(cfg.eval)
    for role, spec in specs.items():
        if spec is None:
            continue
        name = label if role == "model" else role
        key = json.dumps(to_container(spec), sort_keys=True)
        if key in first_role:
            aliases[name] = first_role[key]
            continue
        first_role[key] = name
        with ranks.main_first():  # rank 0 fills the model cache (a dequantized GGUF), the rest read it
            model, tok = load_model(spec, cache_dir, seed=cfg.seed)
        place.for_eval(model)
        models[name], tokenizers[name] = model, tok
        encoded[name], texts[name] = _model_data(cfg, spec, model, tok, needed, cache_dir)
    load_s = time.perf_counter() - start

    env = EvalEnv(data_root=cfg.paths.data_root, cache_dir=cache_dir, seed=cfg.seed, settings=eval_settings(cfg.eval),
                  original_role="original" if specs["original"] is not None else None, placement=place)
    contexts = build_contexts(models, tokenizers, encoded, texts, cfg.eval, env)
    for role in ("original", "oracle"):
        if role in contexts:  # named in records' details (the scorer, the reference): say which model it was
            contexts[role].name = f"{role}={model_label(specs[role])}"
    for name, same in aliases.items():
        env.roles[name] = contexts[same]
    start = time.perf_counter()
    evaluate(contexts, [label], cfg.eval, store, details=place.details())
    if not ranks.is_main():  # rank 0 writes the files
        return {}
    store.header["timings_s"] = {"load": round(load_s, 2), "evaluate": round(time.perf_counter() - start, 2)}
    store.header["status"] = "complete"
    store.header["run"] = run_metadata(cfg, models[label], {})  # no training here: world size 1, no batch
    store.flush()
    table = markdown_table(store.records, [label])
    write_text(Path(out_dir) / "results.md", f"# {label} — eval={cfg.eval.get('name')}\n\n{table}\n")
    write_text(Path(out_dir) / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    print(f"\n{table}\n\nresults: {Path(out_dir) / 'results.json'}")
    return {**store.header, "records": store.records}


__all__ = ["run_evaluation", "model_spec", "write_json"]
