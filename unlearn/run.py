"""Entry point: `python -m unlearn.run [overrides]` runs memorize -> unlearn -> evaluate.

Thin on purpose: compose the config, call the pipeline, turn user errors into one clear line,
a non-zero exit and no partial run directory. In a sweep (`-m`) a failing job must not stop the
others (Hydra's basic launcher re-raises the first exception), so the job records `failed.json`
in its own directory, keeps whatever it wrote, and returns.

The same command again continues an interrupted run and skips a finished one (unlearn/stages/resume.py);
while the first is still running, the second is refused (unlearn/stages/run_lock.py).
Exit codes: 0 done (or already done), 2 bad input or the same run already running, 3 the method diverged
(results.json marks it).
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
    from unlearn.stages import resume
    from unlearn.sweeps.jobs import record_status, skip_reason

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = hydra_cfg.overrides.task
    if reason := skip_reason(cfg):
        record_status(run_dir, "skipped", overrides, reason=reason)
        print(f"skipped: {reason}", file=sys.stderr)
        return
    from unlearn import ranks
    from unlearn.sweeps.jobs import in_multirun

    try:  # a multi-process trainer starts its other processes now; they wait for rank 0's claim
        ranks.launch(cfg.trainer, multirun=in_multirun())
    except UnlearnError as err:
        bad_input(err, run_dir)
    if ranks.is_worker_rank():
        return run_worker(cfg)
    try:
        claim = resume.claim(cfg, run_dir)
    except resume.RunInProgress as err:
        ranks.broadcast(None)
        refuse(err, run_dir, overrides)
        return
    except UnlearnError as err:
        ranks.broadcast(None)
        bad_input(err, run_dir)
    ranks.broadcast(None if claim.finished else str(claim.run_dir))
    try:
        run_claimed(cfg, claim, run_dir, hydra_cfg, overrides)
    finally:  # the next identical command may start once this one has ended, however it ended
        claim.release()


def bad_input(err, run_dir: Path) -> None:
    """One line, exit 2, no run directory left behind."""
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)


def run_worker(cfg) -> None:
    """A rank other than 0: rank 0 holds the run's claim and writes everything; this process joins the fits and
    its share of the evaluation (unlearn/ranks.py), in rank 0's run directory, and writes nothing."""
    from unlearn import ranks
    from unlearn.stages.divergence import RunDiverged
    from unlearn.workflows.run_pipeline import run_pipeline

    run_dir = ranks.broadcast(None)
    if run_dir is None:  # rank 0 found nothing to run (finished, refused, bad input)
        return
    try:
        run_pipeline(cfg, Path(run_dir))
    except RunDiverged:
        pass
    except Exception as err:
        ranks.report_failure(err)


def run_claimed(cfg, claim, run_dir: Path, hydra_cfg, overrides) -> None:
    from unlearn.workflows.run_pipeline import run_pipeline
    from unlearn.stages.divergence import RunDiverged
    from unlearn.sweeps.jobs import end_failed_job, in_multirun, record_status

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
        claim.mark(cfg, "complete")
    except RunDiverged as err:  # results.json is written and says `diverged`: kept, and a sweep goes on
        claim.mark(cfg, "diverged")
        print(f"diverged: {err}", file=sys.stderr)
        if not in_multirun():
            sys.exit(3)
    except Exception as err:
        from unlearn import ranks

        ranks.stop_others()  # a sweep goes on to its next job: the failed job's other processes must not wait it out
        end_failed_job(err, run_dir, hydra_cfg, overrides, forget=lambda: claim.forget(cfg))


def refuse(err, run_dir: Path, overrides) -> None:
    """The same configuration is running now: say where, touch nothing of it, and leave no run dir of our own;
    in a sweep the job is skipped and the sweep goes on. Two commands started in the same second get the same
    Hydra run dir: that one is the live run's, so it stays."""
    from unlearn.stages.resume import MARKER
    from unlearn.sweeps.jobs import in_multirun, record_status

    live = err.owner.get("run_dir")
    ours = not (run_dir / MARKER).exists() and (live is None or Path(live).resolve() != run_dir.resolve())
    if in_multirun():
        if ours:
            record_status(run_dir, "skipped", overrides, reason=str(err))
        print(f"skipped: {err}", file=sys.stderr)
        return
    if ours:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    from unlearn.cli import run

    run(main)
