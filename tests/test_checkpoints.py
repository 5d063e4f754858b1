"""Resumable fits, in process: a fit stopped after 2 epochs and resumed to 4 equals a 4-epoch fit bit for bit
(weights, optimizer, data order, callback state), and a fit that stopped early stays stopped on resume."""
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import TINY, compose
from unlearn.methods.callbacks import MemorizationTarget
from unlearn.stages.memorize import _finetune, _merge


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from unlearn.data.encode import encode_split
    from unlearn.models.load import load_model
    from unlearn.workflows.run_pipeline import build_splits

    cfg = compose(TINY + [f"paths.cache_dir={tmp_path_factory.mktemp('cache')}", "data.n_forget=4", "data.n_retain=4"])
    splits = build_splits(cfg.data, None)
    base, tok = load_model(cfg.model, None, corpus=[r.text for n in ("forget", "retain", "holdout") for r in splits.by_name(n)])
    enc = {n: encode_split(splits.by_name(n), tok, 512, False, 8) for n in ("forget", "retain")}
    mem = OmegaConf.merge(cfg.memorize, {"batch_size": 2})  # several batches per epoch: the order matters
    return cfg, base, tok, enc, mem


def fit(setup, epochs, resume_dir, threshold=None):
    cfg, base, tok, enc, mem = setup
    watch = MemorizationTarget(enc["forget"].input_ids, tok.pad_token_id, threshold)
    model = _finetune(base, tok, _merge(enc["forget"], enc["retain"]), mem, cfg.trainer, epochs, 0, [watch], resume_dir)
    return model, watch


def same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resumed_fit_equals_the_uninterrupted_fit(setup, tmp_path):
    straight, watch = fit(setup, 4, tmp_path / "a")
    fit(setup, 2, tmp_path / "b")
    resumed, watch_resumed = fit(setup, 4, tmp_path / "b")
    assert same(straight, resumed)
    assert (watch.ma, watch.epochs) == (watch_resumed.ma, watch_resumed.epochs)


def test_resume_checkpoints_are_throttled_by_resume_every_s(setup, tmp_path):
    cfg, base, tok, enc, mem = setup
    every_epoch, throttled = (OmegaConf.merge(cfg.trainer, {"resume_every_s": s}) for s in (0, 3600))
    for trainer_cfg, folder in ((every_epoch, tmp_path / "a"), (throttled, tmp_path / "b")):
        _finetune(base, tok, _merge(enc["forget"], enc["retain"]), mem, trainer_cfg, 2, 0, [], folder)
    assert (tmp_path / "a" / "last.ckpt").is_file() and not (tmp_path / "b" / "last.ckpt").exists()


def test_a_fit_that_stopped_stays_stopped(setup, tmp_path):
    first, watch = fit(setup, 5, tmp_path / "c", threshold=0.0)  # MA >= 0 after epoch 1: stops there
    assert watch.epochs == 1
    again, watch_again = fit(setup, 5, tmp_path / "c", threshold=0.0)
    assert watch_again.epochs == 1 and same(first, again)  # no further epoch after the resume


def test_resumed_emso_fit_selects_and_trains_like_the_uninterrupted_fit(tiny_setup, tmp_path):
    """EMSO draws its selection batch and random tie-breaks from its own generator, and trains only the
    selected blocks: a resumed fit must restore both (method_state), or it picks other blocks after the resume."""
    from unlearn.stages.unlearn import unlearn

    def run(epochs, run_dir):
        cfg = compose(TINY + ["method=emso", f"method.max_epochs={epochs}", "method.early_stop.enabled=false",
                              "method.reselect_every=epoch", "method.batch_size=4"])
        s = tiny_setup
        return unlearn(s["target"], s["tokenizer"], {"forget": s["encoded"]["forget"]}, [], cfg.method, cfg.trainer, run_dir,
                       False, 0)

    straight, info = run(4, tmp_path / "a")
    run(2, tmp_path / "b")
    resumed, info_resumed = run(4, tmp_path / "b")
    assert [h["blocks"] for h in info["history"]] == [h["blocks"] for h in info_resumed["history"]]
    assert same(straight, resumed)
