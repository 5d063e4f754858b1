"""Process locks, all OS file locks (flock through `filelock`): the kernel drops one when its holder dies,
even by SIGKILL, so a killed process's lock is simply taken by the next one; the lock file left on disk
means nothing.

- `build_lock`: one builder per cached artifact: two jobs of a parallel sweep that need the same dequantized
  model or memorized target at the same moment build it once; the second waits, then loads the copy.
- `try_lock`: one holder of a lock for as long as it likes (a run's life, unlearn/stages/run_lock.py); a
  second process is told at once (or after a wait) that it is taken, rather than blocking.
"""
import contextlib
import os
from pathlib import Path

from filelock import FileLock, Timeout


def is_worker_rank() -> bool:
    """DDP worker ranks (LOCAL_RANK > 0) take no lock: rank 0 holds it while its trainer waits for them to
    join, so waiting would deadlock."""
    return os.environ.get("LOCAL_RANK", "0") != "0"


def build_lock(folder: Path):
    """Held while checking for and building `folder` (none in a DDP worker rank)."""
    if is_worker_rank():
        return contextlib.nullcontext()
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder.parent / f".{folder.name}.lock"))


def try_lock(lock_file: Path, wait_s: float = 0) -> FileLock | None:
    """The lock on `lock_file`, held until its `.release()`, or None if another process still holds it after
    `wait_s` seconds (0: one try)."""
    lock = FileLock(str(lock_file), timeout=max(float(wait_s), 0.0))
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock
