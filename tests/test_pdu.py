"""PDU's dual machinery in real (single-process) fits: relative ε, per-epoch and per-optimizer-step updates."""
import copy
import math

import pytorch_lightning as pl
import torch

from tests.conftest import compose
from unlearn.data.collate import Collator, SequenceDataset
from unlearn.methods.losses import mean_nll
from unlearn.methods.pdu import PrimalDual
from unlearn.stages.trainer import build_trainer


class LambdaAtEachBatch(pl.Callback):
    def __init__(self):
        self.values = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.values.append((trainer.current_epoch, module.dual.value))


def _fit(tiny_setup, overrides, trainer_overrides=()):
    cfg = compose(["method=pdu", "method.batch_size=2", "method.max_epochs=3", "method.lr=1e-3", "method.dual_init=1.0",
                   "method.dual_step_size=2.0", "method.dual_warmup_epochs=1", *overrides]).method
    enc, tok = tiny_setup["encoded"], tiny_setup["tokenizer"]
    data = {"forget": SequenceDataset(enc["forget"]), "retain": SequenceDataset(enc["retain"])}
    module = PrimalDual(copy.deepcopy(tiny_setup["target"]).train(), cfg, data, Collator(tok.pad_token_id))
    recorder = LambdaAtEachBatch()
    trainer_cfg = compose(["trainer.progress_bar=false", *trainer_overrides]).trainer
    build_trainer(trainer_cfg, cfg.max_epochs, None, [recorder]).fit(module)
    return module, recorder.values, data


def _retain_nll(model, data, pad_id):
    batch = Collator(pad_id)([data["retain"][i] for i in range(len(data["retain"]))])
    with torch.no_grad():
        return mean_nll(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"]).item()


def test_relative_eps_is_measured_on_the_target_and_the_epoch_mode_updates_once_per_epoch(tiny_setup):
    pad = tiny_setup["tokenizer"].pad_token_id
    module, seen, data = _fit(tiny_setup, ["method.eps_mode=relative", "method.retain_tolerance=0.5", "method.dual_update_upon=epoch"])
    initial = _retain_nll(tiny_setup["target"], data, pad)
    assert math.isclose(module.history[0]["retain_nll_initial"], initial, rel_tol=1e-5)
    assert math.isclose(module.eps, 1.5 * initial, rel_tol=1e-5)
    for epoch in range(3):  # constant within an epoch
        assert len({v for e, v in seen if e == epoch}) == 1
    lambdas = [h["lambda"] for h in module.history if "lambda" in h]
    assert lambdas[0] == 1.0  # warm-up epoch
    expected = max(0.0, lambdas[1] + 2.0 * (_retain_nll(module.model.eval(), data, pad) - module.eps))
    assert math.isclose(lambdas[2], expected, rel_tol=1e-5)


def test_optimizer_step_mode_waits_for_gradient_accumulation(tiny_setup):
    over = ["method.eps_mode=absolute", "method.eps=0.01", "method.dual_warmup_epochs=0"]  # always violated: λ grows
    _, per_micro, _ = _fit(tiny_setup, over + ["method.dual_update_per=micro_batch"], ["trainer.accumulate_grad_batches=2"])
    _, per_step, _ = _fit(tiny_setup, over + ["method.dual_update_per=optimizer_step"], ["trainer.accumulate_grad_batches=2"])
    changes = lambda seen: sum(a[1] != b[1] for a, b in zip(seen, seen[1:]))  # noqa: E731
    assert changes(per_micro) == len(per_micro) - 1
    assert len(per_step) % 2 == 0 and changes(per_step) == len(per_step) // 2 - 1  # λ is recorded before each update
