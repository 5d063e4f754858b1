"""The shared Lightning base every training method subclasses.

It owns the optimizer and schedule, the batching of forget and retain data, the frozen reference
model (for methods that declare `needs_reference`), and logging. A method supplies `loss()` and,
where it needs them, Lightning hooks (EMSO selects blocks at epoch start and masks gradients after
backward; PDU updates its dual variable after each step). Checkpointing and early stopping are
trainer callbacks (`unlearn/stages/trainer.py`), so every method gets them the same way.
"""
import copy
import random

import numpy as np
import torch
import pytorch_lightning as pl
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader

from unlearn.data.collate import Collator, SequenceDataset
from unlearn.errors import require
from unlearn.methods.method import Method
from unlearn.methods.sampling import EpochPermutation, PairedRandomSampler
from unlearn.methods.token_window import TokenWindow


def rng_state() -> dict:
    """Global RNG states (dropout, sampling) as plain values: numpy's array becomes a list."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [name, keys.tolist(), pos, has_gauss, gauss]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference


def use_fused_adamw(choice, params) -> bool | None:
    """`method.fused_adamw`: auto (default) = the fused kernel when every parameter is on the CPU or CUDA
    (one kernel for the whole step instead of a few per tensor; Lightning has moved the model to its device
    before configure_optimizers runs). Measured on SmolLM2-135M, 2-core CPU: the optimizer step takes 0.12 s
    fused against 0.7 s with torch's default (foreach), a fifth of a memorize step. true = always, false =
    never. None lets torch pick its default (foreach)."""
    require(choice in ("auto", True, False), f"method.fused_adamw={choice!r}; use auto, true or false")
    if choice == "auto":
        return True if params and all(p.device.type in ("cpu", "cuda") for p in params) else None
    return choice or None


class UnlearningModule(Method, pl.LightningModule):
    # Which named datasets drive an epoch: one pass over the first; the others are sampled to match.
    data_keys: tuple[str, ...] = ("forget",)

    def __init__(self, model: torch.nn.Module, cfg, datasets: dict[str, SequenceDataset], collator: Collator, seed: int = 0):
        super().__init__()
        self.validate_config(cfg)
        for key in self.data_keys:
            require(key in datasets and len(datasets[key]) > 0, f"method {self.name} needs a non-empty {key} set")
        self.model = model
        # Taken before any step, so it is the target model θ_o; a submodule so Lightning moves it to the device.
        self.reference = frozen_copy(model) if self.needs_reference else None
        self.cfg = cfg
        self.datasets = datasets
        self.collator = collator
        self.seed = seed
        self.history: list[dict] = []
        self._restored_generators: dict[str, torch.Tensor] = {}
        # By data key: the data order (each sampler's generator, saved with a checkpoint) and this epoch's list of
        # items (token_window.py reads it).
        self.samplers: dict = {}
        self.batch_index = 0      # the micro-batch's index in its epoch
        self._window = TokenWindow()

    # --- what a method supplies -------------------------------------------------------------------
    @classmethod
    def validate_config(cls, cfg) -> None:
        super().validate_config(cfg)
        require(cfg.lr > 0, f"method.lr must be > 0 (got {cfg.lr})")
        require(cfg.batch_size >= 1, f"method.batch_size must be >= 1 (got {cfg.batch_size})")
        require(cfg.get("warmup_steps", 0) >= 0 and cfg.get("warmup_epochs", 0) >= 0, "method warm-up must be >= 0")

    def loss(self, batches: dict[str, dict]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def collate_fn(self, key: str):
        """How the items of dataset `key` become a batch; IDK+AP pairs true and refusal answers."""
        return self.collator

    def method_state(self) -> dict:
        """What this method adds to a checkpoint so a resumed fit goes on exactly (PDU's λ and ε, EMSO's
        selection, masks and generator): plain values and tensors only (checkpoints load weights_only)."""
        return {}

    def load_method_state(self, state: dict) -> None:
        """Inverse of `method_state`, called when a fit resumes from a checkpoint."""

    # --- resume: Lightning saves weights, optimizer, schedule and loop counters; this is the rest --------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["unlearn"] = {"history": self.history, "rng": rng_state(), "method": self.method_state(),
                                 "generators": {k: s.generator.get_state() for k, s in self.samplers.items()}}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get("unlearn")
        if state is None:
            return
        self.history = list(state["history"])
        self._restored_generators = dict(state["generators"])
        set_rng_state(state["rng"])
        self.load_method_state(state["method"])

    # --- shared machinery ----------------------------------------------------------------------------
    def logits(self, batch: dict) -> torch.Tensor:
        # The training forward goes through torch.compile when the trainer enables it (stages/trainer.py
        # CompileForward); selection passes, references and evaluation use the plain model.
        model = self.__dict__.get("compiled_model")
        model = self.model if model is None else model
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    @torch.no_grad()
    def reference_logits(self, batch: dict) -> torch.Tensor:
        return self.reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    def train(self, mode: bool = True):
        # Lightning puts the whole module in train mode each epoch; the reference must stay in eval
        # mode (no dropout) so it is exactly θ_o.
        super().train(mode)
        if self.reference is not None:
            self.reference.eval()
        return self

    def tokens(self, key: str, mask: str = "labels") -> float | None:
        """The denominator of a token-mean loss term over data `key` (methods/token_window.py): the optimizer
        step's token count / (processes x accumulation), so the same effective batch trains the same way however
        it is split; None = the micro-batch's own count (one process, no accumulation: unchanged)."""
        return self._window.denominator(self, key, mask)

    def training_step(self, batches, batch_idx):
        self.batch_index = batch_idx
        loss, logs = self.loss(batches)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        for key, value in logs.items():
            self.log(f"train/{key}", value, on_step=True, on_epoch=False)
        return loss

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def warmup_steps(self) -> int:
        cfg = self.cfg
        if cfg.get("warmup_epochs"):
            # Closer-Look warms up for one epoch of optimizer steps, whatever the data size.
            per_epoch = self.trainer.estimated_stepping_batches / max(self.trainer.max_epochs, 1)
            return max(1, round(cfg.warmup_epochs * per_epoch))
        return cfg.get("warmup_steps", 0)

    def configure_optimizers(self):
        cfg = self.cfg
        params = self.trainable_parameters()
        optimizer = torch.optim.AdamW(
            params,
            lr=cfg.lr,
            betas=tuple(cfg.get("betas", (0.9, 0.999))),
            weight_decay=cfg.get("weight_decay", 0.0),
            fused=use_fused_adamw(cfg.get("fused_adamw", "auto"), params),
        )
        warmup = self.warmup_steps()
        if not warmup:
            return optimizer
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def shard(self, sampler):
        """Rank r's part of the sampler's list: positions r, r+W, r+2W, ... (unlearn/methods/sampling.py). Done here,
        not left to Lightning, whose wrapper also reshuffles the positions (seed + epoch), so that W processes would
        train on other batches than one process."""
        world = self.trainer.world_size if self._trainer is not None else 1
        if world <= 1:
            return sampler
        return DistributedSamplerWrapper(sampler, num_replicas=world, rank=self.global_rank, shuffle=False)

    def train_dataloader(self):
        main_key = self.data_keys[0]
        main = self.datasets[main_key]
        generator = torch.Generator().manual_seed(self.seed)
        trainer = self._trainer
        effective = self.cfg.batch_size * (trainer.world_size * trainer.accumulate_grad_batches if trainer is not None else 1)
        self.samplers = {main_key: EpochPermutation(len(main), generator, effective)}
        loaders = {
            main_key: DataLoader(main, batch_size=self.cfg.batch_size, sampler=self.shard(self.samplers[main_key]),
                                 generator=generator, collate_fn=self.collate_fn(main_key))
        }
        for offset, key in enumerate(self.data_keys[1:], start=1):
            sampler = PairedRandomSampler(len(self.datasets[key]), len(main), self.seed + offset)
            self.samplers[key] = sampler
            loaders[key] = DataLoader(self.datasets[key], batch_size=self.cfg.batch_size, sampler=self.shard(sampler),
                                      collate_fn=self.collate_fn(key))
        for key, saved in self._restored_generators.items():  # a resumed fit draws the batches it would have drawn
            self.samplers[key].generator.set_state(saved)
        self._restored_generators = {}
        return CombinedLoader(loaders, mode="max_size_cycle")
