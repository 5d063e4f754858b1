"""lm-eval on the tiny model: the forward-signature wrapper scores exactly the wrapped distribution,
local task copies run offline, and a task with no local copy is skipped with the reason."""
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import SHARED_DATA
from unlearn.metrics import EvalContext, EvalEnv, MetricSkipped, get_metric


class LogitPair(torch.nn.Module):
    """Not an HF model: two LMs combined in forward (the contrastive-decoding shape, spec §2.6)."""

    def __init__(self, a, b, gamma: float):
        super().__init__()
        self.a, self.b, self.gamma = a, b, gamma

    def forward(self, input_ids, attention_mask=None, **_):
        za = self.a(input_ids=input_ids, attention_mask=attention_mask).logits
        zb = self.b(input_ids=input_ids, attention_mask=attention_mask).logits
        return SimpleNamespace(logits=za - self.gamma * torch.relu(zb - za))


def _loglik(model, ids_ctx, ids_cont) -> float:
    ids = torch.tensor([ids_ctx + ids_cont])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    targets = ids[0, 1:]
    return logp[range(len(targets)), targets][len(ids_ctx) - 1:].sum().item()


def test_wrapper_scores_the_combined_distribution(tiny_setup):
    from lm_eval.api.instance import Instance

    from unlearn.metrics.lm_eval_model import lm_eval_model

    tok = tiny_setup["tokenizer"]
    pair = LogitPair(tiny_setup["base"], tiny_setup["target"], gamma=1.0)
    lm = lm_eval_model(pair, tok, batch_size=2)
    context, continuation = "Bettina Marchetti lives at", " 778 Foundry Row"
    request = Instance(request_type="loglikelihood", doc={}, arguments=(context, continuation), idx=0)
    (got, _), = lm.loglikelihood([request])
    ids_ctx = tok.encode(context, add_special_tokens=False)
    ids_cont = tok.encode(continuation, add_special_tokens=False)
    assert got == pytest.approx(_loglik(pair, ids_ctx, ids_cont), abs=1e-4)
    assert abs(got - _loglik(tiny_setup["base"], ids_ctx, ids_cont)) > 1e-3  # not just the first model


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "lm_eval_tasks").is_dir(), reason="shared lm-eval task copies not present")
def test_local_tasks_run_offline_and_winogrande_is_skipped(tiny_setup, cache_dir):
    settings = {"reasoning": {"tasks": ["copa", "pubmedqa", "winogrande"], "limit": 3, "batch_size": 4}}
    env = EvalEnv(data_root=str(SHARED_DATA), cache_dir=cache_dir, settings=settings)
    ctx = EvalContext(tiny_setup["target"], tiny_setup["tokenizer"], {}, {}, 8, "target", env)
    reasoning = get_metric("reasoning")
    copa = reasoning(ctx, "copa", stat="acc")
    assert copa.n == 3 and copa.details["source"] == "local" and copa.details["lm_eval_task"] == "unlearn_copa"
    assert set(copa.per_item) <= {0.0, 1.0} and copa.value == pytest.approx(sum(copa.per_item) / 3)
    norm = reasoning(ctx, "pubmedqa", stat="acc_norm")
    assert 0.0 <= norm.value <= 1.0
    with pytest.raises(MetricSkipped, match="winogrande: no local copy"):
        reasoning(ctx, "winogrande")
    mean = reasoning(ctx, "mean", stat="acc")
    assert mean.details["over"] == ["copa", "pubmedqa"] and "winogrande" in mean.details["missing"]
    assert not mean.details["complete"]
    memo_keys = [k for k in ctx._memo if k[0] == "lm_eval"]
    assert len(memo_keys) == 2  # each task ran once for acc, acc_norm and the mean
