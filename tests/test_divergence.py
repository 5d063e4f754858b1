"""A learning rate that diverges: the method stops at the first non-finite loss or gradient, the last good
(finite) weights are evaluated and saved, results.json and the report say `diverged`, the process exits 3
with one line saying where; in a sweep the job is recorded and the next one runs."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import FAST_SWEEP, REPO

pytestmark = pytest.mark.slow

FAST = FAST_SWEEP + ["eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget]}]", "method=ga",
                     "method.batch_size=4", "method.max_epochs=3", "method.early_stop.enabled=false", "threads=1"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
DIVERGING_LR = "1e25"  # Adam moves every weight by ~lr per step: the logits overflow to inf within a few steps


def test_diverging_run_is_marked_kept_and_exits_3(tmp_path, cache_dir):
    cmd = [sys.executable, "-m", "unlearn.run", *FAST, f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path / 'out'}",
           f"method.lr={DIVERGING_LR}", "save_model=true"]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 3, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("diverged:")]
    assert len(lines) == 1 and "method ga diverged at epoch" in lines[0] and "non-finite" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (results_path,) = (tmp_path / "out").rglob("results.json")
    results = json.loads(results_path.read_text())
    assert results["status"] == "diverged"
    where = results["unlearn"]["diverged"]
    assert where["stage"] == "method ga" and where["step"] >= 1  # at least one good step was taken before it
    assert {r["model"] for r in results["records"]} == {"target", "unlearned"}  # the kept weights were evaluated
    weights = load_file(results_path.parent / "model" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())  # the last good weights, not the inf/NaN ones
    assert "diverged" in (results_path.parent / "results.md").read_text()

    # The report marks it.
    from unlearn.reporting.collect import load_statuses

    (entry,) = load_statuses(tmp_path / "out")
    assert entry["status"] == "diverged" and "non-finite" in entry["error"]


def test_sweep_records_a_diverged_job_and_goes_on(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "unlearn.run", "-m", *FAST, f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path / 'out'}",
           f"hydra.sweep.dir={sweep}", f"method.lr={DIVERGING_LR},5e-3"]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = json.loads((sweep / "sweep_status.json").read_text())
    assert len(status["diverged"]) == 1 and len(status["done"]) == 1 and status["failed"] == []
    assert "1 done, 0 failed, 0 skipped, 1 diverged" in proc.stdout


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_gradient_guard_names_the_first_non_finite_gradient_and_passes_finite_ones(bad):
    from types import SimpleNamespace

    from unlearn.stages.divergence import Diverged, FiniteGuard

    module = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    for p in module.parameters():
        p.grad = torch.full_like(p, torch.finfo(torch.float32).max / 2)  # finite, though a 2-norm of them overflows
    trainer = SimpleNamespace(current_epoch=1, global_step=7)
    guard = FiniteGuard("method ga", "lower method.lr")
    guard.on_before_optimizer_step(trainer, module, None)
    module[1].weight.grad[0, 2] = bad
    with pytest.raises(Diverged, match=r"non-finite gradient in 1\.weight") as err:
        guard.on_before_optimizer_step(trainer, module, None)
    assert err.value.where == {"stage": "method ga", "epoch": 1, "step": 7, "what": "non-finite gradient in 1.weight"}
