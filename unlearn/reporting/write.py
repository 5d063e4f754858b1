"""Everything the report writes into one folder: table.md / table.csv (EMSO Table 1 shape),
oracle_gap.md / .csv, failed.csv (jobs without results) and tradeoff_*.png."""
from pathlib import Path

import pandas as pd

from unlearn.storage.atomic import write_text
from unlearn.data.muse import pre_release_note
from unlearn.reporting.collect import load_records, load_statuses
from unlearn.reporting.compare import write_comparison
from unlearn.reporting.durability import durability_section
from unlearn.reporting.oracle import oracle_gap
from unlearn.reporting.plots import tradeoff_figure
from unlearn.reporting.sanity import sanity_section
from unlearn.reporting.table import better_by_column, method_table, rank_marks, to_csv_frame, to_markdown


ARROWS = {"lower": "↓", "higher": "↑", "zero": "→0"}


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
          "same model and data; † collapsed, ‡ target not memorized (both excluded from ranking). "
          + ", ".join(f"{m} {ARROWS[better[m]]}" for m in metrics), "",
          to_markdown(rows, marks, metrics), "",
          "Methods with n > 1 jobs (seeds): mean ± half-width of the 95% t-interval over them."
          + pre_release_note(data_names=set(records.data))]
    to_csv_frame(rows, marks, metrics).to_csv(out / "table.csv", index=False)
    written = [out / "table.md", out / "table.csv"]
    gap = oracle_gap(records, cfg.columns)
    if gap is not None:
        gap.to_csv(out / "oracle_gap.csv", index=False)
        md += ["", "## Distance to the retrain oracle (|unlearned − oracle| per column, mean over seeds; "
               "mean_rel_gap = the mean of |unlearned − oracle| / |oracle| over columns)", "",
               gap.to_markdown(index=False, floatfmt=".3f")]
        written.append(out / "oracle_gap.csv")
    if cfg.get("select"):
        from unlearn.reporting.selection import select_rows
        from unlearn.reporting.selection import to_markdown as selection_markdown

        selected = select_rows(rows, cfg)
        selected.to_csv(out / "selected.csv", index=False)
        md += ["", "## One setting per method, chosen by one rule", "", selection_markdown(selected, cfg)]
        written.append(out / "selected.csv")
    md += durability_section(records, out, cfg.columns)  # eval.attacks: clean vs attacked, against the oracle
    unmemorized = sorted(records[~records.memorized.astype(bool)].job.unique())
    if unmemorized:
        md += ["", "## Runs whose target was not memorized (forget MA below memorize.ma_threshold; not ranked)", ""]
        md += [f"- {job}" for job in unmemorized]
    statuses = load_statuses(root)
    if statuses:
        pd.DataFrame(statuses).to_csv(out / "failed.csv", index=False)
        md += ["", "## Failed, diverged or skipped jobs (overrides in failed.csv)", "",
               pd.DataFrame(statuses).drop(columns="overrides").to_markdown(index=False)]
        written.append(out / "failed.csv")
    sanity_md, sanity_files = sanity_section(records, root, out, cfg.sanity)
    md += sanity_md
    written += sanity_files
    if cfg.get("compare"):
        files, text = write_comparison(records, root, out, cfg)
        written += files
        print(text)
    write_text(out / "table.md", "\n".join(md) + "\n")
    written += [Path(p) for p in tradeoff_figure(rows, cfg.plots, out / "tradeoff")]
    return written
