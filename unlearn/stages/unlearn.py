"""Unlearn stage: let the configured method turn the target into the unlearned model.

Training methods copy the target and train the copy under Lightning; training-free methods (TA, CD)
build the unlearned model from the target and the memorized model.
"""
import copy
from pathlib import Path

from unlearn import ranks
from unlearn.data.collate import Collator, SequenceDataset
from unlearn.data.encode import EncodedSplit
from unlearn.errors import require
from unlearn.methods import get_method
from unlearn.methods.callbacks import PerplexityEarlyStop
from unlearn.stages.divergence import Diverged, FiniteGuard
from unlearn.stages.trainer import build_trainer, fit_resumable, is_fsdp

# The unlearning fit's last-epoch checkpoint inside the run dir; removed once results.json is written.
RESUME_DIR = "checkpoints-resume"


def full_copy(fitted, target):
    """The fitted module's full weights (gathered across ranks by torch when `fitted` is FSDP-wrapped; every
    rank must call this) in a plain copy of `target`: what save_model exports as safetensors."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    weights = get_model_state_dict(fitted, options=StateDictOptions(full_state_dict=True))
    model = copy.deepcopy(target)
    # The LightningModule holds the model as `model` (a frozen `reference` beside it for KL/DI is not the result).
    model.load_state_dict({k.removeprefix("model."): v for k, v in weights.items() if k.startswith("model.")})
    return model


def unlearn(target, tokenizer, encoded: dict[str, EncodedSplit], validation: list[list[int]], method_cfg, trainer_cfg,
            run_dir, logger, seed: int, memorized=None, placement=None, trajectory=None):
    """`placement` (stages/device.py): where the model goes after `fit`, whose teardown leaves it on the CPU.
    `trajectory` (stages/trajectory.py, `eval.during`): measures the model while it trains; None = off."""
    method_cls = get_method(method_cfg.name)
    if method_cls.needs_memorized:
        require(memorized is not None, f"method {method_cfg.name} needs the memorized model; the pipeline builds it")
    if not method_cls.trains:
        model = method_cls.build(target, memorized, method_cfg)
        if trajectory is not None and ranks.is_main():
            print(f"[unlearn] eval.during: method {method_cfg.name} does not train, so there is no trajectory to record")
        return model, {"method": method_cfg.name, "epochs_run": 0, "steps": 0, "early_stop": None, "history": [], "world_size": 1,
                       "trajectory": None}

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
        early = PerplexityEarlyStop(validation, tokenizer.pad_token_id, stop_cfg.ratio, stop_cfg.min_epochs, stop_cfg.get("every_n_steps"),
                                    restore=stop_cfg.get("restore", False))
        callbacks.append(early)
    if trajectory is not None:  # after the early stop: a point at a step sees the weights it may have put back
        callbacks.append(trajectory)
    resume_dir = Path(run_dir) / RESUME_DIR if run_dir is not None else None
    guard = FiniteGuard(f"method {method_cfg.name}", "lower method.lr")
    trainer = build_trainer(trainer_cfg, method_cfg.max_epochs, run_dir, callbacks, logger, resume_dir=resume_dir, guard=guard)
    diverged = None
    try:
        fit_resumable(trainer, module, resume_dir)
    except Diverged as err:  # the model holds the last good weights: evaluated, and the run marked diverged
        diverged = {**err.where, "message": str(err)}
    if is_fsdp(trainer_cfg):  # each rank holds a shard of the weights: a whole model is saved and evaluated
        model = full_copy(trainer.strategy.model, target)
    model.eval()
    if placement is not None:
        placement.to_device(model)
    info = {
        "method": method_cfg.name,
        "epochs_run": trainer.current_epoch,
        "steps": trainer.global_step,
        "early_stop": early.stopped_at if early else None,
        "history": module.history,
        "diverged": diverged,
        "world_size": trainer.world_size,
        "trajectory": trajectory.summary() if trajectory is not None else None,
    }
    return model, info
