"""The registered memorization and perplexity metrics (one name each, parameters from `eval.metrics`)."""
import math
from statistics import mean

from unlearn.errors import ConfigError
from unlearn.metrics.context import EvalContext
from unlearn.metrics.memorization import (
    EL_PRESETS,
    exact_match_lengths,
    extraction_likelihood,
    memorization_accuracy,
    prefix_positions,
)
from unlearn.metrics.registry import MetricValue, register


@register("ma")
def ma(ctx: EvalContext, split: str, positions: str = "all") -> MetricValue:
    if positions not in ("all", "continuation"):
        raise ConfigError(f"ma positions={positions!r}; use all or continuation")
    enc = ctx.splits[split]
    values = memorization_accuracy(ctx.teacher_forced(split), enc.input_ids, enc.prefix_lens, positions)
    return MetricValue(mean(values), len(values), values, {"positions": positions})


@register("exact_match")
def exact_match(ctx: EvalContext, split: str) -> MetricValue:
    enc = ctx.splits[split]
    values = exact_match_lengths(ctx.teacher_forced(split), enc.input_ids, enc.prefix_lens)
    return MetricValue(mean(values), len(values), values, {"reference": "ground_truth", "unit": "tokens"})


@register("el")
def el(ctx: EvalContext, split: str, n: int = 3, preset: str = "jang") -> MetricValue:
    if preset not in EL_PRESETS:
        raise ConfigError(f"el preset={preset!r} is unknown; use one of {sorted(EL_PRESETS)}")
    opts = EL_PRESETS[preset]
    seqs = ctx.splits[split].input_ids
    conts = ctx.continuations(split, opts["stride"], prefix_positions(opts["stride"]))
    per_seq = [
        extraction_likelihood(c, s, n, opts["numerator"], opts["denominator"], opts["aggregate"])
        for c, s in zip(conts, seqs)
    ]
    if opts["aggregate"] == "jang":
        return MetricValue(mean(per_seq), len(per_seq), per_seq, {"n": n, "preset": preset})
    items = [v for seq_items in per_seq for v in seq_items]
    return MetricValue(mean(items) if items else 0.0, len(items), items, {"n": n, "preset": preset})


@register("ppl")
def ppl(ctx: EvalContext, split: str) -> MetricValue:
    """Token-weighted perplexity with padding masked (the corrected form of spec §3.5 / A13)."""
    nll = ctx.teacher_forced(split).nll
    total = sum(sum(x) for x in nll)
    count = sum(len(x) for x in nll)
    per_item = [math.exp(sum(x) / len(x)) for x in nll]
    return MetricValue(math.exp(total / count), len(nll), per_item, {"weighting": "token"})
