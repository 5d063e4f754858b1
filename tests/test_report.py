"""`python -m unlearn.report` on hand-written results.json files: EMSO Table 1 shape, best / second-best
marks per metric direction, collapsed models marked and kept out of the ranking, oracle distance, plots."""
import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO


def _job(root, name, method, knob, strength, unlearned, collapse=None, strength_in_results=True, holdout_ppl=35.0):
    """One job dir: results.json with target/oracle/unlearned records and the config.yaml the pipeline writes."""
    target = {"MA": 0.9, "EL_3": 0.6, "PPL": 20.0, "MAUVE": 0.9, "Rep_2": 0.05}
    oracle = {"MA": 0.2, "EL_3": 0.05, "PPL": 21.0, "MAUVE": 0.88, "Rep_2": 0.05}
    split = {"MA": "forget", "EL_3": "forget", "PPL": "utility", "MAUVE": "utility", "Rep_2": "utility"}
    records = [{"model": role, "split": split[m], "metric": m, "value": v, "n": 8, "details": {}}
               for role, values in (("target", target), ("oracle", oracle), ("unlearned", unlearned))
               for m, v in values.items()]
    records.append({"model": "target", "split": "holdout", "metric": "MA", "value": 0.3, "n": 8, "details": {}})
    # Perplexity on a second split: its own labelled column (PPL_holdout), never mixed with utility PPL.
    records += [{"model": role, "split": "holdout", "metric": "PPL", "value": v, "n": 4, "details": {}}
                for role, v in (("target", 30.0), ("oracle", 40.0), ("unlearned", holdout_ppl))]
    if collapse is not None:
        records.append({"model": "unlearned", "split": "utility", "metric": "collapse", "value": collapse, "n": 8, "details": {}})
    job = root / name
    job.mkdir(parents=True)
    results = {"run_name": name, "method": method, "model": "gpt-neo-125m", "data": "extraction_challenge", "seed": 0,
               "records": records}
    if strength_in_results:
        results["strength"] = strength
    (job / "results.json").write_text(json.dumps(results))
    (job / "config.yaml").write_text(yaml.safe_dump({"method": {"name": method, "strength_knob": knob, knob: strength}}))


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    _job(root, "0_emso", "emso", "max_epochs", 1, {"MA": 0.30, "EL_3": 0.10, "PPL": 20.5, "MAUVE": 0.85, "Rep_2": 0.06})
    _job(root, "1_emso", "emso", "max_epochs", 3, {"MA": 0.20, "EL_3": 0.04, "PPL": 21.5, "MAUVE": 0.80, "Rep_2": 0.07},
         strength_in_results=False)  # strength read back from config.yaml
    # Best memorization numbers of all, but an explicit collapse record: marked, never ranked.
    _job(root, "2_ga", "ga", "max_epochs", 2, {"MA": 0.0, "EL_3": 0.0, "PPL": 900.0, "MAUVE": 0.01, "Rep_2": 0.9},
         collapse=1.0)
    # No collapse record, but Rep_2 above the configured threshold: collapsed by the fallback rule.
    _job(root, "3_di", "di", "gamma", 8.0, {"MA": 0.10, "EL_3": 0.02, "PPL": 22.0, "MAUVE": 0.7, "Rep_2": 0.6})
    # collapse record 0.0 says "not collapsed", and it wins over the thresholds.
    _job(root, "4_ta", "ta", "gamma", 0.05, {"MA": 0.25, "EL_3": 0.08, "PPL": 20.2, "MAUVE": 0.87, "Rep_2": 0.55},
         collapse=0.0)
    # Fine on utility text, but holdout perplexity 400 > 10x the target's 30: collapsed by the holdout rule.
    _job(root, "6_kl", "kl", "max_epochs", 5, {"MA": 0.05, "EL_3": 0.01, "PPL": 20.1, "MAUVE": 0.9, "Rep_2": 0.05},
         holdout_ppl=400.0)
    (root / "5_cd").mkdir()
    (root / "5_cd" / "failed.json").write_text(json.dumps({"status": "failed", "error": "CUDA out of memory", "overrides": ["method=cd"]}))
    return root


def test_report_marks_best_and_second_and_excludes_collapsed(sweep):
    proc = subprocess.run([sys.executable, "-m", "unlearn.report", str(sweep)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = sweep / "report"
    table = pd.read_csv(out / "table.csv")
    rows = {(r.method, r.strength if r.kind == "method" else None): r for r in table.itertuples()}
    assert list(table.method[:2]) == ["target", "oracle"]           # reference rows first, not ranked
    assert {m for m in table.columns if not m.endswith("_mark")} >= {"EL_3", "MA", "PPL", "MAUVE", "Rep_2"}
    assert "SS" not in table.columns                                # metric no job produced: no column
    assert list(table.PPL[:2]) == [20.0, 21.0] and list(table.PPL_holdout[:2]) == [30.0, 40.0]

    ga, di, ta = rows[("ga", 2.0)], rows[("di", 8.0)], rows[("ta", 0.05)]
    emso1, emso3 = rows[("emso", 1.0)], rows[("emso", 3.0)]
    assert ga.collapsed and di.collapsed and not ta.collapsed and not emso3.collapsed
    assert pd.isna(ga.MA_mark) and pd.isna(di.MA_mark)              # collapsed rows get no marks
    # MA (lower better) among emso1 0.30, emso3 0.20, ta 0.25: emso3 best, ta second.
    assert (emso3.MA_mark, ta.MA_mark, emso1.MA_mark) == ("best", "second", pytest.approx(float("nan"), nan_ok=True))
    # MAUVE (higher better): ta 0.87 best, emso1 0.85 second.
    assert (ta.MAUVE_mark, emso1.MAUVE_mark) == ("best", "second")
    # PPL (lower better): ta 20.2 best, emso1 20.5 second.
    assert (ta.PPL_mark, emso1.PPL_mark) == ("best", "second")

    kl = rows[("kl", 5.0)]
    assert kl.collapsed and kl.MA_mark != "best"  # best MA of all, but ranked out
    md = (out / "table.md").read_text()
    assert "kl†" in md and "ga†" in md and "di†" in md and "**0.200**" in md and "_0.250_" in md
    assert "CUDA out of memory" in md and (out / "failed.csv").is_file()

    gap = pd.read_csv(out / "oracle_gap.csv")
    emso3_gap = gap[(gap.method == "emso") & (gap.strength == 3)].iloc[0]
    assert emso3_gap.MA == pytest.approx(0.0) and emso3_gap.PPL == pytest.approx(0.5)
    assert emso3_gap.PPL_holdout == pytest.approx(5.0)
    # Scale-free summary: each column's gap relative to the oracle's value, averaged over columns.
    relative = [0.01 / 0.05, 0.0, 0.5 / 21.0, 5.0 / 40.0, 0.02 / 0.05, 0.08 / 0.88]
    assert emso3_gap.mean_rel_gap == pytest.approx(sum(relative) / len(relative))
    (png,) = out.glob("tradeoff_*.png")
    assert png.stat().st_size > 10_000


def test_report_on_empty_dir_fails_clearly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "unlearn.report", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "no results.json" in proc.stderr
