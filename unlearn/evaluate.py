"""Entry point: `python -m unlearn.evaluate model=<name or saved folder> eval=<suite> [overrides]`.

Thin on purpose: accept a model folder where Hydra expects a config option, compose the config, run
the evaluation, turn user errors into one clear line and a non-zero exit. Results stay in the output
directory (a re-run resumes there; `overwrite=true` recomputes).
"""
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

from unlearn.errors import UnlearnError

CONF_MODELS = Path(__file__).resolve().parents[1] / "conf" / "model"


def path_shortcut(argv: list[str]) -> list[str]:
    """`model=/path/to/saved` -> `model=local model.name_or_path=/abs/path model.name=<folder name>`."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key == "model" and sep and not (CONF_MODELS / f"{value}.yaml").is_file() and ("/" in value or Path(value).is_dir()):
            path = Path(value).expanduser().resolve()
            # A run's model lives in <run dir>/model: the run dir says which one it is.
            name = path.parent.name if path.name == "model" else path.name
            out += ["model=local", f"model.name_or_path={path}", f"model.name={name}"]
        else:
            out.append(arg)
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg) -> None:
    from unlearn.cli import task_started

    task_started()
    from unlearn import ranks
    from unlearn.sweeps.jobs import in_multirun
    from unlearn.workflows.evaluate_saved import run_evaluation

    try:  # several devices: every process evaluates a share of the items (unlearn/ranks.py)
        ranks.launch(cfg.trainer, multirun=in_multirun())
        run_evaluation(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UnlearnError as err:
        if ranks.is_main():  # every rank meets the same bad input; one says so
            print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    from unlearn.cli import run

    sys.argv = [sys.argv[0], *path_shortcut(sys.argv[1:])]
    run(main)
