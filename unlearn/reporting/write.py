"""Everything the report writes into one folder: table.md / table.csv (EMSO Table 1 shape),
oracle_gap.md / .csv, failed.csv (jobs without results) and tradeoff_*.png."""
from pathlib import Path

import pandas as pd

from unlearn.reporting.collect import load_records, load_statuses
from unlearn.reporting.oracle import oracle_gap
from unlearn.reporting.plots import tradeoff_figure
from unlearn.reporting.table import better_by_column, method_table, rank_marks, to_csv_frame, to_markdown


def write_report(root: Path, cfg) -> list[Path]:
    root = Path(root)
    records = load_records(root)
    if records.empty:
        raise FileNotFoundError(f"no results.json below {root}")
    out = Path(cfg.out_dir) if cfg.out_dir else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows, metrics = method_table(records, cfg)
    marks = rank_marks(rows, cfg, metrics)
    better = better_by_column(cfg.columns)
    md = [f"# Report: {root}", "", f"{len(records.job.unique())} jobs. **best**, _second best_ among methods of the "
          "same model and data; † collapsed (excluded from ranking). "
          + ", ".join(f"{m} {'↓' if better[m] == 'lower' else '↑'}" for m in metrics), "",
          to_markdown(rows, marks, metrics)]
    to_csv_frame(rows, marks, metrics).to_csv(out / "table.csv", index=False)
    written = [out / "table.md", out / "table.csv"]
    gap = oracle_gap(records, cfg.columns)
    if gap is not None:
        gap.to_csv(out / "oracle_gap.csv", index=False)
        md += ["", "## Distance to the retrain oracle (|unlearned − oracle| per column, mean over seeds; "
               "mean_rel_gap = the mean of |unlearned − oracle| / |oracle| over columns)", "",
               gap.to_markdown(index=False, floatfmt=".3f")]
        written.append(out / "oracle_gap.csv")
    statuses = load_statuses(root)
    if statuses:
        pd.DataFrame(statuses).to_csv(out / "failed.csv", index=False)
        md += ["", "## Jobs without results (overrides in failed.csv)", "",
               pd.DataFrame(statuses).drop(columns="overrides").to_markdown(index=False)]
        written.append(out / "failed.csv")
    (out / "table.md").write_text("\n".join(md) + "\n")
    written += [Path(p) for p in tradeoff_figure(rows, cfg.plots, out / "tradeoff")]
    return written
