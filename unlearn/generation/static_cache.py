"""Which KV cache the shared decode loop runs on: dynamic, static, or static with a compiled step.

The dynamic cache (transformers' `DynamicCache`) grows by one `torch.cat` per layer per step, and the
attention mask with it, so every step has new shapes and allocations: fine on a CPU, where the matmuls
dominate, but on a GPU a greedy step at batch 256 then runs at about a tenth of the memory-bandwidth
bound (ENVIRONMENT.md's anchors). A `StaticCache` preallocates the keys and values for the whole decode
and writes each step in place, so every step has the same shapes and addresses; `torch.compile`
with `mode="reduce-overhead"` then captures the step as a CUDA graph and replays it, without Python or
kernel-launch overhead.

Modes (`eval.decode_cache`, set on a model by `stages/device.py`'s `Placement.for_eval`):
- `dynamic`: the DynamicCache loop (default on the CPU);
- `static`: StaticCache, eager forward (exact same outputs; the compiled mode's semantics without a
  compiler, which is how the CPU tests check it);
- `compiled`: StaticCache and a `torch.compile`d step (CUDA graphs on CUDA);
- `auto`: `compiled` on CUDA for models that support a static cache, `dynamic` otherwise.

A model supports it when transformers marks it fully compilable (`_can_compile_fullgraph`: Llama,
SmolLM2, GPT-2, ...) or it is GPT-Neo on this framework's SDPA attention, whose local-window band is
taken from the mask's query positions and so holds in a static cache too (`models/gpt_neo_sdpa.py`);
transformers' eager GPT-Neo slices its band assuming the queries are the last keys, which a static
cache breaks, so it stays dynamic.
"""
import torch
from transformers.cache_utils import StaticCache

from unlearn.errors import require

MODES = ("auto", "dynamic", "static", "compiled")
_ATTRIBUTE = "_unlearn_decode_cache"  # where a model carries its resolved mode
_COMPILED = "_unlearn_compiled_step"  # and its compiled step, in __dict__ so it is no registered submodule


def supports_static_cache(model) -> bool:
    if getattr(type(model), "_can_compile_fullgraph", False):
        return True
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == "gpt_neo" and getattr(config, "_attn_implementation", None) == "sdpa"


def check_mode(mode: str | None) -> str:
    """`eval.decode_cache` as given (None = auto), or a clear error before any model loads."""
    mode = mode or "auto"
    require(mode in MODES, f"eval.decode_cache={mode!r}; use one of {', '.join(MODES)}")
    return mode


def resolve_mode(model, mode: str | None, device: torch.device) -> str:
    mode = check_mode(mode)
    if mode == "auto":
        return "compiled" if device.type == "cuda" and supports_static_cache(model) else "dynamic"
    if mode != "dynamic":
        require(supports_static_cache(model), f"eval.decode_cache={mode} needs a model that supports a static KV cache "
                f"({type(model).__name__} does not); use eval.decode_cache=dynamic")
    return mode


def set_decode_mode(model, mode: str | None, device: torch.device | None = None):
    """Resolve `mode` for this model and device and keep it on the model (returned, for chaining)."""
    if model is not None:
        device = device or next(model.parameters()).device
        setattr(model, _ATTRIBUTE, resolve_mode(model, mode, device))
    return model


def decode_mode(model) -> str:
    """The mode the decode loop uses for `model`: what `set_decode_mode` chose, `dynamic` if never set."""
    return getattr(model, _ATTRIBUTE, "dynamic")


def filled(cache, layers: list[tuple[torch.Tensor, torch.Tensor]]):
    """`cache` (any transformers Cache) after writing `layers` [(keys, values)] into its first slots."""
    for idx, (keys, values) in enumerate(layers):
        cache.update(keys, values, idx)
    return cache


def static_cache(model, layers: list[tuple[torch.Tensor, torch.Tensor]], max_len: int) -> StaticCache:
    """A StaticCache of `max_len` slots holding `layers` [(keys, values)] in its first slots."""
    return filled(StaticCache(config=model.config, max_cache_len=max_len), layers)


def step_function(model, mode: str):
    """The callable one decode step runs: the model itself, or its compiled forward (built once per model;
    `reduce-overhead` records a CUDA graph per input shape and replays it)."""
    if mode != "compiled":
        return model
    step = model.__dict__.get(_COMPILED)
    if step is None:
        step = torch.compile(model, mode="reduce-overhead" if next(model.parameters()).is_cuda else "default", dynamic=False)
        model.__dict__[_COMPILED] = step
    return step


__all__ = ["MODES", "check_mode", "decode_mode", "filled", "resolve_mode", "set_decode_mode", "static_cache", "step_function",
           "supports_static_cache"]
