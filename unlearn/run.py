"""Entry point: `python -m unlearn.run [overrides]` runs memorize -> unlearn -> evaluate.

Thin on purpose: compose the config, call the pipeline, turn user errors into one clear line,
a non-zero exit and no partial run directory. In a sweep (`-m`) a failing job must not stop the
others (Hydra's basic launcher re-raises the first exception), so the job records `failed.json`
in its own directory, keeps whatever it wrote, and returns.

The same command again continues an interrupted run and skips a finished one (unlearn/stages/resume.py).
Exit codes: 0 done (or already done), 2 bad input, 3 the method diverged (results.json marks it).
"""
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

from unlearn.errors import UnlearnError


@hydra.main(version_base="1.3", config_path="../conf", config_name="run")
def main(cfg) -> None:
    from unlearn.cli import task_started

    task_started()
    from unlearn.workflows.run_pipeline import run_pipeline
    from unlearn.stages import resume
    from unlearn.stages.divergence import RunDiverged
    from unlearn.sweeps.jobs import end_failed_job, in_multirun, record_status, skip_reason

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = hydra_cfg.overrides.task
    if reason := skip_reason(cfg):
        record_status(run_dir, "skipped", overrides, reason=reason)
        print(f"skipped: {reason}", file=sys.stderr)
        return
    try:
        claim = resume.claim(cfg, run_dir)
    except UnlearnError as err:
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if claim.finished:  # the same configuration already ran to the end: nothing to redo
        finished = claim.finished
        line = f"already finished ({finished['status']}): {finished['run_dir']}/results.json; resume=false runs it again"
        elsewhere = Path(finished["run_dir"]).resolve() != run_dir.resolve()
        if in_multirun() and elsewhere:
            record_status(run_dir, "skipped", overrides, reason=line)
        elif elsewhere:
            shutil.rmtree(run_dir, ignore_errors=True)
        print(line, file=sys.stderr)
        return
    run_dir = claim.run_dir
    try:
        run_pipeline(cfg, run_dir)
        resume.mark(cfg, run_dir, claim.identity, "complete")
    except RunDiverged as err:  # results.json is written and says `diverged`: kept, and a sweep goes on
        resume.mark(cfg, run_dir, claim.identity, "diverged")
        print(f"diverged: {err}", file=sys.stderr)
        if not in_multirun():
            sys.exit(3)
    except Exception as err:
        end_failed_job(err, run_dir, hydra_cfg, overrides, forget=lambda: resume.forget(cfg, claim.identity))

if __name__ == "__main__":
    from unlearn.cli import run

    run(main)
