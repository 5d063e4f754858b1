"""`kill -9` during memorize, unlearn and evaluate, then the same command again: the run continues from its
checkpoints and evaluation store and ends with the results of a run that was never interrupted, bit for bit
(CPU). A finished run is not redone; `resume=<dir>` with another configuration is refused."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import FAST_SWEEP, REPO

pytestmark = pytest.mark.slow

FAST = FAST_SWEEP + ["eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget]},{name:ppl,label:PPL,splits:[utility]}]",
                     "method=ga", "method.max_epochs=3", "method.batch_size=4", "method.lr=5e-3",
                     "method.early_stop.enabled=false", "threads=1"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def command(root, *extra):
    return [sys.executable, "-m", "unlearn.run", *FAST, f"paths.cache_dir={root / 'cache'}",
            f"paths.output_dir={root / 'out'}", *extra]


def run_killed_when(cmd, ready, timeout=300) -> bool:
    """Start `cmd`, SIGKILL it as soon as `ready()` is true. False if it finished first."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def exists(pattern: str):
    return lambda: bool(glob.glob(pattern, recursive=True))


def evaluated_some(root):
    def ready():
        for path in glob.glob(str(root / "out" / "runs" / "*" / "*" / "evaluation-in-progress" / "results.json")):
            try:
                if json.loads(open(path).read())["records"]:
                    return True
            except (OSError, ValueError):
                pass
        return False
    return ready


def final_results(root) -> dict:
    (path,) = glob.glob(str(root / "out" / "runs" / "*" / "*" / "results.json"))
    return json.loads(open(path).read())


def comparable(results: dict) -> dict:
    """Everything a run computes; not timings, cache hits or where reused records came from."""
    records = sorted((r["model"], r["split"], r["metric"], r["value"], r["n"]) for r in results["records"])
    unlearn = {k: results["unlearn"][k] for k in ("epochs_run", "steps", "history", "diverged")}
    card = {k: results["memorize"][k] for k in ("key", "epochs", "forget_ma", "reached_threshold")}
    return {"records": records, "unlearn": unlearn, "memorize": card, "status": results["status"]}


def test_kill_at_each_stage_then_rerun_gives_the_uninterrupted_results(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    proc = subprocess.run(command(clean), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = comparable(final_results(clean))

    cmd = command(killed)
    stages = {
        "memorize": exists(str(killed / "cache" / "memorized" / ".*.checkpoints" / "target" / "last.ckpt")),
        "unlearn": exists(str(killed / "out" / "runs" / "*" / "*" / "checkpoints-resume" / "last.ckpt")),
        "evaluate": evaluated_some(killed),
    }
    for stage, ready in stages.items():
        assert run_killed_when(cmd, ready), f"the run finished before it could be killed during {stage}"
        assert not glob.glob(str(killed / "out" / "runs" / "*" / "*" / "results.json")), "a killed run left results.json"
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(glob.glob(str(killed / "out" / "runs" / "*" / "*"))) == 1  # continued in one run dir, no leftovers
    results = final_results(killed)
    assert comparable(results) == expected
    (run_dir,) = glob.glob(str(killed / "out" / "runs" / "*" / "*"))
    assert not os.path.exists(os.path.join(run_dir, "checkpoints-resume"))  # removed once the run finished
    assert not glob.glob(str(killed / "cache" / "memorized" / ".*.checkpoints"))

    # The same command once more: finished, so nothing is redone and no new run dir appears.
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "already finished (complete)" in proc.stderr
    assert glob.glob(str(killed / "out" / "runs" / "*" / "*")) == [run_dir]

    # resume=<dir> of a run with another configuration is refused in one line, leaving nothing new.
    proc = subprocess.run(command(killed, "method.lr=1e-3", f"resume={run_dir}"), cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "used a different configuration" in proc.stderr and "Traceback" not in proc.stderr
    assert glob.glob(str(killed / "out" / "runs" / "*" / "*")) == [run_dir]
