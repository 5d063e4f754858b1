"""Memorize stage: fine-tune the base model until it recites the forget set (the *target*), and the
*retrain oracle*: the same recipe, the same number of epochs, on the retain set alone. For TA and CD
also the *memorized model* θ_mem: the target fine-tuned further on the forget set.

Both are cached by a hash of everything that determines them, so a second run or every job of a
sweep reuses them instead of training again.
"""
import copy
import json
import logging
import math
from pathlib import Path

from unlearn import ranks
from unlearn.storage.code_hash import MEMORIZED, code_hash
from unlearn.data.collate import Collator, SequenceDataset
from unlearn.data.encode import EncodedSplit
from unlearn.errors import UnlearnError
from unlearn.storage.keys import key_of, to_plain
from unlearn.storage.locks import build_lock
from unlearn.methods.callbacks import DivergenceGuard, MemorizationTarget, StepLimit
from unlearn.methods.finetune import FineTune
from unlearn.models.load import load_model, save_model
from unlearn.storage.results import write_json
from unlearn.stages.checkpoints import discard
from unlearn.stages.divergence import FiniteGuard
from unlearn.stages.trainer import build_trainer, fit_resumable, trainer_identity

log = logging.getLogger(__name__)


def describe_key(key_material: dict) -> str:
    """For the log line of a reused cache entry: what its key was built from, so a reuse can be checked."""
    model = key_material.get("model") or {}
    return (f"model {model.get('name')} (content {model.get('content') or 'from its config'}), data {key_material.get('data_content')}, "
            f"seed {key_material.get('seed')}, the memorize recipe, every trainer setting and code {code_hash(MEMORIZED)}")


def _merge(*parts: EncodedSplit) -> EncodedSplit:
    return EncodedSplit(
        [i for p in parts for i in p.record_ids], [s for p in parts for s in p.input_ids], [n for p in parts for n in p.prefix_lens],
        [n for p in parts for n in p.label_starts]
    )


def memorize_trainer_cfg(mem_cfg, trainer_cfg):
    """The trainer settings a memorize fine-tune runs under: the run's trainer, with the recipe's own
    gradient clipping and precision where it sets them (`null` = the trainer's)."""
    from omegaconf import OmegaConf

    overrides = {k: mem_cfg[k] for k in ("gradient_clip_val", "precision") if mem_cfg.get(k) is not None}
    return OmegaConf.merge(trainer_cfg, overrides) if overrides else trainer_cfg


def _finetune(base, tokenizer, train: EncodedSplit, mem_cfg, trainer_cfg, max_epochs, seed, callbacks=(), resume_dir=None):
    model = copy.deepcopy(base).train()
    for p in model.parameters():
        p.requires_grad_(True)
    if not mem_cfg.get("train_embeddings", True):
        # The (often tied) embedding / LM head shifts every token's logit at once; freezing it keeps
        # memorization in the transformer body and the model's general text distribution intact.
        model.get_input_embeddings().weight.requires_grad_(False)
        model.get_output_embeddings().weight.requires_grad_(False)
    module = FineTune(model, mem_cfg, {"train": SequenceDataset(train)}, Collator(tokenizer.pad_token_id), seed)
    guard = FiniteGuard("memorize", "lower memorize.lr (or method.memorized.lr for TA/CD's memorized model)")
    trainer = build_trainer(memorize_trainer_cfg(mem_cfg, trainer_cfg), max_epochs, None, list(callbacks), resume_dir=resume_dir,
                            guard=guard)
    fit_resumable(trainer, module, resume_dir)
    model.eval()
    return model


# Settings that decide what happens after a fine-tune, not what it builds: left out of the cache key, so
# `allow_below_threshold=true` finds the same (failed) target instead of training another.
NOT_IN_KEY = ("allow_below_threshold",)


def key_material(cfg, splits, cache_dir) -> dict:
    """What identifies the data and base model a target is memorized from: the model's config and content
    (models/identity.py), the data config, record ids and records' content, and the seed."""
    from unlearn.data.records import content_digest
    from unlearn.models.identity import model_identity

    return {"model": model_identity(cfg.model, cache_dir), "data": to_plain(cfg.data), "split_ids": splits.ids(),
            "data_content": content_digest(splits), "seed": cfg.seed}


def memorize_key(key_material: dict, mem_cfg, trainer_cfg, encoded: dict[str, EncodedSplit]) -> str:
    """The cache key of a target + oracle: `key_material`, the whole recipe, every trainer setting the fit
    runs under (`trainer_identity`: derived from the config, not listed) and the code that builds them."""
    recipe = {k: v for k, v in to_plain(mem_cfg).items() if k not in NOT_IN_KEY}
    material = {**key_material, "memorize": recipe, "trainer": trainer_identity(memorize_trainer_cfg(mem_cfg, trainer_cfg)),
                "code": code_hash(MEMORIZED)}
    if any(any(split.label_starts) for split in encoded.values()):
        # QA targets cached before answer-only labels were trained on their questions too: never reuse them.
        material["labels"] = "answer_only"
    return key_of(material)


def memorize(base, tokenizer, encoded: dict[str, EncodedSplit], mem_cfg, trainer_cfg, cache_dir: Path, key_material: dict, seed: int,
             general: EncodedSplit | None = None):
    """Returns (target, oracle or None, card). `key_material` identifies base model + data + recipe.

    `general` is ordinary text mixed into both trainings. Memorized sequences in the wild sit inside a
    large general corpus; fine-tuning on a dozen records alone wrecks a small model (measured on
    SmolLM2: utility perplexity 11 -> ~7,000 at forget MA 0.9, vs ~120 with 16 general samples mixed in).

    A target below `ma_threshold` (or whose fine-tune diverged) raises UnlearnError unless
    `memorize.allow_below_threshold=true`; then the card says `status: not memorized` and the results mark it.
    """
    key = memorize_key(key_material, mem_cfg, trainer_cfg, encoded)
    folder = Path(cache_dir) / "memorized" / key
    with build_lock(folder):
        target, oracle, card = _memorize(base, tokenizer, encoded, mem_cfg, trainer_cfg, cache_dir, key_material, seed, general, key,
                                         folder)
    check_memorized(card, mem_cfg)
    return target, oracle, card


def check_memorized(card: dict, mem_cfg) -> None:
    """Stop the pipeline on a target that did not memorize, unless explicitly allowed."""
    if card["reached_threshold"]:
        return
    why = f"its fine-tune diverged ({card['diverged']}); lower memorize.lr or set memorize.gradient_clip_val" if card.get("diverged") \
        else "raise memorize.max_epochs or memorize.lr"
    message = (f"memorize: the target did not memorize the forget set: forget MA {card['forget_ma']:.3f} after {card['epochs']:g} "
               f"epochs (memorize.ma_threshold={card['ma_threshold']}); {why}"
               + (" (a cached result of this recipe: it would fail the same way)" if card.get("cached") else ""))
    if not mem_cfg.get("allow_below_threshold", False):
        raise UnlearnError(message + ", or set memorize.allow_below_threshold=true to go on with a target marked 'not memorized'")
    log.warning("%s; going on because memorize.allow_below_threshold=true: results mark the target 'not memorized'", message)


def mark_target(table: str, card: dict) -> str:
    """results.md: a target that did not memorize is labelled so in the table's header, with the reason."""
    if card.get("reached_threshold", True):
        return table
    lines = table.split("\n")
    lines[0] = lines[0].replace("| target |", "| target (not memorized) |")
    why = f"; its fine-tune diverged: {card['diverged']}" if card.get("diverged") else ""
    return "\n".join(lines) + (f"\n\nThe target is **not memorized**: forget MA {card['forget_ma']:.3f} is below memorize.ma_threshold="
                               f"{card['ma_threshold']}{why}. Erasure numbers on it mean little.")


def _memorize(base, tokenizer, encoded, mem_cfg, trainer_cfg, cache_dir, key_material, seed, general, key, folder):
    card_path = folder / "card.json"
    # Rank 0 holds the build lock and writes the entry: its look at the cache is every rank's (unlearn/ranks.py).
    if ranks.broadcast(card_path.is_file()):
        card = json.loads(card_path.read_text())
        card["cached"] = True
        if not card["reached_threshold"] and not mem_cfg.get("allow_below_threshold", False):
            return None, None, card  # check_memorized raises before anything loads
        dtype = key_material.get("model", {}).get("dtype", "float32")
        target, _ = load_model(_local(folder / "target", dtype), cache_dir)
        oracle = load_model(_local(folder / "oracle", dtype), cache_dir)[0] if card.get("oracle") else None
        log.info("memorize: reusing cached target and oracle %s (%s): its key matched %s", folder, card["status"],
                 describe_key(key_material))
        return target, oracle, card

    forget, retain = encoded["forget"], encoded["retain"]
    extra = [general] if general is not None and len(general) else []
    watch = MemorizationTarget(forget.input_ids, tokenizer.pad_token_id, mem_cfg.ma_threshold,
                               every_n_steps=mem_cfg.get("check_every_n_steps"), label_starts=forget.label_starts)
    guard = DivergenceGuard(mem_cfg.get("divergence_window", 4), mem_cfg.get("divergence_ratio", 2.0))
    resume = _resume_dir(folder)
    target = _finetune(base, tokenizer, _merge(forget, retain, *extra), mem_cfg, trainer_cfg, mem_cfg.max_epochs, seed, [watch, guard],
                       resume / "target")
    reached = watch.ma >= mem_cfg.ma_threshold and guard.reason is None
    card = {
        "key": key,
        "status": "memorized" if reached else "not memorized",
        "base_model": key_material.get("model"),
        "split_ids": key_material.get("split_ids"),
        "epochs": watch.epochs,
        "steps": watch.history[-1]["step"] if watch.history else 0,
        "forget_ma": watch.ma,
        "ma_threshold": mem_cfg.ma_threshold,
        "reached_threshold": reached,
        "diverged": guard.reason,
        "ma_history": watch.history,
        "code": code_hash(MEMORIZED),
        "general_samples": len(general) if general is not None else 0,
    }
    if not reached and not mem_cfg.get("allow_below_threshold", False):
        # Nothing is cached, not even the fit's checkpoints: a later run (another machine's numerics, a fixed
        # recipe) trains again from the start.
        if ranks.is_main():
            discard(resume)
        card["cached"] = False
        return None, None, card
    oracle = None
    if mem_cfg.oracle and len(retain):
        # The same recipe for as long as the target trained: its number of epochs, mid-epoch stops included.
        oracle_train = _merge(retain, *extra)
        steps = max(1, round(watch.epochs * math.ceil(len(oracle_train) / mem_cfg.batch_size)))
        oracle = _finetune(base, tokenizer, oracle_train, mem_cfg, trainer_cfg, math.ceil(watch.epochs), seed, [StepLimit(steps)],
                           resume / "oracle")
    card |= {"oracle": oracle is not None, "oracle_trained_on": ("retain+general" if extra else "retain") if oracle is not None else None}
    if ranks.is_main():  # every rank holds the same weights; one writes them
        save_model(target, tokenizer, folder / "target", {**card, "role": "target"})
        if oracle is not None:
            save_model(oracle, tokenizer, folder / "oracle", {**card, "role": "oracle"})
        write_json(card_path, card)  # written last, atomically: marks the cache complete
        discard(resume)
    card["cached"] = False
    return target, oracle, card


def memorize_forget(target, tokenizer, forget: EncodedSplit, recipe, trainer_cfg, cache_dir: Path, target_key: str, dtype: str,
                    seed: int):
    """θ_mem for TA and CD: the target fine-tuned `recipe.epochs` more epochs on the forget set with plain
    NLL (spec §2.5), cached next to the target it came from."""
    key = key_of({"target": target_key, "forget": forget.record_ids, "recipe": dict(recipe),
                  "trainer": trainer_identity(memorize_trainer_cfg(recipe, trainer_cfg)), "seed": seed, "code": code_hash(MEMORIZED)})
    folder = Path(cache_dir) / "memorized" / target_key / f"forget-finetuned-{key}"
    with build_lock(folder):
        if ranks.broadcast((folder / "card.json").is_file()):  # save_model writes the card inside the atomic rename
            log.info("memorize: reusing cached forget fine-tune %s: its key matched the target %s, the forget ids, the "
                     "recipe, trainer settings and code %s", folder, target_key, code_hash(MEMORIZED))
            return load_model(_local(folder, dtype), cache_dir)[0]
        model = _finetune(target, tokenizer, forget, recipe, trainer_cfg, recipe.epochs, seed, resume_dir=_resume_dir(folder))
        if ranks.is_main():
            save_model(model, tokenizer, folder, {"role": "memorized", "target": target_key, "recipe": dict(recipe),
                                                  "epochs": recipe.epochs})
            discard(_resume_dir(folder))
        return model


def _resume_dir(folder: Path) -> Path:
    """Checkpoints of an unfinished build of `folder`, beside it: a killed build resumes from its last epoch."""
    return folder.parent / f".{folder.name}.checkpoints"


def _local(path: Path, dtype: str):
    from omegaconf import OmegaConf

    return OmegaConf.create({"source": "local", "name_or_path": str(path), "dtype": dtype})
