"""trainer=fsdp without a GPU: what can be checked on a CPU machine. A sharded fit itself cannot run here
(Lightning and torch 2.13's FSDP both refuse a CPU; the error lines are in conf/trainer/fsdp.yaml), so these
check the config, the refusals and the export step; the fit is left to a GPU session (docs/scale_out.md)."""
import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.conftest import compose
from unlearn.errors import ConfigError
from unlearn.methods import METHODS
from unlearn.models.tiny import build_tiny_model
from unlearn.stages.trainer import strategy_of, validate_strategy
from unlearn.stages.unlearn import full_copy
from unlearn.workflows.run_pipeline import validate_config

NO_EARLY_STOP = "method.early_stop.enabled=false"


def test_emso_refuses_fsdp_in_one_line_before_any_model_loads():
    with pytest.raises(ConfigError, match=r"^method emso cannot train under FSDP \(.*\); use trainer=ddp$"):
        validate_config(compose(["method=emso", "trainer=fsdp", NO_EARLY_STOP]))
    validate_config(compose(["method=emso", "trainer=ddp", NO_EARLY_STOP]))  # DDP is fine


@pytest.mark.parametrize("method", ["ga", "gd", "pdu"])
def test_early_stop_is_refused_under_fsdp_and_the_method_otherwise_passes(method):
    with pytest.raises(ConfigError, match="method.early_stop runs the bare model"):
        validate_config(compose([f"method={method}", "trainer=fsdp", "method.early_stop.enabled=true"]))
    validate_strategy(compose([f"method={method}", "trainer=fsdp", NO_EARLY_STOP, "memorize=none"]), METHODS[method])


@pytest.mark.parametrize("overrides, message", [
    (["method=ga", NO_EARLY_STOP], "build the memorized target under trainer=ddp and pass it with memorize=none"),
    (["method=ta"], "method ta fine-tunes a memorized model"),
    (["method=ga", NO_EARLY_STOP, "memorize=none", "eval.attacks=[relearn_forget]"], "relearning attacks fine-tune")])
def test_fits_that_fsdp_would_leave_sharded_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_strategy(compose(["trainer=fsdp", *overrides]), METHODS[overrides[0].split("=")[1]])


def test_only_emso_declares_an_fsdp_refusal():
    # A new method that reads whole weight matrices outside the training forward must declare one too.
    assert {name for name, cls in METHODS.items() if cls.fsdp_refusal} == {"emso"}


@pytest.mark.parametrize("arch_model", ["tiny-gpt-neo", "tiny-llama"])
def test_fsdp_config_builds_lightnings_strategy_wrapping_every_transformer_block(arch_model):
    from pytorch_lightning.strategies import FSDPStrategy

    strategy = strategy_of(compose(["trainer=fsdp"]).trainer)
    assert type(strategy) is FSDPStrategy and strategy._state_dict_type == "full"
    model = build_tiny_model(compose([f"model={arch_model}"]).model, 300, seed=0)
    policy = strategy.kwargs["auto_wrap_policy"]
    blocks = [m for m in model.modules() if type(m) in policy._module_classes]
    assert len(blocks) == model.config.num_hidden_layers > 0  # a renamed class in transformers would wrap nothing


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is what a CPU machine gets")
@pytest.mark.parametrize("overrides, message", [([], "cannot run here"),  # no GPU at all
                                                (["trainer.accelerator=cpu", "trainer.devices=2"], "requires a GPU accelerator")])
def test_fsdp_on_a_cpu_machine_is_one_config_error_line(overrides, message):
    from unlearn.stages.device import resolve_device

    with pytest.raises(ConfigError, match=message):
        resolve_device(compose(["trainer=fsdp", *overrides]).trainer)


def test_full_copy_exports_the_trained_weights_not_the_reference_as_loadable_safetensors(tmp_path):
    from unlearn.models.load import save_model
    from unlearn.models.tiny import train_tokenizer

    target = build_tiny_model(compose(["model=tiny-gpt-neo"]).model, 300, seed=0)
    fitted = torch.nn.Module()  # the LightningModule's layout: the trained `model`, a frozen `reference` beside it
    fitted.model, fitted.reference = copy.deepcopy(target), copy.deepcopy(target)
    with torch.no_grad():
        for p in fitted.model.parameters():
            p.add_(0.01)
    exported = full_copy(fitted, target)
    assert exported is not target
    for (name, a), b in zip(exported.state_dict().items(), fitted.model.state_dict().values()):
        assert torch.equal(a, b), name
    tokenizer = train_tokenizer(["a few words to build a tokenizer from"] * 4, 300)
    path = save_model(exported, tokenizer, tmp_path / "model")
    assert (path / "model.safetensors").is_file()
    loaded = AutoModelForCausalLM.from_pretrained(path)
    for (name, a), b in zip(loaded.state_dict().items(), fitted.model.state_dict().values()):
        assert torch.equal(a, b), name
