"""TA: task arithmetic with a memorized model (spec §2.5, A7).

θ_mem is the target fine-tuned further on the forget set (the memorize stage builds and caches it).
`task_vector` (default): θ_o − γ·(θ_mem − θ_o), standard task negation.
`paper_literal`: θ_o − γ·θ_mem, EMSO Eq. 12 and the DI code's `p1 -= coef * p2` (mostly a uniform
shrink of every weight by γ).
"""
import copy

import torch

from unlearn.errors import UnlearnError
from unlearn.methods.method import require_at_least, require_choice
from unlearn.methods.training_free import TrainingFreeMethod

MODES = ("task_vector", "paper_literal")


@torch.no_grad()
def negate_task(original: torch.Tensor, memorized: torch.Tensor, gamma: float, mode: str) -> torch.Tensor:
    if mode == "paper_literal":
        return original - gamma * memorized
    return original - gamma * (memorized - original)


class TaskArithmetic(TrainingFreeMethod):
    name = "ta"
    needs_memorized = True

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require_at_least(cfg, "gamma", 0)
        require_choice(cfg, "mode", MODES)

    @classmethod
    @torch.no_grad()
    def build(cls, target, memorized, cfg):
        model = copy.deepcopy(target).eval()
        memorized_params = dict(memorized.named_parameters())
        for name, param in model.named_parameters():
            if name not in memorized_params or memorized_params[name].shape != param.shape:
                raise UnlearnError(f"the memorized model has no parameter {name} shaped like the target's; "
                                   "it must be the target fine-tuned further")
            param.copy_(negate_task(param, memorized_params[name], cfg.gamma, cfg.mode))
        return model
