"""Method registry: `method.name` in the config picks the class."""
from unlearn.errors import ConfigError
from unlearn.methods.base import UnlearningModule
from unlearn.methods.cd import ContrastiveDecoding
from unlearn.methods.di import DeliberateImagination
from unlearn.methods.emso import EMSO
from unlearn.methods.finetune import FineTune
from unlearn.methods.ga import GradientAscent
from unlearn.methods.gd import GradientDifference
from unlearn.methods.idk_ap import IdkAnswerPreservation
from unlearn.methods.kl import RetainKL
from unlearn.methods.me_gd import MaxEntropyGD
from unlearn.methods.method import Method
from unlearn.methods.pdu import PrimalDual
from unlearn.methods.ta import TaskArithmetic
from unlearn.methods.training_free import TrainingFreeMethod

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (GradientAscent, GradientDifference, RetainKL, DeliberateImagination, TaskArithmetic, ContrastiveDecoding,
                MaxEntropyGD, IdkAnswerPreservation, EMSO, PrimalDual)
}


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"method {name!r} is unknown; available: {sorted(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "ContrastiveDecoding", "DeliberateImagination", "EMSO", "FineTune", "GradientAscent", "GradientDifference",
           "IdkAnswerPreservation", "MaxEntropyGD", "Method", "PrimalDual", "RetainKL", "TaskArithmetic", "TrainingFreeMethod",
           "UnlearningModule", "get_method"]
