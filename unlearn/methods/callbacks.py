"""Trainer callbacks shared by every method: perplexity early stop (EMSO protocol) and an MA target (memorize)."""
import math

import pytorch_lightning as pl

from unlearn.generation.forward import teacher_forced
from unlearn.metrics.memorization import memorization_accuracy


def perplexity(model, seqs, pad_id, batch_size=16) -> float:
    nll = teacher_forced(model, seqs, pad_id, batch_size).nll
    return math.exp(sum(map(sum, nll)) / sum(map(len, nll)))


class PerplexityEarlyStop(pl.Callback):
    """Stop once validation perplexity exceeds `ratio` x its value before training, after `min_epochs`
    full epochs (spec §2.9f: 1.03, at least one epoch). Checked at epoch end and every n steps if set."""

    def __init__(self, seqs, pad_id, ratio=1.03, min_epochs=1, every_n_steps=None, batch_size=16):
        self.seqs, self.pad_id = seqs, pad_id
        self.ratio, self.min_epochs, self.every = ratio, min_epochs, every_n_steps
        self.batch_size = batch_size
        self.initial = None
        self.stopped_at = None

    def _check(self, trainer, module, epochs_done: float):
        value = perplexity(module.model, self.seqs, self.pad_id, self.batch_size)
        module.log("val/ppl", value)
        module.log("val/ppl_ratio", value / self.initial)
        module.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "val_ppl": value})
        if epochs_done >= self.min_epochs and value > self.ratio * self.initial:
            self.stopped_at = {"epoch": trainer.current_epoch, "step": trainer.global_step, "val_ppl": value}
            trainer.should_stop = True

    def on_train_start(self, trainer, module):
        self.initial = perplexity(module.model, self.seqs, self.pad_id, self.batch_size)
        module.history.append({"epoch": -1, "step": 0, "val_ppl": self.initial})

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.every and trainer.global_step % self.every == 0:
            self._check(trainer, module, trainer.current_epoch)

    def on_train_epoch_end(self, trainer, module):
        self._check(trainer, module, trainer.current_epoch + 1)


class MemorizationTarget(pl.Callback):
    """Stop fine-tuning once MA on `seqs` reaches `threshold` (the memorize stage's goal)."""

    def __init__(self, seqs, pad_id, threshold, batch_size=16):
        self.seqs, self.pad_id, self.threshold, self.batch_size = seqs, pad_id, threshold, batch_size
        self.ma = 0.0
        self.epochs = 0

    def on_train_epoch_end(self, trainer, module):
        tf = teacher_forced(module.model, self.seqs, self.pad_id, self.batch_size)
        values = memorization_accuracy(tf, self.seqs, [1] * len(self.seqs), "all")
        self.ma = sum(values) / len(values)
        self.epochs = trainer.current_epoch + 1
        module.log("memorize/ma", self.ma, prog_bar=True)
        if self.threshold is not None and self.ma >= self.threshold:
            trainer.should_stop = True
