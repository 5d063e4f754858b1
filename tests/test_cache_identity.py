"""Cache keys and run identities are derived from everything a build reads (issue #20, item 1).

Each test puts back one way a key was wrong before: a local model keyed by its folder's name, data keyed by
record ids only, trainer settings from a hand-kept list, run identities and evaluation stores without a code
version."""
import contextlib
import copy
import json

import pytest
from omegaconf import OmegaConf

from tests.conftest import TINY, compose
from unlearn.storage import code_hash as code_hash_module
from unlearn.storage.code_hash import PACKAGE


@pytest.fixture(scope="module")
def splits():
    from unlearn.workflows.run_pipeline import build_splits

    return build_splits(compose(TINY).data, None)


@pytest.fixture(scope="module")
def local_model(tmp_path_factory, splits):
    """A saved tiny GPT-Neo folder, and a second set of weights of the same shapes to overwrite it with."""
    from unlearn.models.load import load_model, save_model

    spec = compose(TINY).model
    folder = tmp_path_factory.mktemp("local") / "model"
    model, tok = load_model(spec, None, corpus=splits.texts(), seed=0)
    save_model(model, tok, folder)
    other = tmp_path_factory.mktemp("other") / "model"
    save_model(load_model(spec, None, corpus=splits.texts(), seed=1)[0], tok, other)
    return folder, other


def _local_cfg(folder, cache):
    return compose(TINY + ["model=local", f"model.name_or_path={folder}", f"paths.cache_dir={cache}"])


def test_overwritten_local_weights_move_the_target_key(local_model, splits, tmp_path):
    """The review's finding: same folder, other weights, and the old target's records were reused."""
    from unlearn.stages.memorize import key_material, memorize_key

    folder, other = local_model
    cfg = _local_cfg(folder, tmp_path)
    before = memorize_key(key_material(cfg, splits, tmp_path), cfg.memorize, cfg.trainer, {})
    again = memorize_key(key_material(cfg, splits, tmp_path), cfg.memorize, cfg.trainer, {})
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    after = memorize_key(key_material(cfg, splits, tmp_path), cfg.memorize, cfg.trainer, {})
    assert before == again
    assert after != before


def test_run_identity_follows_local_weights(local_model, tmp_path):
    from unlearn.stages.resume import run_identity

    folder, other = local_model
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    cfg = _local_cfg(folder, tmp_path)
    before = run_identity(cfg)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    assert run_identity(cfg) != before


def test_edited_records_with_the_same_ids_move_the_target_key(splits, tmp_path):
    from dataclasses import replace

    from unlearn.stages.memorize import key_material

    cfg = compose(TINY + [f"paths.cache_dir={tmp_path}"])
    edited = replace(splits, forget=[replace(splits.forget[0], text=splits.forget[0].text + " Edited.")] + splits.forget[1:])
    assert edited.ids() == splits.ids()
    assert key_material(cfg, edited, tmp_path) != key_material(cfg, splits, tmp_path)


# Each changes what a fit builds; the last is a setting nobody has written yet (derived, not listed).
TRAINER_CHANGES = {"accumulate_grad_batches": 4, "gradient_clip_val": 1.0, "devices": 2, "precision": "bf16-mixed",
                   "a_setting_added_later": 1}


def _with(cfg, **trainer):
    """`cfg` with trainer settings changed or added, as a command-line override would (one compose for all)."""
    changed = copy.deepcopy(cfg)
    for key, value in trainer.items():
        OmegaConf.update(changed, f"trainer.{key}", value, force_add=True)
    return changed


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    return compose(TINY + [f"paths.cache_dir={tmp_path_factory.mktemp('cache')}"])


@pytest.mark.parametrize("setting", TRAINER_CHANGES)
def test_every_trainer_setting_moves_the_target_key(splits, tiny_cfg, setting):
    from unlearn.stages.memorize import key_material, memorize_key

    material = key_material(tiny_cfg, splits, tiny_cfg.paths.cache_dir)

    def key(cfg):
        return memorize_key(material, cfg.memorize, cfg.trainer, {})

    assert key(_with(tiny_cfg, **{setting: TRAINER_CHANGES[setting]})) != key(tiny_cfg)


def test_display_settings_do_not_move_the_target_key(splits, tiny_cfg):
    from unlearn.stages.memorize import key_material, memorize_key

    material = key_material(tiny_cfg, splits, tiny_cfg.paths.cache_dir)
    shown = _with(tiny_cfg, progress_bar=True, resume_every_s=60)
    assert memorize_key(material, shown.memorize, shown.trainer, {}) == memorize_key(material, tiny_cfg.memorize, tiny_cfg.trainer, {})


@contextlib.contextmanager
def edited_code(subpackage: str):
    """A real edit of the package's source: one more file under `subpackage`, removed afterwards."""
    extra = PACKAGE / subpackage / "_edit_by_test_cache_identity.py"
    extra.write_text("EDITED = True\n")
    code_hash_module.code_hash.cache_clear()
    try:
        yield
    finally:
        extra.unlink()
        code_hash_module.code_hash.cache_clear()


def test_a_code_edit_makes_the_same_command_a_new_run(tmp_path):
    """Before: after a metric edit the same command said 'already finished'."""
    from unlearn.stages import resume

    cfg = compose(TINY + [f"paths.cache_dir={tmp_path}", f"paths.output_dir={tmp_path / 'out'}"])
    first = resume.claim(cfg, tmp_path / "first")
    (first.run_dir / "results.json").write_text(json.dumps({"status": "complete"}))
    first.mark(cfg, "complete")
    first.release()
    again = resume.claim(cfg, tmp_path / "again")
    again.release()
    assert again.finished is not None  # unchanged code: finished
    with edited_code("metrics"):
        edited = resume.claim(cfg, tmp_path / "edited")
    edited.release()
    assert edited.finished is None
    assert edited.identity != first.identity


def test_an_evaluation_store_never_resumes_records_of_other_metric_code(tmp_path):
    from unlearn.stages.result_store import ResultStore

    record = {"model": "target", "split": "forget", "metric": "MA", "value": 0.9, "n": 4, "details": {"config": {}}}
    store = ResultStore(tmp_path, {"run_name": "x"})
    store.add(record, {"ids": ["a"], "values": [0.9]}, {})
    assert ResultStore(tmp_path, {"run_name": "x"}).done("target", "forget", "MA", {})
    with edited_code("metrics"):
        resumed = ResultStore(tmp_path, {"run_name": "x"})
        assert not resumed.done("target", "forget", "MA", {})
        assert resumed.records == [] and resumed.per_item == {}


def test_the_trainer_identity_names_the_world_size():
    from unlearn.stages.trainer import trainer_identity

    cfg = OmegaConf.create({"accelerator": "cpu", "devices": 2, "strategy": "ddp", "precision": "32-true", "progress_bar": False})
    assert trainer_identity(cfg) == {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "precision": "32-true", "world_size": 2}


@pytest.mark.parametrize("setting", ["accumulate_grad_batches", "gradient_clip_val", "a_setting_added_later"])
def test_every_trainer_setting_moves_the_attacked_record_key(tiny_cfg, setting):
    """Relearning fits under the run's trainer: its cached target/oracle records carried only the precision."""
    from unlearn.attacks.battery import Battery
    from unlearn.attacks.specs import resolve

    spec = resolve("relearn_forget")

    def identity(cfg):
        return Battery(cfg, {}, None, {}, {}, None, None).identity(spec, "relearn_forget:10")

    assert identity(_with(tiny_cfg, **{setting: TRAINER_CHANGES[setting]})) != identity(tiny_cfg)


@pytest.mark.parametrize("setting", ["accumulate_grad_batches", "devices", "a_setting_added_later"])
def test_every_trainer_setting_moves_the_memsinks_standard_key(tmp_path, setting):
    """`python -m unlearn.train`'s cached standard model: another accumulation or world size trains a new one."""
    from unlearn.memsinks.pipeline import standard_key

    cfg = compose([f"paths.cache_dir={tmp_path}"], config_name="train")
    assert standard_key(_with(cfg, **{setting: TRAINER_CHANGES[setting]}), tmp_path) != standard_key(cfg, tmp_path)
