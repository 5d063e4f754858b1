# Importing the metric modules registers them; heavy libraries (sentence-transformers, lm-eval, mauve,
# rouge-score, scipy) are imported inside the functions that need them, so the CLI starts fast.
from unlearn.metrics import (  # noqa: F401
    closer_look,
    collapse,
    generation_quality,
    mauve_score,
    muse,
    privacy,
    reasoning,
    semantic,
    standard,
    tofu,
)
from unlearn.metrics.context import EvalContext, EvalEnv
from unlearn.metrics.registry import METRICS, MetricSkipped, MetricValue, check_params, get_metric, register

__all__ = ["METRICS", "EvalContext", "EvalEnv", "MetricSkipped", "MetricValue", "check_params", "get_metric", "register"]
