"""Membership inference on the forget set: LOSS, zlib, Min-K% and Min-K%++ as the AUC that separates
forget records (trained on, then unlearned) from holdout records (never trained on), and MUSE's
PrivLeak relative to the retrain oracle's AUC, measured here on the same records.

Scores (one per record, all over every next-token position of the record's token ids):
- loss: mean token log-likelihood (Yeom et al.): higher = more likely a member;
- zlib: that log-likelihood divided by the zlib-compressed length of the record's text in bytes
  (Carlini et al. 2021; MUSE's `PPL/zlib`);
- min_k: the mean of the k fraction of lowest token log-probabilities (Shi et al. 2024, Min-K% Prob);
- min_k_pp: the same over z_t = (log p(x_t) - mu_t) / sigma_t, with mu_t and sigma_t the mean and
  standard deviation of log p(z) for z drawn from the model's own next-token distribution at t
  (Zhang et al. 2024, Min-K%++).

`mia_*` metrics report AUC = P(score(forget item) > score(holdout item)), ties counted half: 1 = every
forget record looks more like a member than every holdout record, 0.5 = the attack cannot tell them
apart (what a retrain oracle should show). PrivLeak uses MUSE's orientation instead (its AUC is over
the attack statistic as a loss, Min-40% NLL, forget as the positive class, so a model that recites the
forget set has AUC near 0): PrivLeak = (AUC_model - AUC_oracle) / AUC_oracle x 100, in percent as MUSE
reports it. Near 0 = leaks like the oracle; strongly negative = under-unlearned (still recognizes the
forget set); strongly positive = over-unlearned (forget records now look *less* familiar than unseen text).
"""
import zlib

import torch

from unlearn.data.collate import pad_right
from unlearn import statistics
from unlearn.errors import ConfigError
from unlearn.metrics.context import EvalContext
from unlearn.metrics.registry import MetricSkipped, MetricValue, register

SCORES = ("loss", "zlib", "min_k", "min_k_pp")


def auc(positive: list[float], negative: list[float]) -> float:
    """ROC AUC (the Mann-Whitney U statistic over n_p * n_n, via scipy; see unlearn/statistics.py)."""
    if not positive or not negative:
        raise MetricSkipped("AUC needs at least one item on each side")
    return statistics.auc(positive, negative)


@torch.no_grad()
def token_stats(model, seqs: list[list[int]], pad_id: int, batch_size: int = 16) -> list[dict]:
    """Per sequence and position t >= 1: log p(x_t | x_<t), and the mean mu_t and standard deviation
    sigma_t of log p(z | x_<t) over z ~ p(. | x_<t) (Min-K%++). One teacher-forced pass; the full
    next-token distribution is needed, which the shared `teacher_forced` pass does not keep."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(seqs), batch_size):
            chunk = seqs[start:start + batch_size]
            ids, mask = pad_right(chunk, pad_id)
            ids, mask = ids.to(device), mask.to(device)
            logp = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float().log_softmax(-1)
            token = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
            p = logp.exp()
            mu = (p * logp).sum(-1)
            var = ((p * logp.square()).sum(-1) - mu.square()).clamp_min(0.0)
            for row, s in enumerate(chunk):
                n = len(s) - 1
                out.append({"logp": token[row, :n].tolist(), "mu": mu[row, :n].tolist(), "sigma": var[row, :n].sqrt().tolist()})
    finally:
        model.train(was_training)
    return out


def lowest_k_mean(values: list[float], k: float) -> float:
    """Mean of the int(k * len) smallest values (at least one, so short records still get a score)."""
    count = max(1, int(len(values) * k))
    return sum(sorted(values)[:count]) / count


def _record_text(ctx: EvalContext, ids: list[int]) -> str:
    return ctx.tokenizer.decode(ids, skip_special_tokens=True)


def member_scores(ctx: EvalContext, split: str, score: str, k: float = 0.2) -> list[float]:
    """Per record of `split`: the attack's membership score, higher = more likely trained on."""
    if score not in SCORES:
        raise ConfigError(f"membership score {score!r} is unknown; use one of {SCORES}")
    if not 0 < k <= 1:
        raise ConfigError(f"membership inference k={k} must be a fraction in (0, 1] (Min-K%: 0.2 = the lowest 20%)")
    seqs = ctx.record_split(split).input_ids

    def compute():
        if score == "min_k_pp":
            stats = ctx.memo(("mia_stats", split), lambda: token_stats(ctx.model, seqs, ctx.pad_id, ctx.batch_size))
            z = [[(lp - m) / s if s > 0 else 0.0 for lp, m, s in zip(st["logp"], st["mu"], st["sigma"])] for st in stats]
            return [lowest_k_mean(v, k) for v in z]
        logps = [[-x for x in nll] for nll in ctx.teacher_forced(split).nll]  # the pass MA and PPL share
        if score == "loss":
            return [sum(v) / len(v) for v in logps]
        if score == "zlib":
            return [(sum(v) / len(v)) / len(zlib.compress(_record_text(ctx, s).encode("utf-8"))) for v, s in zip(logps, seqs)]
        return [lowest_k_mean(v, k) for v in logps]

    return ctx.memo(("mia", split, score, k if score in ("min_k", "min_k_pp") else None), compute)


def mia_auc(ctx: EvalContext, split: str, score: str, k: float, against: str) -> MetricValue:
    members, outsiders = member_scores(ctx, split, score, k), member_scores(ctx, against, score, k)
    details = {"score": score, "against": against, "n_against": len(outsiders),
               "orientation": "AUC = P(score(split) > score(against)); 1 = split recognized, 0.5 = chance"}
    if score in ("min_k", "min_k_pp"):
        details["k"] = k
    return MetricValue(auc(members, outsiders), len(members), members, details)


@register("mia_loss")
def mia_loss(ctx: EvalContext, split: str, against: str = "holdout") -> MetricValue:
    return mia_auc(ctx, split, "loss", 1.0, against)


@register("mia_zlib")
def mia_zlib(ctx: EvalContext, split: str, against: str = "holdout") -> MetricValue:
    return mia_auc(ctx, split, "zlib", 1.0, against)


@register("mia_min_k")
def mia_min_k(ctx: EvalContext, split: str, k: float = 0.2, against: str = "holdout") -> MetricValue:
    return mia_auc(ctx, split, "min_k", k, against)


@register("mia_min_k_pp")
def mia_min_k_pp(ctx: EvalContext, split: str, k: float = 0.2, against: str = "holdout") -> MetricValue:
    return mia_auc(ctx, split, "min_k_pp", k, against)


def muse_auc(ctx: EvalContext, split: str, score: str, k: float, against: str) -> float:
    """MUSE's AUC: the attack statistic as a loss (negated membership score), `split` the positive class;
    equal to 1 - the `mia_*` AUC."""
    members, outsiders = member_scores(ctx, split, score, k), member_scores(ctx, against, score, k)
    return auc([-s for s in members], [-s for s in outsiders])


def privleak_value(auc_model: float, auc_oracle: float) -> float:
    """MUSE: (AUC_unlearned - AUC_retrain) / AUC_retrain, in percent."""
    if auc_oracle == 0:
        raise MetricSkipped("the oracle's MUSE AUC is 0: PrivLeak (relative to it) is undefined")
    return (auc_model - auc_oracle) / auc_oracle * 100.0


@register("privleak", needs_oracle=True)
def privleak(ctx: EvalContext, split: str = "forget", score: str = "min_k", k: float = 0.4,
             against: str = "holdout") -> MetricValue:
    """MUSE's PrivLeak (default attack: Min-40% Prob, MUSE's `forget_holdout_Min-40%`), relative to the
    retrain oracle's AUC on the same records, measured here rather than taken as 0.5 or as MUSE's
    published constant. The oracle's own value is 0 by construction."""
    oracle = ctx.role(ctx.env.oracle_role)
    if oracle is None:
        raise MetricSkipped("PrivLeak needs the retrain oracle (pipeline role 'oracle', or oracle=<model> for "
                            "python -m unlearn.evaluate)")
    mine = muse_auc(ctx, split, score, k, against)
    reference = muse_auc(oracle, split, score, k, against)
    details = {"score": score, "k": k, "against": against, "auc": mine, "auc_oracle": reference, "oracle": oracle.name,
               "unit": "percent", "orientation": "MUSE: attack statistic as a loss, split = positive class; "
                                                 "negative = under-unlearned, positive = over-unlearned"}
    return MetricValue(privleak_value(mine, reference), len(ctx.record_split(split)), None, details)


__all__ = ["SCORES", "auc", "lowest_k_mean", "member_scores", "privleak_value", "token_stats"]
