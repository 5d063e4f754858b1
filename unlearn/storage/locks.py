"""One builder per cached artifact: two jobs of a parallel sweep that need the same dequantized model or
memorized target at the same moment build it once; the second waits for the lock, then loads the copy."""
import contextlib
import os
from pathlib import Path

from filelock import FileLock


def build_lock(folder: Path):
    """Held while checking for and building `folder`. DDP worker ranks (LOCAL_RANK > 0) take no lock:
    rank 0 holds it while its trainer waits for them to join, so waiting would deadlock."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return contextlib.nullcontext()
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder.parent / f".{folder.name}.lock"))
