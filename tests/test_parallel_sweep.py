"""The joblib launcher (`hydra/launcher=parallel`) runs a real 2-job tiny sweep: both jobs start at once on
a fresh cache, the memorized target is built by one of them while the other waits on its lock and loads
it, and the sweep summary counts both."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FAST_SWEEP, REPO

pytestmark = pytest.mark.slow


def test_parallel_jobs_share_one_memorized_target(tmp_path):
    cache, sweep_dir = tmp_path / "cache", tmp_path / "sweep"
    fast = FAST_SWEEP + ["eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget]}]"]
    args = fast + [f"paths.cache_dir={cache}", f"paths.output_dir={tmp_path / 'out'}", f"hydra.sweep.dir={sweep_dir}",
                   "hydra/launcher=parallel", "threads=1", "method=ga", "method.batch_size=4", "method.lr=5e-3",
                   "strength=1,2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "-m", "unlearn.run", "-m", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib" in proc.stderr + proc.stdout  # the joblib launcher ran the jobs, not the basic one
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and (p / "results.json").is_file())
    results = [json.loads((j / "results.json").read_text()) for j in jobs]
    assert sorted(r["strength"] for r in results) == [1, 2]
    assert sorted(r["memorize"]["cached"] for r in results) == [False, True]  # built once, loaded once
    assert len({r["memorize"]["key"] for r in results}) == 1
    assert [p.name for p in (cache / "memorized").iterdir() if p.is_dir()] == [results[0]["memorize"]["key"]]
    status = json.loads((sweep_dir / "sweep_status.json").read_text())
    assert len(status["done"]) == 2 and status["failed"] == []
