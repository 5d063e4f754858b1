"""Quantization attack: a weight-only INT8 / INT4 copy of a model (Zhang et al., ICLR 2025: 4-bit
quantization brings back much of what an unlearned model seemed to forget, because unlearning's small
weight updates fall below half a quantization step and round back to the target's weights).

Library: optimum-quanto. It quantizes on the CPU (torchao 0.18's INT4 weight-only layouts need CUDA, the
`mslk` kernels or bf16 here: `plain_int32` raises "does not support device 'cpu'", the default layout needs
`mslk`), runs offline, and on a GPU quantizes the same way. bitsandbytes is GPU-only.
- `int8`: per output channel, symmetric absmax round-to-nearest (quanto's default for 8 bits).
- `int4`: group-wise asymmetric min-max round-to-nearest (quanto's default for 4 bits; groups of 128
  input weights, or the largest multiple of 32 below 128 that divides the row, 96 for SmolLM2's 576).
- `int4` with `optimizer: hqq`: half-quadratic optimization of each group's scale and zero-point (quanto's
  HqqOptimizer). It is data-free: no library here offers a data-calibrated weight-only method (AWQ, GPTQ)
  that runs on the CPU offline (torchao's AWQ/GPTQ build on its INT4 layouts above).

The attacked copy is returned as a plain float model whose weights are the dequantized values: a
weight-only quantized matmul computes exactly W_hat @ x with W_hat = dequant(quant(W)); quanto's CPU path
for packed INT4 is a slow fallback, and a plain model goes through every metric and the relearning attack
unchanged. The input model is never touched (deep copy first).
"""
import copy

import torch

from unlearn.errors import require

BITS = (4, 8)
OPTIMIZERS = ("rtn", "hqq")


def _qtype(bits: int):
    from optimum.quanto import qint4, qint8

    return {4: qint4, 8: qint8}[bits]


def _optimizer(name: str, bits: int):
    from optimum.quanto import AbsmaxOptimizer, HqqOptimizer, MaxOptimizer

    if name == "hqq":
        require(bits == 4, "quantization optimizer hqq is for 4 bits (quanto's 8-bit weights are symmetric absmax); use bits: 4")
        return HqqOptimizer()
    return AbsmaxOptimizer() if bits == 8 else MaxOptimizer()


def validate(params: dict) -> None:
    require(params.get("bits") in BITS, f"quantize attack: bits={params.get('bits')!r}; use one of {BITS}")
    require(params.get("optimizer", "rtn") in OPTIMIZERS,
            f"quantize attack: optimizer={params.get('optimizer')!r}; use one of {OPTIMIZERS}")


@torch.no_grad()
def quantized_copy(model: torch.nn.Module, bits: int, optimizer: str = "rtn", exclude=("lm_head",)) -> torch.nn.Module:
    """A copy of `model` whose Linear weights went through weight-only quantization (dequantized back to
    the model's dtype). `exclude`: module-name patterns left in full precision (the LM head by default, as
    AWQ/GPTQ/bitsandbytes deployments do; with tied embeddings it is the embedding matrix too)."""
    from optimum.quanto import freeze, quantize
    from optimum.quanto.nn import QModuleMixin

    attacked = copy.deepcopy(model)
    quantize(attacked, weights=_qtype(bits), optimizer=_optimizer(optimizer, bits), exclude=list(exclude) or None)
    freeze(attacked)
    quantized = [(name, m) for name, m in attacked.named_modules() if isinstance(m, QModuleMixin)]
    require(quantized, "quantize attack: the model has no Linear layer to quantize")
    for name, module in quantized:
        require(isinstance(module, torch.nn.Linear), f"quantize attack: {name} is a {type(module).__name__}; only Linear layers are supported")
        plain = torch.nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                                device=module.weight.device, dtype=module.weight.dtype)
        plain.weight.copy_(module.weight.dequantize())
        if module.bias is not None:
            plain.bias.copy_(module.bias)
        parent_name, _, child = name.rpartition(".")
        setattr(attacked.get_submodule(parent_name) if parent_name else attacked, child, plain)
    attacked.eval()
    for p in attacked.parameters():
        p.requires_grad_(False)
    return attacked


def group_size_for(in_features: int, bits: int) -> int | None:
    """The group quanto uses for `bits` on a row of `in_features` (None = one scale per output channel):
    128, or the largest multiple of 32 below it that divides the row."""
    if bits == 8:
        return None
    group = 128
    if in_features <= group:
        return None
    while in_features % group and group > 32:
        group -= 32
    return group if in_features % group == 0 else None
