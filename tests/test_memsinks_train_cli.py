"""`python -m unlearn.train`: config composition, and one clear line + exit 2 + no run directory on a bad
p_gen / p_mem or a corpus too small for R repetitions; one tiny in-process run for the device policy, the
token budget and the evaluation mode."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, SHARED_DATA, compose
from unlearn.errors import ConfigError
from unlearn.memsinks.pipeline import run_training, standard_key, validate

needs_data = pytest.mark.skipif(not (SHARED_DATA / "wikitext2_raw").is_dir(), reason="needs the shared data folder")


@pytest.mark.parametrize("overrides,message", [
    (["paradigm.sinks.p_gen=0"], "p_gen=0"),
    (["paradigm.sinks.p_mem=0"], "p_mem=0"),
    (["paradigm.sinks.p_gen=0.95", "paradigm.sinks.p_mem=0.1"], "p_gen + sinks.p_mem = 1.05 > 1"),
    (["id_noise=1.0"], "id_noise"),
    (["paradigm=posthoc", "paradigm.methods=[emso,nope]"], "nope"),
    (["eval.precision=fp16"], "eval.precision='fp16'"),
    (["eval.decode_cache=bogus"], "eval.decode_cache='bogus'"),
    (["paradigm.eval_mode=own"], "paradigm.eval_mode='own'"),
])
def test_bad_settings_fail_before_anything_loads(overrides, message):
    cfg = compose(overrides, config_name="train")
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        validate(cfg)


def test_experiment_composes():
    cfg = compose(["experiment=memsinks_compare"], config_name="train")
    assert cfg.paradigm.name == "memsinks" and cfg.model.arch == "llama"


def _run(tmp_path, *overrides):
    env = {**os.environ, "UNLEARN_DATA_DIR": str(SHARED_DATA), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "unlearn.train", f"paths.output_dir={tmp_path}", f"paths.cache_dir={tmp_path}/c",
                           *overrides], cwd=REPO, env=env, capture_output=True, text=True)


def test_cli_bad_fractions_one_line_no_run_dir(tmp_path):
    out = _run(tmp_path, "paradigm.sinks.p_gen=0.95", "paradigm.sinks.p_mem=0.1")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == ("error: sinks.p_gen + sinks.p_mem = 1.05 > 1; lower one so general and "
                                                   "active sink units fit in the MLP")
    assert not [p for p in (tmp_path / "train").rglob("*") if p.is_file()] if (tmp_path / "train").exists() else True


@needs_data
def test_cli_corpus_too_small_for_r(tmp_path):
    out = _run(tmp_path, "corpus.repetitions=5000")
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the general corpus is too small for R=5000 repetitions"), last
    assert not [p for p in (tmp_path / "train").rglob("*") if p.is_file()] if (tmp_path / "train").exists() else True


# Seconds on a CPU: 2 optimizer steps of 2 accumulated batches, MA only; bf16 evaluation, sinks at their expectation.
TINY_RUN = ["train.max_steps=2", "train.batch_size=2", "train.seq_len=32", "train.eval_every=0", "train.n_validation=2",
            "train.max_doc_tokens=48", "corpus.max_general_docs=20", "corpus.n_repeated=2", "corpus.n_heldout=2",
            "corpus.repetitions=2", "trainer.progress_bar=false", "trainer.accumulate_grad_batches=2", "eval.batch_size=4",
            "eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget,holdout]}]",
            "eval.precision=bf16", "eval.decode_cache=static", "paradigm.eval_mode=all"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    cfg = compose(TINY_RUN + [f"paths.output_dir={out}", f"paths.cache_dir={out}/c"], config_name="train")
    [results] = run_training(cfg, out / "run")
    return cfg, results, out / "run"


@needs_data
def test_models_are_evaluated_in_eval_precision(tiny_run):
    """eval.precision=bf16 was ignored: every number came from the fp32 models. The standard model's final
    gap log (GapLogger, fp32, same weights and documents) must now differ from its bf16 record, by bf16 noise."""
    cfg, results, _ = tiny_run
    assert results["eval_placement"] == {"eval_device": "cpu", "eval_precision": "bf16"}
    assert {r["details"]["eval_precision"] for r in results["records"]} == {"bf16"}
    card = json.loads((Path(cfg.paths.cache_dir) / "memsinks" / standard_key(cfg, Path(cfg.paths.cache_dir)) / "standard"
                       / "card.json").read_text())
    fp32 = card["history"][-1]["repeated/loss"]
    [bf16] = [r["value"] for r in results["records"] if r["model"] == "target" and r["metric"] == "loss" and r["split"] == "repeated"]
    assert bf16 != fp32 and abs(bf16 - fp32) < 0.1


@needs_data
def test_tokens_trained_counts_accumulated_batches(tiny_run):
    """At accumulate_grad_batches=2 each optimizer step trains 2 batches; the count was half the tokens."""
    _, results, _ = tiny_run
    for info in (results["train"], results["standard"]):
        assert info["steps"] == 2 and info["accumulate_grad_batches"] == 2 and info["world_size"] == 1
        assert info["tokens_trained"] == 2 * 2 * 32 * 2


@needs_data
def test_sink_model_is_evaluated_and_saved_in_eval_mode(tiny_run):
    """paradigm.eval_mode=all: the losses were the dropped-sink ones whatever the mode, and a reload was in drop."""
    from unlearn.models.load import _load_local

    _, results, run_dir = tiny_run
    modes = {r["metric"]: r["details"].get("sink_mode") for r in results["records"] if r["model"] == "unlearned"}
    assert modes["loss"] == modes["memgap"] == modes["val_loss"] == "all" and modes["memgap_sinks_on"] == "own"
    loaded, _ = _load_local(run_dir / "model", torch.float32)
    assert loaded.sink_controller.mode == "all"
