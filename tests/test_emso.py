"""EMSO mechanics: contrastive score, selection, bit-identical unselected weights, reselection, early stop."""
import copy
import math

import pytest
import torch
from omegaconf import OmegaConf

from unlearn.data.collate import Collator, SequenceDataset
from unlearn.methods.callbacks import PerplexityEarlyStop
from unlearn.methods.emso import EMSO
from unlearn.methods.emso_selection import block_scores, select_blocks
from unlearn.models.blocks import Block, enumerate_blocks
from unlearn.stages.trainer import build_trainer
from tests.conftest import compose


def test_score_prefers_opposed_gradients_and_is_size_invariant():
    g = torch.randn(4, 6)
    blocks = [Block("opposed", "a", 0, 0, 2), Block("aligned", "a", 0, 2, 4), Block("big", "b", None)]
    g_em = {"a": g.clone(), "b": torch.cat([g[:2], g[:2]])}
    g_nll = {"a": torch.cat([-g[:2], g[2:4]]), "b": -torch.cat([g[:2], g[:2]])}
    scores = block_scores(blocks, g_nll, g_em)
    assert math.isclose(scores[0].item() / (g[:2].abs().sum() / math.sqrt(12)).item(), -1.0, rel_tol=1e-6)
    assert math.isclose(scores[1].item() / (g[2:4].abs().sum() / math.sqrt(12)).item(), 1.0, rel_tol=1e-6)
    # duplicating a block's entries doubles |g|_1 and sqrt(D) grows by sqrt(2): score scales by sqrt(2)
    assert math.isclose(scores[2].item(), scores[0].item() * math.sqrt(2), rel_tol=1e-6)
    chosen = select_blocks(blocks, scores, 1, "contrastive")
    assert chosen[0].name == "big"
    two = [b.name for b in select_blocks(blocks[:2], scores[:2], 1, "contrastive")]
    assert two == ["opposed"]
    mags = block_scores(blocks, g_nll, g_em, direction=False)
    assert (mags > 0).all()


def _module(tiny_setup, **overrides):
    cfg = compose(["method=emso", "method.batch_size=4", "method.lr=1e-2", "method.max_epochs=3", "method.early_stop.enabled=false"]
                  + [f"method.{k}={v}" for k, v in overrides.items()]).method
    model = copy.deepcopy(tiny_setup["target"]).train()
    tok = tiny_setup["tokenizer"]
    ds = {"forget": SequenceDataset(tiny_setup["encoded"]["forget"])}
    return EMSO(model, cfg, ds, Collator(tok.pad_token_id), seed=0), cfg


def test_training_changes_only_selected_slices_bit_exactly(tiny_setup):
    module, cfg = _module(tiny_setup)
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    build_trainer(compose().trainer, cfg.max_epochs, None, [], False).fit(module)
    selected = [b for h in module.history if "blocks" in h for b in h["blocks"]]
    assert len([h for h in module.history if "blocks" in h]) == 3  # reselected at every epoch boundary
    blocks = {b.name: b for b in enumerate_blocks(module.model)}
    allowed: dict[str, torch.Tensor] = {}
    for name in selected:
        b = blocks[name]
        m = allowed.setdefault(b.param, torch.zeros_like(before[b.param], dtype=torch.bool))
        m[b.index()] = True
    changed_any = False
    for n, p in module.model.named_parameters():
        diff = p.detach() != before[n]
        if n in allowed:
            assert not diff[~allowed[n]].any(), f"{n} changed outside its selected slices"
            changed_any |= bool(diff.any())
        else:
            assert not diff.any(), f"{n} is not selected but changed"
    assert changed_any


def test_random_and_full_variants_and_bad_k(tiny_setup):
    module, _ = _module(tiny_setup, selection="random")
    module.select()
    assert len(module.selected) == 2
    module, _ = _module(tiny_setup, selection="full")
    module.select()
    assert module.history[-1]["blocks"] == ["all"]
    from unlearn.errors import ConfigError

    with pytest.raises(ConfigError, match="candidate blocks"):
        _module(tiny_setup, k=10_000)
    with pytest.raises(ConfigError, match="weight_decay"):
        _module(tiny_setup, weight_decay=0.1)


@pytest.mark.parametrize("ratio,expected_epochs", [(0.0, 1), (1e9, 3)])
def test_early_stop_fires_only_above_ratio_and_after_min_epochs(tiny_setup, ratio, expected_epochs):
    module, cfg = _module(tiny_setup)
    val = tiny_setup["encoded"]["holdout"].input_ids
    stop = PerplexityEarlyStop(val, tiny_setup["tokenizer"].pad_token_id, ratio=ratio, min_epochs=1, every_n_steps=1)
    trainer = build_trainer(compose().trainer, cfg.max_epochs, None, [stop], False)
    trainer.fit(module)
    epochs_run = max(h["epoch"] for h in module.history) + 1
    assert epochs_run == expected_epochs
    assert (stop.stopped_at is not None) == (ratio == 0.0)


def test_ablation_w_o_dir_picks_the_largest_em_gradient_blocks(tiny_setup):
    # batch_size = the forget set: the selection batch is the whole set, so the scores can be recomputed here
    n = len(tiny_setup["encoded"]["forget"])
    module, _ = _module(tiny_setup, selection="magnitude", batch_size=n)
    module.select()
    data = module.datasets["forget"]
    g_nll, g_em = module.gradients(module.collator([data[i] for i in range(n)]))
    magnitudes = block_scores(module.blocks, g_nll, g_em, direction=False)
    expected = {module.blocks[i].name for i in torch.topk(magnitudes, 2).indices.tolist()}
    assert set(module.history[-1]["blocks"]) == expected


def test_ablation_select_and_nll_ascends_the_forget_nll(tiny_setup):
    from unlearn.methods.losses import mean_nll

    module, _ = _module(tiny_setup, objective="nll_ascent")
    data = module.datasets["forget"]
    batch = module.collator([data[i] for i in range(4)])
    loss, logs = module.loss({"forget": batch})
    assert torch.allclose(loss, -mean_nll(module.logits(batch), batch["labels"]))
    assert torch.allclose(-loss.detach(), logs["forget_nll"])
