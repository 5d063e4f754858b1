"""Metric registry: `eval.metrics` entries name a registered function and its parameters.

A metric is `fn(ctx: EvalContext, split: str, **params) -> MetricValue`. `split` names what it is
measured on: a record split (forget, holdout), a text split (utility), or a data set the metric
resolves itself (wikitext, a TOFU set, an lm-eval task). A metric whose model or data cannot be had
raises `MetricSkipped(reason)`: the evaluation records value null with the reason and goes on.
"""
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from unlearn.errors import ConfigError, UnlearnError


class MetricSkipped(UnlearnError):
    """A metric that cannot be computed here (model or data missing offline). Never reported as 0.

    `details` (e.g. the components an aggregate did get) go into the record next to the reason."""

    def __init__(self, reason: str, details: dict | None = None):
        super().__init__(reason)
        self.details = details or {}


@dataclass
class MetricValue:
    value: float | None
    n: int
    per_item: list | None = None
    details: dict = field(default_factory=dict)
    ids: list | None = None  # item ids for per_item, when the split is not a record split


MetricFn = Callable[..., MetricValue]
METRICS: dict[str, MetricFn] = {}
# Eval-level settings sections a metric reads (e.g. "wikitext"): part of its resume fingerprint.
USES: dict[str, tuple[str, ...]] = {}
# Metrics that measure the retrain oracle too (`env.oracle_role`): an attack must build its attacked oracle for them.
NEEDS_ORACLE: set[str] = set()
# Checks of an eval-level settings section, run before any model is loaded: section -> fn(section dict).
SETTINGS_CHECKS: dict[str, Callable[[dict], None]] = {}


def register(name: str, uses: tuple[str, ...] = (), needs_oracle: bool = False):
    def wrap(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        USES[name] = tuple(uses)
        if needs_oracle:
            NEEDS_ORACLE.add(name)
        return fn

    return wrap


def get_metric(name: str) -> MetricFn:
    if name not in METRICS:
        raise ConfigError(f"eval metric {name!r} is unknown; registered metrics: {sorted(METRICS)}")
    return METRICS[name]


def check_params(name: str, params: dict) -> None:
    """Fail before any model is loaded when an entry passes a parameter the metric does not take."""
    sig = inspect.signature(get_metric(name))
    accepted = [p for p in sig.parameters if p not in ("ctx", "split")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"eval metric {name!r} takes no parameter {unknown[0]!r}; it takes {accepted}")


def check_settings(settings: dict) -> None:
    """Fail before any model is loaded when a settings section (e.g. `eval.tofu`) holds a bad value."""
    for section, check in SETTINGS_CHECKS.items():
        if settings.get(section) is not None:
            check(dict(settings[section]))
