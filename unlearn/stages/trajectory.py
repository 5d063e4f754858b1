"""`eval.during`: the unlearning fit's trajectory, a few cheap metrics measured while it trains (issue #22, part 1).

At the start (before the first step), every `every_n_steps` optimizer steps, at each epoch end and at the end
of the fit, the model being trained is measured on a fixed subset (the first `limit` records of each record
split, the same every time) with the final evaluation's own code (`stages/evaluate.py`'s `_run_one`) in a
fresh `EvalContext` (contexts memoize their passes, and the weights changed since the last point). Rank 0
writes every point to `<run_dir>/trajectory.json` (atomically, after each point) and to the Lightning logger
as `during/<split>/<metric>` against the optimizer step. Every rank measures at the same points: under DDP
the evaluation passes are shared across the ranks (unlearn/ranks.py).

A resumed fit continues the trajectory: the points already on disk up to the step it resumes from are kept
(and not measured again), those after it are dropped and measured again by the resumed fit.
"""
import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from unlearn import ranks
from unlearn.data.encode import EncodedSplit
from unlearn.errors import ConfigError, require
from unlearn.metrics import EvalContext, EvalEnv, check_params
from unlearn.stages.evaluate import _config, _run_one, entry_params, eval_settings, metric_label
from unlearn.storage.results import write_json

FILE = "trajectory.json"
MODEL = "unlearned"  # the role the trajectory's points are measured as (the model the fit turns into "unlearned")
RECORD_SPLITS = ("forget", "retain", "holdout")


def during_cfg(eval_cfg):
    """`eval.during` when enabled, else None (a suite without the block: disabled)."""
    during = eval_cfg.get("during")
    return during if during is not None and during.get("enabled") else None


def validate_during(eval_cfg) -> None:
    """Bad `eval.during` values in one line, before any model loads."""
    during = eval_cfg.get("during")
    if during is None:
        return
    require(isinstance(during.get("enabled", False), bool), f"eval.during.enabled must be true or false (got {during.get('enabled')!r})")
    every = during.get("every_n_steps")
    require(every is None or (isinstance(every, int) and not isinstance(every, bool) and every >= 1),
            f"eval.during.every_n_steps must be a whole number >= 1, or null for epoch ends only (got {every!r})")
    require(isinstance(during.get("every_epoch", True), bool), f"eval.during.every_epoch must be true or false (got {during.get('every_epoch')!r})")
    limit = during.get("limit")
    require(limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1),
            f"eval.during.limit must be a whole number >= 1 (records per split), or null for all (got {limit!r})")
    metrics = during.get("metrics")
    require(metrics is not None and len(metrics) > 0,
            "eval.during.metrics is empty; list entries like eval.metrics ({name, label, splits, ...}) or set eval.during.enabled=false")
    for entry in metrics:
        require(OmegaConf.is_dict(entry) or isinstance(entry, dict),
                f"eval.during.metrics entry {entry!r} is not a mapping; write it like eval.metrics' entries: {{name: ma, splits: [forget]}}")
        require(entry.get("name") is not None, f"eval.during.metrics entry {dict(entry)} has no name")
        splits = entry.get("splits")
        require(splits is not None and not isinstance(splits, str) and len(splits) > 0,
                f"eval.during.metrics entry {entry.name!r} needs splits: a list such as [forget] (got {splits!r})")
        try:
            check_params(entry.name, entry_params(entry))
        except ConfigError as err:
            raise ConfigError(f"eval.during.metrics: {err}") from None


def subset(split: EncodedSplit, limit: int | None) -> EncodedSplit:
    """The first `limit` records: the same items at every point and in a final evaluation given the same limit."""
    if limit is None:
        return split
    return EncodedSplit(split.record_ids[:limit], split.input_ids[:limit], split.prefix_lens[:limit], split.label_starts[:limit])


def load(path: Path | None) -> list[dict]:
    if path is None or not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text()).get("records", []))
    except (OSError, ValueError):  # written atomically, so only a hand-edited file gets here: start again
        return []


class Trajectory(pl.Callback):
    """One job: measure `eval.during.metrics` on the module's model at the scheduled points. Add it after
    callbacks that change the weights at a step (PerplexityEarlyStop with restore), so a point sees their result."""

    def __init__(self, during, eval_cfg, tokenizer, encoded: dict[str, EncodedSplit], texts: dict, env: EvalEnv,
                 run_dir: Path | None, target=None):
        self.every, self.every_epoch = during.get("every_n_steps"), during.get("every_epoch", True)
        self.limit = during.get("limit")
        self.metrics = list(during.metrics)
        self.batch_size = eval_cfg.batch_size
        self.settings = eval_settings(eval_cfg)
        self.tokenizer = tokenizer
        self.splits = {name: subset(split, self.limit) for name, split in encoded.items() if name in RECORD_SPLITS}
        self.texts = texts
        self.env = env
        self.path = Path(run_dir) / FILE if run_dir is not None else None
        self.schedule = {"every_n_steps": self.every, "every_epoch": self.every_epoch, "limit": self.limit,
                         "metrics": [metric_label(e) for e in self.metrics]}
        self.records: list[dict] = []
        self._epochs = 0.0        # epochs of training done, fractional mid-epoch
        self._measured: dict[int, int] = {}  # step -> the weights' version when measured in this process
        # "original_model" parameters name the target; its context is built once (its weights never change).
        self._target = (EvalContext(target, tokenizer, self.splits, texts, self.batch_size, env.original_role or "target", env)
                        if target is not None else None)

    # -- schedule -------------------------------------------------------------------------------------------
    def setup(self, trainer, module, stage):
        # Rank 0's file is every rank's: all ranks must agree on which points are still to measure.
        self.records = ranks.broadcast(load(self.path) if ranks.is_main() else None) or []

    def on_train_start(self, trainer, module):
        step = trainer.global_step  # 0, or the step a resumed fit continues from
        self._epochs = float(trainer.current_epoch)
        kept = [r for r in self.records if r["step"] <= step]
        if len(kept) != len(self.records):
            self.records = kept
            self._write()
        self._point(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._epochs = trainer.current_epoch + (batch_idx + 1) / max(1, trainer.num_training_batches)
        if self.every and trainer.global_step % self.every == 0:
            self._point(trainer, module)

    def on_train_epoch_end(self, trainer, module):
        self._epochs = float(trainer.current_epoch + 1)
        if self.every_epoch:
            self._point(trainer, module)

    def on_train_end(self, trainer, module):
        self._point(trainer, module)

    # -- one point ------------------------------------------------------------------------------------------
    def steps(self) -> list[int]:
        return sorted({r["step"] for r in self.records})

    def _point(self, trainer, module) -> None:
        step, model = trainer.global_step, module.model
        version = _weights_version(model)
        if step in self._measured:  # this step's weights measured already, unless a callback changed them since
            due = self._measured[step] != version  # (an early stop that put back earlier weights): measured again
        else:
            due = step not in self.steps()  # not measured before a resume either
        if not ranks.broadcast(due):  # rank 0's answer: every rank runs the same (collective) passes
            return
        records = self.measure(model, step, round(self._epochs, 4))
        self.records = [r for r in self.records if r["step"] != step] + records
        self._measured[step] = version
        if ranks.is_main():
            self._write()
            values = {f"during/{r['split']}/{r['metric']}": r["value"] for r in records if r["value"] is not None}
            for logger in trainer.loggers:
                logger.log_metrics(values, step=step)

    def measure(self, model, step: int, epoch: float) -> list[dict]:
        """Every metric on `model`, in eval mode without gradients, leaving its modes and the random state as found
        (a run with eval.during trains exactly as one without)."""
        modes = {m: m.training for m in model.modules()}
        env = dataclasses.replace(self.env, roles={})
        ctx = EvalContext(model, self.tokenizer, self.splits, self.texts, self.batch_size, MODEL, env)
        env.roles[MODEL] = ctx
        if self._target is not None:
            self._target.env = env
            env.roles[self._target.name] = self._target
        state = (random.getstate(), np.random.get_state())
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        out = []
        try:
            model.eval()
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                for entry in self.metrics:
                    for split in entry.splits:
                        record, _ = _run_one(ctx, entry, split, _config(entry, self.settings))
                        point = {"step": step, "epoch": epoch, "model": MODEL, "split": split, "metric": record["metric"],
                                 "value": record["value"], "n": record["n"]}
                        if "skipped" in record["details"]:
                            point["skipped"] = record["details"]["skipped"]
                        out.append(point)
        finally:
            for m, training in modes.items():
                m.training = training
            random.setstate(state[0])
            np.random.set_state(state[1])
        return out

    def _write(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, {"schedule": self.schedule, "records": self.records})

    def summary(self) -> dict:
        return {"points": len(self.steps()), "file": FILE if self.path is not None else None, **self.schedule}


def _weights_version(model) -> int:
    # Every in-place change of a parameter (optimizer step, copy_) bumps its tensor's version counter.
    return sum(p._version for p in model.parameters())


def trajectory(eval_cfg, tokenizer, encoded: dict, texts: dict, env: EvalEnv, run_dir: Path | None, target=None) -> Trajectory | None:
    """The callback for `eval.during`, or None when it is off."""
    during = during_cfg(eval_cfg)
    if during is None:
        return None
    return Trajectory(during, eval_cfg, tokenizer, encoded, texts, env, run_dir, target)
