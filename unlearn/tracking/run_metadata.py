"""What a result depends on besides its config: world size, effective batch, precision, device and
library versions, recorded in every results.json (`run` key), with a plain statement of whether the
numbers depend on the distributed setup."""
import os
import platform
import sys
from importlib import metadata

import torch
from omegaconf import OmegaConf

LIBRARIES = ("torch", "transformers", "pytorch-lightning", "hydra-core", "omegaconf", "numpy", "scipy", "peft",
             "unlearn-bench")


def library_versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["cuda"] = torch.version.cuda
    return out


def device_info(model) -> dict:
    param = next(model.parameters())
    info = {"type": param.device.type, "dtype": str(param.dtype).replace("torch.", ""), "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if param.device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(param.device)
    return info


def run_metadata(cfg, model, info: dict) -> dict:
    """`info` is the unlearn stage's (its `world_size` is the trainer's, 1 for training-free methods)."""
    world = int(info.get("world_size") or 1)
    # `python -m unlearn.evaluate` has no method or trainer: no training batch, the model's own dtype.
    per_device = OmegaConf.select(cfg, "method.batch_size")
    accumulate = int(OmegaConf.select(cfg, "trainer.accumulate_grad_batches") or 1)
    effective = per_device * accumulate * world if per_device else None
    if world > 1:
        note = (f"depends on the distributed setup: {world} processes, effective batch {effective} = {per_device} per device "
                f"x {accumulate} accumulation x {world}; data order, per-rank retain sampling (GD) and all-reduced "
                "quantities (PDU's lambda) change with the world size. Reproduce with the same trainer settings.")
    else:
        note = ("single process; a run on more devices changes the effective batch and the per-rank data order, "
                "so its numbers are not expected to match these exactly")
    return {
        "world_size": world,
        "per_device_batch": per_device,
        "accumulate_grad_batches": accumulate,
        "effective_batch": effective,
        "precision": str(OmegaConf.select(cfg, "trainer.precision") or device_info(model)["dtype"]),
        "device": device_info(model),
        "versions": library_versions(),
        "argv": sys.argv[1:],
        "distributed_dependent": world > 1,
        "distributed_note": note,
    }
