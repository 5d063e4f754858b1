"""Two runs of the same command never destroy each other (unlearn/stages/run_lock.py). With real processes:
a live run (frozen with SIGSTOP, so it holds its lock and changes nothing) is left untouched by the same
command again (refused: one line, exit 2, no run dir of its own), by the same command as a sweep job (skipped,
the sweep goes on) and by `resume=false` (runs beside it, unindexed); once the live run is killed with -9, the
same command takes its lock over and resumes it."""
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST_SWEEP, REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
FAST = FAST_SWEEP + ["eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget]}]", "method=ga",
                     "method.max_epochs=2", "method.batch_size=4", "method.lr=5e-3", "threads=1"]


def command(root: Path, *extra, sweep: bool = False) -> list[str]:
    return [sys.executable, "-m", "unlearn.run", *(["-m"] if sweep else []), *FAST, f"paths.cache_dir={root / 'cache'}",
            f"paths.output_dir={root / 'out'}", *extra]


def start(cmd) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(found, proc: subprocess.Popen, what: str, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := found():
            return value
        assert proc.poll() is None, f"ended before {what}: {proc.communicate()[1][-3000:]}"
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout} s")


def owner_record(out: Path) -> dict | None:
    for path in glob.glob(str(out / ".runs" / "*.owner.json")):
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError):  # being written
            pass
    return None


def claimed(out: Path) -> Path | None:
    """The live run's directory, once it is marked (resume.claim is done)."""
    marked = glob.glob(str(out / "runs" / "*" / "*" / "run_state.json"))
    return Path(marked[0]).parent if marked else None


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.mark.slow
def test_the_same_command_leaves_a_live_run_alone_and_takes_over_a_killed_one(tmp_path):
    out = tmp_path / "out"
    live = start(command(tmp_path))
    try:
        live_dir = wait_for(lambda: claimed(out), live, "the live run to claim its run dir")
        os.kill(live.pid, signal.SIGSTOP)  # it keeps its lock, and nothing of it changes while we look
        (index,) = [p for p in (out / ".runs").glob("*.json") if not p.name.endswith(".owner.json")]
        before, index_before = snapshot(live_dir), index.read_text()
        time.sleep(1.1)  # Hydra names run dirs by the second: the next commands get dirs of their own

        again = start(command(tmp_path))
        sweep = start(command(tmp_path, f"hydra.sweep.dir={tmp_path / 'sweep'}", sweep=True))
        beside = start(command(tmp_path, "resume=false", f"hydra.run.dir={tmp_path / 'beside'}"))
        wait_for(lambda: (tmp_path / "beside" / "run_state.json").is_file(), beside, "resume=false to start beside it")
        beside.kill()
        beside.communicate()
        _, err = again.communicate(timeout=60)
        _, sweep_err = sweep.communicate(timeout=60)

        assert again.returncode == 2, err[-3000:]
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
        assert f"running now in {live_dir} (pid {live.pid} on host" in errors[0], errors[0]
        assert sweep.returncode == 0, sweep_err[-3000:]
        (job,) = (tmp_path / "sweep").glob("0_*")
        assert "running now in" in json.loads((job / "skipped.json").read_text())["reason"]

        assert snapshot(live_dir) == before  # not one file of the live run moved or changed
        assert sorted(glob.glob(str(out / "runs" / "*" / "*"))) == [str(live_dir)]  # no run dir left by `again`
        assert index.read_text() == index_before  # still names the live run: resume=false did not take it over
    finally:
        live.kill()  # SIGKILL works on a stopped process; the kernel drops its lock
        live.communicate()

    proc = subprocess.run(command(tmp_path), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = glob.glob(str(out / "runs" / "*" / "*"))  # the killed run's state moved into the new dir
    assert json.loads((Path(run_dir) / "results.json").read_text())["status"] == "complete"
    assert not glob.glob(str(out / ".runs" / "*.owner.json"))  # released at the end


HOLD = """
import sys, time
from pathlib import Path
from unlearn.stages.run_lock import acquire

lock = acquire(Path(sys.argv[1]), "cfg", Path(sys.argv[2]))
print("held", flush=True)
time.sleep(float(sys.argv[3]))
lock.release(discard=sys.argv[4] == "discard")  # discard: what a run that failed on bad input does
time.sleep(600)
"""


def hold(tmp_path, seconds: float, how: str) -> subprocess.Popen:
    proc = start([sys.executable, "-c", HOLD, str(tmp_path / ".runs"), str(tmp_path / "live"), str(seconds), how])
    assert proc.stdout.readline().strip() == "held", proc.communicate()[1][-3000:]
    return proc


def test_the_lock_names_its_holder_is_taken_over_after_kill_9_and_can_be_waited_for(tmp_path):
    from unlearn.stages.run_lock import RunInProgress, acquire

    runs, me = tmp_path / ".runs", tmp_path / "me"
    holder = hold(tmp_path, 600, "keep")
    try:
        with pytest.raises(RunInProgress) as refused:
            acquire(runs, "cfg", me)
        assert f"running now in {(tmp_path / 'live').resolve()} (pid {holder.pid} on host" in str(refused.value)
    finally:
        holder.kill()
        holder.communicate()
    acquire(runs, "cfg", me).release()  # a killed holder's lock is free at once

    # resume_wait: a holder that ends within the wait is waited for, also one that deletes its lock file as it ends
    holder = hold(tmp_path, 1.0, "discard")
    try:
        started = time.time()
        lock = acquire(runs, "cfg", me, wait_s=60)
        assert 0.5 < time.time() - started < 30
        assert lock.lock_file.is_file() and json.loads(lock.owner_file.read_text())["pid"] == os.getpid()
        lock.release()
        assert not lock.owner_file.exists()
    finally:
        holder.kill()
        holder.communicate()
