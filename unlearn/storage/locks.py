"""Process locks, all OS file locks (flock through `filelock`): the kernel drops one when its holder dies,
even by SIGKILL, so a killed process's lock is simply taken by the next one; the lock file left on disk
means nothing.

- `build_lock`: one builder per cached artifact: two jobs of a parallel sweep that need the same dequantized
  model or memorized target at the same moment build it once; the second waits, then loads the copy.
- `try_lock`: one holder of a lock for as long as it likes (a run's life, unlearn/stages/run_lock.py); a
  second process is told at once (or after a wait) that it is taken, rather than blocking.
"""
import contextlib
from pathlib import Path

from filelock import FileLock, Timeout

from unlearn.ranks import is_worker_rank


def build_lock(folder: Path):
    """Held while checking for and building `folder`. None in a worker rank: rank 0 holds it through a build's
    `fit`, which waits for the workers to join it, so a worker waiting for the lock would deadlock; rank 0 is
    the one writer (unlearn/ranks.py)."""
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
