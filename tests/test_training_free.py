"""TA and CD (spec §2.5, §2.6): the weight arithmetic, the contrastive pair as a model, its KV caches, saving."""
import copy

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import compose
from unlearn.generation import decode, teacher_forced
from unlearn.methods.cd import ContrastiveDecoding
from unlearn.methods.ta import TaskArithmetic
from unlearn.models.contrastive import ContrastivePair, contrast
from unlearn.models.tiny import build_tiny_model, train_tokenizer


def _pair_of_models(seed_mem=1):
    spec = compose(["model=tiny-gpt-neo"]).model
    original = build_tiny_model(spec, 300, seed=0).eval()
    memorized = build_tiny_model(spec, 300, seed=seed_mem).eval()
    return original, memorized


def _ta(original, memorized, gamma, mode):
    return TaskArithmetic.build(original, memorized, OmegaConf.create({"gamma": gamma, "mode": mode}))


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("mode", ["task_vector", "paper_literal"])
def test_ta_at_gamma_zero_returns_the_original_and_leaves_the_target_untouched(mode):
    original, memorized = _pair_of_models()
    before = _params(original)
    out = _params(_ta(original, memorized, 0.0, mode))
    assert all(torch.equal(out[n], before[n]) for n in before)
    assert all(torch.equal(p, before[n]) for n, p in _params(original).items())


def test_ta_task_vector_and_literal_formulas():
    original, memorized = _pair_of_models()
    o, m = _params(original), _params(memorized)
    tv = _params(_ta(original, memorized, 0.3, "task_vector"))
    lit = _params(_ta(original, memorized, 0.3, "paper_literal"))
    for n in o:
        assert torch.allclose(tv[n], o[n] - 0.3 * (m[n] - o[n]))
        assert torch.allclose(lit[n], o[n] - 0.3 * m[n])
    # with θ_mem = θ_o the task vector is zero (any γ) and the literal form shrinks by (1 − γ)
    same = copy.deepcopy(original)
    tv_same = _params(_ta(original, same, 0.7, "task_vector"))
    lit_same = _params(_ta(original, same, 0.05, "paper_literal"))
    for n in o:
        assert torch.allclose(tv_same[n], o[n])
        assert torch.allclose(lit_same[n], 0.95 * o[n])


def test_contrast_is_the_original_where_the_memorized_model_is_less_confident():
    g = torch.Generator().manual_seed(0)
    z_o = torch.randn(2, 5, 11, generator=g)
    z_mem = z_o - torch.rand(2, 5, 11, generator=g)
    assert torch.equal(contrast(z_o, z_mem, 0.8), z_o)
    z_mem = z_o + torch.rand(2, 5, 11, generator=g)
    assert torch.allclose(contrast(z_o, z_mem, 0.8), z_o - 0.8 * (z_mem - z_o))
    assert torch.equal(contrast(z_o, torch.randn(2, 5, 11, generator=g), 0.0), z_o)


def _batch():
    ids = torch.tensor([[5, 9, 33, 7, 2, 0], [11, 4, 8, 19, 27, 41]])
    return ids, torch.tensor([[1, 1, 1, 1, 1, 0], [1] * 6])


def test_pair_at_gamma_zero_or_with_itself_gives_the_original_logits_and_a_valid_distribution():
    original, memorized = _pair_of_models()
    ids, mask = _batch()
    with torch.no_grad():
        z_o = original(input_ids=ids, attention_mask=mask).logits
        assert torch.equal(ContrastivePair(original, memorized, 0.0)(input_ids=ids, attention_mask=mask).logits, z_o)
        assert torch.equal(ContrastivePair(original, copy.deepcopy(original), 5.0)(input_ids=ids, attention_mask=mask).logits, z_o)
        z = ContrastivePair(original, memorized, 0.5)(input_ids=ids, attention_mask=mask).logits
    assert not torch.equal(z, z_o) and torch.isfinite(z).all()
    assert torch.allclose(z.softmax(-1).sum(-1), torch.ones(z.shape[:2]))


def test_pair_decodes_with_both_kv_caches_exactly_as_a_full_forward():
    original, memorized = _pair_of_models()
    pair = ContrastiveDecoding.build(original, memorized, OmegaConf.create({"gamma": 1.0}))
    assert next(pair.parameters()).device.type == "cpu"
    prompts = [[5, 9, 33], [11, 4, 8, 19, 27]]  # different lengths: left padding inside one batch
    outs = decode(pair, prompts, 6, pad_id=0)
    for prompt, out in zip(prompts, outs):
        seq = prompt + out
        greedy = teacher_forced(pair, [seq], pad_id=0).argmax[0]
        assert greedy[len(prompt) - 1:] == out  # each cached step picked what a cache-free pass picks
    plain = decode(original, prompts, 6, pad_id=0)
    assert outs != plain  # the memorized model's preferences are pushed down


def test_pair_saves_both_models_and_reloads_as_a_pair(tmp_path):
    from unlearn.models.load import load_model, save_model

    original, memorized = _pair_of_models()
    pair = ContrastivePair(original, memorized, 0.7)
    tokenizer = train_tokenizer(["some text to train a tokenizer on"] * 4, 300)
    save_model(pair, tokenizer, tmp_path / "model", {"method": "cd"})
    # attention=eager: the pair above was built with transformers' own attention, so the reload must match it
    loaded, _ = load_model(OmegaConf.create({"source": "local", "name_or_path": str(tmp_path / "model"), "dtype": "float32",
                                             "attention": "eager"}), tmp_path)
    assert isinstance(loaded, ContrastivePair) and loaded.gamma == 0.7
    ids, mask = _batch()
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids, attention_mask=mask).logits, pair(input_ids=ids, attention_mask=mask).logits)
