"""Build the Lightning Trainer from `conf/trainer/*.yaml`: one place for devices, precision, checkpoints."""
import logging
import warnings
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

# Lightning's advice lines (num_workers, GPU availability) drown the table on a laptop run.
for noisy in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
# KL's reference and DI's teacher are frozen copies kept in eval mode on purpose (methods/base.py).
warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode at the start of training.*")


def build_trainer(cfg, max_epochs: int, run_dir: Path | None, callbacks=(), logger=False) -> pl.Trainer:
    callbacks = list(callbacks)
    if cfg.get("checkpoint") and run_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), every_n_epochs=1, save_top_k=-1))
    return pl.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=cfg.precision,
        max_epochs=max_epochs,
        accumulate_grad_batches=cfg.get("accumulate_grad_batches", 1),
        gradient_clip_val=cfg.get("gradient_clip_val"),
        callbacks=callbacks,
        logger=logger,
        enable_checkpointing=bool(cfg.get("checkpoint")),
        enable_model_summary=False,
        enable_progress_bar=cfg.get("progress_bar", True),
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=str(run_dir) if run_dir else None,
    )
