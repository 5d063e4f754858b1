"""Methods whose unlearned model is computed from the target and the memorized model, not trained."""
import torch

from unlearn.methods.method import Method


class TrainingFreeMethod(Method):
    trains = False

    @classmethod
    def build(cls, target: torch.nn.Module, memorized: torch.nn.Module | None, cfg) -> torch.nn.Module:
        """The unlearned model. `target` is θ_o and must not be modified (it is evaluated too)."""
        raise NotImplementedError
