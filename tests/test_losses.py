"""Loss sanity properties from spec §2.1 and §2.9 (GA, EM)."""
import math

import torch

from unlearn.methods.losses import entropy_loss, mean_nll, token_entropy


def _batch(seed=0, B=3, T=7, V=11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g)
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[0, -2:] = -100
    return logits, labels


def test_mean_nll_is_cross_entropy_over_valid_positions():
    logits, labels = _batch()
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(mean_nll(logits, labels), expected)


def test_em_loss_is_minus_mean_entropy_and_minimal_at_uniform():
    logits, labels = _batch()
    mask = labels[:, 1:] != -100
    expected = -(token_entropy(logits[:, :-1]) * mask).sum() / mask.sum()
    assert torch.allclose(entropy_loss(logits, labels), expected)
    uniform = torch.zeros_like(logits)
    assert math.isclose(entropy_loss(uniform, labels).item(), -math.log(11), rel_tol=1e-6)
    assert entropy_loss(logits, labels) > entropy_loss(uniform, labels)


def test_em_gradient_matches_analytic_form():
    # dL/dz_k for L = -H(softmax(z)) is P_k (log P_k + H)  (spec §2.9h.2)
    z = torch.randn(1, 2, 6, dtype=torch.double, requires_grad=True)
    labels = torch.zeros(1, 2, dtype=torch.long)
    entropy_loss(z, labels).backward()
    p = z[0, 0].detach().softmax(-1)
    h = -(p * p.log()).sum()
    assert torch.allclose(z.grad[0, 0], p * (p.log() + h))
    assert torch.autograd.gradcheck(lambda x: entropy_loss(x, labels), (z.detach().clone().requires_grad_(True),))


def test_ga_gradient_is_minus_finetuning_gradient_and_a_step_raises_forget_nll(tiny_setup):
    from unlearn.data.collate import Collator, SequenceDataset
    from unlearn.methods.ga import GradientAscent

    target, tok, enc = tiny_setup["target"], tiny_setup["tokenizer"], tiny_setup["encoded"]
    import copy

    from omegaconf import OmegaConf

    model = copy.deepcopy(target).train()
    ds = SequenceDataset(enc["forget"])
    batch = Collator(tok.pad_token_id)([ds[i] for i in range(len(ds))])
    cfg = OmegaConf.create({"lr": 1e-2, "batch_size": 4})
    module = GradientAscent(model, cfg, {"forget": ds}, Collator(tok.pad_token_id))
    loss, logs = module.loss({"forget": batch})
    assert torch.allclose(loss, -logs["forget_nll"])
    w = model.transformer.h[0].mlp.c_fc.weight
    (g_ga,) = torch.autograd.grad(loss, w, retain_graph=True)
    (g_ft,) = torch.autograd.grad(mean_nll(module.logits(batch), batch["labels"]), w)
    assert torch.allclose(g_ga, -g_ft, atol=1e-7)
    before = mean_nll(module.logits(batch), batch["labels"]).item()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.zero_grad()
    module.loss({"forget": batch})[0].backward()
    opt.step()
    assert mean_nll(module.logits(batch), batch["labels"]).item() > before
