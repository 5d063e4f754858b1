"""Finding an interrupted run again: "the same command again" continues it, a finished one is not redone.

Hydra names run directories by the time they start, so a re-run gets a new, empty directory. A run is
identified instead by a hash of its resolved configuration (`run_identity`): `<paths.output_dir>/.runs/
<identity>.json` points at the directory of the last run with that configuration and says whether it
finished. A re-run of an unfinished one moves the previous directory's state (the unlearning checkpoint,
the per-metric evaluation store) into the new directory and continues; the memorize stage needs nothing
here, its checkpoints live beside the cached target they build. `resume=<run dir>` names the directory
to continue explicitly; `resume=false` always starts afresh.

Two runs of the same configuration at once: the first holds the configuration's lock for its whole life, and
a second one is refused without touching it (run_lock.py); `resume=false` beside a live run is not indexed.
"""
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from unlearn.errors import UnlearnError, require
from unlearn.models.identity import model_content
from unlearn.stages.run_lock import RunInProgress, RunLock, acquire
from unlearn.storage.code_hash import PACKAGE_CODE, code_hash
from unlearn.storage.keys import key_of
from unlearn.storage.results import write_json

MARKER = "run_state.json"
FINISHED = ("complete", "diverged")
# Not taken over from an unfinished run: Hydra's own files (the new run writes its copies) and a sweep
# job's failure record (the retry may succeed).
NOT_MOVED = (".hydra", "failed.json", "skipped.json")


def run_identity(cfg) -> str:
    """The resolved configuration, the model's content and the code: after an edit to any of the package's
    code the same command is a new run, neither "already finished" nor resumed from the old code's state."""
    material = OmegaConf.to_container(cfg, resolve=True)
    for key in ("resume", "resume_wait"):  # how to find the run, not what it computes
        material.pop(key, None)
    material["code"] = code_hash(PACKAGE_CODE)
    if OmegaConf.select(cfg, "model.source") is not None:
        material["model_content"] = model_content(cfg.model, Path(cfg.paths.cache_dir).expanduser())
    return key_of(material)


def _runs(cfg) -> Path:
    return Path(cfg.paths.output_dir) / ".runs"


def _index(cfg, identity: str) -> Path:
    return _runs(cfg) / f"{identity}.json"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Claim:
    run_dir: Path
    identity: str
    finished: dict | None = None      # {"run_dir", "status"} of a finished run with this configuration
    resumed_from: Path | None = None  # the unfinished run dir whose state was taken over
    lock: RunLock | None = None       # held until release(); None in a DDP worker rank or beside a live run
    indexed: bool = True              # False beside a live run: the index keeps naming the live one

    def mark(self, cfg, status: str) -> None:
        mark(cfg, self.run_dir, self.identity, status, index=self.indexed)

    def forget(self, cfg) -> None:
        """A run that failed on bad input leaves nothing behind: no index entry, no lock file."""
        if self.indexed:
            forget(cfg, self.identity)
        if self.lock is not None:
            self.lock.release(discard=True)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def _fresh_only(cfg) -> bool:
    return cfg.get("resume", "auto") in (False, "false", "never")


def _previous(cfg, identity: str) -> Path | None:
    mode = cfg.get("resume", "auto")
    if _fresh_only(cfg):
        return None
    if mode in (None, True, "auto", "true"):
        entry = _read(_index(cfg, identity))
        path = Path(entry["run_dir"]) if entry else None
        return path if path is not None and path.is_dir() else None
    path = Path(str(mode)).expanduser()
    require(path.is_dir(), f"resume={mode}: no such run directory; give the run dir printed by the interrupted run, "
                           "or resume=auto to find it from the configuration")
    marker = _read(path / MARKER)
    require(marker is not None, f"resume={mode}: {path} holds no {MARKER}, so it is not a run directory of unlearn.run")
    require(marker["identity"] == identity,
            f"resume={mode}: that run used a different configuration (identity {marker['identity']}, this one {identity}); "
            f"rerun with the overrides in {path / '.hydra' / 'overrides.yaml'}")
    return path


def claim(cfg, fresh_dir: Path) -> Claim:
    """Decide where this run goes: the finished run it repeats, or `fresh_dir` with any unfinished state moved in.
    Takes the configuration's lock first (RunInProgress if the same configuration is running now); the caller
    releases it when the run ends (`Claim.release`)."""
    fresh_dir = Path(fresh_dir)
    identity = run_identity(cfg)
    try:
        lock = acquire(_runs(cfg), identity, fresh_dir, 0 if _fresh_only(cfg) else cfg.get("resume_wait") or 0)
        indexed = True
    except RunInProgress:
        if not _fresh_only(cfg):
            raise
        lock, indexed = None, False  # resume=false beside the live run: it reads and moves nothing
    try:
        taken = _take(cfg, fresh_dir, identity, indexed)
    except BaseException as err:
        if lock is not None:  # a refused resume=<dir> leaves no lock file behind either
            lock.release(discard=isinstance(err, UnlearnError))
        raise
    taken.lock, taken.indexed = lock, indexed
    return taken


def _take(cfg, fresh_dir: Path, identity: str, indexed: bool) -> Claim:
    previous = _previous(cfg, identity)
    if previous is not None:
        marker = _read(previous / MARKER) or {}
        results = _read(previous / "results.json") or {}
        status = results.get("status") if results.get("status") in FINISHED else marker.get("status")
        if status in FINISHED and (previous / "results.json").is_file():
            return Claim(fresh_dir, identity, finished={"run_dir": str(previous), "status": status})
    fresh_dir.mkdir(parents=True, exist_ok=True)
    resumed_from = None
    if previous is not None and previous.resolve() != fresh_dir.resolve():
        for item in previous.iterdir():
            if item.name in NOT_MOVED or item.suffix == ".log":
                continue
            target = fresh_dir / item.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            item.rename(target)
        shutil.rmtree(previous, ignore_errors=True)
        resumed_from = previous
    elif previous is not None:
        resumed_from = previous
    mark(cfg, fresh_dir, identity, "running", index=indexed)
    return Claim(fresh_dir, identity, resumed_from=resumed_from)


def mark(cfg, run_dir: Path, identity: str, status: str, index: bool = True) -> None:
    entry = {"identity": identity, "run_dir": str(Path(run_dir).resolve()), "status": status}
    write_json(Path(run_dir) / MARKER, entry)
    if not index:  # a run beside a live one: the index keeps naming the live run
        return
    _index(cfg, identity).parent.mkdir(parents=True, exist_ok=True)
    write_json(_index(cfg, identity), entry)


def forget(cfg, identity: str) -> None:
    """A run that failed on bad input leaves nothing behind, not even its index entry."""
    _index(cfg, identity).unlink(missing_ok=True)

