"""Build the Lightning Trainer from `conf/trainer/*.yaml`: one place for devices, precision, checkpoints."""
import logging
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from unlearn.errors import require
from unlearn.stages.checkpoints import AtomicCheckpointIO, StopFlag, epoch_checkpoint, resume_path
from unlearn.stages.divergence import FiniteGuard
from unlearn.storage.keys import to_plain

# Lightning's advice lines (num_workers, GPU availability) drown the table on a laptop run.
for noisy in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
# KL's reference and DI's teacher are frozen copies kept in eval mode on purpose (methods/base.py).
warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode at the start of training.*")


class CompileForward(pl.Callback):
    """`trainer.compile.enabled`: the training forward of every method runs through torch.compile
    (dynamic shapes: batches are padded to their longest row). Kept out of the module's submodules
    (a plain attribute), so checkpoints and state dicts are unchanged."""

    def __init__(self, backend: str = "inductor", mode: str | None = None):
        self.backend, self.mode = backend, mode

    def setup(self, trainer, pl_module, stage):
        if "compiled_model" not in pl_module.__dict__:
            pl_module.__dict__["compiled_model"] = torch.compile(pl_module.model, backend=self.backend, mode=self.mode,
                                                                 dynamic=True)


def strategy_of(cfg):
    """`trainer.strategy`: a Lightning name (`auto`, `ddp`, `fsdp`) or, for a strategy with settings
    (conf/trainer/fsdp.yaml's wrap policy), a `_target_` mapping Hydra instantiates."""
    return instantiate(cfg.strategy) if OmegaConf.is_dict(cfg.strategy) else cfg.strategy


def is_fsdp(cfg) -> bool:
    strategy = cfg.get("strategy")
    name = strategy.get("_target_", "") if OmegaConf.is_dict(strategy) else str(strategy)
    return "fsdp" in name.lower()


def validate_strategy(cfg, method_cls) -> None:
    """Refuse, before any model loads, what cannot train under FSDP, which leaves each rank a flat shard of
    the weights outside the wrapped forward: a method that reads whole weight matrices (its
    `fsdp_refusal`), and the early-stop check, which runs the bare model between steps."""
    if not is_fsdp(cfg.trainer):
        return
    require(not method_cls.trains or method_cls.fsdp_refusal is None,
            f"method {method_cls.name} cannot train under FSDP ({method_cls.fsdp_refusal}); use trainer=ddp")
    require(not method_cls.trains or not (cfg.method.get("early_stop") or {}).get("enabled"),
            "method.early_stop runs the bare model between steps, where FSDP holds only a shard of it; "
            "set method.early_stop.enabled=false or use trainer=ddp")
    require(not method_cls.trains or not (cfg.eval.get("during") or {}).get("enabled"),
            "eval.during measures the bare model between steps, where FSDP holds only a shard of it; "
            "set eval.during.enabled=false or use trainer=ddp")
    # Only the unlearning fit gathers its weights after FSDP (stages/unlearn.py full_copy); the other fits
    # (memorize, TA/CD's forget fine-tune, relearning attacks) would leave a shard: refused until they do.
    from unlearn.stages.given_target import memorize_none

    require(not method_cls.needs_memorized, f"method {method_cls.name} fine-tunes a memorized model, which trainer=fsdp "
            "does not gather yet; use trainer=ddp")
    require(memorize_none(cfg.memorize), "trainer=fsdp shards only the unlearning fit: build the memorized target "
            "under trainer=ddp and pass it with memorize=none")
    require(not any("relearn" in str(a) for a in cfg.eval.get("attacks") or ()),
            "relearning attacks fine-tune on one device (rank 0 alone), where a model that needs FSDP to train may not fit; "
            "drop them from eval.attacks or use trainer=ddp")


def build_trainer(cfg, max_epochs: int, run_dir: Path | None, callbacks=(), logger=False, resume_dir: Path | None = None,
                  guard: FiniteGuard | None = None, max_steps: int = -1) -> pl.Trainer:
    """`resume_dir`: where this fit keeps its last-epoch checkpoint (fit it with `fit_resumable`).
    `max_steps` >= 0 stops after that many optimizer steps (a step budget: the relearning attack)."""
    callbacks = list(callbacks) + [guard or FiniteGuard("training", "lower the learning rate")]
    compile_cfg = cfg.get("compile") or {}
    if compile_cfg.get("enabled"):
        callbacks.append(CompileForward(compile_cfg.get("backend", "inductor"), compile_cfg.get("mode")))
    if cfg.get("checkpoint") and run_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), every_n_epochs=1, save_top_k=-1))
    if resume_dir is not None:
        callbacks += [epoch_checkpoint(resume_dir, cfg.get("resume_every_s", 0)), StopFlag()]
    return pl.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=strategy_of(cfg),
        precision=cfg.precision,
        max_epochs=max_epochs,
        max_steps=max_steps,
        accumulate_grad_batches=cfg.get("accumulate_grad_batches", 1),
        gradient_clip_val=cfg.get("gradient_clip_val"),
        callbacks=callbacks,
        logger=logger,
        enable_checkpointing=bool(cfg.get("checkpoint")) or resume_dir is not None,
        plugins=[AtomicCheckpointIO()],
        enable_model_summary=False,
        enable_progress_bar=cfg.get("progress_bar", True),
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=str(run_dir) if run_dir else None,
    )


def fit_resumable(trainer: pl.Trainer, module, resume_dir: Path | None) -> None:
    """Fit, continuing from `resume_dir/last.ckpt` when an interrupted run left one."""
    trainer.fit(module, ckpt_path=resume_path(resume_dir), weights_only=True)


# Trainer settings that decide where and how often a fit is saved or shown, never the weights it builds.
# Everything else a trainer config holds (today's keys and any added later) is part of `trainer_identity`:
# forgetting to list a new setting here costs a rebuild, never a wrong reuse.
NOT_RESULT = ("checkpoint", "resume_every_s", "progress_bar", "timeout_min")


def world_size(cfg) -> int:
    """Processes a fit with these settings runs on (devices x nodes), as Lightning resolves `auto`/-1."""
    devices = cfg.get("devices", 1)
    if not isinstance(devices, (str, int)):  # a list of device ids (list or ListConfig)
        count = len(devices)
    elif str(devices) in ("auto", "-1"):
        gpu = str(cfg.get("accelerator", "auto")) in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        count = torch.cuda.device_count() if gpu else 1
    else:
        count = int(devices)
    return count * int(cfg.get("num_nodes", 1) or 1)


def trainer_identity(cfg) -> dict:
    """Every trainer setting that can change what a fit builds, for cache keys (memorized targets,
    attacked records): the config minus NOT_RESULT, plus the resolved world size."""
    settings = to_plain(cfg)
    return {**{k: v for k, v in settings.items() if k not in NOT_RESULT}, "world_size": world_size(cfg)}


def single_device(cfg):
    """The same settings on one process: a relearning attack's short fit runs on rank 0 alone, after the other
    ranks are done (unlearn/ranks.py), so its attacked models are the ones a one-process run builds."""
    if world_size(cfg) <= 1:
        return cfg
    settings = {**to_plain(cfg), "devices": 1, "strategy": "auto"}  # replaces a strategy mapping too
    if "num_nodes" in settings:
        settings["num_nodes"] = 1
    return OmegaConf.create(settings)
