"""Where models live outside training, and in which precision they are evaluated: one policy for every stage.

Lightning moves a module to the accelerator for `fit` and back to the CPU in `Strategy.teardown()`, so
after any training the model sits on the CPU. Without this policy, `trainer=gpu` trains on the GPU and
then samples, memorizes and evaluates on the CPU. Every stage asks the same `Placement`:

- `to_device(model)`: the trainer's device, dtype untouched (models that will still train or sample:
  the base model before memorizing, the unlearned model after `fit`);
- `for_eval(model)`: the trainer's device and `eval.precision` (fp32 default, bf16 optional), just
  before metrics run. The precision is recorded in every record (`details.eval_precision`) and in the
  identity of reused reference records, so bf16 numbers never stand in for fp32 ones.
"""
from dataclasses import dataclass

import torch

from unlearn.errors import ConfigError, require
from unlearn.generation.static_cache import check_mode as check_decode_mode, set_decode_mode
from unlearn.stages import trainer as _quiet_lightning  # noqa: F401 - silences Lightning's banner lines

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_device(trainer_cfg) -> torch.device:
    """The device Lightning trains on for this trainer config (its root device: rank 0's GPU under DDP).

    Asked of Lightning itself (a Trainer is cheap to build and never fitted here), so `auto`, `gpu`,
    device lists and strategies resolve exactly as they do for training."""
    import pytorch_lightning as pl
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from unlearn.stages.trainer import strategy_of

    try:
        trainer = pl.Trainer(accelerator=trainer_cfg.accelerator, devices=trainer_cfg.devices, strategy=strategy_of(trainer_cfg),
                             logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    except (MisconfigurationException, ValueError) as exc:  # ValueError: FSDP asked of a CPU
        raise ConfigError(f"trainer.accelerator={trainer_cfg.accelerator} devices={trainer_cfg.devices} cannot run here "
                          f"({str(exc).splitlines()[0]}); use trainer=default on a machine without that accelerator") from None
    return trainer.strategy.root_device


@dataclass(frozen=True)
class Placement:
    device: torch.device
    precision: str = "fp32"
    decode_cache: str = "auto"  # eval.decode_cache: the KV cache of the shared decode loop (generation/static_cache.py)

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    def to_device(self, model):
        """Move to the device, keep the dtype (fp32 master weights stay fp32 for training)."""
        return model.to(device=self.device) if model is not None else None

    def for_eval(self, model):
        """Move to the device, cast to the evaluation precision (in place, like nn.Module.to) and pick the
        decode loop's KV cache for this model and device (outputs are the same in every mode)."""
        if model is None:
            return None
        return set_decode_mode(model.to(device=self.device, dtype=self.dtype), self.decode_cache, self.device)

    def details(self) -> dict:
        """What goes into every record's details and into the reference-cache identity."""
        return {"eval_device": self.device.type, "eval_precision": self.precision}


def placement(trainer_cfg, eval_cfg) -> Placement:
    precision = str(eval_cfg.get("precision") or "fp32")
    require(precision in PRECISIONS, f"eval.precision={precision!r} is not supported; use one of {sorted(PRECISIONS)}")
    return Placement(resolve_device(trainer_cfg), precision, check_decode_mode(eval_cfg.get("decode_cache")))


__all__ = ["PRECISIONS", "Placement", "placement", "resolve_device"]
