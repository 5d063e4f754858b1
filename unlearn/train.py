"""Entry point: `python -m unlearn.train [overrides]` trains a model under one paradigm (standard, memsinks,
dedup; or `posthoc`: the standard model unlearned by the framework's methods) and evaluates its
memorization of a repeated set. Thin: compose (conf/train.yaml), run unlearn/memsinks/pipeline.py, turn
user errors into one clear line, a non-zero exit and no partial run directory; in a sweep a failing job
records failed.json and the others go on (as `python -m unlearn.run`).
"""
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig



@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg) -> None:
    from unlearn.memsinks.pipeline import run_training
    from unlearn.sweeps.jobs import end_failed_job

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = hydra_cfg.overrides.task
    # The ID-noise sweep only means something for memsinks; other paradigms run once, at noise 0.
    if cfg.id_noise and cfg.paradigm.name != "memsinks":
        print(f"skipped: id_noise={cfg.id_noise} only applies to paradigm=memsinks", file=sys.stderr)
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    from unlearn import ranks
    from unlearn.errors import UnlearnError
    from unlearn.sweeps.jobs import in_multirun

    try:  # a multi-process trainer starts its other processes now (unlearn/ranks.py); rank 0 writes every file
        ranks.launch(cfg.trainer, multirun=in_multirun())
    except UnlearnError as err:
        end_failed_job(err, run_dir, hydra_cfg, overrides)
        return
    try:
        run_training(cfg, run_dir)
    except Exception as err:
        if ranks.is_worker_rank():
            ranks.report_failure(err)
        ranks.stop_others()  # a sweep goes on to its next job: this job's other processes must not wait it out
        end_failed_job(err, run_dir, hydra_cfg, overrides)

if __name__ == "__main__":
    main()
