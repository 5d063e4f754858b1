"""Evaluate stage: every configured metric on every model and split, as flat result records.

A record is {model, split, metric, value, n, details}. A metric that cannot be computed here (model
or data missing offline) becomes value null with `details.skipped` naming the reason, and the
evaluation goes on. With a `ResultStore`, each record is on disk as soon as it exists and records
already computed with the same configuration are not computed again.
"""
import time

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from unlearn import ranks
from unlearn.errors import ConfigError, UnlearnError
from unlearn.metrics import EvalContext, EvalEnv, MetricSkipped, check_params, get_metric
from unlearn.metrics.registry import USES, check_settings

# Keys of conf/eval/*.yaml that are not metric-settings sections.
NOT_SETTINGS = ("metrics", "models", "batch_size", "prefix_len", "name", "reuse_reference", "precision", "attacks",
                "during")


def metric_label(entry) -> str:
    return entry.get("label") or entry.name


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def entry_params(entry) -> dict:
    return {k: v for k, v in _plain(entry).items() if k not in ("name", "label", "splits")}


def eval_settings(eval_cfg) -> dict:
    """The suite's shared sections (wikitext, tofu, reasoning, collapse, ...) that metrics read."""
    return {k: v for k, v in _plain(eval_cfg).items() if k not in NOT_SETTINGS}


def validate_metrics(eval_cfg) -> None:
    """Names and parameters of every entry, checked before any model is loaded."""
    for entry in eval_cfg.metrics:
        check_params(entry.name, entry_params(entry))
    check_settings(eval_settings(eval_cfg))


def build_contexts(models: dict, tokenizers: dict, encoded: dict, texts: dict, eval_cfg, env: EvalEnv) -> dict[str, EvalContext]:
    """One context per model role; `tokenizers`/`encoded`/`texts` by role. All share `env`, so metrics
    reach the other models (`ctx.original`, the oracle) and their memoized passes."""
    for role, model in models.items():
        env.roles[role] = EvalContext(model, tokenizers[role], encoded[role], texts[role], eval_cfg.batch_size, role, env)
    return env.roles


def _config(entry, settings: dict) -> dict:
    return {"params": entry_params(entry), **{s: settings.get(s) for s in USES.get(entry.name, ())}}


def _run_one(ctx: EvalContext, entry, split: str, config: dict) -> tuple[dict, dict | None]:
    label = metric_label(entry)
    start = time.perf_counter()
    try:
        result = get_metric(entry.name)(ctx, split, **entry_params(entry))
    except MetricSkipped as why:
        details = {"skipped": str(why), **why.details, "config": config}
        return {"model": ctx.name, "split": split, "metric": label, "value": None, "n": 0, "details": details}, None
    except ConfigError:
        raise  # a bad parameter is the user's to fix, not a missing resource
    except UnlearnError as why:  # a data loader's "file missing / no data root": reported like a skip
        details = {"skipped": str(why), "config": config}
        return {"model": ctx.name, "split": split, "metric": label, "value": None, "n": 0, "details": details}, None
    # seconds: this metric's own time; passes it shares with metrics before it were already memoized.
    record = {"model": ctx.name, "split": split, "metric": label, "value": result.value, "n": result.n,
              "details": {**result.details, "seconds": round(time.perf_counter() - start, 3), "config": config}}
    if split in ctx.splits:
        ids = ctx.splits[split].record_ids
    else:
        ids = result.ids if result.ids is not None else list(range(len(result.per_item or [])))
    if result.per_item is not None and len(ids) != len(result.per_item):
        ids = list(range(len(result.per_item)))  # items are (record, prefix) pairs, not records
    return record, {"ids": ids, "values": result.per_item}


def evaluate(contexts: dict[str, EvalContext], roles: list[str], eval_cfg, store=None,
             reference_cache=None, details: dict | None = None) -> tuple[list[dict], dict]:
    """Returns (records, per_item) for the models in `roles`, in config order. With a `ReferenceCache`,
    the fixed models' records come from (and go to) the cache shared by runs on the same target.
    `details` (the evaluation device and precision) is added to every record's details."""
    records, per_item = [], {}
    settings = eval_settings(eval_cfg)
    jobs = [(contexts[r], e, s) for r in roles for e in eval_cfg.metrics for s in e.splits]
    bar = tqdm(jobs, desc="evaluate", unit="metric", disable=not ranks.is_main())
    resumed = reused = 0
    for ctx, entry, split in bar:
        label = metric_label(entry)
        bar.set_postfix_str(f"{ctx.name}/{split}/{label}")
        config = _config(entry, settings)
        # Under several processes the store and the cache are rank 0's: its answer is every rank's, so all ranks
        # run (and share) the same metrics.
        done = store is not None and store.done(ctx.name, split, label, config)
        hit = reference_cache.get(ctx.name, split, label, config) if reference_cache is not None and not done else None
        done, hit = ranks.broadcast((done, hit))
        if done:
            resumed += 1
            continue
        if hit is not None:
            reused += 1
            record, items, generations = hit
            ctx.generation_log.update(generations)
        else:
            logged = set(ctx.generation_log)
            record, items = _run_one(ctx, entry, split, config)
            record["details"].update(details or {})
            generations = {k: v for k, v in ctx.generation_log.items() if k not in logged}
            if reference_cache is not None:
                reference_cache.put(ctx.name, split, label, config, record, items, generations)
        records.append(record)
        if items is not None:
            per_item.setdefault(ctx.name, {}).setdefault(split, {})[label] = items
        if store is not None:
            store.add(record, items, generations)
    if reused:
        print(f"[unlearn] reused: {reused} metric(s) of the original/target/oracle from {reference_cache.folder} "
              "(eval.reuse_reference=false recomputes them)")
    if resumed:
        print(f"[unlearn] resumed: {resumed} metric(s) already in {store.dir / 'results.json'} were not recomputed "
              "(overwrite=true recomputes them)")
    return records, per_item
