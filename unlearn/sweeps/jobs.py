"""What a job needs to know about the sweep it belongs to: its strength, its W&B group and tags,
and how a failure is recorded so the other jobs go on."""
import json
import traceback
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from unlearn.storage.results import write_json


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_group() -> str | None:
    """W&B group of every job of one sweep: the sweep dir's date/time (unique per `-m` invocation)."""
    if not in_multirun():
        return None
    from hydra.core.hydra_config import HydraConfig

    sweep_dir = Path(HydraConfig.get().sweep.dir)
    return "sweep-" + "_".join(sweep_dir.parts[-2:])


def apply_strength(cfg) -> None:
    """`strength=X` sets the method's erasure-strength knob (`method.strength_knob`), so one sweep
    axis means the same thing for every method; `null` leaves the method config as it is."""
    if cfg.get("strength") is None:
        return
    knob = cfg.method.get("strength_knob")
    from unlearn.errors import ConfigError

    if not knob:
        raise ConfigError(f"strength={cfg.strength} but method {cfg.method.name} names no method.strength_knob")
    with open_dict(cfg.method):
        cfg.method[knob] = cfg.strength


def strength_of(cfg) -> float | None:
    """The job's erasure strength, read back from a config (live or a run dir's config.yaml)."""
    knob = OmegaConf.select(cfg, "method.strength_knob")
    return OmegaConf.select(cfg, f"method.{knob}") if knob else None


def skip_reason(cfg) -> str | None:
    """A ragged sweep (`level` past the end of a method's strength list) has nothing to run."""
    if cfg.get("level") is not None and cfg.get("strength") is None:
        return f"level {cfg.level} is past method {cfg.method.name}'s strength list"
    return None


def wandb_tags(cfg) -> list[str]:
    strength = strength_of(cfg)
    tags = [f"method={cfg.method.name}", f"model={cfg.model.name}", f"data={cfg.data.name}"]
    if strength is not None:
        tags.append(f"strength={strength}")
    return [t[:64] for t in tags]  # W&B rejects longer tags


def record_status(run_dir: Path, status: str, overrides, err: BaseException | None = None, reason: str | None = None) -> Path:
    """`failed.json` / `skipped.json` in the job dir: the sweep's record of a job with no results.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {"status": status, "overrides": list(overrides or [])}
    if err is not None:
        payload |= {"error_type": type(err).__name__, "error": str(err),
                    "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__))}
    if reason:
        payload["reason"] = reason
    path = run_dir / f"{status}.json"
    write_json(path, payload)
    return path


def finish_failed_wandb_run() -> None:
    """A job that raised mid-training leaves its W&B run open; close it as failed so the next job of the
    same process starts its own run instead of writing into this one."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1)


def read_status(run_dir: Path) -> dict | None:
    for name in ("failed.json", "skipped.json"):
        if (Path(run_dir) / name).is_file():
            return json.loads((Path(run_dir) / name).read_text())
    return None


def end_failed_job(err: BaseException, run_dir: Path, hydra_cfg, overrides, forget=None) -> None:
    """What an entry point does with a job's exception. In a sweep: record failed.json in the job's directory
    and return, so the other jobs go on (Hydra's basic launcher would re-raise). Alone: re-raise a crash (its
    run dir stays, so the same command can resume it); a user error becomes one line, no run dir, exit 2.
    `forget` (optional) is called before that exit, e.g. to drop the run from the resume index."""
    import shutil
    import sys

    from unlearn.errors import UnlearnError

    if in_multirun():
        path = record_status(run_dir, "failed", overrides, err)
        finish_failed_wandb_run()
        print(f"error in job {hydra_cfg.job.num} ({' '.join(overrides)}): {type(err).__name__}: {err}\n"
              f"  recorded in {path}; the sweep goes on", file=sys.stderr)
        return
    if not isinstance(err, UnlearnError):
        raise err
    shutil.rmtree(run_dir, ignore_errors=True)
    if forget is not None:
        forget()
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
