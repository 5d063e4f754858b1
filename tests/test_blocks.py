"""EMSO block enumeration and slicing (spec §1.6, §2.9b)."""
import torch
from omegaconf import OmegaConf

from unlearn.models.blocks import block_masks, enumerate_blocks
from unlearn.models.tiny import build_tiny_model


def _tiny(arch, **extra):
    spec = OmegaConf.create({"arch": arch, "hidden_size": 32, "num_layers": 3, "num_heads": 4, "max_positions": 64, **extra})
    return build_tiny_model(spec, vocab_size=50, seed=0)


def test_gpt_neo_has_4h_plus_2_blocks_per_layer_named_zero_based():
    model = _tiny("gpt_neo")
    blocks = enumerate_blocks(model)
    assert len(blocks) == 3 * (4 * 4 + 2)
    names = {b.name for b in blocks}
    assert {"L0.Wq.H0", "L2.Wv.H3", "L1.Wo.H2", "L2.C_fc", "L0.C_proj"} <= names
    assert not any("bias" in b.param for b in blocks)


def test_llama_counts_query_heads_and_kv_groups():
    model = _tiny("llama", num_kv_heads=2)
    blocks = enumerate_blocks(model)
    assert len(blocks) == 3 * (4 + 2 + 2 + 4 + 3)
    assert sum(b.name.startswith("L0.Wk.") for b in blocks) == 2


def test_head_slices_rebuild_the_full_weights():
    model = _tiny("gpt_neo")
    params = dict(model.named_parameters())
    blocks = enumerate_blocks(model)
    for short, axis in (("Wq", 0), ("Wk", 0), ("Wv", 0), ("Wo", 1)):
        heads = [b for b in blocks if b.name.startswith(f"L1.{short}.")]
        full = params[heads[0].param]
        assert torch.equal(torch.cat([b.view(full) for b in heads], dim=axis), full)
        assert all(b.axis == axis for b in heads)


def test_output_projection_head_is_a_column_slice_and_masks_cover_exactly_it():
    model = _tiny("gpt_neo")
    block = next(b for b in enumerate_blocks(model) if b.name == "L0.Wo.H1")
    w = dict(model.named_parameters())[block.param]
    assert block.view(w).shape == (32, 8)
    mask = block_masks(model, [block])[block.param]
    assert mask.sum() == 32 * 8
    assert mask[:, 8:16].all() and not mask[:, :8].any() and not mask[:, 16:].any()
