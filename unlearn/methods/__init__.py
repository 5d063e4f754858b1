"""Method registry: `method.name` in the config picks the class."""
from unlearn.errors import ConfigError
from unlearn.methods.base import UnlearningModule
from unlearn.methods.emso import EMSO
from unlearn.methods.finetune import FineTune
from unlearn.methods.ga import GradientAscent

METHODS: dict[str, type[UnlearningModule]] = {cls.name: cls for cls in (GradientAscent, EMSO)}


def get_method(name: str) -> type[UnlearningModule]:
    if name not in METHODS:
        raise ConfigError(f"method {name!r} is unknown; available: {sorted(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "EMSO", "FineTune", "GradientAscent", "UnlearningModule", "get_method"]
