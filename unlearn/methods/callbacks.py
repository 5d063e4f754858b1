"""Trainer callbacks shared by every method: perplexity early stop (EMSO protocol) and an MA target (memorize)."""
import math

import pytorch_lightning as pl
import torch

from unlearn.generation.forward import teacher_forced
from unlearn.metrics.memorization import memorization_accuracy


def perplexity(model, seqs, pad_id, batch_size=16) -> float:
    nll = teacher_forced(model, seqs, pad_id, batch_size).nll
    return math.exp(sum(map(sum, nll)) / sum(map(len, nll)))


class PerplexityEarlyStop(pl.Callback):
    """Stop once validation perplexity exceeds `ratio` x its value before training, after `min_epochs`
    full epochs (spec §2.9f: 1.03, at least one epoch). Checked at epoch end and every n steps if set.

    `restore=True` also puts back the trainable weights of the last check that passed, so the model that
    leaves the fit is within the perplexity budget: one step of a large learning rate can take perplexity
    from +8% to 3x (measured on the SmolLM2 demo), and stopping after that step keeps a broken model. The
    paper only stops (`restore: false`, the method configs' default)."""

    def __init__(self, seqs, pad_id, ratio=1.03, min_epochs=1, every_n_steps=None, batch_size=16, restore=False):
        self.seqs, self.pad_id = seqs, pad_id
        self.ratio, self.min_epochs, self.every = ratio, min_epochs, every_n_steps
        self.batch_size = batch_size
        self.restore = restore
        self.initial = None
        self.stopped_at = None
        self._good: dict | None = None  # trainable weights at the last passing check (restore=True)
        self._last_checked: tuple[int, float] | None = None  # (step, perplexity) of the latest check

    def _check(self, trainer, module, epochs_done: float):
        if self._last_checked is not None and self._last_checked[0] == trainer.global_step:
            value = self._last_checked[1]  # the epoch-end check of a step already checked: measured once
        else:
            value = perplexity(module.model, self.seqs, self.pad_id, self.batch_size)
            self._last_checked = (trainer.global_step, value)
            module.log("val/ppl", value)
            module.log("val/ppl_ratio", value / self.initial)
            module.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "val_ppl": value})
        if value <= self.ratio * self.initial:
            self._keep(module, trainer.global_step)
        elif epochs_done >= self.min_epochs:
            self.stopped_at = {"epoch": trainer.current_epoch, "step": trainer.global_step, "val_ppl": value}
            if self.restore and self._good is not None:
                self._put_back(module)
                self.stopped_at["restored_step"] = self._good["step"]
            trainer.should_stop = True

    def _keep(self, module, step: int) -> None:
        if self.restore and not (self._good and self._good["step"] == step):
            self._good = {"step": step, "weights": {n: p.detach().clone() for n, p in module.model.named_parameters() if p.requires_grad}}

    def _put_back(self, module) -> None:
        params = dict(module.model.named_parameters())
        with torch.no_grad():
            for name, value in self._good["weights"].items():
                params[name].copy_(value)

    # Saved with a checkpoint: a resumed fit compares against the perplexity before training, not after.
    def state_dict(self):
        return {"initial": self.initial, "stopped_at": self.stopped_at, "good": self._good}

    def load_state_dict(self, state):
        self.initial, self.stopped_at = state["initial"], state["stopped_at"]
        self._good = state.get("good")

    def on_train_start(self, trainer, module):
        if self.initial is not None:  # resumed: measured before the first epoch, already in the history
            return
        self.initial = perplexity(module.model, self.seqs, self.pad_id, self.batch_size)
        module.history.append({"epoch": -1, "step": 0, "val_ppl": self.initial})
        self._keep(module, 0)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.every and trainer.global_step % self.every == 0:
            self._check(trainer, module, trainer.current_epoch)

    def on_train_epoch_end(self, trainer, module):
        self._check(trainer, module, trainer.current_epoch + 1)


class MemorizationTarget(pl.Callback):
    """Stop fine-tuning once MA on `seqs` reaches `threshold` (the memorize stage's goal). Checked at every
    epoch end, and also every `every_n_steps` optimizer steps once MA is within `near` of the threshold, so
    the fine-tune stops at the step that crosses it rather than at the end of that epoch.

    MA counts the positions the fine-tune trains on: from each sequence's `label_starts` entry (a QA record's
    answer; its question and chat template are never trained, so MA over them could never reach the
    threshold), every position for plain text (0)."""

    def __init__(self, seqs, pad_id, threshold, batch_size=16, every_n_steps=None, near=0.05, label_starts=None):
        self.seqs, self.pad_id, self.threshold, self.batch_size = seqs, pad_id, threshold, batch_size
        # memorization_accuracy's "continuation" from prefix p scores tokens p.. ; p = 1 is every position.
        self.first_scored = [max(1, s) for s in (label_starts or [0] * len(seqs))]
        self.every, self.near = every_n_steps, near
        self.ma = 0.0
        self.epochs = 0.0          # epochs of training done when MA was last measured (fractional mid-epoch)
        self.history: list[dict] = []

    def state_dict(self):  # a resumed memorize fit reports the MA, epochs and history measured before the kill
        return {"ma": self.ma, "epochs": self.epochs, "history": list(self.history)}

    def load_state_dict(self, state):
        self.ma, self.epochs = state["ma"], state["epochs"]
        self.history = list(state.get("history", []))

    def _measure(self, trainer, module, epochs: float) -> None:
        tf = teacher_forced(module.model, self.seqs, self.pad_id, self.batch_size)
        values = memorization_accuracy(tf, self.seqs, self.first_scored, "continuation")
        self.ma = sum(values) / len(values)
        self.epochs = round(epochs, 3)
        self.history.append({"epoch": self.epochs, "step": trainer.global_step, "ma": round(self.ma, 4)})
        module.log("memorize/ma", self.ma, prog_bar=True)
        if self.threshold is not None and self.ma >= self.threshold:
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if not self.every or trainer.should_stop or self.threshold is None or self.ma < self.threshold - self.near:
            return
        if trainer.global_step % self.every == 0 and batch_idx + 1 < trainer.num_training_batches:
            self._measure(trainer, module, trainer.current_epoch + (batch_idx + 1) / trainer.num_training_batches)

    def on_train_epoch_end(self, trainer, module):
        if self.history and self.history[-1]["step"] == trainer.global_step:
            return  # already measured after this step (and possibly stopped there)
        self._measure(trainer, module, trainer.current_epoch + 1)


class DivergenceGuard(pl.Callback):
    """Stop a fine-tune the moment it diverges instead of after max_epochs: a non-finite loss, or a
    training loss whose mean over the last `window` steps exceeds `ratio` x the lowest such mean so far.

    The window is at least one epoch of steps, so every window sees each training sequence about once and
    window means are comparable (a single batch of hard records is not a divergence). Hand-rolled: Lightning's
    EarlyStopping watches a logged metric at epoch/validation boundaries and has no "rose above its own
    best by a factor" rule, and its check_finite only runs there too."""

    def __init__(self, window=4, ratio=2.0):
        self.window, self.ratio = window, ratio
        self.losses: list[float] = []
        self.best = math.inf
        self.reason: str | None = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        value = float(loss.detach()) if loss is not None else math.nan
        self.losses.append(value)
        step = len(self.losses)
        if not math.isfinite(value):
            self.reason = f"training loss is {value} at step {step}"
        else:
            window = max(self.window, trainer.num_training_batches)
            if step >= window:
                mean = sum(self.losses[-window:]) / window
                if mean > self.ratio * self.best:
                    self.reason = (f"training loss rose to {mean:.3f} (mean of the last {window} steps, step {step}) from "
                                   f"{self.best:.3f}, over {self.ratio:g}x its best")
                self.best = min(self.best, mean)
        if self.reason:
            trainer.should_stop = True


class StepLimit(pl.Callback):
    """Stop after `steps` optimizer steps: the oracle trains exactly as long as the target did, also when the
    target stopped mid-epoch (Trainer's own max_steps is fixed at construction, in the shared trainer builder)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step >= self.steps:
            trainer.should_stop = True
