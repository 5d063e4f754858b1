"""Zero-shot reasoning accuracy through lm-evaluation-harness (spec §3.9): piqa, arc_easy, copa,
pubmedqa, hellaswag, winogrande; per-task acc and acc_norm and their unweighted mean.

A task reads its local copy under `<data_root>/lm_eval_tasks` when there is one (task YAMLs shipped
in `lm_eval_tasks/`), else the standard lm-eval task from the hub; offline with no local copy
(winogrande) it is skipped with the reason. Each task runs once per model (memoized) with its own
`limit`, and the mean is over the tasks that ran, named in the details.
"""
import hashlib
import logging
import math
import tempfile
from pathlib import Path

from unlearn.errors import ConfigError
from unlearn.metrics.context import EvalContext
from unlearn.metrics.registry import MetricSkipped, MetricValue, register
from unlearn.metrics.aux_models import offline

TEMPLATES = Path(__file__).parent / "lm_eval_tasks"
# task -> local file (relative to <data_root>/lm_eval_tasks) that the template reads; None = no local copy
LOCAL_FILES = {
    "piqa": "piqa/validation.jsonl",
    "arc_easy": "arc_easy/test.jsonl",
    "copa": "copa/copa_dev_401-500_superglue_val_items.jsonl",
    "pubmedqa": "pubmedqa/pqa_labeled.jsonl",
    "hellaswag": "hellaswag/validation.jsonl",
    "winogrande": None,
}
DEFAULTS = {"tasks": list(LOCAL_FILES), "limit": None, "batch_size": 8, "max_length": None}
_MANAGERS: dict = {}


def render_local_tasks(data_root: str, cache_dir) -> Path:
    """Copy the templates with the data root filled in; lm-eval task YAMLs cannot read a variable."""
    root = str(Path(data_root).expanduser().resolve())
    files = sorted(p for p in TEMPLATES.iterdir() if p.suffix in (".yaml", ".py"))
    digest = hashlib.sha256((root + "".join(p.read_text() for p in files)).encode()).hexdigest()[:12]
    base = Path(cache_dir).expanduser() if cache_dir else Path(tempfile.gettempdir()) / "unlearn"
    out = base / "lm_eval_tasks" / digest
    if not (out / "done").is_file():
        out.mkdir(parents=True, exist_ok=True)
        for p in files:
            (out / p.name).write_text(p.read_text().replace("@DATA_ROOT@", root))
        (out / "done").write_text(root)
    return out


def resolve_task(task: str, data_root: str | None) -> tuple[str, bool]:
    """(lm-eval task name, whether it is one of the shipped local tasks)."""
    if task not in LOCAL_FILES:
        raise ConfigError(f"reasoning task {task!r} is not supported; use any of {sorted(LOCAL_FILES)}")
    local = LOCAL_FILES[task]
    if data_root and local and (Path(data_root).expanduser() / "lm_eval_tasks" / local).is_file():
        return f"unlearn_{task}", True
    if offline():
        where = f"{data_root}/lm_eval_tasks" if data_root else "no data root is set (UNLEARN_DATA_DIR)"
        raise MetricSkipped(f"{task}: no local copy ({where}) and the hub is unreachable")
    return task, False


def _task_manager(include: Path | None):
    from lm_eval.tasks import TaskManager

    key = str(include)
    if key not in _MANAGERS:
        # Only the shipped folder when every task is local: indexing lm-eval's 200+ built-in folders is slow.
        _MANAGERS[key] = TaskManager(include_path=str(include), include_defaults=False) if include else TaskManager()
    return _MANAGERS[key]


def run_task(ctx: EvalContext, task: str, cfg: dict) -> dict:
    def compute():
        from lm_eval import simple_evaluate

        name, local = resolve_task(task, ctx.env.data_root)
        include = render_local_tasks(ctx.env.data_root, ctx.env.cache_dir) if local else None
        limit = cfg["limit"].get(task) if isinstance(cfg["limit"], dict) else cfg["limit"]
        lm = ctx.memo(("lm_eval_model", cfg["batch_size"], cfg["max_length"]), lambda: _lm(ctx, cfg))
        logging.getLogger("lm_eval").setLevel(logging.WARNING)
        out = simple_evaluate(model=lm, tasks=[name], task_manager=_task_manager(include), num_fewshot=0, limit=limit,
                              log_samples=True, bootstrap_iters=0, random_seed=ctx.env.seed, numpy_random_seed=ctx.env.seed,
                              torch_random_seed=ctx.env.seed, fewshot_random_seed=ctx.env.seed)
        scores = out["results"][name]
        samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
        return {
            "lm_eval_task": name,
            "source": "local" if include else "hub",
            "limit": limit,
            "n": len(samples),
            "ids": [s["doc_id"] for s in samples],
            **{stat: (scores.get(f"{stat},none"), [s.get(stat) for s in samples]) for stat in ("acc", "acc_norm")},
        }

    return ctx.memo(("lm_eval", task, str(cfg["limit"]), cfg["batch_size"], cfg["max_length"]), compute)


def _lm(ctx: EvalContext, cfg: dict):
    from unlearn.metrics.lm_eval_model import lm_eval_model

    return lm_eval_model(ctx.model, ctx.tokenizer, cfg["batch_size"], cfg["max_length"])


@register("reasoning", uses=("reasoning",))
def reasoning(ctx: EvalContext, split: str, stat: str = "acc") -> MetricValue:
    """`split` is a task name, or `mean` for the unweighted mean over the suite's `reasoning.tasks`."""
    cfg = {**DEFAULTS, **ctx.setting("reasoning")}
    if stat not in ("acc", "acc_norm"):
        raise ConfigError(f"reasoning stat={stat!r}; use acc or acc_norm")
    if split != "mean":
        result = run_task(ctx, split, cfg)
        value, per_item = result[stat]
        if value is None:
            raise MetricSkipped(f"lm-eval task {result['lm_eval_task']} does not report {stat}")
        details = {k: result[k] for k in ("lm_eval_task", "source", "limit")}
        return MetricValue(float(value), result["n"], per_item, details, ids=result["ids"])
    values, missing = {}, {}
    for task in cfg["tasks"]:
        try:
            value = run_task(ctx, task, cfg)[stat][0]
        except MetricSkipped as why:
            missing[task] = str(why)
            continue
        if value is None or math.isnan(value):
            missing[task] = f"no {stat}"
        else:
            values[task] = float(value)
    if not values:
        raise MetricSkipped(f"no reasoning task could run: {missing}")
    return MetricValue(sum(values.values()) / len(values), len(values), None,
                       {"over": sorted(values), "missing": missing, "complete": not missing})
