"""Statistics the report relies on: the t-interval over seeds, the paired bootstrap CI's coverage and the
permutation p-value's size on synthetic data with a known true difference."""
import math

import numpy as np
import pytest

from unlearn.statistics import paired_difference, t_interval

T_975_DF2 = 4.302652729749464  # Student t quantile 0.975 with 2 degrees of freedom (tables: 4.303)


def test_t_interval_on_three_seeds_by_hand():
    mean, half, n = t_interval([0.1, 0.2, 0.6])
    sd = math.sqrt(((0.1 - 0.3) ** 2 + (0.2 - 0.3) ** 2 + (0.6 - 0.3) ** 2) / 2)
    assert (mean, n) == (pytest.approx(0.3), 3)
    assert half == pytest.approx(T_975_DF2 * sd / math.sqrt(3))
    assert math.isnan(t_interval([0.5])[1]) and t_interval([0.5, None, float("nan")])[2] == 1


def _replicate(rng, n_items, true_diff):
    """Items with a large item effect shared by both methods (sd 3) and small method noise (sd 0.3): a test
    that ignores the pairing gets an interval ten times too wide."""
    item = rng.normal(0.0, 3.0, n_items)
    a = item + true_diff + rng.normal(0.0, 0.3, n_items)
    b = item + rng.normal(0.0, 0.3, n_items)
    return a, b


def test_bootstrap_ci_covers_the_true_difference_at_the_nominal_rate():
    rng = np.random.default_rng(1234)
    reps, true_diff = 200, 0.25
    covered = 0
    widths = []
    for i in range(reps):
        a, b = _replicate(rng, 30, true_diff)
        out = paired_difference(a, b, n_resamples=999, seed=i)
        covered += out["ci_low"] <= true_diff <= out["ci_high"]
        widths.append(out["ci_high"] - out["ci_low"])
    rate = covered / reps
    # 95% nominal; binomial sd over 200 replicates is 1.5 points, BCa at n = 30 runs slightly under.
    assert 0.89 <= rate <= 0.985, rate
    # The paired interval's width is about 2 x 1.96 x 0.3 x sqrt(2) / sqrt(30) = 0.30, not the unpaired ~2.2.
    assert np.median(widths) < 0.45


def test_permutation_p_value_rejects_at_its_level_under_the_null_and_detects_a_real_difference():
    rng = np.random.default_rng(99)
    null_p = [paired_difference(*_replicate(rng, 20, 0.0), n_resamples=499, seed=i)["p_value"] for i in range(150)]
    rejections = np.mean(np.array(null_p) < 0.05)
    assert 0.01 <= rejections <= 0.11, rejections
    effect = paired_difference(*_replicate(rng, 20, 0.5), n_resamples=499, seed=0)
    assert effect["p_value"] < 0.01 and effect["ci_low"] > 0


def test_identical_methods_give_zero_difference_and_p_one():
    a = np.array([0.1, 0.4, 0.3])
    out = paired_difference(a, a.copy())
    assert out["diff"] == 0.0 and out["ci_low"] == out["ci_high"] == 0.0 and out["p_value"] == 1.0
