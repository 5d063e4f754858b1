"""Hydra's own errors (an unknown config group, option or key, a launcher whose plugin is missing, an output
directory Hydra cannot create) as one line naming the cause and the fix, and exit code 2, like ours.

Hydra prints these over several lines (a search-path dump, a hint about HYDRA_FULL_ERROR) and exits 1.
We let it raise (HYDRA_FULL_ERROR=1 for this process) and word the error here; a user who set
HYDRA_FULL_ERROR themselves gets Hydra's full output as before.
"""
import os
import sys

# Launcher configs that come from a plugin package, not from conf/: the package to install.
LAUNCHER_PLUGINS = {"joblib": "hydra-joblib-launcher", "submitit_slurm": "hydra-submitit-launcher",
                    "submitit_local": "hydra-submitit-launcher"}

_task_started = False


def task_started() -> None:
    """Called first thing in a task function: an OSError after this is the task's, not Hydra's set-up."""
    global _task_started
    _task_started = True


def hydra_error_line(err: BaseException) -> str:
    from hydra.errors import MissingConfigException

    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, MissingConfigException) or "Could not find" in first:
        for name, package in LAUNCHER_PLUGINS.items():
            if f"hydra/launcher/{name}'" in text:
                return (f"the launcher needs the Hydra plugin {package!r}, which is not installed: "
                        f"`pip install {package}` (or `make install`)")
        options = [line.strip().lstrip("*- ").strip() for line in text.splitlines()[1:] if line.startswith(("\t", "  "))]
        options = [o for o in options if o and "provider=" not in o]
        listed = f"; available: {', '.join(options)}" if options else ""
        return f"{first}{listed}. Check the spelling of the config group and option (conf/<group>/<option>.yaml)"
    cause = err.__cause__
    if "Could not override" in first or (cause is not None and "not in struct" in str(cause)):
        key = first.split("'")[1] if first.count("'") >= 2 else first
        return (f"unknown config key {key!r} ({str(cause).splitlines()[0] if cause else first}); check its spelling "
                f"against conf/, or add a new key with +{key}=...")
    if isinstance(err, OSError):
        return f"cannot create the run directory ({err}); set paths.output_dir (or hydra.run.dir) to a writable folder"
    return " ".join(text.split()) + ". Check the command-line overrides"


def run(main) -> None:
    """Call a `@hydra.main` function, turning Hydra's set-up errors into one line and exit code 2."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return main()
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return main()
    except (HydraException, OmegaConfBaseException) as err:
        if _task_started:
            raise
        print(f"error: {hydra_error_line(err)}", file=sys.stderr)
    except OSError as err:
        if _task_started:
            raise
        print(f"error: {hydra_error_line(err)}", file=sys.stderr)
    sys.exit(2)
