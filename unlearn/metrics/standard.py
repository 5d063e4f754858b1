"""The registered memorization and perplexity metrics (one name each, parameters from `eval.metrics`)."""
import math
from statistics import mean

from unlearn.errors import ConfigError
from unlearn.metrics.context import EvalContext
from unlearn.metrics.memorization import (
    EL_PRESETS,
    exact_match_lengths,
    extraction_likelihood,
    matching_prefix_length,
    memorization_accuracy,
    window_accuracy,
)
from unlearn.metrics.registry import MetricSkipped, MetricValue, register


@register("ma")
def ma(ctx: EvalContext, split: str, positions: str | int = "all", stride: int = 40) -> MetricValue:
    """`all` = Jang (every next-token position); `prefix` (alias `continuation`) = Tirumala, the tokens
    after the record's prefix; an int w (or `window` with `stride: w`) = DI/EMSO compat, the first
    token after each window prefix w, 2w, ... (one item each)."""
    if positions == "window":
        positions = stride
    if positions not in ("all", "continuation", "prefix") and not (isinstance(positions, int) and positions >= 1):
        raise ConfigError(f"ma positions={positions!r}; use all, prefix (continuation) or an int window")
    enc = ctx.record_split(split)
    tf = ctx.teacher_forced(split)
    if isinstance(positions, int):
        values = window_accuracy(tf, enc.input_ids, positions)
        if not values:
            raise MetricSkipped(f"no {split} sequence is longer than the window ({positions} tokens)")
        return MetricValue(mean(values), len(values), values, {"positions": "window", "stride": positions})
    positions = "continuation" if positions == "prefix" else positions
    values = memorization_accuracy(tf, enc.input_ids, enc.prefix_lens, positions)
    return MetricValue(mean(values), len(values), values, {"positions": positions})


@register("exact_match")
def exact_match(ctx: EvalContext, split: str, reference: str = "ground_truth") -> MetricValue:
    """Greedy tokens after the record's prefix that match the reference before the first mismatch.
    `original_model`: the reference is the original model's own greedy continuation (EMSO Fig. 5)."""
    enc = ctx.record_split(split)
    if reference == "ground_truth":
        values = exact_match_lengths(ctx.teacher_forced(split), enc.input_ids, enc.prefix_lens)
        return MetricValue(mean(values), len(values), values, {"reference": reference, "unit": "tokens"})
    if reference != "original_model":
        raise ConfigError(f"exact_match reference={reference!r}; use ground_truth or original_model")
    other = ctx.original
    if split not in other.splits or other.splits[split].input_ids != enc.input_ids:
        raise MetricSkipped("the original model tokenizes this split differently; token-level exact match needs one tokenizer")
    mine, theirs = ctx.continuations(split, "prefix"), other.continuations(split, "prefix")
    values = [matching_prefix_length(a[p], b[p]) for a, b, p in zip(mine, theirs, enc.prefix_lens)]
    return MetricValue(mean(values), len(values), values, {"reference": reference, "original": other.name, "unit": "tokens"})


@register("el")
def el(ctx: EvalContext, split: str, n: int = 3, preset: str = "jang", positions: str | int | None = None) -> MetricValue:
    """`preset` fixes the counting (jang: every prefix, multiset / target n-grams, per-sequence sum over
    T - n; jang_stride4: the same per-prefix overlap averaged over every 4th prefix; emso_compat: windows
    of 40, set / generated n-grams, mean over items); `positions` may move the prefixes ("all", "prefix" =
    each record's own, an int window) and keeps the preset's counting."""
    if preset not in EL_PRESETS:
        raise ConfigError(f"el preset={preset!r} is unknown; use one of {sorted(EL_PRESETS)}")
    opts = dict(EL_PRESETS[preset])
    if positions is not None:
        opts["positions"] = positions
    seqs = ctx.record_split(split).input_ids
    conts = ctx.continuations(split, opts["positions"])
    per_seq = [
        extraction_likelihood(c, s, n, opts["numerator"], opts["denominator"], opts["aggregate"])
        for c, s in zip(conts, seqs)
    ]
    if opts["aggregate"] in ("jang", "prefix_mean"):
        return MetricValue(mean(per_seq), len(per_seq), per_seq, {"n": n, "preset": preset, "positions": opts["positions"]})
    items = [v for seq_items in per_seq for v in seq_items]
    if not items:
        raise MetricSkipped(f"no {split} sequence is longer than the {opts['positions']}-token window (preset {preset})")
    return MetricValue(mean(items), len(items), items, {"n": n, "preset": preset, "positions": opts["positions"]})


@register("ppl")
def ppl(ctx: EvalContext, split: str) -> MetricValue:
    """Token-weighted perplexity with padding masked (the corrected form of spec §3.5 / A13)."""
    nll = ctx.teacher_forced(split).nll
    total = sum(sum(x) for x in nll)
    count = sum(len(x) for x in nll)
    per_item = [math.exp(sum(x) / len(x)) for x in nll]
    return MetricValue(math.exp(total / count), len(nll), per_item, {"weighting": "token"})
