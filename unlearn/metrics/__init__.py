from unlearn.metrics import standard  # noqa: F401  (registers the metrics)
from unlearn.metrics.context import EvalContext
from unlearn.metrics.registry import METRICS, MetricValue, get_metric, register

__all__ = ["METRICS", "EvalContext", "MetricValue", "get_metric", "register"]
