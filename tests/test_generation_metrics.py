"""WikiText generation utility on the tiny model: one memoized generation set for every metric,
perplexity by hand, coherence/SS sanity, and skips when data or models are missing."""
import math

import pytest
import torch

from tests.conftest import SHARED_DATA
from unlearn.metrics import EvalContext, EvalEnv, MetricSkipped, get_metric
from unlearn.metrics.generation_quality import compat_perplexity, token_nll

needs_data = pytest.mark.skipif(not (SHARED_DATA / "wikitext2_raw").is_dir(), reason="shared WikiText copy not present")
WIKI = {"n": 4, "max_new_tokens": 12, "prompt_tokens": 16, "gold_tokens": 24, "seed": 0}


class ForwardCounter:
    def __init__(self, model):
        self.calls = 0
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1


@pytest.fixture
def wiki_ctx(tiny_setup, cache_dir):
    env = EvalEnv(data_root=str(SHARED_DATA), cache_dir=cache_dir, settings={"wikitext": dict(WIKI)})
    ctx = EvalContext(tiny_setup["target"], tiny_setup["tokenizer"], {}, {}, 8, "target", env)
    env.roles["target"] = ctx
    yield ctx


def run(name, ctx, **params):
    return get_metric(name)(ctx, "wikitext", **params)


@needs_data
def test_generation_metrics_share_one_sampled_generation_set(wiki_ctx):
    counter = ForwardCounter(wiki_ctx.model)
    try:
        rep2 = run("rep", wiki_ctx, n=2)
        after_generation = counter.calls
        assert after_generation > 0
        run("distinct", wiki_ctx, n=3)
        run("diversity", wiki_ctx)
        run("rep", wiki_ctx, n=2, style="simctg")
        coh = run("coherence", wiki_ctx)
        mauve = run("mauve", wiki_ctx)
        assert counter.calls == after_generation  # no metric decoded again
        ppl = run("gen_ppl", wiki_ctx, scorer="self")
        scored = counter.calls
        assert scored > after_generation  # the scorer's teacher-forced pass
        assert run("gen_ppl", wiki_ctx, scorer="self").value == ppl.value and counter.calls == scored
    finally:
        counter.handle.remove()
    assert rep2.details["generations"] == mauve.details["generations"] == ppl.details["generations"]
    assert "top_p=0.95" in rep2.details["generations"]
    assert 0.0 <= rep2.value <= 1.0 and 0.0 <= mauve.value <= 1.0 and ppl.value > 1.0
    assert coh.details["encoder"] == "all-MiniLM-L6-v2" and "fallback" in coh.details  # no SimCSE offline: named
    assert len(wiki_ctx.generation_log) == 1
    # The reference side (prompt + gold) is featurized once per featurizer and text set, on disk.
    assert len(list((wiki_ctx.env.cache_dir / "mauve_features").glob("*.npy"))) == 1


@needs_data
def test_other_decoding_settings_are_a_different_generation_set(wiki_ctx):
    a = run("rep", wiki_ctx)
    wiki_ctx.env.settings["wikitext"]["sampling"] = None  # greedy
    b = run("rep", wiki_ctx)
    assert a.details["generations"] != b.details["generations"] and "greedy" in b.details["generations"]


def test_generation_perplexity_equals_exp_mean_nll_by_hand(tiny_setup):
    model, tok = tiny_setup["target"], tiny_setup["tokenizer"]
    text = "Bettina Marchetti lives at 778 Foundry Row, Brookhaven."
    ids = tok(text).input_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
    by_hand = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:])).item()
    (nll,) = token_nll(model, tok, [text], batch_size=4)
    assert math.exp(sum(nll) / len(nll)) == pytest.approx(math.exp(by_hand), rel=1e-5)
    # Padding is masked: scoring the text next to a longer one gives the same numbers.
    nll_padded = token_nll(model, tok, [text, text + " And more words follow here."], batch_size=4)[0]
    assert nll_padded == pytest.approx(nll, abs=1e-5)
    # The compat number equals it when no batch has padding, and drops the incomplete last batch.
    assert compat_perplexity(model, tok, [text] * 17, batch_size=16) == pytest.approx(math.exp(by_hand), rel=1e-4)
    with pytest.raises(MetricSkipped, match="incomplete"):
        compat_perplexity(model, tok, [text] * 15, batch_size=16)


def test_sentence_similarity_of_a_text_with_itself_is_one():
    from unlearn.metrics.aux_models import text_encoder
    from unlearn.metrics.semantic import paired_cosine

    texts = ["The river valley was settled early.", "Phone 465-623-8961."]
    values = paired_cosine(text_encoder("minilm"), texts, texts)
    assert values == pytest.approx([1.0, 1.0], abs=1e-5)
    other = paired_cosine(text_encoder("minilm"), texts, texts[::-1])
    assert all(-1.0 <= v < 0.9 for v in other)


def test_unavailable_encoder_or_data_is_skipped_with_the_reason(tiny_setup, tmp_path):
    env = EvalEnv(data_root=str(tmp_path), settings={"wikitext": dict(WIKI)})
    ctx = EvalContext(tiny_setup["target"], tiny_setup["tokenizer"], {}, {}, 8, "target", env)
    with pytest.raises(MetricSkipped, match="wikitext2_raw"):
        run("rep", ctx)
    from unlearn.metrics.aux_models import text_encoder

    with pytest.raises(MetricSkipped, match="not available"):
        text_encoder("st:nobody/no-such-encoder")
