"""TOFU metrics (Maini et al. 2024, as in locuslab/tofu and open-unlearning; spec §3.10): ROUGE-L
recall, probability, truth ratio, forget quality and the 9-value model utility."""
from statistics import mean

from unlearn.errors import ConfigError
from unlearn.metrics import tofu_data as td
from unlearn.metrics.context import EvalContext
from unlearn.metrics.registry import MetricSkipped, MetricValue, register


def _details(ctx: EvalContext, split: str) -> dict:
    cfg = td.tofu_settings(ctx)
    return {"file": td.file_for(split, cfg), "scoring": cfg["scoring"]}


@register("tofu_rouge", uses=("tofu",))
def tofu_rouge(ctx: EvalContext, split: str) -> MetricValue:
    values = td.rouge_recalls(ctx, split)
    return MetricValue(mean(values), len(values), values, {**_details(ctx, split), "rouge": "rougeL recall"})


def probabilities(ctx: EvalContext, split: str) -> list[float]:
    """P(a|q) per item; for real authors / world facts normalized over the answer and its perturbations."""
    correct = [td.normalized_prob(c) for (c,) in td.answer_nll(ctx, split, "answer")]
    if split in ("tofu_forget", "tofu_retain"):
        return correct
    perturbed = td.answer_nll(ctx, split, "perturbed_answer")
    return [td.normalized_over_options(p, [td.normalized_prob(x) for x in pert]) for p, pert in zip(correct, perturbed)]


@register("tofu_prob", uses=("tofu",))
def tofu_prob(ctx: EvalContext, split: str) -> MetricValue:
    values = probabilities(ctx, split)
    return MetricValue(mean(values), len(values), values, _details(ctx, split))


TR_AGGREGATES = ("closer_to_1", "true_better", "closer_look")


def aggregate_truth_ratio(tr: td.TruthRatios, aggregate: str) -> float:
    if aggregate == "closer_to_1":  # mean min(R, 1/R): forget-set reporting, forget-quality inputs
        return tr.closer_to_1()
    if aggregate == "true_better":  # mean max(0, 1 - R): the utility form
        return tr.true_better()
    if aggregate == "closer_look":  # 1 - mean min(R, 1/R): Closer-Look's forget TR
        return 1.0 - tr.closer_to_1()
    raise ConfigError(f"truth ratio aggregate={aggregate!r}; use one of {TR_AGGREGATES}")


@register("tofu_truth_ratio", uses=("tofu",))
def tofu_truth_ratio(ctx: EvalContext, split: str, aggregate: str = "closer_to_1") -> MetricValue:
    """per_item holds the raw R = P_perturbed / P_correct (what forget quality compares)."""
    tr = td.truth_ratios(ctx, split)
    return MetricValue(aggregate_truth_ratio(tr, aggregate), len(tr.values), tr.values,
                       {**_details(ctx, split), "aggregate": aggregate, "per_item": "raw R"})


def ks_pvalue(a: list[float], b: list[float]) -> float:
    from scipy.stats import ks_2samp  # imported here: scipy.stats costs a second at every CLI start

    return float(ks_2samp(a, b).pvalue)


@register("forget_quality", uses=("tofu",), needs_oracle=True)
def forget_quality(ctx: EvalContext, split: str = "tofu_forget") -> MetricValue:
    """p-value of a two-sample KS test between this model's forget-set truth ratios and the retrain
    oracle's (the same base model trained without the forget set)."""
    oracle = ctx.role(ctx.env.oracle_role)
    if oracle is None:
        raise MetricSkipped("forget quality needs the retrain oracle model (pipeline role 'oracle', or oracle=<model> "
                            "for python -m unlearn.evaluate)")
    mine, theirs = td.truth_ratios(ctx, split).values, td.truth_ratios(oracle, split).values
    return MetricValue(ks_pvalue(mine, theirs), len(mine), None, {**_details(ctx, split), "oracle": oracle.name, "test": "ks_2samp"})


def utility_components(ctx: EvalContext) -> dict[str, float]:
    """TOFU's 9 model-utility inputs: {probability, ROUGE-L, truth ratio (true better)} x {retain, real
    authors, world facts}."""
    out = {}
    for split in td.UTILITY_SETS:
        out[f"{split}/prob"] = mean(probabilities(ctx, split))
        out[f"{split}/rouge"] = mean(td.rouge_recalls(ctx, split))
        out[f"{split}/truth_ratio"] = td.truth_ratios(ctx, split).true_better()
    return out


def harmonic_mean(values: list[float]) -> float:
    """scipy's harmonic mean; any zero component makes it 0 (open-unlearning's hm_aggregate)."""
    from scipy.stats import hmean

    return 0.0 if any(v == 0 for v in values) else float(hmean(values))


@register("tofu_model_utility", uses=("tofu",))
def tofu_model_utility(ctx: EvalContext, split: str = "all") -> MetricValue:
    parts = utility_components(ctx)
    return MetricValue(harmonic_mean(list(parts.values())), len(parts), None,
                       {"components": parts, "scoring": td.tofu_settings(ctx)["scoring"]})
