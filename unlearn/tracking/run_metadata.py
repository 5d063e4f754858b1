"""What a result depends on besides its config: world size, effective batch, precision, device, the CPU's
numerics (instruction set, math libraries, threads), library versions and the code's hash, recorded in every results.json (`run` key), with a plain statement of whether the
numbers depend on the distributed setup."""
import os
import platform
import sys
from importlib import metadata

import torch
from omegaconf import OmegaConf

from unlearn.storage.code_hash import PACKAGE_CODE, code_hash

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


# Environment variables that pick a numerics code path: kernels by instruction set (ATen, MKL, oneDNN) and
# the thread counts that decide reduction order.
NUMERICS_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")
# CPU flags of the vector units the kernels above choose between.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "asimd", "sve")


def _cpu() -> dict:
    fields: dict[str, str] = {}
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first core's: every core of one machine is alike
    except OSError:  # not Linux: the processor string is all there is
        pass
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    # A VM may hide the model name ("AMD EPYC"); family/model/stepping still tell two generations apart.
    signature = "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping")) if "cpu family" in fields else None
    return {"model": fields.get("model name") or platform.processor() or None, "signature": signature, "machine": platform.machine(),
            "isa_flags": [f for f in ISA_FLAGS if f in flags]}


def numerics() -> dict:
    """What decides the low bits of every CPU number besides the code and the config: the CPU and its vector
    units, the kernel path torch picked for them, the math libraries and the thread counts. Two machines whose
    `numerics` differ are not expected to agree bit for bit (docs/reproducibility.md)."""
    libraries = [line.strip() for line in torch.__config__.parallel_info().splitlines() if "Library Version" in line or "MKL-DNN" in line]
    return {
        "cpu": _cpu(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "math_libraries": libraries,
        "env": {name: os.environ[name] for name in NUMERICS_ENV if name in os.environ},
    }


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
    # What the same effective batch on another split of processes/accumulation keeps (tests/test_scale_invariance.py)
    # and what it does not (docs/scale_out.md).
    note = (f"effective batch {effective} = {per_device} per device x {accumulate} accumulation x {world} processes. The same "
            "effective batch split otherwise gives the same weights up to float summation order, except where a loss is a "
            "token mean per micro-batch over records of unequal token length, PDU's dual step per micro-batch "
            "(method.dual_update_per=micro_batch) under accumulation, and EMSO's method.selection_batch=per_step"
            if per_device else "no training here")
    return {
        "world_size": world,
        "per_device_batch": per_device,
        "accumulate_grad_batches": accumulate,
        "effective_batch": effective,
        "precision": str(OmegaConf.select(cfg, "trainer.precision") or device_info(model)["dtype"]),
        "device": device_info(model),
        "versions": library_versions(),
        "numerics": numerics(),
        "code": code_hash(PACKAGE_CODE),
        "argv": sys.argv[1:],
        "distributed_note": note,
    }


def stage_fingerprints(models: dict, texts: dict) -> dict:
    """Bit-exact digests of what each stage produced, in pipeline order: the base model's weights, the text
    it sampled (utility, validation, memorize's general text), then target, oracle and unlearned weights.
    Diff two results.json files' `fingerprints` and the first key that differs is where two machines parted."""
    from unlearn.storage.fingerprint import texts_digest, weights_digest

    out = {f"{name}_texts": texts_digest(t) for name, t in texts.items()}
    by_object: dict[int, str | None] = {}  # memorize=none: the target is the base model itself, hashed once
    for role, m in models.items():
        if m is not None and id(m) not in by_object:
            by_object[id(m)] = weights_digest(m)
        out[f"{role}_weights"] = by_object[id(m)] if m is not None else None
    return out
