"""Statistical primitives the metrics and the report share: ROC AUC, the t-interval over seeds, and a
paired per-item comparison of two methods (bootstrap CI, sign-flip permutation p-value). All on scipy,
which is already a dependency; imported inside the functions (scipy.stats costs a second at CLI start).
"""
import math

import numpy as np


def auc(positive, negative) -> float:
    """ROC AUC of `positive` over `negative` = P(p > n) + P(p = n) / 2: the Mann-Whitney U statistic of
    `positive` over n_p * n_n. scipy's `mannwhitneyu` gives U with the tie handling ROC AUC needs;
    scikit-learn's `roc_auc_score` gives the same number but is not a dependency of this package."""
    from scipy.stats import mannwhitneyu

    positive, negative = list(positive), list(negative)
    if not positive or not negative:
        raise ValueError("AUC needs at least one item on each side")
    u = mannwhitneyu(positive, negative, alternative="two-sided").statistic
    return float(u) / (len(positive) * len(negative))


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the Student-t confidence interval, n) over the non-missing values; the
    half-width is NaN for n < 2 (one seed has no spread to estimate)."""
    from scipy.stats import t

    x = np.asarray([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n < 2:
        return float(x.mean()), math.nan, 1
    half = float(t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return float(x.mean()), half, n


def paired_difference(a, b, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> dict:
    """Mean per-item difference a - b over paired items, its bootstrap CI (BCa, resampling items, so
    each item's pair stays together) and the two-sided p-value of a sign-flip permutation test (the
    paired null: each item's difference is as likely negative as positive; exact when 2^n <= n_resamples)."""
    from scipy.stats import bootstrap, permutation_test

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"a paired comparison needs at least 2 paired items (got {d.size})")
    out = {"diff": float(d.mean()), "n": int(len(d)), "confidence": confidence}
    if np.all(d == d[0]):  # no spread: the bootstrap distribution is a point and BCa is undefined
        out.update(ci_low=float(d[0]), ci_high=float(d[0]), p_value=1.0 if d[0] == 0 else float(2.0 ** (1 - len(d))))
        return out
    rng = np.random.default_rng(seed)
    ci = bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="BCa",
                   random_state=rng).confidence_interval
    perm = permutation_test((d,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                            alternative="two-sided", random_state=rng)
    out.update(ci_low=float(ci.low), ci_high=float(ci.high), p_value=float(perm.pvalue))
    return out
