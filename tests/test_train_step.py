"""The shared training step's options: fused AdamW selection and torch.compile of the forward, for
every method through the base (unlearn/methods/base.py, unlearn/stages/trainer.py)."""
import copy

import pytest
import pytorch_lightning as pl
import torch

from tests.conftest import compose
from unlearn.data.collate import Collator, SequenceDataset
from unlearn.errors import ConfigError
from unlearn.methods import get_method
from unlearn.methods.base import use_fused_adamw
from unlearn.stages.trainer import build_trainer


def test_fused_adamw_choice():
    cpu = [torch.nn.Parameter(torch.zeros(2))]
    assert use_fused_adamw("auto", cpu) is True  # torch's fused kernel runs on the CPU too, 5x faster here
    assert use_fused_adamw("auto", [torch.nn.Parameter(torch.zeros(2, device="meta"))]) is None  # elsewhere: torch's default
    assert use_fused_adamw(True, cpu) is True and use_fused_adamw(False, cpu) is None
    with pytest.raises(ConfigError, match="fused_adamw"):
        use_fused_adamw("yes", cpu)


class Losses(pl.Callback):
    def __init__(self):
        self.values = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.values.append(float(outputs["loss"]))


def _ga_losses(tiny_setup, trainer_overrides, fused="auto"):
    cfg = compose(["method=ga", "method.batch_size=4", "method.lr=1e-3", "method.max_epochs=1",
                   "method.early_stop.enabled=false", f"+method.fused_adamw={fused}", *trainer_overrides])
    module = get_method("ga")(copy.deepcopy(tiny_setup["target"]).train(), cfg.method,
                              {"forget": SequenceDataset(tiny_setup["encoded"]["forget"])},
                              Collator(tiny_setup["tokenizer"].pad_token_id), seed=0)
    losses = Losses()
    build_trainer(cfg.trainer, 1, None, [losses], False).fit(module)
    return losses.values, module


def test_fused_adamw_training_step_matches_the_plain_one(tiny_setup):
    plain, _ = _ga_losses(tiny_setup, [], fused="false")
    fused, _ = _ga_losses(tiny_setup, [], fused="true")
    assert len(plain) >= 2 and plain[0] != plain[-1]
    assert torch.allclose(torch.tensor(fused), torch.tensor(plain), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # tracing takes most of a minute on a busy 2-core machine
def test_compiled_training_step_matches_the_plain_one(tiny_setup):
    plain, _ = _ga_losses(tiny_setup, [])
    # aot_eager traces forward and backward as inductor does, without needing a C++ toolchain in CI
    compiled, module = _ga_losses(tiny_setup, ["trainer.compile.enabled=true", "trainer.compile.backend=aot_eager"])
    assert "compiled_model" in module.__dict__ and "compiled_model" not in dict(module.named_children())
    assert len(plain) >= 2 and plain[0] != plain[-1]
    assert torch.allclose(torch.tensor(compiled), torch.tensor(plain), rtol=1e-4, atol=1e-5)
