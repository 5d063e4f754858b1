"""Relearning attack: a few optimizer steps of plain fine-tuning on a small budget (Hu et al., arXiv
2406.13356, benign relearning). Either on part of the forget set (train on a fraction of the records,
measure the held-back rest: does relearning some records bring back the others?) or on related text
(holdout records shaped like the forget set, or the retain set: does public text of the same kind
unlock what was erased?).

The same machinery as the memorize stage trains it: `FineTune` (NLL) on the shared Lightning base, with
the run's trainer config and a step budget. It trains a deep copy; the input model is never touched.
One run to the largest budget yields every smaller one: a callback copies the model at each wanted step.
"""
import copy
import random

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from unlearn.data.collate import Collator, SequenceDataset
from unlearn.data.encode import EncodedSplit
from unlearn.errors import require
from unlearn.methods.finetune import FineTune
from unlearn.stages.trainer import build_trainer

DATA = ("forget", "retain", "holdout")


def validate(params: dict) -> None:
    require(params.get("data") in DATA, f"relearn attack: data={params.get('data')!r}; use one of {DATA}")
    steps = list(params.get("steps") or [])
    require(steps and all(isinstance(s, int) and s >= 0 for s in steps),
            f"relearn attack: steps={steps!r}; give a list of step budgets >= 0, e.g. [0, 10, 50]")
    if params["data"] == "forget":
        fraction = params.get("fraction")
        require(isinstance(fraction, (int, float)) and 0 < fraction < 1,
                f"relearn attack on the forget set: fraction={fraction!r} must be in (0, 1): the held-back rest is what is measured")
        require(0 in steps, f"relearn attack on the forget set: steps={steps} needs 0, the clean model on the same held-back records")
    require(params.get("lr", 0) > 0 and params.get("batch_size", 0) >= 1, "relearn attack: lr must be > 0 and batch_size >= 1")


def split_forget(forget: EncodedSplit, fraction: float, seed: int) -> tuple[EncodedSplit, EncodedSplit]:
    """(train part, held-back part): a seeded choice of round(fraction * n) records (at least one each side)."""
    n = len(forget)
    require(n >= 2, f"relearn attack on the forget set needs at least 2 records to hold some back (have {n})")
    k = min(n - 1, max(1, round(fraction * n)))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    chosen, rest = sorted(order[:k]), sorted(order[k:])
    return _subset(forget, chosen), _subset(forget, rest)


def _subset(split: EncodedSplit, rows: list[int]) -> EncodedSplit:
    """The given rows with every per-row field, `label_starts` included: without it a QA record's question and
    chat-template tokens would become training targets, which the memorize stage never trains on."""
    fields = {name: [values[i] for i in rows] for name, values in vars(split).items()}
    return EncodedSplit(**fields)


class SnapshotAt(pl.Callback):
    """A frozen copy of the model after each global step in `steps`."""

    def __init__(self, steps):
        self.steps = set(steps)
        self.models: dict[int, torch.nn.Module] = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step in self.steps and trainer.global_step not in self.models:
            self.models[trainer.global_step] = frozen(copy.deepcopy(module.model))


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def relearned_copies(model, pad_id: int, train: EncodedSplit, steps, params: dict, trainer_cfg, seed: int) -> dict[int, torch.nn.Module]:
    """{budget: the model after `budget` optimizer steps on `train`}; budget 0 is the model itself (not a copy,
    nothing trains). Each epoch reshuffles `train`; batches of `params.batch_size`."""
    steps = sorted(set(steps))
    out = {0: model} if 0 in steps else {}
    budget = max(steps)
    if budget == 0:
        return out
    device = next(model.parameters()).device
    copy_ = copy.deepcopy(model).train()
    for p in copy_.parameters():
        p.requires_grad_(True)
    recipe = OmegaConf.create({"lr": params["lr"], "batch_size": params["batch_size"], "betas": [0.9, 0.999],
                               "weight_decay": params.get("weight_decay", 0.0), "warmup_steps": 0})
    module = FineTune(copy_, recipe, {"train": SequenceDataset(train)}, Collator(pad_id), seed)
    snapshots = SnapshotAt([s for s in steps if s > 0])
    trainer = build_trainer(trainer_cfg, max_epochs=-1, run_dir=None, callbacks=[snapshots], max_steps=budget)
    trainer.fit(module)
    missing = [s for s in steps if s > 0 and s not in snapshots.models]
    require(not missing, f"relearn attack: training stopped before step(s) {missing}")
    # Lightning's teardown moves the module to the CPU; the copies go back where the input model is.
    out.update({s: m.to(device) for s, m in snapshots.models.items()})
    return out
