"""EMSO's candidate blocks: per-head attention slices and whole MLP matrices, for any supported architecture.

Layer indices in block names are 0-based HF indices (spec §2.9b): `L2.Wv.H11` is head 11 of the value
projection in `model.transformer.h[2]`. Heads take **rows** of q/k/v and **columns** of the output
projection; an MLP matrix is one block. Biases are never blocks (spec A6).
"""
from dataclasses import dataclass

import torch

from unlearn.errors import UnlearnError


@dataclass(frozen=True)
class Block:
    name: str  # e.g. "L2.Wv.H11"
    param: str  # parameter name in model.named_parameters()
    axis: int | None  # 0 = rows, 1 = columns, None = the whole matrix
    start: int = 0
    stop: int = 0

    def index(self) -> tuple:
        if self.axis is None:
            return (slice(None),)
        if self.axis == 0:
            return (slice(self.start, self.stop),)
        return (slice(None), slice(self.start, self.stop))

    def view(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor[self.index()]

    def numel(self, tensor: torch.Tensor) -> int:
        return self.view(tensor).numel()


# model_type -> (layers attribute path, attention projections, MLP matrices).
# An attention entry is (short name, module path, axis, "q" | "kv"): "kv" heads are the key/value
# groups of grouped-query attention.
_LAYOUTS = {
    "gpt_neo": (
        "transformer.h",
        [
            ("Wq", "attn.attention.q_proj", 0, "q"),
            ("Wk", "attn.attention.k_proj", 0, "q"),
            ("Wv", "attn.attention.v_proj", 0, "q"),
            ("Wo", "attn.attention.out_proj", 1, "q"),
        ],
        [("C_fc", "mlp.c_fc"), ("C_proj", "mlp.c_proj")],
    ),
    "llama": (
        "model.layers",
        [
            ("Wq", "self_attn.q_proj", 0, "q"),
            ("Wk", "self_attn.k_proj", 0, "kv"),
            ("Wv", "self_attn.v_proj", 0, "kv"),
            ("Wo", "self_attn.o_proj", 1, "q"),
        ],
        [("W_gate", "mlp.gate_proj"), ("W_up", "mlp.up_proj"), ("W_down", "mlp.down_proj")],
    ),
}
_LAYOUTS["mistral"] = _LAYOUTS["llama"]
_LAYOUTS["qwen2"] = _LAYOUTS["llama"]


def _head_counts(config) -> tuple[int, int, int]:
    heads = getattr(config, "num_attention_heads", None) or config.num_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return heads, kv_heads, head_dim


def _layout(config):
    if config.model_type not in _LAYOUTS:
        raise UnlearnError(
            f"block selection does not know the {config.model_type!r} architecture; "
            f"supported: {sorted(_LAYOUTS)}"
        )
    return _LAYOUTS[config.model_type]


def count_blocks(config) -> int:
    """How many candidate blocks `enumerate_blocks` gives, from the HF config alone (config-time checks)."""
    _, attention, mlp = _layout(config)
    heads, kv_heads, _ = _head_counts(config)
    layers = getattr(config, "num_hidden_layers", None) or config.num_layers
    per_layer = sum(heads if kind == "q" else kv_heads for *_, kind in attention) + len(mlp)
    return layers * per_layer


def enumerate_blocks(model: torch.nn.Module) -> list[Block]:
    config = model.config
    layers_path, attention, mlp = _layout(config)
    heads, kv_heads, head_dim = _head_counts(config)
    params = dict(model.named_parameters())
    n_layers = len(model.get_submodule(layers_path))
    blocks: list[Block] = []
    for layer in range(n_layers):
        prefix = f"{layers_path}.{layer}"
        for short, path, axis, kind in attention:
            param = f"{prefix}.{path}.weight"
            if param not in params:
                raise UnlearnError(f"expected parameter {param} in a {config.model_type} model")
            count = heads if kind == "q" else kv_heads
            for h in range(count):
                blocks.append(Block(f"L{layer}.{short}.H{h}", param, axis, h * head_dim, (h + 1) * head_dim))
        for short, path in mlp:
            blocks.append(Block(f"L{layer}.{short}", f"{prefix}.{path}.weight", None))
    return blocks


def block_masks(model: torch.nn.Module, blocks: list[Block]) -> dict[str, torch.Tensor]:
    """Boolean masks, one per parameter touched by `blocks`, true on the selected entries."""
    params = dict(model.named_parameters())
    masks: dict[str, torch.Tensor] = {}
    for block in blocks:
        p = params[block.param]
        mask = masks.setdefault(block.param, torch.zeros_like(p, dtype=torch.bool))
        mask[block.index()] = True
    return masks
