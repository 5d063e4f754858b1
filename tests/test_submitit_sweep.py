"""The submitit launcher path, run for real: `hydra/launcher=local_submitit` (hydra-submitit-launcher's local
executor, the same settings as the SLURM launcher but its executor) runs a 2-job tiny sweep, each job in its
own submitit process, and both jobs write results.json for their own seed."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FAST_SWEEP, REPO

pytestmark = pytest.mark.slow


def test_local_submitit_sweep_runs_both_jobs(tmp_path):
    sweep_dir = tmp_path / "sweep"
    fast = FAST_SWEEP + ["eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget]}]", "eval.models=[unlearned]"]
    args = fast + [f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'out'}", f"hydra.sweep.dir={sweep_dir}",
                   "hydra/launcher=local_submitit", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
                   "hydra.launcher.timeout_min=10", "threads=1", "method=ga", "method.batch_size=4", "seed=0,1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "-m", "unlearn.run", "-m", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((sweep_dir / ".submitit").iterdir())  # the jobs went through submitit, not the basic launcher
    results = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))]
    assert sorted(r["seed"] for r in results) == [0, 1]
