"""Sink-capable MLPs by patching HF modules: a forward pre-hook on each block's MLP output projection
(Llama/SwiGLU `mlp.down_proj`, GPT-Neo `mlp.c_proj`) scales its input, the hidden units h, per unit
and per token. No model file is copied; the state dict is untouched, so a sink model saves and loads as
the plain HF model plus `card.json["sinks"]`.

Spec §2.11 [C]: the first int(I·p_gen) hidden units are general (always on), the rest the sink pool.
Modes:
- `own`  (training): general ×1, sink j ×mask(id of the token, j); `exclude_ids` also turns off every
  sink unit that an excluded id uses [I: the spec says "optionally excluding listed ids"];
- `drop` (the forgetting step): sinks ×0, general ×(p_gen + p_mem)/p_gen;
- `all`: general ×1, sinks ×p_mem (dropout-style expectation).
"""
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch

from unlearn.errors import ConfigError, UnlearnError, require
from unlearn.memsinks.hashing import sink_mask

MODES = ("own", "drop", "all")
# The modes a trained model can be evaluated and saved in (`paradigm.eval_mode`). Not `own`: it needs every
# token's document id, which the framework's MA / EM / EL (batched records, greedy decoding) do not carry,
# and the sinks-on model is the one before the forgetting step, whose losses every job records anyway
# (`memgap_sinks_on`, `val_loss_sinks_on`).
EVAL_MODES = ("drop", "all")
# model_type -> (the blocks' MLP output projection, attribute path inside a block); SmolLM2 is a Llama.
OUTPUT_PROJECTIONS = {"llama": "mlp.down_proj", "gpt_neo": "mlp.c_proj"}


@dataclass
class SinkConfig:
    p_gen: float
    p_mem: float
    seed: int = 0
    mode: str = "own"
    exclude_ids: list[int] = field(default_factory=list)

    def __post_init__(self):
        validate_fractions(self.p_gen, self.p_mem)
        require(self.mode in MODES, f"sinks mode={self.mode!r} is unknown; use one of {MODES}")

    def n_general(self, intermediate: int) -> int:
        return int(intermediate * self.p_gen)


def validate_fractions(p_gen: float, p_mem: float) -> None:
    require(0 < p_gen < 1, f"sinks.p_gen={p_gen} must be in (0, 1): the fraction of MLP units that stay general")
    require(0 < p_mem <= 1, f"sinks.p_mem={p_mem} must be in (0, 1]: the chance a sink unit is active for a sequence")
    require(p_gen + p_mem <= 1, f"sinks.p_gen + sinks.p_mem = {p_gen + p_mem:g} > 1; lower one so general and "
                                f"active sink units fit in the MLP")


def output_projections(model) -> list[torch.nn.Linear]:
    kind = model.config.model_type
    path = OUTPUT_PROJECTIONS.get(kind)
    if path is None:
        raise ConfigError(f"MemSinks supports {sorted(OUTPUT_PROJECTIONS)} models, not model_type={kind!r}")
    layers = model.transformer.h if kind == "gpt_neo" else model.model.layers
    out = []
    for layer in layers:
        module = layer
        for part in path.split("."):
            module = getattr(module, part)
        out.append(module)
    return out


class SinkController:
    """Holds the sink config and the current sequence ids; one per model, shared by every block's hook
    (hooks are bound methods, so `copy.deepcopy(model)` copies the controller with it)."""

    def __init__(self, config: SinkConfig, intermediate: int):
        self.config = config
        self.intermediate = intermediate
        self.n_general = config.n_general(intermediate)
        require(self.n_general >= 1 and self.n_general < intermediate,
                f"sinks.p_gen={config.p_gen} leaves {self.n_general} of {intermediate} MLP units general; "
                "it must leave at least one general and one sink unit")
        self.mode = config.mode
        self.seq_ids: torch.Tensor | None = None
        self._cache: tuple | None = None

    @property
    def n_sink(self) -> int:
        return self.intermediate - self.n_general

    def masks(self, seq_ids: torch.Tensor) -> torch.Tensor:
        """Bool [*seq_ids.shape, n_sink]: the training mask of each token's id."""
        return sink_mask(seq_ids, self.n_sink, self.config.p_mem, self.config.seed)

    @contextmanager
    def sequence_ids(self, seq_ids: torch.Tensor | None):
        """Forward passes inside see these per-token ids ([batch, time], ids >= 1)."""
        previous, self.seq_ids, self._cache = self.seq_ids, seq_ids, None
        try:
            yield self
        finally:
            self.seq_ids, self._cache = previous, None

    @contextmanager
    def using(self, mode: str, exclude_ids=None):
        require(mode in MODES, f"sinks mode={mode!r} is unknown; use one of {MODES}")
        previous = (self.mode, self.config.exclude_ids)
        self.mode, self._cache = mode, None
        if exclude_ids is not None:
            self.config.exclude_ids = list(exclude_ids)
        try:
            yield self
        finally:
            (self.mode, self.config.exclude_ids), self._cache = previous, None

    def scale(self, device, dtype) -> torch.Tensor:
        """Multiplier of the hidden units: [I] for drop/all, [batch, time, I] for own. Computed once per
        forward (the first block) and reused by the others."""
        key = (self.mode, id(self.seq_ids), device, dtype, tuple(self.config.exclude_ids))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        c, g = self.config, self.n_general
        if self.mode == "drop":
            scale = torch.zeros(self.intermediate, device=device, dtype=dtype)
            scale[:g] = (c.p_gen + c.p_mem) / c.p_gen
        elif self.mode == "all":
            scale = torch.full((self.intermediate,), c.p_mem, device=device, dtype=dtype)
            scale[:g] = 1.0
        else:
            if self.seq_ids is None:
                raise UnlearnError("sink mode 'own' needs the tokens' sequence ids: run the model inside "
                                   "`controller.sequence_ids(ids)`, or use mode 'drop' / 'all'")
            sinks = self.masks(self.seq_ids.to(device))
            if c.exclude_ids:
                excluded = self.masks(torch.tensor(c.exclude_ids, device=device)).any(0)
                sinks = sinks & ~excluded
            general = torch.ones(*sinks.shape[:-1], g, device=device, dtype=dtype)
            scale = torch.cat([general, sinks.to(dtype)], dim=-1)
        self._cache = (key, scale)
        return scale

    def hook(self, module, args):
        hidden = args[0]
        return (hidden * self.scale(hidden.device, hidden.dtype),) + tuple(args[1:])

    def to_dict(self) -> dict:
        return {**asdict(self.config), "mode": self.mode, "intermediate": self.intermediate, "n_general": self.n_general}


def attach_sinks(model, config: SinkConfig) -> SinkController:
    """Patch every block's MLP of `model` in place; returns the controller (also `model.sink_controller`)."""
    require(getattr(model, "sink_controller", None) is None, "this model already has sinks attached")
    projections = output_projections(model)
    sizes = {p.in_features for p in projections}
    require(len(sizes) == 1, f"MLP widths differ across blocks ({sorted(sizes)}); MemSinks needs one width")
    controller = SinkController(config, sizes.pop())
    for proj in projections:
        proj.register_forward_pre_hook(controller.hook)
    model.sink_controller = controller
    return controller


def controller_of(model) -> SinkController | None:
    return getattr(model, "sink_controller", None)


def sink_card(model) -> dict | None:
    """What `card.json["sinks"]` holds for a sink model (None for a plain one)."""
    controller = controller_of(model)
    return controller.to_dict() if controller is not None else None


def attach_from_card(model, card: dict, mode: str | None = None) -> SinkController:
    """Re-attach the sinks a saved model was trained with; the masks are a pure function of the card.
    A reloaded sink model is in the mode it was saved in (`paradigm.eval_mode`) when that needs no ids,
    else `drop` (the forgetting step)."""
    saved = card.get("mode") if card.get("mode") in EVAL_MODES else "drop"
    config = SinkConfig(card["p_gen"], card["p_mem"], card.get("seed", 0), mode or saved, list(card.get("exclude_ids", [])))
    controller = attach_sinks(model, config)
    require(controller.intermediate == card["intermediate"] and controller.n_general == card["n_general"],
            f"the saved sink card ({card['intermediate']} units, {card['n_general']} general) does not match the model's "
            f"MLP ({controller.intermediate} units, {controller.n_general} general)", UnlearnError)
    return controller
