"""The one batched, KV-cached decoding loop every metric shares.

We drive the model step by step instead of calling `generate` so that anything with the HF forward
signature (a plain causal LM, or a contrastive-decoding pair with two caches) decodes the same way,
and so that each prompt can ask for its own number of new tokens within one left-padded batch.
"""
from dataclasses import dataclass

import inspect
import logging

import torch
from transformers.cache_utils import DynamicCache

from unlearn.ranks import on_main, shard_map
from unlearn.generation.static_cache import decode_mode, filled, set_decode_mode, static_cache, step_function

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingConfig:
    top_p: float = 0.95
    top_k: int = 50
    temperature: float = 1.0


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _pick(logits: torch.Tensor, sampling: SamplingConfig | None, generator) -> torch.Tensor:
    if sampling is None:
        return logits.argmax(-1)
    logits = logits.float() / max(sampling.temperature, 1e-6)
    if sampling.top_k:
        kth = torch.topk(logits, min(sampling.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > sampling.top_p  # keep the token that crosses p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _last_logits_only(model) -> dict:
    """HF causal LMs can skip the LM head on every prompt position but the last (`logits_to_keep`);
    with a 49k vocabulary that head costs more than the whole body at prefill. Models whose forward
    does not take it (a wrapped pair) compute all positions, as before."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def layer_tensors(past, width: int):
    """[(keys, values)] per layer of a DynamicCache that holds all `width` positions; None otherwise
    (a contrastive pair's two caches, a sliding-window cache shorter than the sequence)."""
    if not isinstance(past, DynamicCache):
        return None
    layers = []
    for layer in getattr(past, "layers", ()):
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if keys is None or keys.dim() != 4 or keys.shape[-2] != width:
            return None
        layers.append((keys, values))
    return layers or None


def _step_setup(model, past, mask, steps):
    """(step callable, cache, attention mask, whether the mask grows per step) for `steps` decode steps.

    Dynamic: the model, the prompt's cache and a mask that grows by one column per step. Static or
    compiled (`static_cache.py`): the prompt's keys and values copied into a StaticCache sized for the
    whole decode and one mask of that final width (slots not yet written are hidden by causality, as
    the cache's own offset gives each step's query position), so every step has the same shapes."""
    mode = decode_mode(model)
    if isinstance(past, list):  # per-layer (keys, values), e.g. the EL engine's branches
        layers = past
    else:
        layers = layer_tensors(past, mask.shape[1]) if mode != "dynamic" and steps > 1 else None
    if mode == "dynamic" or steps <= 1 or layers is None:
        return model, (filled(DynamicCache(config=model.config), past) if isinstance(past, list) else past), mask, True
    # Rounded up to a multiple of 64 slots so a compiled step sees a handful of shapes, not one per batch
    # (each new shape is a recompile and a new CUDA graph); the extra slots stay behind the causal edge.
    slots = -(-(mask.shape[1] + steps - 1) // 64) * 64
    cache = static_cache(model, layers, slots)
    full = torch.cat([mask, torch.ones_like(mask[:, :1]).expand(-1, slots - mask.shape[1])], dim=1)
    return step_function(model, mode), cache, full, False


@torch.no_grad()
def run_steps(model, token, past, mask, position, max_new, pad_id, sampling, generator, eos_id, extra=None):
    """`_run_steps`, with one safety net for the compiled mode: if compiling or replaying the step fails
    (an unsupported op, a backend missing on this machine), the model drops to the static mode, which
    decodes the same tokens eagerly, and the call is repeated; `past` is never written in the static
    modes (its contents are copied into a fresh StaticCache), so the repeat starts from the same state."""
    try:
        return _run_steps(model, token, past, mask, position, max_new, pad_id, sampling, generator, eos_id, extra)
    except Exception as exc:  # noqa: BLE001 - any compiler failure; the eager repeat re-raises real errors
        if decode_mode(model) != "compiled":
            raise
        logger.warning("compiled decode step failed (%s: %s); decoding with eval.decode_cache=static instead",
                       type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        set_decode_mode(model, "static")
        return _run_steps(model, token, past, mask, position, max_new, pad_id, sampling, generator, eos_id, extra)


def _run_steps(model, token, past, mask, position, max_new, pad_id, sampling, generator, eos_id, extra=None):
    """The decode loop every caller shares (prompt decoding below, branch decoding in `engine.py`).

    `token` [n] is each row's first new token, already picked from the logits after its prompt;
    `past` holds the prompt's keys and values, as a cache or a list of per-layer (keys, values)
    (left-padded: `mask` [n, width] is 0 on padding) and
    `position` [n, 1] is the position of each row's last prompt token. Runs max(max_new) - 1 more
    model steps and returns each row's max_new[row] tokens (cut at `eos_id`, which is dropped).
    """
    extra = _last_logits_only(model) if extra is None else extra
    steps = max(max_new)
    out = torch.empty((token.shape[0], steps), dtype=torch.long, device=token.device)
    finished = torch.zeros(token.shape[0], dtype=torch.bool, device=token.device)
    step, past, mask, grow = _step_setup(model, past, mask, steps)
    for t in range(steps):
        if eos_id is not None:
            token = token.masked_fill(finished, pad_id)
            finished |= token == eos_id
        out[:, t] = token
        if t == steps - 1:
            break
        position = position + 1
        if grow:
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        result = step(input_ids=token[:, None], attention_mask=mask, position_ids=position, past_key_values=past,
                      use_cache=True, **extra)
        past = result.past_key_values
        token = _pick(result.logits[:, -1, :], sampling, generator)
    results = []
    for row, n in zip(out.tolist(), max_new):
        row = row[:n]
        if eos_id is not None and eos_id in row:
            row = row[: row.index(eos_id)]
        results.append(row)
    return results


@torch.no_grad()
def _decode_batch(model, prompts, max_new, pad_id, sampling, generator, eos_id):
    device = _device(model)
    extra = _last_logits_only(model)
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long, device=device)
        mask[row, width - len(p):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    result = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **extra)  # prefill
    token = _pick(result.logits[:, -1, :], sampling, generator)
    return run_steps(model, token, result.past_key_values, mask, positions[:, -1:], max_new, pad_id, sampling, generator,
                     eos_id, extra)


def decode(
    model,
    prompts: list[list[int]],
    max_new_tokens: int | list[int],
    pad_id: int,
    batch_size: int = 32,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    eos_id: int | None = None,
) -> list[list[int]]:
    """Continue every prompt; greedy unless `sampling` is given. Returns new token ids only.

    `eos_id` stops a row at end-of-sequence (dropped from the output); memorization metrics leave it
    None so every continuation has exactly its requested length, as Jang et al.'s EL does.
    """
    if isinstance(max_new_tokens, int):
        max_new_tokens = [max_new_tokens] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: (max_new_tokens[i], len(prompts[i])))
    generator = torch.Generator(device=_device(model)).manual_seed(seed) if sampling else None

    def one_batch(chunk):
        todo = [i for i in chunk if max_new_tokens[i] > 0]
        outs = _decode_batch(model, [prompts[i] for i in todo], [max_new_tokens[i] for i in todo], pad_id, sampling, generator,
                             eos_id) if todo else []
        return {**{i: [] for i in chunk}, **dict(zip(todo, outs))}

    chunks = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    was_training = model.training
    model.eval()
    try:
        # Greedy batches are independent: under several processes each takes a share. Sampling draws one random
        # stream across the batches, so splitting them would change the samples: rank 0 draws them all.
        parts = shard_map(one_batch, chunks) if sampling is None else on_main(lambda: [one_batch(c) for c in chunks])
    finally:
        model.train(was_training)
    results = {i: out for part in parts for i, out in part.items()}
    return [results[i] for i in range(len(prompts))]
