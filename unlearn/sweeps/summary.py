"""Hydra callback: at the end of a sweep, one line saying how many jobs finished, failed or were
skipped, and `sweep_status.json` listing them, since failed jobs no longer stop (or fail) the sweep."""
import json
from pathlib import Path

from hydra.experimental.callback import Callback

from unlearn.storage.results import write_json


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        status = {name: sorted(str(p.parent.relative_to(sweep_dir)) for p in sweep_dir.rglob(f"{file}.json"))
                  for name, file in (("done", "results"), ("failed", "failed"), ("skipped", "skipped"))}
        # A diverged job wrote results.json (the last good weights, evaluated) marked `diverged`: counted apart.
        diverged = [job for job in status["done"] if json.loads((sweep_dir / job / "results.json").read_text()).get("status") == "diverged"]
        status["done"] = [job for job in status["done"] if job not in diverged]
        status["diverged"] = diverged
        write_json(sweep_dir / "sweep_status.json", status)
        line = ", ".join(f"{len(v)} {k}" for k, v in status.items())
        print(f"[unlearn] sweep {sweep_dir}: {line}" + (f"; see failed.json in {', '.join(status['failed'])}"
                                                         if status["failed"] else ""))
