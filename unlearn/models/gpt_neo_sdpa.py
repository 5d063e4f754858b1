"""GPT-Neo attention on `torch.nn.functional.scaled_dot_product_attention`, with GPT-Neo's semantics.

transformers ships GPT-Neo with eager attention only (plus flash-attention-2). Eager materializes the
[B, H, T, T] score matrix in fp32 and a [T, T] bool buffer per layer; SDPA runs the fused kernels
(flash / memory-efficient on CUDA, the flash kernel on CPU). What GPT-Neo does differently from a stock
attention, and how it is kept here:
- no 1/sqrt(d) scaling of the logits: `scale=1.0`;
- local layers see only the previous `window_size` (256) tokens: eager slices the band `bias[K-Q:K, :K]`;
  here, with a mask, the band is measured from each query's own slot (the last key its causal row sees),
  which is the same band and also holds in a static KV cache; without a mask, the `bias` band is used;
- softmax in fp32: the fused kernels accumulate scores and softmax in fp32 for bf16/fp32 inputs;
  fp16 inputs (whose unscaled logits could overflow inside a kernel) are upcast to fp32;
- padding: the boolean mask transformers builds for `sdpa`. Rows with no visible key (left-padding
  query rows) attend to every key: garbage in a pad row, as in eager (whose pad rows are a uniform
  average), never NaN that a 0 weight could carry into real rows. torch 2.13's CPU kernels already
  return 0 for such rows; the guard is for kernels that do not.

It is patched in, not copied: `enable_sdpa(model)` swaps each layer's attention class for the subclass
below (same parameters and buffers, so checkpoints are unchanged) and switches the model's mask
construction to `sdpa`. `attention_implementation(model)` says which one a model runs.
"""
import torch
import torch.nn.functional as F
from transformers.models.gpt_neo import modeling_gpt_neo

from unlearn.errors import require


def _window_band(mask: torch.Tensor, window: int) -> torch.Tensor:
    """Keys within `window` of each query, the query's slot taken from the mask itself: the last key a
    causal row sees is its own. Equal to eager's `bias` band, which assumes the queries are the last
    keys, wherever that holds, and also right in a preallocated static cache, where the keys run past
    the queries (generation/static_cache.py). Rows that see nothing (padding) stay all-visible."""
    slots = torch.arange(mask.shape[-1], device=mask.device)
    own = torch.where(mask, slots, -1).amax(-1, keepdim=True)
    return (slots > own - window) | (own < 0)


class GPTNeoSdpaSelfAttention(modeling_gpt_neo.GPTNeoSelfAttention):
    def _attn(self, query, key, value, attention_mask=None):
        q_len, k_len = query.size(-2), key.size(-2)
        mask, is_causal = attention_mask, False
        if mask is not None and mask.dtype != torch.bool:  # an additive float mask (eager-style caller)
            mask = mask > torch.finfo(mask.dtype).min / 2
        band = self.bias[:, :, k_len - q_len:k_len, :k_len]
        window_bites = self.attention_type == "local" and k_len > self.config.window_size
        if mask is None:
            if window_bites or (q_len > 1 and q_len != k_len):
                mask = band
            else:
                is_causal = q_len > 1  # q_len == 1 sees every cached key
        else:
            if window_bites:
                mask = mask & _window_band(mask, self.config.window_size)
            mask = mask | ~mask.any(-1, keepdim=True)  # fully masked (pad) rows: no NaN
        dtype = value.dtype
        if dtype == torch.float16:
            query, key, value = query.float(), key.float(), value.float()
        out = F.scaled_dot_product_attention(
            query, key.to(query.dtype), value.to(query.dtype), attn_mask=mask, is_causal=is_causal, scale=1.0,
            dropout_p=self.attn_dropout.p if self.training else 0.0,
        )
        return out.to(dtype), None


modeling_gpt_neo.GPT_NEO_ATTENTION_CLASSES.setdefault("sdpa", GPTNeoSdpaSelfAttention)


def _attention_modules(model):
    return [m for m in model.modules() if isinstance(m, modeling_gpt_neo.GPTNeoSelfAttention)]


def enable_sdpa(model: torch.nn.Module) -> torch.nn.Module:
    """Switch a GPT-Neo model to SDPA attention in place; other architectures are returned unchanged."""
    if getattr(getattr(model, "config", None), "model_type", None) != "gpt_neo":
        return model
    for module in _attention_modules(model):
        module.__class__ = GPTNeoSdpaSelfAttention
    model.config._attn_implementation = "sdpa"  # masks built as bool (or None when causal suffices)
    return model


def enable_eager(model: torch.nn.Module) -> torch.nn.Module:
    """Back to transformers' own eager GPT-Neo attention (the reference the SDPA path is tested against)."""
    if getattr(getattr(model, "config", None), "model_type", None) != "gpt_neo":
        return model
    for module in _attention_modules(model):
        module.__class__ = modeling_gpt_neo.GPTNeoSelfAttention
    model.config._attn_implementation = "eager"
    return model


def apply_attention_option(model: torch.nn.Module, choice: str | None) -> torch.nn.Module:
    """`model.attention`: sdpa (default; GPT-Neo gets the patch, others keep transformers' default) or eager."""
    choice = choice or "sdpa"
    require(choice in ("sdpa", "eager"), f"model.attention={choice!r}; use sdpa or eager")
    return enable_sdpa(model) if choice == "sdpa" else enable_eager(model)


def attention_implementation(model) -> str:
    return getattr(model.config, "_attn_implementation", None) or "eager"
