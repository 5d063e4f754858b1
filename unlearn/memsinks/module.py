"""The Lightning side of `python -m unlearn.train`: next-token training on packed rows with per-token
sequence ids (the sink controller sees them), and a callback that logs the memorization gap."""
import math
from contextlib import nullcontext

import pytorch_lightning as pl
import torch

from unlearn.memsinks.losses import gap_metrics
from unlearn.memsinks.packing import attention_bias
from unlearn.memsinks.sinks import controller_of


class PackedLM(pl.LightningModule):
    def __init__(self, model, cfg, max_steps: int):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.max_steps = max_steps

    def forward_loss(self, batch):
        bias = attention_bias(batch["seq_ids"], batch["position_ids"], dtype=self.model.dtype)
        controller = controller_of(self.model)
        with controller.sequence_ids(batch["seq_ids"]) if controller is not None else nullcontext():
            out = self.model(input_ids=batch["input_ids"], attention_mask=bias, position_ids=batch["position_ids"],
                             labels=batch["labels"])
        return out.loss

    def training_step(self, batch, batch_idx):
        loss = self.forward_loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        c = self.cfg
        opt = torch.optim.AdamW(self.model.parameters(), lr=c.lr, betas=tuple(c.betas), weight_decay=c.weight_decay)
        warmup = max(1, int(c.warmup_fraction * self.max_steps))

        def schedule(step):  # linear warm-up, cosine decay to 10%
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, self.max_steps - warmup))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule), "interval": "step"}}


class GapLogger(pl.Callback):
    """Every `every_n_steps` optimizer steps and at the end: losses on the repeated / held-out / validation
    sets and the memorization gap, with sinks on and dropped, into the run's loggers (CSV, W&B)."""

    def __init__(self, sets: dict, pad_id: int, every_n_steps: int, batch_size: int = 16):
        self.sets, self.pad_id, self.every, self.batch_size = sets, pad_id, every_n_steps, batch_size
        self.history: list[dict] = []

    def _log(self, trainer, module):
        step = trainer.global_step
        if self.history and self.history[-1]["step"] == step:
            return
        metrics = gap_metrics(module.model, self.sets, self.pad_id, self.batch_size)
        self.history.append({"step": step, **metrics})
        for logger in trainer.loggers:
            logger.log_metrics({f"gap/{k}": v for k, v in metrics.items()}, step=step)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.every and trainer.global_step % self.every == 0:
            self._log(trainer, module)

    def on_train_end(self, trainer, module):
        self._log(trainer, module)
