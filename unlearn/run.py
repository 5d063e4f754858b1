"""Entry point: `python -m unlearn.run [overrides]` runs memorize -> unlearn -> evaluate.

Thin on purpose: compose the config, call the pipeline, turn user errors into one clear line,
a non-zero exit and no partial run directory. In a sweep (`-m`) a failing job must not stop the
others (Hydra's basic launcher re-raises the first exception), so the job records `failed.json`
in its own directory, keeps whatever it wrote, and returns.
"""
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

from unlearn.errors import UnlearnError


@hydra.main(version_base="1.3", config_path="../conf", config_name="run")
def main(cfg) -> None:
    from unlearn.pipeline import run_pipeline
    from unlearn.sweep import finish_failed_wandb_run, in_multirun, record_status, skip_reason

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = hydra_cfg.overrides.task
    if reason := skip_reason(cfg):
        record_status(run_dir, "skipped", overrides, reason=reason)
        print(f"skipped: {reason}", file=sys.stderr)
        return
    try:
        run_pipeline(cfg, run_dir)
    except Exception as err:
        if in_multirun():
            path = record_status(run_dir, "failed", overrides, err)
            finish_failed_wandb_run()
            print(f"error in job {hydra_cfg.job.num} ({' '.join(overrides)}): {type(err).__name__}: {err}\n"
                  f"  recorded in {path}; the sweep goes on", file=sys.stderr)
            return
        if not isinstance(err, UnlearnError):
            raise
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
