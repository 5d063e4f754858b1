"""Evaluate stage: every configured metric on every model and split, as flat result records."""
from tqdm.auto import tqdm

from unlearn.metrics import EvalContext, get_metric


def metric_label(entry) -> str:
    return entry.get("label") or entry.name


def evaluate(models: dict, tokenizer, encoded: dict, texts: dict, eval_cfg) -> tuple[list[dict], dict]:
    """Returns (records, per_item). A record is {model, split, metric, value, n, details}."""
    records, per_item = [], {}
    jobs = [(m, e, s) for m in models for e in eval_cfg.metrics for s in e.splits if s in encoded or s in texts]
    bar = tqdm(jobs, desc="evaluate", unit="metric")
    contexts = {}
    for model_name, entry, split in bar:
        bar.set_postfix_str(f"{model_name}/{split}/{metric_label(entry)}")
        if model_name not in contexts:
            contexts = {model_name: EvalContext(models[model_name], tokenizer, encoded, texts, eval_cfg.batch_size)}
        params = {k: v for k, v in entry.items() if k not in ("name", "label", "splits")}
        result = get_metric(entry.name)(contexts[model_name], split, **params)
        label = metric_label(entry)
        records.append({"model": model_name, "split": split, "metric": label, "value": result.value, "n": result.n,
                        "details": result.details})
        ids = encoded[split].record_ids if split in encoded else list(range(len(texts[split])))
        per_item.setdefault(model_name, {}).setdefault(split, {})[label] = {"ids": ids, "values": result.per_item}
    return records, per_item
