"""Spec sanity properties of every method's loss (§2.2-2.4, 2.7, 2.8, 2.10), on small tensors and the tiny model."""
import copy
import math

import pytest
import torch
from omegaconf import OmegaConf

from unlearn.data.collate import Collator, SequenceDataset
from unlearn.methods.losses import (
    answer_preservation, deliberate_imagination_loss, imagined_target, kl_to_reference, logit_margin, logit_margin_loss,
    masked_mean, mean_nll, token_entropy, uniform_divergence,
)
from unlearn.methods.pdu_dual import DualAscent
from unlearn.methods.positions import position_mask


def _logits(seed=0, B=3, T=6, V=9, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, V, generator=g, dtype=dtype)


def _labels(B=3, T=6, V=9):
    labels = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))
    labels[0, -2:] = -100
    return labels


# --- GD -------------------------------------------------------------------------------------------------
def _gd_module(tiny_setup, gamma, alpha):
    from unlearn.methods.gd import GradientDifference
    from unlearn.methods.ga import GradientAscent

    tok, enc = tiny_setup["tokenizer"], tiny_setup["encoded"]
    model = copy.deepcopy(tiny_setup["target"]).train()
    data = {"forget": SequenceDataset(enc["forget"]), "retain": SequenceDataset(enc["retain"])}
    cfg = OmegaConf.create({"lr": 1e-3, "batch_size": 4, "gamma": gamma, "alpha": alpha})
    collate = Collator(tok.pad_token_id)
    batches = {k: collate([d[i] for i in range(4)]) for k, d in data.items()}
    return GradientDifference(model, cfg, data, collate), GradientAscent(model, cfg, data, collate), batches


def test_gd_reduces_to_ga_at_alpha_zero_and_to_finetuning_at_gamma_zero(tiny_setup):
    gd, ga, batches = _gd_module(tiny_setup, gamma=1.0, alpha=0.0)
    w = gd.model.transformer.h[0].mlp.c_fc.weight
    (g_gd,) = torch.autograd.grad(gd.loss(batches)[0], w)
    (g_ga,) = torch.autograd.grad(ga.loss(batches)[0], w)
    assert torch.allclose(gd.loss(batches)[0], ga.loss(batches)[0])
    assert torch.allclose(g_gd, g_ga)
    gd, _, batches = _gd_module(tiny_setup, gamma=0.0, alpha=1.0)
    retain = batches["retain"]
    assert torch.allclose(gd.loss(batches)[0], mean_nll(gd.logits(retain), retain["labels"]))


# --- KL -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("positions", ["labels", "all"])
def test_kl_is_zero_with_zero_gradient_at_the_reference_and_positive_elsewhere(positions):
    ref, labels = _logits(), _labels()
    z = ref.clone().requires_grad_(True)
    kl = kl_to_reference(z, ref, labels, positions)
    (grad,) = torch.autograd.grad(kl, z)
    assert abs(kl.item()) < 1e-12 and grad.abs().max().item() < 1e-12
    assert kl_to_reference(_logits(seed=5), ref, labels, positions) > 0


def test_kl_compat_is_batchmean_over_every_row_and_masked_mode_over_label_positions():
    z, ref, labels = _logits(seed=2), _logits(), _labels()
    p_ref, logp, logp_ref = ref.softmax(-1), z.log_softmax(-1), ref.log_softmax(-1)
    per_row = (p_ref * (logp_ref - logp)).sum(-1)  # [B, T]
    assert torch.allclose(kl_to_reference(z, ref, labels, "all"), per_row.sum() / (z.shape[0] * z.shape[1]))
    mask = labels[:, 1:] != -100
    assert torch.allclose(kl_to_reference(z, ref, labels, "labels"), per_row[:, :-1][mask].mean())


# --- DI -------------------------------------------------------------------------------------------------
def test_di_target_lowering_the_true_token_equals_raising_all_others():
    z, y, gamma = _logits(), _labels().clamp(min=0), 3.0
    raised = (z + gamma * (1 - torch.nn.functional.one_hot(y, z.shape[-1]))).softmax(-1)
    assert torch.allclose(imagined_target(z, y, gamma), raised)


def test_di_true_token_probability_falls_as_gamma_grows():
    z, y = _logits(), _labels().clamp(min=0)
    p = [imagined_target(z, y, g).gather(-1, y[..., None]) for g in (0.0, 1.0, 3.0, 10.0)]
    assert all((a > b).all() for a, b in zip(p, p[1:]))


@pytest.mark.parametrize("positions", ["labels", "all"])
def test_di_at_gamma_zero_with_teacher_equal_to_student_is_the_entropy_with_zero_gradient(positions):
    z, labels = _logits(), _labels()
    ids = labels.clamp(min=0)
    student = z.clone().requires_grad_(True)
    loss = deliberate_imagination_loss(student, z, ids, labels, 0.0, positions)
    mask = labels[:, 1:] != -100 if positions == "labels" else torch.ones_like(labels[:, 1:], dtype=torch.bool)
    assert torch.allclose(loss, masked_mean(token_entropy(z[:, :-1]), mask))
    (grad,) = torch.autograd.grad(loss, student)
    assert grad.abs().max().item() < 1e-12


def test_di_gradient_lowers_the_true_token_logit():
    z, labels = _logits(), _labels()
    student = z.clone().requires_grad_(True)
    deliberate_imagination_loss(student, z, labels.clamp(min=0), labels, 3.0).backward()
    y = labels[:, 1:].clamp(min=0)
    grad_true = student.grad[:, :-1].gather(-1, y[..., None]).squeeze(-1)
    assert (grad_true[labels[:, 1:] != -100] > 0).all()  # descent lowers z_y


# --- ME -------------------------------------------------------------------------------------------------
def test_me_variants_match_their_formulas_and_are_minimal_at_uniform():
    z = _logits()
    V = z.shape[-1]
    logp = z.log_softmax(-1)
    assert torch.allclose(uniform_divergence(z, "neg_entropy"), -token_entropy(z))
    assert torch.allclose(uniform_divergence(z, "kl_u_p"), -math.log(V) - logp.mean(-1))
    flat = torch.zeros_like(z)
    assert torch.allclose(uniform_divergence(flat, "kl_u_p"), torch.zeros(z.shape[:2], dtype=z.dtype), atol=1e-12)
    assert torch.allclose(uniform_divergence(flat, "neg_entropy"), torch.full(z.shape[:2], -math.log(V), dtype=z.dtype))
    for variant in ("neg_entropy", "kl_u_p"):
        assert (uniform_divergence(z, variant) > uniform_divergence(flat, variant)).all()


@pytest.mark.parametrize("variant", ["neg_entropy", "kl_u_p"])
def test_me_gradient_descent_on_free_logits_converges_to_uniform(variant):
    z = _logits(B=1, T=2).requires_grad_(True)
    opt = torch.optim.SGD([z], lr=2.0)
    for _ in range(500):
        opt.zero_grad()
        uniform_divergence(z, variant).sum().backward()
        opt.step()
    p = z.detach().softmax(-1)
    assert torch.allclose(p, torch.full_like(p, 1 / p.shape[-1]), atol=1e-3)


def test_me_answer_only_gives_zero_gradient_to_question_and_padding_positions():
    from unlearn.methods.me_gd import max_entropy_loss

    ids = torch.tensor([[5, 6, 7, 8, 9, 0, 0], [5, 6, 7, 8, 9, 4, 3]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1] * 7])
    batch = {"input_ids": ids, "attention_mask": attention, "labels": ids.masked_fill(attention == 0, -100),
             "prefix_len": torch.tensor([3, 2])}
    z = _logits(B=2, T=7).requires_grad_(True)
    max_entropy_loss(z, batch, "kl_u_p", "answer_only").backward()
    touched = z.grad.abs().sum(-1) > 0  # logits at position t predict token t+1
    expected = torch.tensor([[False, False, True, True, False, False, False], [False, True, True, True, True, True, False]])
    assert torch.equal(touched, expected)
    assert torch.equal(position_mask(batch, "all_incl_pad"), torch.ones(2, 6, dtype=torch.bool))
    assert position_mask(batch, "all_nonpad").sum().item() == 4 + 6


# --- AP -------------------------------------------------------------------------------------------------
def test_answer_preservation_at_zero_margin_limit_and_gradient():
    beta = 0.1
    assert math.isclose(answer_preservation(torch.zeros(4), beta).item(), math.log(2) / beta, rel_tol=1e-6)
    assert answer_preservation(torch.tensor([1e4]), beta).item() < 1e-6
    margin = torch.tensor([-3.0, 0.0, 2.5], dtype=torch.float64, requires_grad=True)
    answer_preservation(margin, beta).backward()  # a mean over the 3 items
    assert torch.allclose(margin.grad * 3, -torch.sigmoid(-beta * margin.detach()))


# --- PDU ------------------------------------------------------------------------------------------------
def test_logit_margin_is_zero_on_constant_logits_shift_invariant_and_matches_the_closed_form():
    z, labels = _logits(), _labels()
    assert logit_margin_loss(torch.full_like(z, 2.5), labels).item() == 0.0
    for positions in ("labels", "all"):
        assert torch.allclose(logit_margin_loss(z + 7.0, labels, positions), logit_margin_loss(z, labels, positions))
    a, V = 4.0, 9
    one_hot = torch.zeros(1, 1, V, dtype=torch.float64)
    one_hot[..., 0] = a
    assert math.isclose(logit_margin(one_hot).item(), (a - a / V) ** 2)


def test_dual_variable_is_frozen_in_warmup_never_negative_and_follows_the_constraint():
    dual = DualAscent(value=1.0, step_size=2.0, warmup_epochs=2)
    assert dual.update(retain_loss=10.0, eps=0.5, epoch=0) == 1.0  # violated, but still warming up
    assert dual.update(retain_loss=10.0, eps=0.5, epoch=1) == 1.0
    assert dual.update(retain_loss=1.0, eps=0.5, epoch=2) == 2.0  # violated: grows by η·(L − ε)
    assert dual.update(retain_loss=0.25, eps=0.5, epoch=2) == 1.5  # satisfied: shrinks
    values = [dual.update(retain_loss=0.0, eps=0.5, epoch=3) for _ in range(5)]
    assert values[-1] == 0.0 and min(values) >= 0.0 and values == sorted(values, reverse=True)
