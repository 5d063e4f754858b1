"""One device-and-precision policy for every stage (unlearn/stages/device.py).

Lightning's teardown leaves every fitted model on the CPU; these tests prove the pipeline and
`python -m unlearn.evaluate` hand the metrics models on the trainer's device, in eval.precision. No GPU
here, so the device move is observed with a fake accelerator: the policy's device resolution answers
`meta`, and a spy in place of the evaluate stage records where each model is when metrics would run
(real metrics cannot run on `meta`). The precision path runs for real: bf16 evaluation on the CPU.
`gpu` tests do the same on a real CUDA device when one is present.
"""
import json

import pytest
import torch

from tests.conftest import FAST_SWEEP, compose
from unlearn.errors import ConfigError
from unlearn.workflows.run_pipeline import run_pipeline
from unlearn.stages import device as device_module
from unlearn.stages.device import placement

# A short real run: memorize (cached after the first), 1 GA epoch, MA + PPL of target / unlearned / oracle.
RUN = [o for o in FAST_SWEEP if not o.startswith(("memorize.oracle", "eval.models"))] + [
    "method=ga", "method.max_epochs=1", "method.early_stop.enabled=false", "eval.models=[original,target,unlearned,oracle]",
    "eval.metrics=[{name: ma, label: MA, splits: [forget]}, {name: ppl, label: PPL, splits: [utility]}]"]


def test_placement_follows_the_trainer_config():
    assert placement(compose(["trainer=default"]).trainer, {}).device.type == "cpu"
    assert placement(compose(["trainer=ddp_cpu"]).trainer, {"precision": "bf16"}).dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="eval.precision"):
        placement(compose([]).trainer, {"precision": "fp8"})
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="trainer.accelerator=gpu"):
            placement(compose(["trainer=gpu"]).trainer, {})


class EvaluateSpy:
    """Stands in for the evaluate stage: records each model's device and dtype, computes nothing."""

    def __init__(self):
        self.seen = {}

    def __call__(self, contexts, roles, eval_cfg, *args, **kwargs):
        for role in roles:
            p = next(contexts[role].model.parameters())
            self.seen[role] = (p.device.type, p.dtype)
        return [], {}


@pytest.mark.slow
def test_pipeline_evaluates_every_model_on_the_trainers_device_in_eval_precision(tmp_path, cache_dir, monkeypatch):
    cfg = compose(RUN + [f"paths.cache_dir={cache_dir}", "eval.precision=bf16", "save_model=true"])
    run_pipeline(cfg, tmp_path / "real")  # for real, on the CPU, in bf16; also fills the caches the second run uses
    results = json.loads((tmp_path / "real" / "results.json").read_text())
    assert results["eval_placement"] == {"eval_device": "cpu", "eval_precision": "bf16"}
    assert {r["model"] for r in results["records"]} == {"original", "target", "unlearned", "oracle"}
    for r in results["records"]:
        assert r["value"] is not None and (r["details"]["eval_device"], r["details"]["eval_precision"]) == ("cpu", "bf16"), r
    # The model written to disk keeps its fp32 training weights: it is saved before the bf16 cast.
    from safetensors import safe_open
    with safe_open(tmp_path / "real" / "model" / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}

    # Same run on a fake accelerator: every role reaches evaluate on it, in bf16, although Lightning's
    # teardown put the unlearned model back on the CPU and the target/oracle were loaded there.
    monkeypatch.setattr(device_module, "resolve_device", lambda trainer_cfg: torch.device("meta"))
    spy = EvaluateSpy()
    monkeypatch.setattr("unlearn.workflows.run_pipeline.evaluate", spy)
    run_pipeline(compose(RUN + [f"paths.cache_dir={cache_dir}", "eval.precision=bf16"]), tmp_path / "meta")
    assert spy.seen == {role: ("meta", torch.bfloat16) for role in ("original", "target", "unlearned", "oracle")}

    # The precision is part of the reference-cache identity: fp32 never reuses the bf16 records above.
    monkeypatch.undo()
    fp32 = run_pipeline(compose(RUN + [f"paths.cache_dir={cache_dir}", "eval.precision=fp32"]), tmp_path / "fp32")
    fixed = [r for r in fp32["records"] if r["model"] != "unlearned"]
    assert fixed and all("reused_from" not in r["details"] and r["details"]["eval_precision"] == "fp32" for r in fixed)


def test_evaluate_cli_places_models_on_the_trainers_device(tiny_setup, cache_dir, tmp_path, monkeypatch):
    from unlearn.workflows.evaluate_saved import run_evaluation

    folder = cache_dir / "memorized" / tiny_setup["card"]["key"] / "target"
    cfg = compose(["model=local", f"model.name_or_path={folder}", f"paths.cache_dir={cache_dir}",
                   "eval.metrics=[{name: ma, label: MA, splits: [forget]}]", "eval.precision=bf16"], config_name="evaluate")
    monkeypatch.setattr(device_module, "resolve_device", lambda trainer_cfg: torch.device("meta"))
    spy = EvaluateSpy()
    monkeypatch.setattr("unlearn.workflows.evaluate_saved.evaluate", spy)
    run_evaluation(cfg, tmp_path)
    assert spy.seen == {"target": ("meta", torch.bfloat16)}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_run_evaluates_on_the_gpu(tmp_path, cache_dir, monkeypatch):
    """On a GPU machine: trainer=gpu trains and evaluates every model on CUDA, and the records say so."""
    import unlearn.stages.evaluate as stage

    seen = {}
    real = stage._run_one

    def watch(ctx, entry, split, config):
        seen[ctx.name] = next(ctx.model.parameters()).device.type
        return real(ctx, entry, split, config)

    monkeypatch.setattr(stage, "_run_one", watch)
    results = run_pipeline(compose(RUN + [f"paths.cache_dir={cache_dir}", "trainer=gpu", "trainer.progress_bar=false"]), tmp_path)
    assert seen == {role: "cuda" for role in ("original", "target", "unlearned", "oracle")}
    assert all(r["details"]["eval_device"] == "cuda" for r in results["records"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_bf16_evaluation_matches_fp32_on_memorization(tmp_path, cache_dir):
    """bf16 evaluation on CUDA gives the fp32 forget MA within a token or so per record on the tiny target."""
    fp32 = run_pipeline(compose(RUN + [f"paths.cache_dir={cache_dir}", "trainer=gpu", "eval.precision=fp32"]), tmp_path / "a")
    bf16 = run_pipeline(compose(RUN + [f"paths.cache_dir={cache_dir}", "trainer=gpu", "eval.precision=bf16"]), tmp_path / "b")
    ma = {p: {r["model"]: r["value"] for r in res["records"] if r["metric"] == "MA"} for p, res in (("fp32", fp32), ("bf16", bf16))}
    assert all(abs(ma["fp32"][m] - ma["bf16"][m]) < 0.1 for m in ("target", "oracle")), ma
