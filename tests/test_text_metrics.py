"""Spec sanity values of the text-level metrics: hand-computed on canned inputs, no model needed."""
import math

import numpy as np
import pytest

from unlearn.metrics.closer_look import entailment_flags, token_entropy
from unlearn.metrics.collapse import is_degenerate, is_gibberish
from unlearn.metrics.repetition import emso_distinct, emso_rep, simctg_diversity, simctg_rep, word_ngrams
from unlearn.metrics.tofu import aggregate_truth_ratio, harmonic_mean, ks_pvalue
from unlearn.metrics.tofu_data import TruthRatios
from unlearn.storage.results import markdown_table


def test_simctg_rep_reproduces_the_off_by_one_only_in_compat_mode():
    # "a a a a": the canonical loop counts 2 bigrams (1 unique) -> 50; all 3 bigrams -> 1 - 1/3.
    assert simctg_rep(["a a a a"], 2, compat=True) == pytest.approx(50.0)
    assert simctg_rep(["a a a a"], 2, compat=False) == pytest.approx(100 * (1 - 1 / 3))
    assert word_ngrams("a b c", 2, compat=True) == [("a", "b")]
    assert word_ngrams("a b c", 2, compat=False) == [("a", "b"), ("b", "c")]


def test_simctg_is_corpus_level_and_diversity_is_the_product():
    texts = ["a a a a", "b c d e f"]
    # compat bigrams: text 1 -> 2 counted, 1 unique; text 2 (5 words) -> 3 counted, 3 unique: 100 (1 - 4/5)
    assert simctg_rep(texts, 2) == pytest.approx(100 * (1 - 4 / 5))
    expected = math.prod(1 - simctg_rep(texts, n) / 100 for n in (2, 3, 4))
    assert simctg_diversity(texts) == pytest.approx(expected)
    distinct = ["one two three four five six seven"]
    assert simctg_rep(distinct, 2) == 0.0 and simctg_diversity(distinct) == pytest.approx(1.0)


def test_emso_rep_and_distinct_are_per_text_fractions():
    assert emso_rep("a a a a", 2) == pytest.approx(2 / 3)
    assert emso_rep("a b c d", 2) == 0.0
    assert emso_distinct("a b c d", 3) == pytest.approx(2 / 4)  # 2 distinct trigrams over 4 words
    assert emso_distinct("a a a a", 3) == pytest.approx(1 / 4)
    assert emso_rep("a", 2) is None and emso_distinct("a b", 3) is None  # no n-grams: skipped, not 0


def test_token_entropy():
    assert token_entropy("a a a a".split()) == 0.0
    assert token_entropy("a b c d".split()) == pytest.approx(1.0)
    assert token_entropy(["a"]) == 0.0 and token_entropy([]) == 0.0
    assert token_entropy("a a b b".split()) == pytest.approx(1 / 2)  # 1 bit over log2(4) = 2


def test_entailment_is_forced_to_zero_below_rouge_0_1_whatever_the_classifier_says():
    def always_entails(pairs):
        return ["entailment"] * len(pairs)

    flags = entailment_flags(["p1", "p2", "p3"], ["h1", "h2", "h3"], [0.05, 0.1, 0.9], always_entails)
    assert flags == [0.0, 1.0, 1.0]
    assert entailment_flags(["p"], ["h"], [0.5], lambda pairs: ["neutral"]) == [0.0]


def test_truth_ratio_aggregates():
    ones = TruthRatios([1.0, 1.0])
    # 1 up to open-unlearning's guard: min(R, 1 / (R + 1e-10))
    assert aggregate_truth_ratio(ones, "closer_to_1") == pytest.approx(1.0, rel=0, abs=1e-9)
    assert aggregate_truth_ratio(ones, "true_better") == 0.0
    assert aggregate_truth_ratio(ones, "closer_look") == pytest.approx(0.0, abs=1e-9)
    tr = TruthRatios([0.5, 4.0])
    assert aggregate_truth_ratio(tr, "closer_to_1") == pytest.approx((0.5 + 0.25) / 2)
    assert aggregate_truth_ratio(tr, "true_better") == pytest.approx((0.5 + 0.0) / 2)


def test_ks_p_value_is_one_on_identical_samples_and_small_on_disjoint_ones():
    sample = [0.1, 0.4, 0.35, 0.8, 0.5]
    assert ks_pvalue(sample, list(sample)) == pytest.approx(1.0)
    assert ks_pvalue([0.01 * i for i in range(20)], [10 + 0.01 * i for i in range(20)]) < 1e-6


def test_harmonic_mean_edge_cases():
    assert harmonic_mean([0.4, 0.4, 0.4]) == pytest.approx(0.4)
    assert harmonic_mean([0.9, 0.0, 0.5]) == 0.0
    assert harmonic_mean([0.2, 0.8]) == pytest.approx(2 / (1 / 0.2 + 1 / 0.8))


def test_collapse_flags_need_both_conditions():
    t_deg, t_gib = {"rep2_min": 0.5, "ppl_max": 10.0}, {"ppl_min": 200.0, "mauve_max": 0.1}
    assert is_degenerate(0.95, 2.4, t_deg)  # EMSO GA-125M
    assert not is_degenerate(0.95, 27.0, t_deg) and not is_degenerate(0.12, 2.4, t_deg)
    assert is_gibberish(535.8, 0.02, t_gib)  # EMSO GD-1.3B
    assert not is_gibberish(535.8, 0.7, t_gib) and not is_gibberish(27.7, 0.02, t_gib)


def test_mauve_is_one_on_equal_features_near_zero_on_separated_clouds_and_deterministic():
    from unlearn.metrics.mauve_score import mauve_from_features

    rng = np.random.default_rng(0)
    p = rng.normal(size=(200, 16))
    assert mauve_from_features(p, p.copy()).mauve > 0.99
    far = rng.normal(size=(200, 16)) + 25.0
    assert mauve_from_features(p, far).mauve < 0.05
    q = rng.normal(size=(200, 16))
    assert mauve_from_features(p, q).mauve == mauve_from_features(p, q).mauve


def test_markdown_table_shows_skipped_metrics_with_their_reason_never_a_number():
    records = [
        {"model": "m", "split": "forget", "metric": "MA", "value": 0.5, "n": 2, "details": {}},
        {"model": "m", "split": "tofu_forget", "metric": "ES", "value": None, "n": 0, "details": {"skipped": "no NLI model offline"}},
    ]
    table = markdown_table(records, ["m"])
    assert "| tofu_forget | ES | skipped [1] |" in table
    assert "[1] no NLI model offline" in table
    assert "| forget | MA | 0.500 |" in table
