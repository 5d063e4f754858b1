"""`python -m unlearn.train`: one paradigm (standard, memsinks, dedup, or post-hoc unlearning of the
standard model) on a general corpus with a repeated set, evaluated against the standard model.

The standard model (same corpus, same R, same steps, no sinks) is every job's reference ("target" in
the report): trained once per corpus/model/budget/seed and cached, like the memorized target of
`unlearn.run`. Each job reports, for the target and its own model ("unlearned"): loss on the repeated
and held-out sets, the memorization gap (repeated − held-out loss; negative = memorized), the fraction
of the standard model's gap it closes, validation loss and perplexity, and MA / EM / EL on the repeated
set (forget split) and held-out set (holdout split) from the framework's metrics.

Devices follow `unlearn.run`'s policy (stages/device.py): models that still train go to the trainer's device
(Lightning's teardown leaves a fitted model on the CPU), and every evaluated model is cast to
`eval.precision` with `eval.decode_cache` just before metrics, after the models are saved.
"""
import copy
import json
import math
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from unlearn.data.encode import EncodedSplit
from unlearn import ranks
from unlearn.errors import require
from unlearn.storage.code_hash import MEMSINKS_STANDARD, PACKAGE_CODE, code_hash
from unlearn.storage.keys import key_of
from unlearn.storage.locks import build_lock
from unlearn.tracking.loggers import build_logger, log_final, to_container
from unlearn.tracking.run_metadata import numerics
from unlearn.memsinks.corpus import load_corpus
from unlearn.memsinks.data import PARADIGMS, check_budget, training_documents
from unlearn.memsinks.hashing import document_id
from unlearn.memsinks.losses import SUFFIX, gap_metrics
from unlearn.memsinks.module import GapLogger, PackedLM
from unlearn.memsinks.packing import PackedDataset, pack
from unlearn.memsinks.sinks import EVAL_MODES, SinkConfig, attach_sinks, controller_of, sink_card, validate_fractions
from unlearn.metrics import EvalEnv
from unlearn.models.identity import model_identity
from unlearn.models.load import load_model, save_model
from unlearn.storage.results import markdown_table, write_json
from unlearn.seeding import seed_everything
from unlearn.stages.device import Placement, placement
from unlearn.stages.evaluate import build_contexts, eval_settings, evaluate
from unlearn.stages.trainer import build_trainer, trainer_identity
from unlearn.workflows.input_checks import validate_paths

CONF = Path(__file__).resolve().parents[2] / "conf"


def validate(cfg) -> Placement:
    """Everything checkable before data or models load; returns the run's device policy."""
    validate_paths(cfg)
    p = cfg.paradigm
    require(p.name in PARADIGMS, f"paradigm={p.name!r} is unknown; use one of {PARADIGMS}")
    if p.name == "memsinks":
        validate_fractions(p.sinks.p_gen, p.sinks.p_mem)
        require(p.eval_mode in EVAL_MODES, f"paradigm.eval_mode={p.eval_mode!r}; use one of {EVAL_MODES} (sinks on, `own`, "
                                           "needs each token's document id; its losses are recorded as *_sinks_on)")
    require(cfg.corpus.repetitions >= 1, f"corpus.repetitions={cfg.corpus.repetitions} must be >= 1")
    require(0 <= cfg.id_noise < 1, f"id_noise={cfg.id_noise} must be in [0, 1): the fraction of repetitions with a wrong id")
    t = cfg.train
    require(t.max_steps >= 1 and t.batch_size >= 1 and t.seq_len >= 8, "train.max_steps, train.batch_size >= 1 and train.seq_len >= 8")
    if p.name == "posthoc":
        for name in p.methods:
            require((CONF / "method" / f"{name}.yaml").is_file(), f"paradigm.methods has {name!r}, which is not in conf/method/")
    return placement(cfg.trainer, cfg.eval)  # eval.precision, eval.decode_cache and the trainer's device, checked


def standard_key(cfg, cache_dir: Path) -> str:
    """The cache key of the standard model: everything its training reads, the trainer settings with their
    accumulation and world size included (they change the batches each optimizer step sees)."""
    return key_of({"model": model_identity(cfg.model, cache_dir), "corpus": to_container(cfg.corpus),
                   "train": to_container(cfg.train), "seed": cfg.seed, "trainer": trainer_identity(cfg.trainer),
                   "code": code_hash(MEMSINKS_STANDARD)})


def tokens_trained(trainer, train_cfg) -> int:
    """Tokens a fit consumed: each optimizer step takes `accumulate_grad_batches` batches of
    batch_size x seq_len tokens on each of `world_size` processes."""
    return (trainer.global_step * train_cfg.batch_size * train_cfg.seq_len * trainer.accumulate_grad_batches
            * trainer.world_size)


class Job:
    """Data, tokenizer and base model of one run, shared by the standard reference and the job's model."""

    def __init__(self, cfg, place: Placement):
        self.cfg = cfg
        self.place = place
        self.cache_dir = Path(cfg.paths.cache_dir).expanduser()
        self.corpus = load_corpus(cfg.corpus, cfg.paths.data_root, cfg.seed)
        if cfg.paradigm.name != "dedup":
            check_budget(self.corpus, cfg.corpus.repetitions, cfg.corpus.max_repeated_share)
        with ranks.main_first():  # rank 0 fills the model cache (a dequantized GGUF), the other ranks read it
            self.base, self.tokenizer = load_model(cfg.model, self.cache_dir, corpus=self.corpus.general, seed=cfg.seed)
        place.to_device(self.base)
        tok = self.tokenizer
        self.encode = lambda text: tok.encode(text, add_special_tokens=False)[: cfg.train.max_doc_tokens]
        n_val = cfg.train.n_validation
        self.sets = {
            "repeated": ([self.encode(t) for t in self.corpus.repeated], list(self.corpus.repeated_ids)),
            "heldout": ([self.encode(t) for t in self.corpus.heldout], [document_id(t) for t in self.corpus.heldout]),
            "validation": ([self.encode(t) for t in self.corpus.validation[:n_val]],
                           [document_id(t) for t in self.corpus.validation[:n_val]]),
        }
        self.standard_key = standard_key(cfg, self.cache_dir)

    def rows(self, paradigm: str, id_noise: float) -> PackedDataset:
        c = self.cfg
        docs = training_documents(self.corpus, self.encode, paradigm, c.corpus.repetitions, id_noise, c.seed)
        eos = self.tokenizer.eos_token_id
        return PackedDataset(pack(docs, c.train.seq_len, eos, self.tokenizer.pad_token_id))

    def train(self, paradigm: str, run_dir: Path | None, logger, id_noise: float = 0.0):
        """A fresh copy of the base model trained `train.max_steps` steps; sinks attached for memsinks."""
        c = self.cfg
        seed_everything(c.seed)
        model = copy.deepcopy(self.base).train()
        if paradigm == "memsinks":
            s = c.paradigm.sinks
            attach_sinks(model, SinkConfig(s.p_gen, s.p_mem, s.get("seed", 0), "own"))
        data = self.rows(paradigm, id_noise)
        loader = DataLoader(data, batch_size=c.train.batch_size, shuffle=True, drop_last=len(data) >= c.train.batch_size,
                            generator=torch.Generator().manual_seed(c.seed))
        gap = GapLogger(self.sets, self.tokenizer.pad_token_id, c.train.eval_every, c.train.eval_batch_size)
        trainer = build_trainer(c.trainer, -1, run_dir, [gap], logger, max_steps=c.train.max_steps)  # the budget is steps
        start = time.perf_counter()
        trainer.fit(PackedLM(model, c.train, c.train.max_steps), train_dataloaders=loader)
        self.place.to_device(model.eval())  # fit's teardown left it on the CPU
        info = {"paradigm": paradigm, "steps": trainer.global_step, "rows": len(data), "tokens_trained": tokens_trained(trainer, c.train),
                "accumulate_grad_batches": trainer.accumulate_grad_batches, "world_size": trainer.world_size,
                "epochs": trainer.current_epoch, "train_seconds": round(time.perf_counter() - start, 1),
                "id_noise": id_noise, "sinks": sink_card(model), "history": gap.history}
        return model, info

    def standard(self, logger=False):
        """The cached standard model (trained once per corpus/model/budget/seed); `logger` gets its gap curve
        when it is trained here."""
        folder = self.cache_dir / "memsinks" / self.standard_key
        with build_lock(folder):
            card = folder / "standard" / "card.json"
            if ranks.broadcast(card.is_file()):  # rank 0 holds the lock and writes the entry: its look is every rank's
                local = OmegaConf.create({"source": "local", "name_or_path": str(folder / "standard"),
                                          "dtype": self.cfg.model.get("dtype", "float32")})
                model, _ = load_model(local, self.cache_dir)
                return self.place.to_device(model), {**json.loads(card.read_text()), "cached": True}
            model, info = self.train("standard", None, logger)
            if ranks.is_main():
                save_model(model, self.tokenizer, folder / "standard", info)
            return model, {**info, "cached": False}


def evaluated_gaps(model, job: Job) -> tuple[str | None, dict]:
    """(sink mode, gap metrics) of a model already placed for evaluation: a sink model in the mode it is
    evaluated in (`paradigm.eval_mode`: sinks dropped, the forgetting step, or all at their expectation)."""
    controller = controller_of(model)
    mode = controller.mode if controller is not None else None
    return mode, gap_metrics(model, job.sets, job.tokenizer.pad_token_id, job.cfg.train.eval_batch_size, mode or "drop")


def records_for(role: str, mode: str | None, metrics: dict, reference_gap: float, details: dict) -> list[dict]:
    """Gap records of one model (`evaluated_gaps`); `details`: the evaluation placement."""
    suffix = SUFFIX[mode] if mode else ""
    sink = {"sink_mode": mode} if mode else {}
    rec = lambda split, metric, value, **d: {"model": role, "split": split, "metric": metric, "value": value, "n": None,
                                             "details": {**sink, **d, **details}}
    gap = metrics[f"memgap{suffix}"]
    out = [
        rec("repeated", "loss", metrics[f"repeated/loss{suffix}"]),
        rec("holdout", "loss", metrics[f"heldout/loss{suffix}"]),
        rec("repeated", "memgap", gap, definition="loss(repeated) - loss(held-out); negative = memorized"),
        rec("validation", "val_loss", metrics[f"validation/loss{suffix}"]),
        rec("utility", "PPL", math.exp(metrics[f"validation/loss{suffix}"]), text="validation documents (held-out general text)"),
    ]
    if reference_gap < 0:
        out.append(rec("repeated", "gap_closed", 1 - gap / reference_gap, reference_gap=reference_gap))
    if suffix:  # the same with sinks on, for the record
        out += [rec("repeated", "memgap_sinks_on", metrics["memgap_sinks_on"], sink_mode="own"),
                rec("validation", "val_loss_sinks_on", metrics["validation/loss_sinks_on"], sink_mode="own")]
    return out


def framework_records(models: dict, job: Job, eval_cfg, details: dict) -> list[dict]:
    """MA / EM_len / EL_3 from unlearn.metrics on the repeated set (split `forget`) and held-out set (`holdout`)."""
    def split(name):
        docs, _ = job.sets[name]
        return EncodedSplit([f"{name}-{i}" for i in range(len(docs))], docs, [eval_cfg.prefix_len] * len(docs))

    env = EvalEnv(data_root=job.cfg.paths.data_root, cache_dir=job.cache_dir, seed=job.cfg.seed, original_role="target",
                  placement=job.place, settings=eval_settings(eval_cfg))  # the suite's shared sections, as the pipeline's
    splits = {"forget": split("repeated"), "holdout": split("heldout")}
    contexts = build_contexts(models, {r: job.tokenizer for r in models}, {r: splits for r in models}, {r: {} for r in models},
                              eval_cfg, env)
    records, _ = evaluate(contexts, list(models), eval_cfg, details=details)
    return records


def method_config(name: str, overrides) -> object:
    cfg = OmegaConf.load(CONF / "method" / f"{name}.yaml")
    return OmegaConf.merge(cfg, overrides.get(name) or {}) if overrides else cfg


def posthoc(job: Job, standard, run_dir: Path, logger) -> list[tuple[str, object, dict]]:
    """The standard model unlearned by each configured post-hoc method through the framework's unlearn stage:
    forget = the repeated set, retain = general paragraphs, early-stop text = validation documents."""
    from unlearn.stages.unlearn import unlearn

    c = job.cfg
    general = [job.encode(t) for t in job.corpus.general[: c.paradigm.n_retain]]
    forget_docs, _ = job.sets["repeated"]
    held_docs, _ = job.sets["heldout"]
    prefix = c.eval.prefix_len
    encoded = {"forget": EncodedSplit([f"repeated-{i}" for i in range(len(forget_docs))], forget_docs, [prefix] * len(forget_docs)),
               "retain": EncodedSplit([f"general-{i}" for i in range(len(general))], general, [prefix] * len(general))}
    out = []
    for name in c.paradigm.methods:
        method_cfg = method_config(name, c.paradigm.get("overrides"))
        from unlearn.methods import get_method

        get_method(name).validate_config(method_cfg)
        seed_everything(c.seed)
        model, info = unlearn(standard, job.tokenizer, encoded, job.sets["validation"][0], method_cfg, c.trainer,
                              run_dir / name, logger, c.seed, placement=job.place)
        out.append((name, model, {**info, "method_config": to_container(method_cfg)}))
    return out


def write_results(run_dir: Path, cfg, method: str, records: list[dict], extra: dict, logger) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    results = {"run_name": cfg.run_name, "method": method, "model": cfg.model.name, "data": cfg.corpus.name,
               "seed": cfg.seed, "strength": None, **extra,
               "run": {"numerics": numerics(), "code": code_hash(PACKAGE_CODE)},  # where the pipeline's results.json keeps them
               "records": records}
    write_json(run_dir / "results.json", results)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    table = markdown_table(records, ["target", "unlearned"])
    (run_dir / "results.md").write_text(f"# {method} ({cfg.run_name})\n\n{table}\n")
    if logger:
        log_final(logger, records)
    print(f"\n## {method}\n{table}\n")
    return results


def run_training(cfg, run_dir: Path) -> list[dict]:
    run_dir = Path(run_dir)
    place = validate(cfg)
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.get("threads") or torch.get_num_threads())
    started = time.perf_counter()
    job = Job(cfg, place)
    paradigm = cfg.paradigm.name
    folder = lambda name: run_dir / name if paradigm == "posthoc" else run_dir
    # Rank 0 writes every file (unlearn/ranks.py); the other ranks train and evaluate their share with it.
    logger = build_logger(cfg.logger, run_dir, cfg.run_name, to_container(cfg)) if ranks.is_main() else False
    standard, standard_info = job.standard(logger if paradigm == "standard" else False)

    if paradigm == "posthoc":
        jobs = posthoc(job, standard, run_dir, logger)
    elif paradigm == "standard":
        jobs = [("standard", standard, standard_info)]
    else:
        model, info = job.train(paradigm, run_dir, logger, cfg.id_noise if paradigm == "memsinks" else 0.0)
        if controller_of(model) is not None:
            controller_of(model).mode = cfg.paradigm.eval_mode  # drop: the forgetting step; saved and evaluated so
        jobs = [(paradigm, model, info)]
    if cfg.save_model and paradigm != "standard" and ranks.is_main():  # before evaluating: eval.precision=bf16 casts in place
        for name, model, _ in jobs:
            save_model(model, job.tokenizer, folder(name) / "model", {"paradigm": paradigm, "method": name, "sinks": sink_card(model)})

    details = place.details()
    standard = place.for_eval(standard)  # after post-hoc training, which starts from the fp32 standard model
    target_mode, target_gaps = evaluated_gaps(standard, job)
    ref = target_gaps["memgap"]
    target_records = records_for("target", target_mode, target_gaps, ref, details)
    out = []
    for name, model, info in jobs:
        model = place.for_eval(model)
        records = target_records + records_for("unlearned", *evaluated_gaps(model, job), ref, details)
        records += framework_records({"target": standard, "unlearned": model}, job, cfg.eval, details)
        extra = {"paradigm": paradigm, "train": info, "standard": {k: v for k, v in standard_info.items() if k != "history"},
                 "corpus": {"source": job.corpus.source, "n_general_docs": len(job.corpus.general),
                            "n_repeated": len(job.corpus.repeated), "repetitions": cfg.corpus.repetitions,
                            "id_noise": cfg.id_noise if paradigm == "memsinks" else 0.0},
                 "eval_placement": details,  # as the pipeline's results.json
                 "timings_s": {"total": round(time.perf_counter() - started, 1)}}
        if ranks.is_main():
            out.append(write_results(folder(name), cfg, name, records, extra, logger if paradigm != "posthoc" else None))
    if hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
        logger.experiment.finish()
    return out
