"""Runs many `python -m unlearn.run` invocations cheaply: imports the heavy libraries once, then forks one
child per case. Each child is a real process running the real entry point (`unlearn.cli.run(main)`) with
its own argv, stdout/stderr files and exit code, as if started from a shell; only the import time is shared.

Usage: python tests/bad_input_driver.py cases.json results.json
cases.json: [{"id", "args": [...], "hide": [module names to look uninstalled]}]
"""
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402,F401 - the shared import cost
import pytorch_lightning  # noqa: E402,F401
import transformers  # noqa: E402,F401
import unlearn.workflows.run_pipeline  # noqa: E402,F401


def run_case(case: dict, folder: Path) -> dict:
    out, err = folder / "stdout", folder / "stderr"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd_out, fd_err = os.open(out, os.O_WRONLY | os.O_CREAT), os.open(err, os.O_WRONLY | os.O_CREAT)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            import runpy

            if case.get("hide"):
                os.environ["UNLEARN_TEST_HIDE_MODULES"] = ",".join(case["hide"])
                runpy.run_path(str(REPO / "tests" / "hide_modules" / "sitecustomize.py"))
            sys.argv = ["unlearn/run.py", *case["args"]]
            runpy.run_module("unlearn.run", run_name="__main__", alter_sys=True)  # what `python -m unlearn.run` does
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # noqa: BLE001 - a traceback is a failure the test reports
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {"id": case["id"], "rc": os.waitstatus_to_exitcode(status), "stdout": out.read_text(), "stderr": err.read_text()}


def main(cases_path: str, results_path: str) -> None:
    cases = json.loads(Path(cases_path).read_text())
    results = []
    for case in cases:
        folder = Path(results_path).parent / "logs" / case["id"]
        folder.mkdir(parents=True, exist_ok=True)
        results.append(run_case(case, folder))
    Path(results_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
