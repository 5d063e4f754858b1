"""Registered metrics through EvalContext: a model forced to copy, reference models by role, and the
memo that keeps two metrics from recomputing the same generations."""
from types import SimpleNamespace

import pytest
import torch

from unlearn.data.encode import EncodedSplit
from unlearn.metrics import EvalContext, EvalEnv, MetricSkipped, get_metric

V, T, P = 64, 50, 8


class CountingLM(torch.nn.Module):
    """A stateless LM with the HF forward signature: next token = f(current token). `step=1` copies
    counting sequences exactly; `step=0` repeats its input. Counts forward calls."""

    def __init__(self, step: int):
        super().__init__()
        self.step = step
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False, **_):
        self.calls += 1
        logits = torch.nn.functional.one_hot((input_ids + self.step) % V, V).float() * 10.0
        return SimpleNamespace(logits=logits, past_key_values=None)


TOKENIZER = SimpleNamespace(pad_token_id=0, eos_token_id=None,
                            decode=lambda ids, **_: " ".join(f"w{int(i)}" for i in ids))


def counting_split() -> EncodedSplit:
    seqs = [[(start + k) % V for k in range(T)] for start in (1, 5, 9)]
    return EncodedSplit(["a", "b", "c"], seqs, [P] * 3)


def make_contexts(evaluated: CountingLM, original: CountingLM | None = None):
    env = EvalEnv(original_role="original" if original is not None else None)
    split = {"forget": counting_split()}
    ctx = EvalContext(evaluated, TOKENIZER, split, {}, 8, "unlearned", env)
    env.roles["unlearned"] = ctx
    if original is not None:
        env.roles["original"] = EvalContext(original, TOKENIZER, split, {}, 8, "original", env)
    return ctx


def metric(name, ctx, split="forget", **params):
    return get_metric(name)(ctx, split, **params)


def test_el_and_ma_are_one_on_a_model_forced_to_copy():
    ctx = make_contexts(CountingLM(step=1))
    assert metric("ma", ctx, positions="all").value == 1.0
    assert metric("ma", ctx, positions="prefix").value == 1.0
    assert metric("ma", ctx, positions=40).value == 1.0
    for n in (3, 5, 10):
        assert metric("el", ctx, n=n, preset="jang").value == pytest.approx(1.0)
        assert metric("el", ctx, n=n, preset="emso_compat").value == pytest.approx(1.0)
    assert metric("exact_match", ctx).value == T - P


def test_a_model_that_never_continues_scores_zero():
    ctx = make_contexts(CountingLM(step=0))  # repeats its last token: no counting n-gram is generated
    assert metric("ma", ctx).value == 0.0
    assert metric("el", ctx, n=3).value == 0.0
    assert metric("el", ctx, n=3, preset="emso_compat").value == 0.0
    assert metric("exact_match", ctx).value == 0


def test_exact_match_against_the_original_models_output():
    same = make_contexts(CountingLM(step=0), original=CountingLM(step=0))
    result = metric("exact_match", same, reference="original_model")
    assert result.value == T - P and result.details["original"] == "original"
    differ = make_contexts(CountingLM(step=0), original=CountingLM(step=1))
    assert metric("exact_match", differ, reference="original_model").value == 0
    alone = make_contexts(CountingLM(step=1))  # no original given: the model is its own reference
    assert metric("exact_match", alone, reference="original_model").value == T - P


def test_two_metrics_on_the_same_pass_compute_it_once():
    model = CountingLM(step=1)
    ctx = make_contexts(model)
    metric("ma", ctx)
    after_tf = model.calls
    metric("exact_match", ctx)
    assert model.calls == after_tf  # MA and exact-match share one teacher-forced pass
    metric("el", ctx, n=3, preset="emso_compat")
    after_el = model.calls
    metric("el", ctx, n=10, preset="emso_compat")
    ss = metric("ss", ctx, positions=40)
    assert model.calls == after_el  # EL_10 and SS reuse EL_3's window continuations
    assert ss.value == pytest.approx(1.0, abs=1e-5)  # the copier's continuation is the true one


def test_missing_or_empty_splits_are_skipped_not_zero():
    ctx = make_contexts(CountingLM(step=1))
    with pytest.raises(MetricSkipped, match="not a record split"):
        metric("ma", ctx, split="holdout")
    ctx.splits["holdout"] = EncodedSplit([], [], [])
    with pytest.raises(MetricSkipped, match="empty"):
        metric("el", ctx, split="holdout")
    short = make_contexts(CountingLM(step=1))
    short.splits["forget"] = EncodedSplit(["x"], [list(range(1, 20))], [4])
    with pytest.raises(MetricSkipped, match="window"):
        metric("el", short, preset="emso_compat")
