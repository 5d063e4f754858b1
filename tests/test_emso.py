"""EMSO mechanics: contrastive score, selection, bit-identical unselected weights, reselection, early stop."""
import copy
import math

import pytest
import pytorch_lightning as pl
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
    cfg = compose(["method=emso", "method.k=2", "method.batch_size=4", "method.lr=1e-2", "method.max_epochs=3", "method.early_stop.enabled=false"]
                  + [f"method.{k}={v}" for k, v in overrides.items()]).method
    model = copy.deepcopy(tiny_setup["target"]).train()
    tok = tiny_setup["tokenizer"]
    ds = {"forget": SequenceDataset(tiny_setup["encoded"]["forget"])}
    return EMSO(model, cfg, ds, Collator(tok.pad_token_id), seed=0), cfg


class EpochSnapshots(pl.Callback):
    """Weights at every epoch's start and end, so each epoch's changes can be checked against that
    epoch's own selection (not the union of all epochs', which stale Adam state would pass)."""

    def __init__(self):
        self.starts, self.ends = [], []

    @staticmethod
    def _copy(module):
        return {n: p.detach().clone() for n, p in module.model.named_parameters()}

    def on_train_epoch_start(self, trainer, module):
        self.starts.append(self._copy(module))

    def on_train_epoch_end(self, trainer, module):
        self.ends.append(self._copy(module))


def assert_each_epoch_moves_only_its_selection(module, snapshots):
    blocks = {b.name: b for b in enumerate_blocks(module.model)}
    selections = [h for h in module.history if "blocks" in h]
    assert len(selections) == len(snapshots.starts)
    for record, before, after in zip(selections, snapshots.starts, snapshots.ends):
        allowed: dict[str, torch.Tensor] = {}
        for name in record["blocks"]:
            b = blocks[name]
            allowed.setdefault(b.param, torch.zeros_like(before[b.param], dtype=torch.bool))[b.index()] = True
        moved = False
        for n in before:
            diff = after[n] != before[n]
            outside = diff & ~allowed[n] if n in allowed else diff
            assert not outside.any(), f"epoch {record['epoch']}: {n} changed outside that epoch's selection {record['blocks']}"
            moved |= bool(diff.any())
        assert moved, f"epoch {record['epoch']}: nothing trained"


def test_training_changes_only_each_epochs_selection_bit_exactly(tiny_setup):
    module, cfg = _module(tiny_setup)
    snapshots = EpochSnapshots()
    build_trainer(compose().trainer, cfg.max_epochs, None, [snapshots], False).fit(module)
    assert len([h for h in module.history if "blocks" in h]) == 3  # reselected at every epoch boundary
    assert_each_epoch_moves_only_its_selection(module, snapshots)


class ScheduledEMSO(EMSO):
    """EMSO whose blocks follow a fixed schedule: heads 0, 1, 2 of one query matrix, one per epoch.
    Neighbouring slices of one matrix are where stale Adam moments would leak (the matrix keeps getting
    gradients); the masking and state reset under test are EMSO's own."""

    def choose_blocks(self):
        epoch = self.current_epoch if self._trainer is not None else 0
        heads = [b for b in self.blocks if b.name.startswith("L0.Wq.H")]
        return [heads[epoch % len(heads)]], None


@pytest.mark.parametrize("fused", ["auto", "true"])  # true: torch's fused AdamW kernel (CUDA's default), on the CPU
def test_a_previous_epochs_slice_stays_frozen_when_the_same_matrix_trains_on(tiny_setup, fused):
    cfg = compose(["method=emso", "method.batch_size=4", "method.lr=1e-2", "method.max_epochs=3",
                   "method.early_stop.enabled=false", "method.k=1", f"+method.fused_adamw={fused}"]).method
    tok = tiny_setup["tokenizer"]
    module = ScheduledEMSO(copy.deepcopy(tiny_setup["target"]).train(), cfg,
                           {"forget": SequenceDataset(tiny_setup["encoded"]["forget"])}, Collator(tok.pad_token_id), seed=0)
    snapshots = EpochSnapshots()
    build_trainer(compose().trainer, cfg.max_epochs, None, [snapshots], False).fit(module)
    assert [h["blocks"] for h in module.history] == [["L0.Wq.H0"], ["L0.Wq.H1"], ["L0.Wq.H2"]]
    assert_each_epoch_moves_only_its_selection(module, snapshots)


@pytest.mark.parametrize("selection", ["contrastive", "magnitude"])
def test_streamed_scores_equal_the_two_full_gradient_reference(tiny_setup, selection):
    module, _ = _module(tiny_setup, selection=selection)
    data = module.datasets["forget"]
    batch = module.collator([data[i] for i in range(4)])
    g_nll, g_em = module.gradients(batch)
    expected = block_scores(module.blocks, g_nll, g_em, direction=selection == "contrastive")
    streamed = module.block_scores_streamed(batch, direction=selection == "contrastive")
    # The streamed path reduces each parameter's blocks at once (float64): equal up to summation order.
    assert torch.allclose(streamed, expected, rtol=1e-10, atol=0)
    assert torch.topk(-streamed, 5).indices.tolist() == torch.topk(-expected, 5).indices.tolist()
    assert all(p.grad is None for p in module.model.parameters())  # scoring leaves no gradients behind


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


@pytest.mark.parametrize("restore", [True, False])
def test_early_stop_with_restore_leaves_the_weights_of_the_last_passing_check(tiny_setup, restore):
    from unlearn.methods.callbacks import perplexity

    module, cfg = _module(tiny_setup, lr=3e-2)
    val, pad = tiny_setup["encoded"]["holdout"].input_ids, tiny_setup["tokenizer"].pad_token_id
    stop = PerplexityEarlyStop(val, pad, ratio=1.0, min_epochs=0, every_n_steps=1, restore=restore)
    build_trainer(compose().trainer, cfg.max_epochs, None, [stop], False).fit(module)
    assert stop.stopped_at is not None  # entropy ascent on the forget set raises holdout perplexity at some step
    final = perplexity(module.model, val, pad)
    checks = [h for h in module.history if "val_ppl" in h]
    if restore:
        good = next(h for h in checks if h["step"] == stop.stopped_at["restored_step"])
        assert stop.stopped_at["restored_step"] < stop.stopped_at["step"] and good["val_ppl"] <= stop.initial
        assert final == pytest.approx(good["val_ppl"], rel=1e-6)  # exactly the weights of that check
    else:
        assert final == pytest.approx(stop.stopped_at["val_ppl"], rel=1e-6) and final > stop.initial


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


def test_per_parameter_reductions_equal_the_per_block_ones_on_every_layout():
    """Row heads (q/k/v, grouped kv heads), column heads (o_proj), whole MLP matrices, and a non-tiling set of
    blocks (the per-block fallback): the batched reductions match the per-block arithmetic."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from unlearn.methods.emso_selection import block_reductions, param_block_reductions

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2))
    by_param: dict[str, list[Block]] = {}
    for b in enumerate_blocks(model):
        by_param.setdefault(b.param, []).append(b)
    params = dict(model.named_parameters())
    groups = list(by_param.values()) + [by_param["model.layers.0.self_attn.q_proj.weight"][1:3]]  # does not tile
    for blocks in groups:
        shape = params[blocks[0].param].shape
        g_nll, g_em = torch.randn(shape), torch.randn(shape)
        for gn in (g_nll, None):
            batched = param_block_reductions(blocks, gn, g_em)
            assert len(batched) == len(blocks)
            for b, got in zip(blocks, batched):
                for x, y in zip(got, block_reductions(b, gn, g_em)):
                    assert torch.allclose(x, y, rtol=1e-12, atol=1e-12), (b.name, x, y)


def test_reselection_happens_once_per_optimizer_step_under_accumulation(tiny_setup):
    """Issue #21: with accumulation, every micro-batch at a reselection step reselected (steps 0, 2,2, 4,4),
    each time clearing Adam's state and changing the mask inside one accumulated gradient."""
    module, cfg = _module(tiny_setup, batch_size=2, reselect_every="n_steps", reselect_steps=2)
    trainer_cfg = compose(["trainer.accumulate_grad_batches=2", "trainer.progress_bar=false"]).trainer
    build_trainer(trainer_cfg, cfg.max_epochs, None, [], False).fit(module)
    steps = [h["step"] for h in module.history if "blocks" in h]
    assert steps == list(range(0, module.global_step, 2)), steps
    # One selection scores the effective batch: 2 per micro-batch x 2 accumulated (the paper's effective batch).
    assert module.selection_batch_size() == 4
    module.cfg.selection_batch = "per_step"
    assert module.selection_batch_size() == 2
