"""The shared Lightning base every unlearning method subclasses.

It owns the optimizer and schedule, the batching of forget and retain data, and logging. A method
supplies `loss()` and, where it needs them, Lightning hooks (EMSO selects blocks at epoch start and
masks gradients after backward). Checkpointing and early stopping are trainer callbacks
(`unlearn/stages/trainer.py`), so every method gets them the same way.
"""
import torch
import pytorch_lightning as pl
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, RandomSampler

from unlearn.data.collate import Collator, SequenceDataset
from unlearn.errors import require


class UnlearningModule(pl.LightningModule):
    name = "base"
    needs_retain = False
    # Which named datasets drive an epoch: one pass over the first; the others are sampled to match.
    data_keys: tuple[str, ...] = ("forget",)

    def __init__(self, model: torch.nn.Module, cfg, datasets: dict[str, SequenceDataset], collator: Collator, seed: int = 0):
        super().__init__()
        self.validate_config(cfg)
        for key in self.data_keys:
            require(key in datasets and len(datasets[key]) > 0, f"method {self.name} needs a non-empty {key} set")
        self.model = model
        self.cfg = cfg
        self.datasets = datasets
        self.collator = collator
        self.seed = seed
        self.history: list[dict] = []

    # --- what a method supplies -------------------------------------------------------------------
    @classmethod
    def validate_config(cls, cfg) -> None:
        require(cfg.lr > 0, f"method.lr must be > 0 (got {cfg.lr})")
        require(cfg.batch_size >= 1, f"method.batch_size must be >= 1 (got {cfg.batch_size})")

    def loss(self, batches: dict[str, dict]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    # --- shared machinery ----------------------------------------------------------------------------
    def logits(self, batch: dict) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    def training_step(self, batches, batch_idx):
        loss, logs = self.loss(batches)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        for key, value in logs.items():
            self.log(f"train/{key}", value, on_step=True, on_epoch=False)
        return loss

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def configure_optimizers(self):
        cfg = self.cfg
        optimizer = torch.optim.AdamW(
            self.trainable_parameters(),
            lr=cfg.lr,
            betas=tuple(cfg.get("betas", (0.9, 0.999))),
            weight_decay=cfg.get("weight_decay", 0.0),
        )
        warmup = cfg.get("warmup_steps", 0)
        if not warmup:
            return optimizer
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def train_dataloader(self):
        main_key = self.data_keys[0]
        main = self.datasets[main_key]
        generator = torch.Generator().manual_seed(self.seed)
        loaders = {
            main_key: DataLoader(main, batch_size=self.cfg.batch_size, shuffle=True, collate_fn=self.collator, generator=generator)
        }
        for key in self.data_keys[1:]:
            # Each forget batch is paired with a random batch of this set. Under DDP Lightning wraps the
            # sampler so every rank draws *different* samples (a known peer bug draws the same ones).
            sampler = RandomSampler(self.datasets[key], replacement=True, num_samples=len(main),
                                    generator=torch.Generator().manual_seed(self.seed + 1))
            loaders[key] = DataLoader(self.datasets[key], batch_size=self.cfg.batch_size, sampler=sampler, collate_fn=self.collator)
        return CombinedLoader(loaders, mode="max_size_cycle")
