"""Memorize stage: fine-tune the base model until it recites the forget set (the *target*), and the
*retrain oracle*: the same recipe, the same number of epochs, on the retain set alone. For TA and CD
also the *memorized model* θ_mem: the target fine-tuned further on the forget set.

Both are cached by a hash of everything that determines them, so a second run or every job of a
sweep reuses them instead of training again.
"""
import copy
import hashlib
import json
import logging
from pathlib import Path

from unlearn.data.collate import Collator, SequenceDataset
from unlearn.data.encode import EncodedSplit
from unlearn.locks import build_lock
from unlearn.methods.callbacks import MemorizationTarget
from unlearn.methods.finetune import FineTune
from unlearn.models.load import load_model, save_model
from unlearn.stages.trainer import build_trainer

log = logging.getLogger(__name__)


def artifact_key(material: dict) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _merge(*parts: EncodedSplit) -> EncodedSplit:
    return EncodedSplit(
        [i for p in parts for i in p.record_ids], [s for p in parts for s in p.input_ids], [n for p in parts for n in p.prefix_lens]
    )


def _finetune(base, tokenizer, train: EncodedSplit, mem_cfg, trainer_cfg, max_epochs, seed, watch=None):
    model = copy.deepcopy(base).train()
    for p in model.parameters():
        p.requires_grad_(True)
    if not mem_cfg.get("train_embeddings", True):
        # The (often tied) embedding / LM head shifts every token's logit at once; freezing it keeps
        # memorization in the transformer body and the model's general text distribution intact.
        model.get_input_embeddings().weight.requires_grad_(False)
        model.get_output_embeddings().weight.requires_grad_(False)
    module = FineTune(model, mem_cfg, {"train": SequenceDataset(train)}, Collator(tokenizer.pad_token_id), seed)
    callbacks = [watch] if watch else []
    build_trainer(trainer_cfg, max_epochs, None, callbacks).fit(module)
    model.eval()
    return model


def memorize(base, tokenizer, encoded: dict[str, EncodedSplit], mem_cfg, trainer_cfg, cache_dir: Path, key_material: dict, seed: int,
             general: EncodedSplit | None = None):
    """Returns (target, oracle or None, card). `key_material` identifies base model + data + recipe.

    `general` is ordinary text mixed into both trainings. Memorized sequences in the wild sit inside a
    large general corpus; fine-tuning on a dozen records alone wrecks a small model (measured on
    SmolLM2: utility perplexity 11 -> ~7,000 at forget MA 0.9, vs ~120 with 16 general samples mixed in).
    """
    key = artifact_key({**key_material, "memorize": dict(mem_cfg), "precision": str(trainer_cfg.precision)})
    folder = Path(cache_dir) / "memorized" / key
    with build_lock(folder):
        return _memorize(base, tokenizer, encoded, mem_cfg, trainer_cfg, cache_dir, key_material, seed, general, key, folder)


def _memorize(base, tokenizer, encoded, mem_cfg, trainer_cfg, cache_dir, key_material, seed, general, key, folder):
    card_path = folder / "card.json"
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        dtype = key_material.get("model", {}).get("dtype", "float32")
        target, _ = load_model(_local(folder / "target", dtype), cache_dir)
        oracle = load_model(_local(folder / "oracle", dtype), cache_dir)[0] if card.get("oracle") else None
        log.info("memorize: reusing cached target and oracle %s", folder)
        card["cached"] = True
        return target, oracle, card

    forget, retain = encoded["forget"], encoded["retain"]
    extra = [general] if general is not None and len(general) else []
    watch = MemorizationTarget(forget.input_ids, tokenizer.pad_token_id, mem_cfg.ma_threshold)
    target = _finetune(base, tokenizer, _merge(forget, retain, *extra), mem_cfg, trainer_cfg, mem_cfg.max_epochs, seed, watch)
    if watch.ma < mem_cfg.ma_threshold:
        log.warning("memorize: forget MA %.3f after %d epochs is below the %.2f target; raise memorize.max_epochs or memorize.lr",
                    watch.ma, watch.epochs, mem_cfg.ma_threshold)
    oracle = None
    if mem_cfg.oracle and len(retain):
        oracle = _finetune(base, tokenizer, _merge(retain, *extra), mem_cfg, trainer_cfg, watch.epochs, seed)
    card = {
        "key": key,
        "base_model": key_material.get("model"),
        "split_ids": key_material.get("split_ids"),
        "epochs": watch.epochs,
        "forget_ma": watch.ma,
        "ma_threshold": mem_cfg.ma_threshold,
        "reached_threshold": watch.ma >= mem_cfg.ma_threshold,
        "oracle": oracle is not None,
        "oracle_trained_on": ("retain+general" if extra else "retain") if oracle is not None else None,
        "general_samples": len(general) if general is not None else 0,
    }
    save_model(target, tokenizer, folder / "target", {**card, "role": "target"})
    if oracle is not None:
        save_model(oracle, tokenizer, folder / "oracle", {**card, "role": "oracle"})
    card_path.write_text(json.dumps(card, indent=2, default=str))  # written last: marks the cache complete
    card["cached"] = False
    return target, oracle, card


def memorize_forget(target, tokenizer, forget: EncodedSplit, recipe, trainer_cfg, cache_dir: Path, target_key: str, dtype: str,
                    seed: int):
    """θ_mem for TA and CD: the target fine-tuned `recipe.epochs` more epochs on the forget set with plain
    NLL (spec §2.5), cached next to the target it came from."""
    key = artifact_key({"target": target_key, "forget": forget.record_ids, "recipe": dict(recipe),
                        "precision": str(trainer_cfg.precision), "seed": seed})
    folder = Path(cache_dir) / "memorized" / target_key / f"forget-finetuned-{key}"
    with build_lock(folder):
        if (folder / "card.json").is_file():  # save_model writes the card inside the atomic rename
            log.info("memorize: reusing cached forget fine-tune %s", folder)
            return load_model(_local(folder, dtype), cache_dir)[0]
        model = _finetune(target, tokenizer, forget, recipe, trainer_cfg, recipe.epochs, seed)
        save_model(model, tokenizer, folder, {"role": "memorized", "target": target_key, "recipe": dict(recipe),
                                              "epochs": recipe.epochs})
        return model


def _local(path: Path, dtype: str):
    from omegaconf import OmegaConf

    return OmegaConf.create({"source": "local", "name_or_path": str(path), "dtype": dtype})
