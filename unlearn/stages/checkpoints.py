"""Resumable fits: every training (memorize, oracle, unlearning) keeps one Lightning checkpoint of its last
finished epoch, with optimizer state, and a re-run continues from it.

Why the pieces below, and not a bare `ModelCheckpoint`:
- Lightning writes `last.ckpt` in place; a `kill -9` during the write leaves a truncated file the next run
  cannot read. `AtomicCheckpointIO` writes to a temporary name and renames.
- Loading uses `torch.load(weights_only=True)`: a checkpoint is data, never code.
- Lightning does not save `trainer.should_stop`: a fit that stopped early (MA target reached, perplexity
  early stop) would train one more epoch after a resume. `StopFlag` keeps it.
"""
import os
import shutil
import time
from pathlib import Path

import pytorch_lightning as pl
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None):
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


class StopFlag(pl.Callback):
    """Saves `trainer.should_stop` with the checkpoint and sets it again when the fit resumes."""

    def __init__(self):
        self.restored = False

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint["should_stop"] = bool(trainer.should_stop)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self.restored = bool(checkpoint.get("should_stop", False))

    def on_train_start(self, trainer, pl_module):
        if self.restored:
            trainer.should_stop = True


class EpochCheckpoint(ModelCheckpoint):
    """One file, `<folder>/last.ckpt`, replaced at the end of an epoch once `every_s` seconds have passed since
    the fit started or last saved (0 = every epoch).

    Why a throttle: a checkpoint holds the weights and both Adam moments, 1.4 GB for SmolLM2-135M, and takes
    seconds to write; memorizing the demo target runs epochs of about 5 s, so a checkpoint per epoch would
    cost as much again as the training. A kill loses at most `every_s` plus one epoch. Checkpoints stay at
    epoch ends because a resumed epoch replays its data order exactly from there (bit-identical on the CPU)."""

    def __init__(self, folder: Path, every_s: float = 0.0):
        super().__init__(dirpath=str(folder), filename="last", every_n_epochs=1, save_top_k=1, enable_version_counter=False,
                         save_on_train_epoch_end=True)
        self.every_s = float(every_s or 0.0)
        self._last_save = time.monotonic()

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        self._last_save = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module):
        if time.monotonic() - self._last_save < self.every_s:
            return
        super().on_train_epoch_end(trainer, pl_module)
        self._last_save = time.monotonic()


def epoch_checkpoint(folder: Path, every_s: float = 0.0) -> ModelCheckpoint:
    return EpochCheckpoint(folder, every_s)


def resume_path(folder: Path | None) -> str | None:
    if folder is None:
        return None
    path = Path(folder) / LAST
    return str(path) if path.is_file() else None


def discard(folder: Path | None) -> None:
    """Checkpoints of a finished fit: the result is saved elsewhere; a big model's optimizer state is GBs."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
