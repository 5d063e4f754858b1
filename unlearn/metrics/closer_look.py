"""Closer-Look metrics (sail-sg/closer-look-LLM-unlearning `metrics.py`; spec §3.11): token entropy,
cosine similarity, entailment score, the 18-value model utility and forget efficacy.

ES needs an NLI model; offline, when none is available, it is reported as not computed (skipped with
the reason), never 0, and so are the aggregates that include it.
"""
import math
from collections import Counter
from statistics import mean

from unlearn.errors import ConfigError
from unlearn.metrics import tofu_data as td
from unlearn.metrics.aux_models import encoder_with_fallback, nli_classifier
from unlearn.metrics.context import EvalContext
from unlearn.metrics.registry import MetricSkipped, MetricValue, register
from unlearn.metrics.tofu import harmonic_mean, probabilities

NLI_MODEL = "sileod/deberta-v3-base-tasksource-nli"
ROUGE_FLOOR = 0.1  # below this ROUGE-L recall the NLI label is forced to "none"


def token_entropy(tokens: list) -> float:
    """Unigram entropy of the tokens normalized by log2(N): 1 for all-distinct tokens, 0 for one repeated."""
    n = len(tokens)
    if n <= 1:
        return 0.0
    freqs = [c / n for c in Counter(tokens).values()]
    return -sum(f * math.log2(f) for f in freqs) / math.log2(n)


def te_values(ctx: EvalContext, split: str) -> list[float]:
    return [token_entropy(ctx.tokenizer.tokenize(g)) for g in td.generations(ctx, split)]


@register("token_entropy", uses=("tofu",))
def te(ctx: EvalContext, split: str) -> MetricValue:
    values = te_values(ctx, split)
    return MetricValue(mean(values), len(values), values, {"tokenizer": "model"})


def cs_values(ctx: EvalContext, split: str, encoder: str, fallback: str | None, reference: str) -> tuple[list[float], dict]:
    gens = td.generations(ctx, split)
    if reference == "data_answer":
        # The code compares with the stored answer; real authors / world facts carry a full-sentence
        # `original_answer` in Closer-Look's copy, which the TOFU files here lack: `answer` then.
        refs = [r.get("original_answer", r["answer"]) for r in td.rows(ctx, split)]
    elif reference == "pre_unlearning_output":
        refs = td.generations(ctx.original, split)
    else:
        raise ConfigError(f"cs reference={reference!r}; use data_answer or pre_unlearning_output")
    enc, why = encoder_with_fallback(encoder, fallback)
    a, b = enc.encode(gens), enc.encode(refs)
    values = [max(0.0, float(x @ y)) for x, y in zip(a, b)]
    details = {"encoder": enc.name, "reference": reference}
    if reference == "pre_unlearning_output":
        details["original"] = ctx.original.name
    if why:
        details["fallback"] = why
    return values, details


@register("cosine_similarity", uses=("tofu",))
def cs(ctx: EvalContext, split: str, encoder: str = "paraphrase-minilm", fallback: str | None = "minilm",
       reference: str = "data_answer") -> MetricValue:
    values, details = ctx.memo(("cs", split, encoder, fallback, reference), lambda: cs_values(ctx, split, encoder, fallback, reference))
    return MetricValue(mean(values), len(values), values, details)


def entailment_flags(premises: list[str], hypotheses: list[str], rouge: list[float], classify) -> list[float]:
    """1.0 where the NLI label is entailment; forced to 0 ("none") where ROUGE-L recall < 0.1, whatever
    the classifier says (Closer-Look's rule). `classify(list of (premise, hypothesis)) -> labels`."""
    labels = classify(list(zip(premises, hypotheses)))
    return [0.0 if r < ROUGE_FLOOR else float(str(label).lower() == "entailment") for label, r in zip(labels, rouge)]


def es_values(ctx: EvalContext, split: str, nli: str) -> list[float]:
    def compute():
        pipe = nli_classifier(nli)
        gens = td.generations(ctx, split)
        truth = [r["answer"] for r in td.rows(ctx, split)]
        # Premise/hypothesis order as in the code: forget = (generation, truth); the others = (truth, generation).
        premises, hypotheses = (gens, truth) if split == "tofu_forget" else (truth, gens)

        def classify(pairs):
            return [out["label"] for out in pipe([{"text": p, "text_pair": h} for p, h in pairs], truncation=True)]

        return entailment_flags(premises, hypotheses, td.rouge_recalls(ctx, split), classify)

    return ctx.memo(("es", split, nli), compute)


@register("entailment", uses=("tofu",))
def es(ctx: EvalContext, split: str, nli: str = NLI_MODEL) -> MetricValue:
    values = es_values(ctx, split, nli)
    return MetricValue(mean(values), len(values), values, {"nli": nli, "rouge_floor": ROUGE_FLOOR})


def _components(ctx: EvalContext, split: str, names: tuple[str, ...], cs_kw: dict, nli: str, tr_form: str) -> tuple[dict, dict]:
    """(values, skipped reasons) of the named per-set metrics."""
    getters = {
        "rouge": lambda: mean(td.rouge_recalls(ctx, split)),
        "prob": lambda: mean(probabilities(ctx, split)),
        "truth_ratio": lambda: (td.truth_ratios(ctx, split).true_better() if tr_form == "true_better"
                                else 1.0 - td.truth_ratios(ctx, split).closer_to_1()),
        "te": lambda: mean(te_values(ctx, split)),
        "cs": lambda: mean(ctx.memo(("cs", split, cs_kw["encoder"], cs_kw["fallback"], cs_kw["reference"]),
                                    lambda: cs_values(ctx, split, **cs_kw))[0]),
        "es": lambda: mean(es_values(ctx, split, nli)),
    }
    values, skipped = {}, {}
    for name in names:
        try:
            values[f"{split}/{name}"] = getters[name]()
        except MetricSkipped as why:
            skipped[f"{split}/{name}"] = str(why)
    return values, skipped


def _not_computed(what: str, values: dict, skipped: dict) -> MetricSkipped:
    return MetricSkipped(f"{what} needs {sorted(skipped)}: {next(iter(skipped.values()))}", {"components": values})


@register("cl_model_utility", uses=("tofu",))
def cl_model_utility(ctx: EvalContext, split: str = "all", encoder: str = "paraphrase-minilm", fallback: str | None = "minilm",
                     reference: str = "data_answer", nli: str = NLI_MODEL) -> MetricValue:
    """Harmonic mean of {ROUGE, Prob, TR (true better), TE, CS, ES} x {retain, real authors, world facts}
    (18 values; not TOFU's 9-value utility). `split: tofu_retain` gives "Model Utility Retain"."""
    sets = td.UTILITY_SETS if split == "all" else (split,)
    values, skipped = {}, {}
    for s in sets:
        v, k = _components(ctx, s, ("rouge", "prob", "truth_ratio", "te", "cs", "es"),
                           {"encoder": encoder, "fallback": fallback, "reference": reference}, nli, "true_better")
        values.update(v)
        skipped.update(k)
    if skipped:
        raise _not_computed("Closer-Look model utility", values, skipped)
    return MetricValue(harmonic_mean(list(values.values())), len(values), None, {"components": values})


@register("forget_efficacy", uses=("tofu",))
def forget_efficacy(ctx: EvalContext, split: str = "tofu_forget", encoder: str = "paraphrase-minilm",
                    fallback: str | None = "minilm", reference: str = "data_answer", nli: str = NLI_MODEL) -> MetricValue:
    """1 - mean of the forget-set {ROUGE, Prob, TR (1 - mean min(R, 1/R)), CS, ES}; TE is excluded."""
    values, skipped = _components(ctx, split, ("rouge", "prob", "truth_ratio", "cs", "es"),
                                  {"encoder": encoder, "fallback": fallback, "reference": reference}, nli, "closer_look")
    if skipped:
        raise _not_computed("forget efficacy", values, skipped)
    return MetricValue(1.0 - mean(values.values()), 1, None, {"components": values})
