"""`memorize=none`: the loaded model is the target as it is.

The EMSO / DI / Jang protocol takes a pretrained GPT-Neo that memorized the extraction-challenge
sequences in pre-training (spec §4.1). Fine-tuning it on the forget set first would change the model
under study, and a "retrain oracle" fine-tuned from a model that already saw the data is no oracle. So
there is no memorize training and no oracle, unless the user gives one: `oracle.name_or_path=<folder>`
(a model trained without the forget set), loaded by the same loader as every other model.
"""
from pathlib import Path

from omegaconf import OmegaConf

from unlearn.errors import require
from unlearn.models.identity import model_identity
from unlearn.models.load import load_model
from unlearn.storage.keys import key_of


def memorize_none(mem_cfg) -> bool:
    return mem_cfg.get("name") == "none"


def validate_oracle(cfg) -> None:
    path = (cfg.get("oracle") or {}).get("name_or_path")
    if path is None:
        return
    require(memorize_none(cfg.memorize), "oracle.name_or_path is for memorize=none (the memorize stage trains its own oracle); "
            "add memorize=none or drop oracle.name_or_path")
    require((Path(path).expanduser() / "config.json").is_file() or (Path(path).expanduser() / "original").is_dir(),
            f"oracle.name_or_path={path} is not a saved model folder (no config.json); point it at a save_pretrained folder")


def given_target(base, cfg, cache_dir: Path, key_material: dict):
    """(target, oracle or None, card) like `memorize()`: the target is `base` itself."""
    path = (cfg.get("oracle") or {}).get("name_or_path")
    oracle, spec = None, None
    if path:
        spec = OmegaConf.create({"name": "oracle", "source": "local", "name_or_path": str(Path(path).expanduser().resolve()),
                                 "dtype": cfg.model.get("dtype", "float32")})
        oracle, _ = load_model(spec, cache_dir)
        vocab = base.get_input_embeddings().num_embeddings
        require(oracle.get_input_embeddings().num_embeddings == vocab,
                f"oracle {path} has a vocabulary of {oracle.get_input_embeddings().num_embeddings} tokens, the target {vocab}; "
                "the oracle must share the target's tokenizer")
    # Names the cache folder of this target's reference records (and TA/CD's memorized model).
    # The oracle by its content, like the target's model (models/identity.py), not by its folder's name.
    oracle_id = model_identity(spec, cache_dir) if path else None
    key = key_of({**key_material, "memorize": "none", "oracle": oracle_id})
    card = {"key": key, "memorize": "none", "base_model": key_material.get("model"), "split_ids": key_material.get("split_ids"),
            "oracle": oracle is not None, "oracle_path": str(path) if path else None, "cached": False}
    return base, oracle, card
