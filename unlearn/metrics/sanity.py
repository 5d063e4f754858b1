"""Can a metric tell a model that recites the forget set from one that never saw it? Per metric, the
AUC separating the memorized target's per-item values from the retrain oracle's on the same items
(P(target item > oracle item), ties half). Near 0.5 the metric cannot tell them apart, so its
unlearning numbers mean little on this data: such metrics are flagged (|AUC - 0.5| < threshold).
Direction does not matter: AUC near 0 separates as well as near 1 (perplexity falls where MA rises)."""
from unlearn.statistics import auc

DEFAULT_SPLITS = ("forget", "verbmem_forget", "knowmem_forget", "tofu_forget")


def metric_sanity(per_item: dict, reference: str = "target", control: str = "oracle", splits=DEFAULT_SPLITS,
                  threshold: float = 0.1) -> list[dict]:
    """`per_item` as in per_item.json: {role: {split: {metric: {"ids": [...], "values": [...]}}}}."""
    out = []
    ref, ctl = per_item.get(reference) or {}, per_item.get(control) or {}
    for split in splits:
        for metric, items in (ref.get(split) or {}).items():
            other = (ctl.get(split) or {}).get(metric)
            a = [v for v in (items or {}).get("values") or [] if v is not None]
            b = [v for v in (other or {}).get("values") or [] if v is not None]
            if not a or not b:
                continue
            value = auc(a, b)
            out.append({"split": split, "metric": metric, "auc": value, "n_reference": len(a), "n_control": len(b),
                        "reference": reference, "control": control, "threshold": threshold,
                        "flagged": abs(value - 0.5) < threshold})
    return out
