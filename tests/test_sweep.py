"""A real tiny multirun (`python -m unlearn.run -m ...`, basic launcher, W&B offline): three jobs, the
middle one fails. The memorized target is built once and reused, the failure is recorded in its job
dir without stopping the sweep, every job is its own W&B run in one group, and the report reads it."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FAST_SWEEP, REPO
from tests.wandb_offline import summarize


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    cache = tmp / "cache"  # fresh: the first job must build the target itself
    sweep_dir = tmp / "out" / "sweep"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    fast = FAST_SWEEP + ["eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget]},{name:ppl,label:PPL,splits:[utility]}]"]
    args = fast + [f"paths.cache_dir={cache}", f"paths.output_dir={tmp / 'out'}", f"hydra.sweep.dir={sweep_dir}",
                   "method=ga", "method.batch_size=4", "method.lr=5e-3", "logger=wandb", "strength=1",
                   # the tuned GA demo turns early stopping off; it is what logs the val/ppl curve checked below
                   "method.early_stop.enabled=true",
                   # Job 1 fails mid-run, after training with its W&B run open (eval batch 0 is not validated,
                   # so it raises a plain ValueError in evaluation), between two jobs that succeed.
                   "eval.batch_size=8,0,4"]
    proc = subprocess.run([sys.executable, "-m", "unlearn.run", "-m", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: int(p.name.split("_")[0]))
    return {"proc": proc, "dir": sweep_dir, "jobs": jobs, "cache": cache}


pytestmark = pytest.mark.slow


def test_sweep_finishes_with_a_dir_per_job(sweep):
    assert sweep["proc"].returncode == 0, sweep["proc"].stderr[-3000:]
    assert [p.name.split("_")[0] for p in sweep["jobs"]] == ["0", "1", "2"]


def test_failing_job_is_recorded_and_the_sweep_goes_on(sweep):
    ok0, failed, ok2 = sweep["jobs"]
    record = json.loads((failed / "failed.json").read_text())
    assert record["status"] == "failed" and record["error_type"] and "Traceback" in record["traceback"]
    assert "eval.batch_size=0" in record["overrides"]
    assert not (failed / "results.json").exists()
    assert (ok0 / "results.json").is_file() and (ok2 / "results.json").is_file()  # the job after the failure ran
    assert "the sweep goes on" in sweep["proc"].stderr
    status = json.loads((sweep["dir"] / "sweep_status.json").read_text())
    assert (len(status["done"]), status["failed"], status["skipped"]) == (2, [failed.name], [])
    assert "2 done, 1 failed, 0 skipped" in sweep["proc"].stdout


def test_memorized_target_is_built_once_per_sweep(sweep):
    ok0, _, ok2 = sweep["jobs"]
    first, second = (json.loads((j / "results.json").read_text()) for j in (ok0, ok2))
    assert first["memorize"]["cached"] is False and second["memorize"]["cached"] is True
    assert first["memorize"]["key"] == second["memorize"]["key"]
    assert first["strength"] == second["strength"] == 1
    assert [p.name for p in (sweep["cache"] / "memorized").iterdir() if p.is_dir()] == [first["memorize"]["key"]]  # one folder


def test_wandb_offline_run_per_job_grouped_and_tagged(sweep):
    ok0, _, ok2 = sweep["jobs"]
    runs = [summarize(next((j / "wandb").glob("offline-run-*"))) for j in (ok0, ok2)]
    # The failed job's W&B run was closed, so job 2 wrote a run of its own, not into job 1's.
    assert len(list((sweep["jobs"][1] / "wandb").glob("offline-run-*"))) == 1
    assert runs[0]["group"] == runs[1]["group"] and runs[0]["group"].startswith("sweep-")
    for run in runs:
        assert {"method=ga", "model=tiny-gpt-neo", "data=synthetic_pii", "strength=1"} <= set(run["tags"])
        assert {"method", "model", "data", "memorize", "strength"} <= run["config_keys"]  # resolved config
        assert {"train/loss", "val/ppl"} <= run["history_keys"]                             # training curves
        assert {"final/unlearned/forget/MA", "final/target/utility/PPL", "strength"} <= run["summary_keys"]
        assert {"final_records/_type", "tradeoff/_type", "tradeoff/MA_vs_PPL_table/_type",
                "tradeoff/forget_vs_utility_table/_type"} <= run["history_keys"]             # table + plots


def test_report_reads_the_sweep(sweep):
    proc = subprocess.run([sys.executable, "-m", "unlearn.report", str(sweep["dir"])], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    md = (sweep["dir"] / "report" / "table.md").read_text()
    assert "ga (eval.batch_size=8)" in md and "ga (eval.batch_size=4)" in md and "| failed " in md
    assert list((sweep["dir"] / "report").glob("tradeoff_*.png"))
