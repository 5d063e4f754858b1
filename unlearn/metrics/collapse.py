"""Collapse flags (EMSO's "(collapsed)" rows, made explicit), from the WikiText generations:

- degeneration: Rep_2 (EMSO style) high AND generation perplexity very low: the model repeats itself
  and the scorer finds that easy (GA/KL rows: Rep_2 > 0.93, PPL 1.9-5.7);
- gibberish: generation perplexity very high AND MAUVE low (GD 1.3B/2.7B: PPL ~500, MAUVE ~0.02).

Default thresholds are calibrated on EMSO Table 1 (GPT-J-6B scorer); with another scorer recalibrate
them (`eval.collapse`). They are recorded with every flag, as are the inputs. The inputs come from
the same memoized generations and scores as the Rep_2 / PPL / MAUVE rows.
"""
from unlearn.errors import ConfigError
from unlearn.metrics.context import EvalContext
from unlearn.metrics.generation_quality import generation_perplexity, rep
from unlearn.metrics.generation_sets import wikitext_generations
from unlearn.metrics.mauve_score import mauve_metric
from unlearn.metrics.registry import MetricSkipped, MetricValue, register

DEFAULTS = {
    "degeneration": {"rep2_min": 0.5, "ppl_max": 10.0},
    "gibberish": {"ppl_min": 200.0, "mauve_max": 0.1},
    "scorer": "original_model",  # the gen_ppl scorer the PPL input is taken from
    "featurizer": "minilm",  # the MAUVE featurizer the MAUVE input is taken from
}


def collapse_settings(ctx: EvalContext) -> dict:
    cfg = {**DEFAULTS, **ctx.setting("collapse")}
    for kind in ("degeneration", "gibberish"):
        cfg[kind] = {**DEFAULTS[kind], **(cfg.get(kind) or {})}
    return cfg


def is_degenerate(rep2: float, ppl: float, t: dict) -> bool:
    return rep2 > t["rep2_min"] and ppl < t["ppl_max"]


def is_gibberish(ppl: float, mauve: float, t: dict) -> bool:
    return ppl > t["ppl_min"] and mauve < t["mauve_max"]


@register("collapse", uses=("wikitext", "collapse"))
def collapse(ctx: EvalContext, split: str = "wikitext", kind: str = "degeneration") -> MetricValue:
    """1.0 = flagged, 0.0 = not; null when an input could not be computed."""
    cfg = collapse_settings(ctx)
    gens = wikitext_generations(ctx)
    ppl = generation_perplexity(ctx, gens, cfg["scorer"], compat=False).value
    if kind == "degeneration":
        inputs = {"rep2": rep(ctx, split, n=2, style="emso").value, "ppl": ppl}
        flag = is_degenerate(inputs["rep2"], ppl, cfg[kind])
    elif kind == "gibberish":
        try:
            inputs = {"ppl": ppl, "mauve": mauve_metric(ctx, split, featurizer=cfg["featurizer"]).value}
        except MetricSkipped as why:
            raise MetricSkipped(f"gibberish flag needs MAUVE: {why}") from None
        flag = is_gibberish(ppl, inputs["mauve"], cfg[kind])
    else:
        raise ConfigError(f"collapse kind={kind!r}; use degeneration or gibberish")
    return MetricValue(float(flag), len(gens), None, {"kind": kind, "flagged": flag, "inputs": inputs,
                                                      "thresholds": cfg[kind], "scorer": cfg["scorer"]})
