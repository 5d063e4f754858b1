"""Load: a real 2-job joblib sweep (hydra/launcher=parallel) on an empty cache, both jobs needing the same
memorized target. The job that builds it is killed (-9) mid-build. No complete-looking half cache may be
left (the target's card is written last, its weights by rename), and rerunning the same command finishes
both jobs on one target, built once (the rebuild resumes from the killed builder's last epoch), with
identical target records in both."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST_SWEEP, REPO

pytestmark = pytest.mark.slow


def lock_holder(lock_file: Path) -> int | None:
    """The pid holding the flock on `lock_file` (/proc/locks), i.e. the job building the target."""
    inode = os.stat(lock_file).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "FLOCK" in parts and parts[-3].endswith(f":{inode}"):
            return int(parts[-4])
    return None


@pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="needs Linux /proc/locks to find the builder")
def test_killed_builder_leaves_no_half_cache_and_the_rerun_builds_once(tmp_path):
    cache, sweep = tmp_path / "cache", tmp_path / "sweep"
    fast = FAST_SWEEP + ["eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget]}]"]
    cmd = [sys.executable, "-m", "unlearn.run", "-m", *fast, f"paths.cache_dir={cache}", f"paths.output_dir={tmp_path / 'out'}",
           f"hydra.sweep.dir={sweep}", "hydra/launcher=parallel", "threads=1", "method=ga", "method.batch_size=4",
           "method.lr=5e-3", "strength=1,2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    memorized = cache / "memorized"
    killed = None
    deadline = time.time() + 300
    while killed is None and proc.poll() is None and time.time() < deadline:
        ckpts = list(memorized.glob(".*.checkpoints/target/last.ckpt")) if memorized.is_dir() else []
        if ckpts:
            key = ckpts[0].parts[-3][1:-len(".checkpoints")]
            pid = lock_holder(memorized / f".{key}.lock")
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed = pid
        time.sleep(0.02)
    assert killed is not None, "the target was built before the builder could be killed"
    proc.wait(timeout=600)
    for folder in memorized.iterdir():  # whatever the sweep did next: a card only beside complete weights
        if (folder / "card.json").is_file():
            assert (folder / "target" / "model.safetensors").is_file()

    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if (p / "results.json").is_file())
    assert len(jobs) == 2
    results = [json.loads((j / "results.json").read_text()) for j in jobs]
    assert len({r["memorize"]["key"] for r in results}) == 1
    assert [p.name for p in memorized.iterdir() if p.is_dir()] == [results[0]["memorize"]["key"]]  # one target
    assert not list(memorized.glob(".*.checkpoints"))
    target = [sorted((r["split"], r["metric"], r["value"]) for r in res["records"] if r["model"] == "target") for res in results]
    assert target[0] == target[1] and target[0]
    assert {r["memorize"]["forget_ma"] for r in results} == {results[0]["memorize"]["forget_ma"]}
