"""Every results.json below a directory as one long pandas frame (one row per record), with each job's
method, model, data, seed and erasure strength; failed/skipped jobs listed apart."""
import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from unlearn.sweeps.jobs import read_status, strength_of

JOB_COLUMNS = ["job", "method", "model_name", "data", "seed", "knob", "strength", "variant", "memorized"]
# Overrides that are a row's identity already (or averaged over), so they never split a method's row.
IDENTITY_KEYS = ("seed", "strength", "method", "model", "data", "level", "paradigm")  # paradigm: unlearn.train


def _job_info(results: dict, run_dir: Path, root: Path) -> dict:
    config_path = run_dir / "config.yaml"
    cfg = OmegaConf.load(config_path) if config_path.is_file() else OmegaConf.create({})
    strength = results.get("strength", strength_of(cfg))
    return {"job": str(run_dir.relative_to(root)) or ".", "method": results["method"], "model_name": results["model"],
            "data": results["data"], "seed": results.get("seed"), "knob": OmegaConf.select(cfg, "method.strength_knob"),
            "strength": strength, "overrides": _overrides(run_dir),
            # False when the run went on with a target below its MA threshold (memorize.allow_below_threshold).
            "memorized": bool((results.get("memorize") or {}).get("reached_threshold", True))}


def _overrides(run_dir: Path) -> tuple:
    path = run_dir / ".hydra" / "overrides.yaml"
    return tuple(OmegaConf.load(path)) if path.is_file() else ()


def _variants(infos: list[dict]) -> None:
    """A job's variant: its overrides that not every job shares (method.lr=0.01 in an lr sweep), minus
    identity keys and the strength knob; jobs of one variant at one strength are averaged (seeds)."""
    # Jobs without a .hydra/overrides.yaml (post-hoc methods written below a MemSinks job) have nothing to share.
    with_overrides = [set(i["overrides"]) for i in infos if i["overrides"]]
    shared = set.intersection(*with_overrides) if with_overrides else set()
    for info in infos:
        skip = set(IDENTITY_KEYS) | {f"method.{info['knob']}"}
        info["variant"] = " ".join(o for o in info.pop("overrides") if o not in shared and o.split("=")[0].lstrip("+~") not in skip)


# The emso_table1 suite scores generations on WikiText prompts, the default table on the base model's
# samples: both are the "utility" text a report column reads generation metrics from.
SPLIT_ALIASES = {"wikitext": "utility"}


def load_records(root: Path) -> pd.DataFrame:
    root = Path(root)
    jobs = [(json.loads(p.read_text()), p.parent) for p in sorted(root.rglob("results.json"))]
    jobs = [(r, d) for r, d in jobs if r.get("status") != "in_progress"]  # a run still being evaluated (or killed)
    infos = [_job_info(results, run_dir, root) for results, run_dir in jobs]
    _variants(infos)
    rows = []
    for (results, _), info in zip(jobs, infos):
        for r in results["records"]:
            rows.append({**info, "role": r["model"], "split": SPLIT_ALIASES.get(r["split"], r["split"]), "metric": r["metric"], "value": r.get("value")})
    return pd.DataFrame(rows, columns=JOB_COLUMNS + ["role", "split", "metric", "value"])


def load_statuses(root: Path) -> list[dict]:
    """Jobs that wrote failed.json or skipped.json instead of results.json, and runs whose method diverged."""
    out = []
    for path in sorted(list(Path(root).rglob("failed.json")) + list(Path(root).rglob("skipped.json"))):
        status = read_status(path.parent) or {}
        out.append({"job": str(path.parent.relative_to(root)), "status": status.get("status"),
                    "error": status.get("error") or status.get("reason", ""), "overrides": " ".join(status.get("overrides", []))})
    for path in sorted(Path(root).rglob("results.json")):  # diverged runs have rows (last good weights) and a mark here
        results = json.loads(path.read_text())
        if results.get("status") == "diverged":
            out.append({"job": str(path.parent.relative_to(root)), "status": "diverged",
                        "error": (results.get("unlearn", {}).get("diverged") or {}).get("message", ""),
                        "overrides": " ".join(_overrides(path.parent))})
    return out
