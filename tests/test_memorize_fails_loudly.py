"""A target that did not memorize stops the run with one clear error; allowed explicitly, it is marked
`not memorized` in results and the report; a diverging fine-tune is stopped at once; a failed or stale
cached target is never reused as good."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO, TINY, compose, memorize_tiny
from tests.test_report import _job
from tests.test_run_cli import run_cli
from unlearn.errors import UnlearnError

UNDER = ["memorize.max_epochs=1", "memorize.oracle=false", "memorize.general_samples=0"]  # 1 epoch: MA far below 0.9


def test_target_below_threshold_stops_the_cli_with_one_line(tmp_path):
    proc = run_cli(TINY + UNDER + [f"paths.cache_dir={tmp_path / 'cache'}"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "did not memorize the forget set" in proc.stderr and "memorize.allow_below_threshold=true" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "out").rglob("results.json")) and not list((tmp_path / "out").rglob("config.yaml"))
    assert not (tmp_path / "cache" / "memorized").exists() or not list((tmp_path / "cache" / "memorized").rglob("card.json"))


def test_allowed_below_threshold_is_marked_and_its_cache_never_passes_as_good(tmp_path):
    cache = tmp_path / "cache"
    cfg = compose(TINY + UNDER + [f"paths.cache_dir={cache}", "memorize.allow_below_threshold=true"])
    card = memorize_tiny(cfg)["card"]
    assert card["status"] == "not memorized" and not card["reached_threshold"] and card["forget_ma"] < 0.9
    # Same recipe without the permission: the cached failed target is found (same key) and refused.
    with pytest.raises(UnlearnError, match="did not memorize.*cached result"):
        memorize_tiny(compose(TINY + UNDER + [f"paths.cache_dir={cache}"]))
    again = memorize_tiny(cfg)["card"]
    assert again["cached"] and again["key"] == card["key"] and again["status"] == "not memorized"


def test_results_mark_a_target_that_is_not_memorized(tmp_path):
    from unlearn.workflows.run_pipeline import run_pipeline

    cfg = compose(TINY + UNDER + [f"paths.cache_dir={tmp_path / 'cache'}", "memorize.allow_below_threshold=true", "method=ga",
                                  "method.max_epochs=1", "eval.models=[target,unlearned]",
                                  "eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget]}]"])
    results = run_pipeline(cfg, tmp_path / "run")
    assert results["memorize"]["status"] == "not memorized"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["memorize"]["reached_threshold"] is False
    md = (tmp_path / "run" / "results.md").read_text()
    assert "| target (not memorized) |" in md and "**not memorized**" in md


def test_diverging_finetune_is_stopped_during_training(tmp_path):
    # lr 3 is far past stability: the loss blows up within the first epochs; without the guard the fine-tune
    # would run all 12 epochs before the threshold check.
    cfg = compose(TINY + [f"paths.cache_dir={tmp_path}", "memorize.lr=3.0", "memorize.max_epochs=12", "memorize.oracle=false",
                          "memorize.general_samples=0", "memorize.allow_below_threshold=true"])
    card = memorize_tiny(cfg)["card"]
    assert card["diverged"] and not card["reached_threshold"]
    assert card["epochs"] <= 5, card


def test_memorize_key_includes_the_code_that_builds_it(tmp_path, monkeypatch):
    import unlearn.stages.memorize as memorize_module

    cfg = compose(TINY + UNDER + [f"paths.cache_dir={tmp_path}", "memorize.allow_below_threshold=true"])
    first = memorize_tiny(cfg)["card"]
    monkeypatch.setattr(memorize_module, "code_hash", lambda paths: "edited-fine-tune-code")
    edited = memorize_tiny(cfg)["card"]
    assert edited["key"] != first["key"] and not edited["cached"]


def test_report_flags_runs_on_an_unmemorized_target_and_leaves_them_unranked(tmp_path):
    root = tmp_path / "sweep"
    _job(root, "0_emso", "emso", "max_epochs", 1, {"MA": 0.30, "EL_3": 0.10, "PPL": 20.5, "MAUVE": 0.85, "Rep_2": 0.06})
    _job(root, "1_ga", "ga", "max_epochs", 1, {"MA": 0.35, "EL_3": 0.12, "PPL": 20.9, "MAUVE": 0.80, "Rep_2": 0.07})
    # The best numbers of all, on a target that never memorized: flagged, never ranked.
    _job(root, "2_di", "di", "gamma", 8.0, {"MA": 0.01, "EL_3": 0.01, "PPL": 20.0, "MAUVE": 0.9, "Rep_2": 0.05})
    path = root / "2_di" / "results.json"
    results = json.loads(path.read_text())
    results["memorize"] = {"status": "not memorized", "reached_threshold": False, "forget_ma": 0.15}
    path.write_text(json.dumps(results))
    proc = subprocess.run([sys.executable, "-m", "unlearn.report", str(root)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(root / "report" / "table.csv")
    di = table[table.method == "di"].iloc[0]
    assert di.not_memorized and pd.isna(di.MA_mark) and pd.isna(di.PPL_mark)
    assert table[table.method == "emso"].iloc[0].MA_mark == "best"
    md = (root / "report" / "table.md").read_text()
    assert "di‡" in md and "not memorized" in md and "2_di" in md
