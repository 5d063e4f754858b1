"""Shared fixtures: a tiny GPT-Neo that memorizes synthetic records in seconds, built once per session."""
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SHARED_DATA = Path(os.environ.get("UNLEARN_DATA_DIR", REPO.parent / "shared" / "data"))

# Overrides that make a full run take seconds: tiny model, few records, short utility samples.
TINY = [
    "model=tiny-gpt-neo",
    "memorize.lr=3e-3",
    "memorize.max_epochs=80",
    "memorize.batch_size=8",
    "data.utility.n=4",
    "data.utility.validation_n=4",
    "data.utility.max_new_tokens=16",
    "eval.batch_size=8",
    "trainer.progress_bar=false",
    "save_model=false",
    "trainer.resume_every_s=0",  # a resume checkpoint every epoch: cheap at this size, and the resume tests need them
]


def compose(overrides=(), config_name="run"):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


# Cheaper than TINY for sweeps, whose machinery is under test, not the numbers: memorization without oracle
# or general text, target and unlearned evaluated. The target stops at the step that crosses MA 0.9 (epoch 22
# of this recipe, deterministic); max_epochs leaves room, since a target below the threshold fails the run.
FAST_SWEEP = [o for o in TINY if not o.startswith("memorize.max_epochs")] + [
    "memorize.max_epochs=60", "memorize.oracle=false", "memorize.general_samples=0", "eval.models=[target,unlearned]"]


def memorize_tiny(cfg) -> dict:
    """(cfg, tokenizer, encoded splits, base, target, oracle, card) for a tiny synthetic config."""
    from unlearn.data.encode import encode_split
    from unlearn.models.load import load_model
    from unlearn.workflows.run_pipeline import build_splits
    from unlearn.stages.memorize import memorize

    cache_dir = cfg.paths.cache_dir
    splits = build_splits(cfg.data, None)
    texts = [r.text for n in ("forget", "retain", "holdout") for r in splits.by_name(n)]
    base, tok = load_model(cfg.model, cache_dir, corpus=texts, seed=0)
    vocab = base.get_input_embeddings().num_embeddings
    encoded = {n: encode_split(splits.by_name(n), tok, vocab, False, cfg.eval.prefix_len) for n in ("forget", "retain", "holdout")}
    material = {"model": OmegaConf.to_container(cfg.model), "split_ids": splits.ids(), "seed": 0}
    target, oracle, card = memorize(base, tok, encoded, cfg.memorize, cfg.trainer, cache_dir, material, 0)
    return {"cfg": cfg, "tokenizer": tok, "encoded": encoded, "base": base, "target": target, "oracle": oracle, "card": card}


@pytest.fixture(scope="session")
def tiny_setup(cache_dir):
    return memorize_tiny(compose(TINY + [f"paths.cache_dir={cache_dir}"]))
