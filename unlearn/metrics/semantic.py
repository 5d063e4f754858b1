"""SS: semantic similarity between a generation and the true continuation (spec §3.3).

EMSO's SS uses the same greedy generations as EL (window prefixes), so both read one memoized set of
prefix continuations. The explicit cosine keeps it right for encoders that do not normalize.
"""
from statistics import mean

import numpy as np

from unlearn.metrics.aux_models import text_encoder
from unlearn.metrics.context import EvalContext
from unlearn.metrics.registry import MetricSkipped, MetricValue, register


def paired_cosine(encoder, a: list[str], b: list[str]) -> list[float]:
    ea, eb = encoder.encode(a), encoder.encode(b)
    return [float(x) for x in np.sum(ea * eb, axis=1)]


@register("ss")
def ss(ctx: EvalContext, split: str, positions: int | str = 40, encoder: str = "minilm") -> MetricValue:
    """`positions` as for EL: 40 = EMSO's windows (shares EL emso_compat's generations), "prefix" =
    the record's own prefix, "all" = every prefix (expensive)."""
    seqs = ctx.sequences(split)
    conts = ctx.continuations(split, positions)
    gens, golds = [], []
    for seq, by_prefix in zip(seqs, conts):
        for i, cont in sorted(by_prefix.items()):
            gens.append(ctx.tokenizer.decode(cont, skip_special_tokens=True))
            golds.append(ctx.tokenizer.decode(seq[i:], skip_special_tokens=True))
    if not gens:
        raise MetricSkipped(f"no {split} sequence is long enough for positions={positions!r}")
    enc = text_encoder(encoder)
    values = paired_cosine(enc, gens, golds)
    return MetricValue(mean(values), len(values), values, {"encoder": enc.name, "positions": positions})
