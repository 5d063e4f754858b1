"""Experiment configs and launcher configs compose: every experiment, EMSO Table 1 at every model size
with the paper's batch/accumulation, the trade-off grid's per-method strengths, and the SLURM launcher."""
import importlib.util

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from tests.conftest import CONF, compose
from unlearn.sweep import apply_strength, skip_reason

EXPERIMENTS = sorted(f.stem for f in (CONF / "experiment").glob("*.yaml"))


def compose_with_hydra(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="run", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_with_a_sweep(name):
    cfg = compose_with_hydra([f"experiment={name}"])
    assert cfg.hydra.sweeper.params, f"{name} sets no hydra.sweeper.params"
    apply_strength(cfg)  # every interpolation resolves
    assert cfg.method.name and cfg.model.name


@pytest.mark.parametrize("model,batch,accum", [("gpt-neo-125m", 64, 1), ("gpt-neo-1.3b", 16, 4), ("gpt-neo-2.7b", 8, 8)])
def test_emso_table1_batch_by_model_size(model, batch, accum):
    for method in ("emso", "ga", "di"):
        cfg = compose(["experiment=emso_table1", f"model={model}", f"method={method}"])
        assert (cfg.method.batch_size, cfg.trainer.accumulate_grad_batches) == (batch, accum)
        assert cfg.method.early_stop.enabled and cfg.method.early_stop.ratio == 1.03
        assert cfg.data.name == "extraction_challenge"


@pytest.mark.parametrize("method,level,expected", [("emso", 6, 7), ("di", 3, 10.0), ("ta", 0, 0.04), ("cd", 2, 0.7),
                                                   ("di", 4, None)])
def test_emso_tradeoff_strength_per_method_and_level(method, level, expected):
    cfg = compose(["experiment=emso_tradeoff", f"method={method}", f"level={level}"])
    apply_strength(cfg)
    if expected is None:
        assert skip_reason(cfg) and "past" in skip_reason(cfg)
    else:
        assert cfg.method[cfg.method.strength_knob] == expected and skip_reason(cfg) is None


def test_tofu_splits_follow_the_forget_split():
    cfg = compose(["experiment=closer_look_tofu", "method=me_gd", "data.forget_split=forget10"])
    assert (cfg.data.retain_split, cfg.data.holdout_split, cfg.data.n_forget) == ("retain90", "holdout10", 400)


def test_every_method_names_a_strength_knob_that_exists():
    for f in (CONF / "method").glob("*.yaml"):
        cfg = compose([f"method={f.stem}", "strength=2"])
        apply_strength(cfg)
        assert cfg.method[cfg.method.strength_knob] == 2


def test_joblib_launcher_composes():
    cfg = compose_with_hydra(["hydra/launcher=parallel"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="hydra-submitit-launcher is not installed (pip install hydra-submitit-launcher)")
def test_slurm_launcher_composes():
    cfg = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "experiment=emso_table1"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.partition, launcher.timeout_min) == (1, "gpu", 240)
