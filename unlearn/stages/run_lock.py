"""One live run per configuration: two runs of the same command must never destroy each other.

`resume.claim` moves an unfinished run's state into the new run directory and deletes the old one. Were
that run still alive (a user re-launches the command, a scheduler retries a sweep job), the move would take
its checkpoint and evaluation store from under it. So a run holds an OS file lock,
`<paths.output_dir>/.runs/<identity>.lock` (storage/locks.py), from before `claim` reads anything until the
run ends, exceptions included; `<identity>.owner.json` beside it says which run holds it (pid, host, start,
run dir). The kernel drops the lock when its holder dies, even by `kill -9`, so the next command takes over a
killed run's lock and resumes the run as usual; no heartbeat or stale-lock guessing is needed.

A second identical command does not wait: it refuses with one line naming the live run and exit 2 (in a
sweep, the job is recorded as skipped and the sweep goes on), touching nothing of the live run and leaving
no directory of its own. `resume_wait=<seconds>` waits that long for the live run to end first (a
scheduler's retry), then goes on like the same command would: skip the finished run, continue an unfinished
one. `resume=false` runs beside a live run (resume.py): it moves nothing and writes no index entry, so no
later command finds its directory through the index and moves it. DDP worker ranks take no lock.
"""
import json
import os
import socket
import time
from pathlib import Path

from unlearn.errors import UnlearnError
from unlearn.storage.locks import is_worker_rank, try_lock
from unlearn.storage.results import write_json


class RunInProgress(UnlearnError):
    """The same configuration is running now; `owner` is its owner record, or {} when it cannot be read."""

    def __init__(self, owner: dict, lock_file: Path):
        self.owner = owner
        if owner:
            where = (f"in {owner.get('run_dir')} (pid {owner.get('pid')} on host {owner.get('host')}, "
                     f"since {owner.get('since')})")
        else:
            where = f"(another process holds {lock_file})"
        super().__init__(f"the same configuration is running now {where}; wait for it to end (resume_wait=<seconds> "
                         "waits for it), or pass resume=false to run it again beside it")


class RunLock:
    def __init__(self, lock, lock_file: Path, owner_file: Path):
        self._lock, self.lock_file, self.owner_file = lock, lock_file, owner_file

    def release(self, discard: bool = False) -> None:
        """Let the next identical command in. `discard` (a run that failed on bad input leaves no file
        behind) also deletes the lock file, while still holding it; `acquire` copes with that."""
        if self._lock is None:
            return
        self.owner_file.unlink(missing_ok=True)
        if discard:
            self.lock_file.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def acquire(runs: Path, identity: str, run_dir: Path, wait_s: float = 0) -> RunLock | None:
    """The lock of `identity` in the index folder `runs` (None in a DDP worker rank), or RunInProgress if another
    process holds it past `wait_s`."""
    if is_worker_rank():
        return None
    runs = Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    lock_file, owner_file = runs / f"{identity}.lock", runs / f"{identity}.owner.json"
    deadline = time.monotonic() + max(float(wait_s), 0.0)
    while True:
        open(lock_file, "a").close()  # exists, so its inode can be compared; unlike touch, leaves its mtime
        before = _inode(lock_file)
        lock = try_lock(lock_file, max(deadline - time.monotonic(), 0.0))
        if lock is None:
            raise RunInProgress(_read(owner_file), lock_file)
        if _inode(lock_file) == before:
            break
        # The holder we waited for deleted the file (`discard`) as we won its lock: that lock is on a file no
        # later command opens, so take the lock of the file that is there now.
        lock.release()
    write_json(owner_file, {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "run_dir": str(Path(run_dir).resolve())})
    return RunLock(lock, lock_file, owner_file)
