"""Metric registry: `eval.metrics` entries name a registered function and its parameters."""
from collections.abc import Callable
from dataclasses import dataclass, field

from unlearn.errors import ConfigError


@dataclass
class MetricValue:
    value: float
    n: int
    per_item: list | None = None
    details: dict = field(default_factory=dict)


MetricFn = Callable[..., MetricValue]
METRICS: dict[str, MetricFn] = {}


def register(name: str):
    def wrap(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn

    return wrap


def get_metric(name: str) -> MetricFn:
    if name not in METRICS:
        raise ConfigError(f"eval metric {name!r} is unknown; registered metrics: {sorted(METRICS)}")
    return METRICS[name]
