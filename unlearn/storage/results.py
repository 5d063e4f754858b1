"""Results: one record shape {model, split, metric, value, n, details}, atomic JSON, markdown/CSV views."""
import json
import os
import tempfile
from pathlib import Path


def write_json(path: Path, payload) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, default=str)
        os.replace(tmp, path)
    finally:  # a payload that fails to serialize leaves no temporary file behind
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fmt(value) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3f}"


def markdown_table(records: list[dict], models: list[str]) -> str:
    """Rows = split x metric, columns = models, in first-seen order. A metric that was not computed
    shows `skipped [k]`, with reason k listed under the table: never a number."""
    rows: dict[tuple, dict] = {}
    reasons: list[str] = []
    for r in records:
        cell = _fmt(r["value"])
        skipped = (r.get("details") or {}).get("skipped")
        if r["value"] is None and skipped:
            if skipped not in reasons:
                reasons.append(skipped)
            cell = f"skipped [{reasons.index(skipped) + 1}]"
        rows.setdefault((r["split"], r["metric"]), {})[r["model"]] = cell
    models = [m for m in models if any(m in cells for cells in rows.values())]
    lines = ["| split | metric | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for (split, metric), cells in rows.items():
        lines.append(f"| {split} | {metric} | " + " | ".join(cells.get(m, "—") for m in models) + " |")
    if reasons:
        lines += ["", "Not computed:"] + [f"[{i}] {reason}" for i, reason in enumerate(reasons, 1)]
    return "\n".join(lines)
