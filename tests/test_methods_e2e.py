"""Every registered method end to end on the tiny setup: memorize -> unlearn -> evaluate -> results.json.

The overrides shrink each paper default to seconds (tiny model, a few epochs, a larger lr or γ) so the
forget set is visibly erased. The target's forget MA comes from the memorize card, so only the unlearned
model is evaluated, on the forget set and utility text.
"""
import json

import pytest

from tests.conftest import SHARED_DATA, TINY, compose
from unlearn.methods import METHODS
from unlearn.workflows.run_pipeline import run_pipeline

# Forget-set memorization and utility perplexity of the unlearned model: what every method must report.
EVAL = ["eval.models=[unlearned]", "eval.batch_size=16",
        "eval.metrics=[{name: ma, label: MA, splits: [forget]}, {name: el, label: EL_3, n: 3, splits: [forget]},"
        " {name: ppl, label: PPL, splits: [utility]}]"]
TRAIN = ["method.lr=5e-3", "method.batch_size=4", "method.max_epochs=3", "method.early_stop.enabled=false"]
TOFU = ["data=tofu", "data.n_forget=4", "data.n_retain=4", "data.n_holdout=2", "memorize.max_epochs=40", "memorize.oracle=false", f"paths.data_root={SHARED_DATA}"]
RUNS = {
    "ga": TRAIN,
    "gd": TRAIN,
    "kl": TRAIN,
    "di": TRAIN,
    "ta": ["method.memorized.lr=3e-3", "method.gamma=1.0"],
    "cd": ["method.memorized.lr=3e-3", "method.gamma=1.0"],
    "me_gd": TRAIN + ["method.forget_coeff=1.0"],
    # EL decodes from every prefix of question + answer: too slow here, and MA already shows the erasure.
    "idk_ap": TRAIN + TOFU + ["eval.metrics=[{name: ma, label: MA, splits: [forget]}, {name: ppl, label: PPL, splits: [utility]}]"],
    "emso": ["method.lr=3e-2", "method.batch_size=4", "method.max_epochs=4", "method.early_stop.enabled=false"],
    "pdu": TRAIN + ["method.dual_warmup_epochs=1", "method.dual_init=1.0"],
}


def test_every_registered_method_has_an_end_to_end_run():
    assert set(RUNS) == set(METHODS)


def _value(records, split, metric):
    return next(r["value"] for r in records if (r["model"], r["split"], r["metric"]) == ("unlearned", split, metric))


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(RUNS))
def test_method_runs_end_to_end_and_erases(tmp_path, cache_dir, method):
    if method == "idk_ap" and not (SHARED_DATA / "tofu").is_dir():
        pytest.skip("TOFU is in the shared data folder, which is not present")
    cfg = compose(TINY + [f"paths.cache_dir={cache_dir}", f"method={method}", *EVAL, "save_model=true",
                          *RUNS[method]])
    run_pipeline(cfg, tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    records = results["records"]
    assert {(r["split"], r["metric"]) for r in records} >= {("forget", "MA"), ("utility", "PPL")}
    target_ma = results["memorize"]["forget_ma"]
    assert _value(records, "forget", "MA") < target_ma - 0.05, (method, target_ma, _value(records, "forget", "MA"))
    saved = tmp_path / "model"
    assert (saved / "contrastive.json").is_file() if method == "cd" else (saved / "model.safetensors").is_file()
    trains = METHODS[method].trains
    assert (results["unlearn"]["steps"] > 0) == trains
    if method == "pdu":
        lambdas = [h["lambda"] for h in results["unlearn"]["history"] if "lambda" in h]
        assert len(lambdas) == 3 and min(lambdas) >= 0 and lambdas[-1] != 1.0  # moved after the warm-up epoch
