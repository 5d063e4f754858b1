"""The shipped suites run offline on the default SmolLM2 setup (shrunk further here to keep CI short)."""
import json

import pytest

from tests.conftest import SHARED_DATA, compose
from unlearn.workflows.evaluate_saved import run_evaluation

pytestmark = [pytest.mark.smollm2, pytest.mark.slow,
              pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data folder not present")]

SUITES = {
    "emso_table1": ["eval.wikitext.n=2", "eval.wikitext.max_new_tokens=8"],
    "reasoning": ["eval.reasoning.tasks=[copa,winogrande]", "eval.reasoning.limit=2",
                  "eval.metrics.0.splits=[copa,winogrande,mean]", "eval.metrics.1.splits=[copa]"],
    "tofu": ["eval.tofu.limit=1", "eval.tofu.max_new_tokens=4"],
}


@pytest.mark.parametrize("suite", list(SUITES))
def test_suite_runs_offline_on_smollm2(suite, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_DATA_DIR", str(SHARED_DATA))
    cfg = compose([f"eval={suite}", f"paths.output_dir={tmp_path}", "original=smollm2", *SUITES[suite]], config_name="evaluate")
    results = run_evaluation(cfg, tmp_path)
    records = results["records"]
    assert records and all(r["model"] == "smollm2-135m" for r in records)
    computed = [r for r in records if r["value"] is not None]
    skipped = {(r["split"], r["metric"]): r["details"]["skipped"] for r in records if r["value"] is None}
    assert computed, skipped
    expected_skips = {
        "emso_table1": set(),
        "reasoning": {("winogrande", "acc")},  # no local copy, no hub
        "tofu": {("tofu_forget", "FQ"), ("all", "MU_closer_look"), ("tofu_forget", "FE")}
        | {(s, "ES") for s in ("tofu_forget", "tofu_retain", "real_authors", "world_facts")},
    }[suite]
    assert set(skipped) == expected_skips, skipped
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert len(on_disk["records"]) == len(records)
    assert "skipped [" in (tmp_path / "results.md").read_text() or not expected_skips
