"""MUSE-News: the loaders read the real shared files (a pre-release copy), `data=muse_news` builds its
splits from them, and VerbMem / KnowMem run on a tiny model with MUSE's prompt format and ROUGE-L."""
import json

import pytest
from omegaconf import OmegaConf

from tests.conftest import SHARED_DATA, compose
from unlearn.data.muse import load_muse, muse_news_records
from unlearn.errors import UnlearnError
from unlearn.metrics import EvalContext, EvalEnv, get_metric
from unlearn.metrics.muse import cut_answer, knowmem_prompt

NEWS = SHARED_DATA / "muse" / "news"
pytestmark = pytest.mark.skipif(not NEWS.is_dir(), reason="shared MUSE copy not present")
ROOT = str(SHARED_DATA)


def test_loaders_read_every_news_file_with_the_documented_shapes():
    assert len(load_muse(ROOT, "news", "raw_forget")) == 889
    probes = load_muse(ROOT, "news", "verbmem_forget")
    assert len(probes) == 100 and set(probes[0]) == {"prompt", "gt"}
    for name in ("knowmem_forget", "knowmem_retain"):
        qa = load_muse(ROOT, "news", name)
        assert len(qa) == 100 and set(qa[0]) == {"question", "answer"}
        assert len(load_muse(ROOT, "news", f"{name}_icl")) == 10
    for name in ("privleak_forget", "privleak_retain", "privleak_holdout"):
        texts = load_muse(ROOT, "news", name)
        assert len(texts) == 100 and all(isinstance(t, str) and t for t in texts)
    with pytest.raises(UnlearnError, match="missing MUSE file"):
        load_muse(ROOT, "books", "verbmem_forget")  # not in the shared copy: says so, no crash


def _data_cfg(**over):
    cfg = compose(["data=muse_news"]).data
    return OmegaConf.merge(cfg, over)


def test_muse_news_splits_come_from_the_files():
    forget, retain, holdout = muse_news_records(_data_cfg(), ROOT)
    cfg = _data_cfg()
    assert (len(forget), len(retain), len(holdout)) == (cfg.n_forget, cfg.n_retain, cfg.n_holdout)
    probes = json.loads((NEWS / "verbmem" / "forget.json").read_text())
    # Aligned: record i = the last prefix_chars of probe i's prompt (the prefix), then its true continuation.
    for record, probe in zip(forget, probes):
        assert record.prefix == probe["prompt"][-cfg.prefix_chars:]
        assert record.text.startswith(record.prefix) and record.text.rstrip().endswith(probe["gt"].rstrip())
    raw = json.loads((NEWS / "raw" / "forget.json").read_text())
    assert any(forget[0].text in article for article in raw)  # verbatim forget-corpus text
    holdout_file = json.loads((NEWS / "privleak" / "holdout.json").read_text())
    assert [r.text for r in holdout] == [t[:cfg.max_chars] for t in holdout_file[:cfg.n_holdout]]
    articles, _, _ = muse_news_records(_data_cfg(align="none", n_forget=3), ROOT)
    assert [r.text for r in articles] == [a[:cfg.max_chars] for a in raw[:3]]
    with pytest.raises(UnlearnError, match="VerbMem probes"):
        muse_news_records(_data_cfg(n_forget=101), ROOT)


def test_experiment_and_suite_compose_and_validate():
    from unlearn.stages.evaluate import validate_metrics

    cfg = compose(["experiment=muse_news"])
    assert (cfg.data.name, cfg.eval.name) == ("muse_news", "muse")
    assert cfg.eval.muse.limits.verbmem_forget == cfg.data.n_forget
    validate_metrics(cfg.eval)


def test_knowmem_prompt_and_answer_cut_follow_muse():
    shots = [{"question": "Q1?", "answer": "A1"}, {"question": "Q2?", "answer": "A2"}]
    assert knowmem_prompt("Q?", shots) == "Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\nQuestion: Q?\nAnswer: "
    assert cut_answer("1472\n\nQuestion: next") == "1472"
    assert cut_answer("Paris\nQuestion: x") == "Paris" and cut_answer("yes Question: no") == "yes "


@pytest.fixture(scope="module")
def muse_ctx(tiny_setup):
    env = EvalEnv(data_root=ROOT, settings={"muse": {"limit": 2, "verbmem_max_new_tokens": 4, "knowmem_max_new_tokens": 4,
                                                     "verbmem_prompt_chars": 120}})
    return EvalContext(tiny_setup["target"], tiny_setup["tokenizer"], {}, {}, 2, "target", env)


def test_verbmem_and_knowmem_score_real_generations_with_rouge_l(muse_ctx):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    tok = muse_ctx.tokenizer
    verb = get_metric("verbmem")(muse_ctx, "verbmem_forget")
    know = get_metric("knowmem")(muse_ctx, "knowmem_forget")
    for result in (verb, know):
        assert result.n == 2 and all(0.0 <= v <= 1.0 for v in result.per_item)
        assert "pre-release" in result.details["data"]
    logs = {k.split("|")[0]: v for k, v in muse_ctx.generation_log.items()}
    probes = load_muse(ROOT, "news", "verbmem_forget")[:2]
    truths = [tok.decode(tok.encode(p["gt"], add_special_tokens=False)[:4], skip_special_tokens=True) for p in probes]
    gens = logs["muse:verbmem:2:120"]["generations"]
    assert verb.per_item == pytest.approx([scorer.score(t, g)["rougeL"].fmeasure for t, g in zip(truths, gens)])
    qa = load_muse(ROOT, "news", "knowmem_forget")[:2]
    know_log = logs["muse:knowmem_forget:2:icl=10"]
    # 10 shots + the question; the tiny model's context keeps only the prompt's tail (recorded in details).
    assert qa[0]["question"] in know_log["prompts"][0] and know_log["prompts"][0].rstrip().endswith("Answer:")
    assert know.details["shots"] == 10 and know.details["truncated_prompts"] == 2
    assert know.per_item == pytest.approx([scorer.score(r["answer"], cut_answer(g))["rougeL"].fmeasure
                                           for r, g in zip(qa, know_log["generations"])])
