"""TOFU and Closer-Look metrics on the tiny model over a few rows of the shared TOFU copy."""
import copy
import math

import pytest
import torch

from tests.conftest import SHARED_DATA, compose
from tests.test_answer_labels import CHAT_TEMPLATE
from unlearn.data.tofu import qa_prompt
from unlearn.errors import ConfigError
from unlearn.metrics import EvalContext, EvalEnv, MetricSkipped, get_metric
from unlearn.metrics import tofu_data as td
from unlearn.metrics.tofu import ks_pvalue
from unlearn.metrics.tofu_scoring import SCORING, scored_sequence

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "tofu").is_dir(), reason="shared TOFU copy not present")
SETTINGS = {"tofu": {"forget_split": "forget01", "limit": 3, "max_new_tokens": 6}}


@pytest.fixture(scope="module")
def contexts(tiny_setup):
    env = EvalEnv(data_root=str(SHARED_DATA), settings=SETTINGS, original_role="target")
    for role in ("target", "unlearned", "oracle"):
        model = tiny_setup["base"] if role == "oracle" else tiny_setup["target"]
        env.roles[role] = EvalContext(model, tiny_setup["tokenizer"], {}, {}, 8, role, env)
    return env.roles


def run(name, ctx, split, **params):
    return get_metric(name)(ctx, split, **params)


def test_probabilities_and_truth_ratios_follow_their_definitions(contexts):
    ctx = contexts["target"]
    [(nll_a,), *_] = td.answer_nll(ctx, "real_authors", "answer")
    pert = td.answer_nll(ctx, "real_authors", "perturbed_answer")[0]
    assert len(pert) == 3
    p_a, p_pert = math.exp(-nll_a), [math.exp(-x) for x in pert]
    prob = run("tofu_prob", ctx, "real_authors")
    assert prob.per_item[0] == pytest.approx(p_a / (p_a + sum(p_pert)))  # normalized over the options
    forget = run("tofu_prob", ctx, "tofu_forget")
    assert all(0.0 < p <= 1.0 for p in forget.per_item) and forget.n == 3
    tr = run("tofu_truth_ratio", ctx, "real_authors", aggregate="true_better")
    geo_pert = math.exp(-sum(pert) / len(pert))
    assert tr.per_item[0] == pytest.approx(geo_pert / p_a)
    assert tr.value == pytest.approx(sum(max(0.0, 1 - r) for r in tr.per_item) / 3)


def test_rouge_te_and_cs_read_one_greedy_generation_pass(contexts):
    ctx = contexts["unlearned"]
    rouge = run("tofu_rouge", ctx, "tofu_forget")
    n_generations = len(ctx.generation_log)
    te = run("token_entropy", ctx, "tofu_forget")
    cs = run("cosine_similarity", ctx, "tofu_forget")
    assert len(ctx.generation_log) == n_generations == 1
    assert all(0.0 <= v <= 1.0 for v in rouge.per_item + te.per_item + cs.per_item)
    assert cs.details["encoder"] == "all-MiniLM-L6-v2" and "paraphrase" in cs.details["fallback"]
    same = run("cosine_similarity", ctx, "tofu_forget", reference="pre_unlearning_output")
    assert same.details["original"] == "target"


def test_forget_quality_is_a_ks_test_against_the_oracle(contexts):
    fq = run("forget_quality", contexts["oracle"], "tofu_forget")
    assert fq.value == pytest.approx(1.0)  # the oracle against itself: identical samples
    mine = td.truth_ratios(contexts["unlearned"], "tofu_forget").values
    theirs = td.truth_ratios(contexts["oracle"], "tofu_forget").values
    expected = ks_pvalue(mine, theirs)
    # The unlearned (memorized) and oracle (base) models differ here, so comparing a model with itself
    # (p = 1) cannot pass for comparing it with the oracle.
    assert expected < 1.0
    fq = run("forget_quality", contexts["unlearned"], "tofu_forget")
    assert fq.value == pytest.approx(expected) and fq.details["oracle"] == "oracle"
    alone = EvalContext(contexts["target"].model, contexts["target"].tokenizer, {}, {}, 8, "x",
                        EvalEnv(data_root=str(SHARED_DATA), settings=SETTINGS))
    with pytest.raises(MetricSkipped, match="retrain oracle"):
        run("forget_quality", alone, "tofu_forget")


def chat_tokenizer(tiny_setup):
    tok = copy.deepcopy(tiny_setup["tokenizer"])
    tok.chat_template = CHAT_TEMPLATE  # ChatML with a system turn, like SmolLM2's
    return tok


@pytest.mark.parametrize("scoring, ending", [("open_unlearning", "<|im_end|>\n<|endoftext|>"), ("tofu", "<|endoftext|>"),
                                             ("answer_only", "")])
def test_scored_tokens_are_the_answer_and_the_references_ending(tiny_setup, scoring, ending):
    tok = chat_tokenizer(tiny_setup)
    ids, first = scored_sequence(tok, "Who wrote it?", "Jane Doe.", True, scoring)
    prompt = tok.encode(qa_prompt(tok, "Who wrote it?"), add_special_tokens=False)
    assert first == len(prompt) and ids[:first] == prompt  # the question and its template tokens: never scored
    assert tok.decode(ids[first:]) == "Jane Doe." + ending


def test_probability_scores_exactly_the_presets_tokens(tiny_setup):
    tok, model = chat_tokenizer(tiny_setup), tiny_setup["target"]
    assert td.DEFAULTS["scoring"] == compose(["eval=tofu"]).eval.tofu.scoring == "open_unlearning"
    values = {}
    for scoring in SCORING:
        env = EvalEnv(data_root=str(SHARED_DATA), settings={"tofu": {**SETTINGS["tofu"], "limit": 1, "scoring": scoring}})
        ctx = EvalContext(model, tok, {}, {}, 8, "m", env)
        row = td.load_tofu_rows(str(SHARED_DATA), "real_authors_perturbed")[0]  # short answers: fit the tiny model
        ids, first = scored_sequence(tok, row["question"], row["answer"], True, scoring)
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
        nll = -logp[torch.arange(first - 1, len(ids) - 1), torch.tensor(ids[first:])]
        [(scored,)] = td.answer_nll(ctx, "real_authors", "answer")
        assert scored == pytest.approx(nll.mean().item(), rel=1e-5)
        assert run("tofu_prob", ctx, "real_authors").details["scoring"] == scoring
        values[scoring] = scored
    assert len(set(values.values())) == 3


def test_ratios_keep_the_references_guards():
    """open-unlearning: wrong / (correct + 1e-10), correct / (correct + wrong + 1e-10), min(R, 1/(R + 1e-10))."""
    assert td.TruthRatios([0.0]).closer_to_1() == 0.0  # no division by zero
    assert td.TruthRatios([2.0]).closer_to_1() == pytest.approx(1 / (2.0 + 1e-10), rel=0, abs=1e-15)
    assert td.truth_ratio(1e4, [1.0]) == pytest.approx(math.exp(-1.0) / 1e-10)  # a collapsed model's answer prob ~ 0
    assert td.normalized_over_options(0.0, [0.0, 0.0]) == 0.0


def test_unknown_scoring_fails_before_any_model_loads():
    from unlearn.workflows.run_pipeline import validate_config

    with pytest.raises(ConfigError, match="eval.tofu.scoring='bogus'"):
        validate_config(compose(["model=tiny-gpt-neo", "eval=tofu", "eval.tofu.scoring=bogus"]))


def test_model_utility_is_the_harmonic_mean_of_nine_values(contexts):
    mu = run("tofu_model_utility", contexts["target"], "all")
    parts = mu.details["components"]
    assert len(parts) == 9 and all(v >= 0 for v in parts.values())
    values = list(parts.values())
    expected = 0.0 if 0.0 in values else len(values) / sum(1 / v for v in values)  # a zero component zeroes it
    assert mu.value == pytest.approx(expected)


def test_entailment_and_its_aggregates_are_not_computed_without_an_nli_model(contexts):
    ctx = contexts["target"]
    with pytest.raises(MetricSkipped, match="NLI model"):
        run("entailment", ctx, "tofu_forget", nli="nobody/no-such-nli")
    with pytest.raises(MetricSkipped, match="needs") as why:
        run("cl_model_utility", ctx, "all", nli="nobody/no-such-nli")
    assert len(why.value.details["components"]) == 15  # everything but the three ES values
    with pytest.raises(MetricSkipped, match="forget efficacy"):
        run("forget_efficacy", ctx, "tofu_forget", nli="nobody/no-such-nli")


def test_missing_tofu_data_is_a_skip(tiny_setup, tmp_path):
    env = EvalEnv(data_root=str(tmp_path), settings=SETTINGS)
    ctx = EvalContext(tiny_setup["target"], tiny_setup["tokenizer"], {}, {}, 8, "m", env)
    with pytest.raises(MetricSkipped, match="TOFU split"):
        run("tofu_rouge", ctx, "world_facts")
