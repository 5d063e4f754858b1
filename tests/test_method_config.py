"""Every method's default config validates, and bad hyperparameters fail at config time, before any model loads."""
import pytest

from tests.conftest import TINY, compose
from unlearn.errors import ConfigError
from unlearn.methods import METHODS, TrainingFreeMethod, UnlearningModule
from unlearn.workflows.run_pipeline import run_pipeline, validate_config


def _data_for(method):
    return ["data=tofu"] if METHODS[method].needs_qa else []


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_composes_and_validates_with_its_defaults(method):
    cfg = compose([f"method={method}", *_data_for(method)])
    assert cfg.method.name == method
    validate_config(cfg)
    cls = METHODS[method]
    assert issubclass(cls, UnlearningModule) if cls.trains else issubclass(cls, TrainingFreeMethod)


BAD = [
    ("gd", ["method.gamma=-1"], "method.gamma must be >= 0"),
    ("gd", ["method.alpha=-0.5"], "method.alpha must be >= 0"),
    ("kl", ["method.positions=everywhere"], "method.positions='everywhere'"),
    ("di", ["method.gamma=-3"], "method.gamma must be >= 0"),
    ("ta", ["method.gamma=-0.05"], "method.gamma must be >= 0"),
    ("ta", ["method.mode=add"], "method.mode='add'"),
    ("ta", ["method.memorized.epochs=0"], "method.memorized.epochs must be >= 1"),
    ("cd", ["method.gamma=-0.3"], "method.gamma must be >= 0"),
    ("me_gd", ["method.variant=kl_p_u"], "method.variant='kl_p_u'"),
    ("me_gd", ["method.positions=labels"], "method.positions='labels'"),
    ("idk_ap", ["data=tofu", "method.beta=0"], "method.beta must be > 0"),
    ("idk_ap", [], "needs question/answer data"),
    ("pdu", ["method.eps_mode=absolute", "method.eps=0"], "method.eps must be > 0"),
    ("pdu", ["method.eps_mode=absolute", "method.eps=-0.3"], "method.eps must be > 0"),
    ("pdu", ["method.retain_tolerance=0"], "method.retain_tolerance must be > 0"),
    ("pdu", ["method.dual_init=-1"], "method.dual_init must be >= 0"),
    ("pdu", ["method.dual_update_upon=batch"], "method.dual_update_upon='batch'"),
    ("gd", ["data.n_retain=0"], "trains on a retain set but data.n_retain=0"),
    ("pdu", ["data.n_retain=0"], "trains on a retain set but data.n_retain=0"),
]


@pytest.mark.parametrize("method,overrides,message", BAD, ids=[f"{m}:{' '.join(o)}" for m, o, _ in BAD])
def test_bad_hyperparameters_fail_at_config_time(method, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_config(compose([f"method={method}", *overrides]))


@pytest.mark.parametrize("model", ["tiny-gpt-neo", "tiny-llama"])
def test_emso_k_is_checked_against_the_architecture_without_building_the_model(model):
    from unlearn.models.blocks import enumerate_blocks
    from unlearn.models.tiny import build_tiny_model

    spec = compose([f"model={model}"]).model
    available = len(enumerate_blocks(build_tiny_model(spec, spec.vocab_size, seed=0)))
    validate_config(compose([f"model={model}", "method=emso", f"method.k={available}"]))
    with pytest.raises(ConfigError, match=f"method.k={available + 1} but the model has only {available} candidate blocks"):
        validate_config(compose([f"model={model}", "method=emso", f"method.k={available + 1}"]))


def test_a_bad_value_stops_the_run_before_any_model_or_data_is_touched(tmp_path):
    cache = tmp_path / "cache"
    cfg = compose(TINY + [f"paths.cache_dir={cache}", "method=gd", "method.gamma=-1"])
    with pytest.raises(ConfigError, match="gamma"):
        run_pipeline(cfg, tmp_path / "run")
    assert not cache.exists() and not (tmp_path / "run").exists()
