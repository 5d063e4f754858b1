"""Entry point: `python -m unlearn.run [overrides]` runs memorize -> unlearn -> evaluate.

Thin on purpose: compose the config, call the pipeline, turn user errors into one clear line,
a non-zero exit and no partial run directory.
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

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run_pipeline(cfg, run_dir)
    except UnlearnError as err:
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
