"""Membership inference (LOSS, zlib, Min-K%, Min-K%++) and PrivLeak on a toy bigram model whose
log-probabilities are computed here by hand from its logit table, independently of the implementation."""
import math
import zlib
from types import SimpleNamespace

import pytest
import torch

from unlearn.data.encode import EncodedSplit
from unlearn.metrics import EvalContext, EvalEnv, get_metric
from unlearn.metrics.privacy import member_scores
from unlearn.statistics import auc

V = 5  # token 0 is padding
LETTERS = "_abcd"


class BigramLM(torch.nn.Module):
    """logits at position t = table[x_t]: the next-token distribution depends only on the current token."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(table, dtype=torch.float32))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.table[input_ids])


class LetterTokenizer:
    pad_token_id = 0

    def decode(self, ids, skip_special_tokens=True):
        return "".join(LETTERS[i] for i in ids if i != 0)


TABLE = [[0.0] * V, [0.0, 2.0, 0.5, -1.0, 0.3], [0.0, -0.5, 1.5, 0.2, 1.0], [0.0, 0.7, 0.1, 2.5, -0.4], [0.0, 1.2, -0.8, 0.6, 0.9]]
FORGET = [[1, 1, 2, 2, 2, 3], [3, 3, 3, 1, 1], [4, 4, 1, 2]]
HOLDOUT = [[2, 4, 3, 1, 4, 2, 3], [1, 1, 1, 1, 2], [4, 2, 1, 3, 2]]


def hand_logps(seq):
    """[(log p(x_t | x_{t-1}), mu_t, sigma_t)] by hand: softmax over tokens 0..V-1 of table[x_{t-1}]."""
    out = []
    for prev, tok in zip(seq, seq[1:]):
        row = TABLE[prev]
        norm = math.log(sum(math.exp(v) for v in row))
        logp = [v - norm for v in row]
        mu = sum(math.exp(lp) * lp for lp in logp)
        sigma = math.sqrt(sum(math.exp(lp) * (lp - mu) ** 2 for lp in logp))
        out.append((logp[tok], mu, sigma))
    return out


def hand_score(seq, score, k):
    stats = hand_logps(seq)
    lps = [s[0] for s in stats]
    if score == "loss":
        return sum(lps) / len(lps)
    if score == "zlib":
        return sum(lps) / len(lps) / len(zlib.compress(LetterTokenizer().decode(seq).encode()))
    if score == "min_k_pp":
        lps = [(lp - mu) / sigma for lp, mu, sigma in stats]
    lowest = sorted(lps)[:max(1, int(len(lps) * k))]
    return sum(lowest) / len(lowest)


def hand_auc(pos, neg):
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def context(table=TABLE, name="unlearned", env=None):
    env = env or EvalEnv()
    splits = {"forget": EncodedSplit(["f0", "f1", "f2"], FORGET, [1, 1, 1]),
              "holdout": EncodedSplit(["h0", "h1", "h2"], HOLDOUT, [1, 1, 1])}
    ctx = EvalContext(BigramLM(table), LetterTokenizer(), splits, {}, 2, name, env)
    env.roles[name] = ctx
    return ctx


@pytest.mark.parametrize("score,k", [("loss", 1.0), ("zlib", 1.0), ("min_k", 0.4), ("min_k", 0.2), ("min_k_pp", 0.4),
                                     ("min_k_pp", 0.5)])
def test_each_score_equals_the_hand_computed_value(score, k):
    ctx = context()
    for split, seqs in (("forget", FORGET), ("holdout", HOLDOUT)):
        got = member_scores(ctx, split, score, k)
        assert got == pytest.approx([hand_score(s, score, k) for s in seqs], rel=1e-5)


@pytest.mark.parametrize("name,score,params", [("mia_loss", "loss", {}), ("mia_zlib", "zlib", {}),
                                               ("mia_min_k", "min_k", {"k": 0.4}), ("mia_min_k_pp", "min_k_pp", {"k": 0.4})])
def test_mia_auc_is_forget_over_holdout(name, score, params):
    k = params.get("k", 1.0)
    result = get_metric(name)(context(), "forget", **params)
    expected = hand_auc([hand_score(s, score, k) for s in FORGET], [hand_score(s, score, k) for s in HOLDOUT])
    assert result.value == pytest.approx(expected)
    assert result.n == 3 and result.per_item == pytest.approx([hand_score(s, score, k) for s in FORGET], rel=1e-5)


def test_auc_counts_ties_as_half():
    assert auc([3, 2, 1], [1, 0]) == pytest.approx(hand_auc([3, 2, 1], [1, 0])) == pytest.approx(5.5 / 6)
    assert auc([1, 1], [1, 1]) == 0.5 and auc([0], [1]) == 0.0


def test_privleak_is_zero_for_a_model_compared_with_itself():
    env = EvalEnv()
    oracle = context(name="oracle", env=env)
    assert get_metric("privleak")(oracle, "forget").value == 0.0
    twin = context(name="unlearned", env=env)  # an identical copy in another role
    assert get_metric("privleak")(twin, "forget").value == pytest.approx(0.0)


def test_privleak_is_relative_to_the_measured_oracle_auc():
    env = EvalEnv()
    flat = [[0.0] * V for _ in range(V)]
    flat[2] = [0.0, 0.1, 0.2, 0.3, 0.4]
    context(table=flat, name="oracle", env=env)
    model = context(name="unlearned", env=env)
    result = get_metric("privleak")(model, "forget", score="min_k", k=0.4)
    # MUSE's orientation: the attack statistic as a loss (-score), forget the positive class.
    mine = hand_auc([-hand_score(s, "min_k", 0.4) for s in FORGET], [-hand_score(s, "min_k", 0.4) for s in HOLDOUT])
    flat_scores = lambda seqs: [-sum(sorted(v - math.log(sum(math.exp(x) for x in flat[p])) for p, t in zip(s, s[1:])
                                            for v in [flat[p][t]])[:max(1, int((len(s) - 1) * 0.4))])
                                / max(1, int((len(s) - 1) * 0.4)) for s in seqs]
    theirs = hand_auc(flat_scores(FORGET), flat_scores(HOLDOUT))
    assert result.details["auc"] == pytest.approx(mine) and result.details["auc_oracle"] == pytest.approx(theirs)
    assert result.value == pytest.approx((mine - theirs) / theirs * 100)
    assert mine != theirs  # the oracle's AUC is measured, and here it differs from the model's


def test_privleak_without_an_oracle_is_skipped_not_zero():
    from unlearn.metrics import MetricSkipped

    with pytest.raises(MetricSkipped, match="oracle"):
        get_metric("privleak")(context(name="unlearned"), "forget")
