"""Unlearn stage: copy the target, let the configured method train it, return it with its history."""
import copy

from unlearn.data.collate import Collator, SequenceDataset
from unlearn.data.encode import EncodedSplit
from unlearn.methods import get_method
from unlearn.methods.callbacks import PerplexityEarlyStop
from unlearn.stages.trainer import build_trainer


def unlearn(target, tokenizer, encoded: dict[str, EncodedSplit], validation: list[list[int]], method_cfg, trainer_cfg,
            run_dir, logger, seed: int):
    method_cls = get_method(method_cfg.name)
    model = copy.deepcopy(target).train()
    for p in model.parameters():
        p.requires_grad_(True)
    datasets = {name: SequenceDataset(split) for name, split in encoded.items() if len(split)}
    collator = Collator(tokenizer.pad_token_id, labels_from_prefix=method_cfg.get("continuation_only", False))
    module = method_cls(model, method_cfg, datasets, collator, seed)
    callbacks = []
    stop_cfg = method_cfg.get("early_stop") or {}
    early = None
    if stop_cfg.get("enabled") and validation:
        early = PerplexityEarlyStop(validation, tokenizer.pad_token_id, stop_cfg.ratio, stop_cfg.min_epochs, stop_cfg.get("every_n_steps"))
        callbacks.append(early)
    trainer = build_trainer(trainer_cfg, method_cfg.max_epochs, run_dir, callbacks, logger)
    trainer.fit(module)
    model.eval()
    info = {
        "method": method_cfg.name,
        "epochs_run": trainer.current_epoch,
        "steps": trainer.global_step,
        "early_stop": early.stopped_at if early else None,
        "history": module.history,
    }
    return model, info
