"""Utility of open-ended generation on WikiText prompts: PPL under a scorer LM, Rep-n, diversity,
distinct-n and coherence (spec §3.5–3.7). All read one memoized `GenerationSet` per decoding setting.

The scorer ("oracle LM"; GPT-J-6B in the paper) is configurable: `original_model` (the model before
unlearning: the offline default, so every model of one run is judged by the same LM), `self`,
`role:<name>`, or a hub id / saved folder. Its name is recorded with the value.
"""
import math
from statistics import mean

import torch

from unlearn.generation.forward import teacher_forced
from unlearn.metrics import repetition
from unlearn.metrics.aux_models import causal_lm, encoder_with_fallback
from unlearn.metrics.context import EvalContext
from unlearn.metrics.generation_sets import GenerationSet, wikitext_generations
from unlearn.metrics.registry import MetricSkipped, MetricValue, register
from unlearn.metrics.semantic import paired_cosine


def resolve_scorer(ctx: EvalContext, scorer: str) -> tuple[str, object, object]:
    """(name, model, tokenizer) of the LM that scores text."""
    if scorer == "original_model":
        other = ctx.original
        return other.name, other.model, other.tokenizer
    if scorer == "self":
        return ctx.name, ctx.model, ctx.tokenizer
    if scorer.startswith("role:"):
        other = ctx.role(scorer[5:])
        if other is None:
            raise MetricSkipped(f"scorer {scorer}: no model with that role is evaluated here")
        return other.name, other.model, other.tokenizer
    model, tok = causal_lm(scorer)
    if ctx.env.placement is not None:  # the evaluated models' device and precision (GPT-J-6B on a GPU)
        ctx.env.placement.for_eval(model)
    return scorer, model, tok


def _encode(tokenizer, texts: list[str], max_length: int | None) -> list[list[int]]:
    # The tokenizer's own special tokens (a Llama scorer's BOS): text is scored as the scorer reads it.
    seqs = [tokenizer(t).input_ids for t in texts]
    return [s[:max_length] if max_length else s for s in seqs]


def token_nll(model, tokenizer, texts: list[str], batch_size: int, max_length: int | None = None) -> list[list[float]]:
    """Per-text next-token NLLs with padding masked (the corrected reading of spec A13)."""
    seqs = [s for s in _encode(tokenizer, texts, max_length)]
    keep = [i for i, s in enumerate(seqs) if len(s) >= 2]
    nll = teacher_forced(model, [seqs[i] for i in keep], tokenizer.pad_token_id, batch_size).nll if keep else []
    out: list[list[float]] = [[] for _ in texts]
    for i, values in zip(keep, nll):
        out[i] = values
    return out


@torch.no_grad()
def compat_perplexity(model, tokenizer, texts: list[str], batch_size: int = 16, max_length: int = 200) -> float:
    """The DI/EMSO code's number: batches of 16, the incomplete last batch dropped, pad (= EOS) positions
    counted as targets (its masking line compared ids to a string), exp of the mean batch loss."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses = []
    for start in range(0, len(texts) - batch_size + 1, batch_size):
        seqs = _encode(tokenizer, texts[start:start + batch_size], max_length)
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, s in enumerate(seqs):
            ids[row, :len(s)] = torch.tensor(s)
            mask[row, :len(s)] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        losses.append(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).item())
    if not losses:
        raise MetricSkipped(f"compat perplexity drops incomplete batches and there are only {len(texts)} texts (< {batch_size})")
    return math.exp(mean(losses))


def generation_perplexity(ctx: EvalContext, gens: GenerationSet, scorer: str, compat: bool) -> MetricValue:
    def compute():
        name, model, tok = resolve_scorer(ctx, scorer)
        texts = gens.full_texts()
        details = {"scorer": name, "compat": compat, "generations": gens.key, "source": gens.source}
        if compat:
            return MetricValue(compat_perplexity(model, tok, texts), len(texts) // 16 * 16, None, details)
        nll = token_nll(model, tok, texts, ctx.batch_size)
        count = sum(len(x) for x in nll)
        if not count:
            raise MetricSkipped("no generation is long enough to score")
        per_item = [math.exp(sum(x) / len(x)) if x else None for x in nll]
        return MetricValue(math.exp(sum(sum(x) for x in nll) / count), len(texts), per_item, {**details, "weighting": "token"})

    return ctx.memo(("gen_ppl", gens.key, scorer, compat), compute)


@register("gen_ppl", uses=("wikitext",))
def gen_ppl(ctx: EvalContext, split: str = "wikitext", scorer: str = "original_model", compat: bool = False) -> MetricValue:
    """Perplexity of prompt + generation under the scorer LM; token-weighted with pads masked, or
    the reference code's batch-mean quirks with `compat: true`."""
    return generation_perplexity(ctx, wikitext_generations(ctx), scorer, compat)


def _mean_defined(values):
    defined = [v for v in values if v is not None]
    if not defined:
        raise MetricSkipped("no generation has enough words for these n-grams")
    return mean(defined), len(defined)


@register("rep", uses=("wikitext",))
def rep(ctx: EvalContext, split: str = "wikitext", n: int = 2, style: str = "emso", compat: bool = True) -> MetricValue:
    """Rep_n of the generations. `emso`: per-text fraction averaged (EMSO Table 1's Rep_2);
    `simctg`: corpus-level percent (Su et al.), `compat` keeping its off-by-one."""
    gens = wikitext_generations(ctx)
    details = {"n": n, "style": style, "generations": gens.key}
    if style == "simctg":
        return MetricValue(repetition.simctg_rep(gens.generations, n, compat), len(gens), None, {**details, "compat": compat, "unit": "percent"})
    if style != "emso":
        raise MetricSkipped(f"rep style={style!r} is unknown; use emso or simctg")
    per_item = [repetition.emso_rep(t, n) for t in gens.generations]
    value, count = _mean_defined(per_item)
    return MetricValue(value, count, per_item, details)


@register("diversity", uses=("wikitext",))
def diversity(ctx: EvalContext, split: str = "wikitext", compat: bool = True) -> MetricValue:
    """SimCTG diversity = prod_{n=2..4} (1 - rep-n/100), corpus level."""
    gens = wikitext_generations(ctx)
    return MetricValue(repetition.simctg_diversity(gens.generations, compat), len(gens), None,
                       {"style": "simctg", "compat": compat, "generations": gens.key})


@register("distinct", uses=("wikitext",))
def distinct(ctx: EvalContext, split: str = "wikitext", n: int = 3) -> MetricValue:
    """EMSO's "Div_n": per-text |set(n-grams)| / #words, averaged (a distinct-n ratio)."""
    gens = wikitext_generations(ctx)
    per_item = [repetition.emso_distinct(t, n) for t in gens.generations]
    value, count = _mean_defined(per_item)
    return MetricValue(value, count, per_item, {"n": n, "style": "emso", "generations": gens.key})


@register("coherence", uses=("wikitext",))
def coherence(ctx: EvalContext, split: str = "wikitext", encoder: str = "simcse", fallback: str | None = "minilm") -> MetricValue:
    """Mean cos(enc(prompt), enc(generation)) over items: the diagonal of SimCSE's similarity matrix.
    SimCSE when it can be loaded, else `fallback`; the encoder used is named in the details."""
    gens = wikitext_generations(ctx)
    enc, why = encoder_with_fallback(encoder, fallback)
    values = paired_cosine(enc, gens.prompts, gens.generations)
    details = {"encoder": enc.name, "generations": gens.key}
    if why:
        details["fallback"] = why
    return MetricValue(mean(values), len(values), values, details)
