"""MUSE-News metrics (Shi et al. 2024; details checked against swj0419/muse_bench `eval.py` and the
pre-release jaechan-repo/muse_bench `verbmem/get_rouge.py`, `knowmem/get_rouge_qa.py`):

- VerbMem (split `verbmem_forget`): greedy continuation of each probe's prompt (MUSE: 128 new tokens),
  ROUGE-L F1 (rouge-score, no stemmer) against the true continuation cut to the same number of tokens.
- KnowMem (splits `knowmem_forget`, `knowmem_retain`): few-shot QA, the `_icl` examples as
  "Question: q\\nAnswer: a\\n\\n" before "Question: q\\nAnswer: ", greedy (32 new tokens), the answer cut
  at the first "\\n\\n" / "\\nQuestion" / "Question:", ROUGE-L F1 against the true answer.
- PrivLeak: `privleak` in unlearn/metrics/privacy.py (forget vs holdout record splits).

Settings in the suite's `muse:` section. The shared data is a pre-release copy of MUSE (see
unlearn/data/muse.py): every record says so in `details.data`.
"""
from statistics import mean

from unlearn.data.muse import PRE_RELEASE, load_muse
from unlearn.errors import ConfigError, UnlearnError
from unlearn.metrics.context import EvalContext
from unlearn.metrics.registry import MetricSkipped, MetricValue, register

DEFAULTS = {"corpus": "news", "limit": None, "limits": {}, "verbmem_max_new_tokens": 128, "verbmem_prompt_chars": None,
            "knowmem_max_new_tokens": 32, "icl": True, "rouge": "f1"}
KNOWMEM_SPLITS = {"knowmem_forget": ("knowmem_forget", "knowmem_forget_icl"),
                  "knowmem_retain": ("knowmem_retain", "knowmem_retain_icl")}
ANSWER_STOPS = ("\n\n", "\nQuestion", "Question:")
FORGET_SETS = ("verbmem_forget", "knowmem_forget")  # probes of the forget corpus


def muse_settings(ctx: EvalContext) -> dict:
    cfg = {**DEFAULTS, **ctx.setting("muse")}
    if cfg["rouge"] not in ("f1", "recall"):
        raise ConfigError(f"eval.muse.rouge={cfg['rouge']!r}; use f1 (MUSE's mean_rougeL) or recall")
    return cfg


def split_limit(cfg: dict, split: str) -> int | None:
    return (cfg.get("limits") or {}).get(split, cfg["limit"])


def _rows(ctx: EvalContext, name: str, limit: int | None) -> list:
    if name in FORGET_SETS and ctx.env.forget_ids is not None:
        raise MetricSkipped(f"{name} rows are not tied to forget records, and only {len(ctx.env.forget_ids)} of them "
                            "may be measured here (a relearning attack trained on the others)")
    try:
        return load_muse(ctx.env.data_root, muse_settings(ctx)["corpus"], name)[:limit]
    except UnlearnError as exc:
        raise MetricSkipped(str(exc)) from None


def rouge_l(references: list[str], outputs: list[str], kind: str) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)  # MUSE: no stemming
    scores = [scorer.score(ref, out)["rougeL"] for ref, out in zip(references, outputs)]
    return [s.fmeasure if kind == "f1" else s.recall for s in scores]


def cut_answer(text: str) -> str:
    for stop in ANSWER_STOPS:
        text = text.split(stop)[0]
    return text


def _encode(ctx: EvalContext, text: str, max_new_tokens: int) -> list[int]:
    """MUSE encodes prompts with BOS. A prompt longer than the model's context minus the tokens to
    generate keeps its last tokens (10-shot KnowMem prompts outgrow small test models)."""
    ids = ctx.tokenizer.encode(text, add_special_tokens=True)
    limit = getattr(getattr(ctx.model, "config", None), "max_position_embeddings", None)
    if limit and len(ids) + max_new_tokens > limit:
        ids = ids[len(ids) + max_new_tokens - limit:]
    return ids


def _truncated(ctx: EvalContext, prompts: list[list[int]], new: int) -> int:
    """How many prompts `_encode` cut to fit the model's context (0 for models with a long context)."""
    limit = getattr(getattr(ctx.model, "config", None), "max_position_embeddings", None)
    return sum(1 for p in prompts if limit and len(p) + new >= limit)


def _details(cfg: dict, **extra) -> dict:
    return {"data": PRE_RELEASE, "corpus": cfg["corpus"], "rouge": f"rougeL {cfg['rouge']}", **extra}


@register("verbmem", uses=("muse",))
def verbmem(ctx: EvalContext, split: str = "verbmem_forget") -> MetricValue:
    if split != "verbmem_forget":
        raise MetricSkipped(f"VerbMem reads split verbmem_forget, not {split!r}")
    cfg = muse_settings(ctx)
    probes = _rows(ctx, "verbmem_forget", split_limit(cfg, split))
    new = cfg["verbmem_max_new_tokens"]
    chars = cfg["verbmem_prompt_chars"]
    prompts = [_encode(ctx, p["prompt"][-chars:] if chars else p["prompt"], new) for p in probes]
    outs = ctx.generate(f"muse:verbmem:{len(prompts)}:{chars}", prompts, new)
    outputs = [ctx.tokenizer.decode(o, skip_special_tokens=True) for o in outs]
    # The reference is the true continuation cut to as many tokens as the model may generate (MUSE).
    truths = [ctx.tokenizer.decode(ctx.tokenizer.encode(p["gt"], add_special_tokens=False)[:new], skip_special_tokens=True)
              for p in probes]
    values = rouge_l(truths, outputs, cfg["rouge"])
    return MetricValue(mean(values), len(values), values,
                       _details(cfg, max_new_tokens=new, prompt_chars=chars, truncated_prompts=_truncated(ctx, prompts, new)), ids=[f"verbmem-{i:03d}" for i in range(len(values))])


def knowmem_prompt(question: str, shots: list[dict]) -> str:
    head = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
    return head + f"Question: {question}\nAnswer: "


@register("knowmem", uses=("muse",))
def knowmem(ctx: EvalContext, split: str) -> MetricValue:
    if split not in KNOWMEM_SPLITS:
        raise MetricSkipped(f"KnowMem reads {sorted(KNOWMEM_SPLITS)}, not {split!r}")
    cfg = muse_settings(ctx)
    qa_name, icl_name = KNOWMEM_SPLITS[split]
    rows = _rows(ctx, qa_name, split_limit(cfg, split))
    shots = _rows(ctx, icl_name, None) if cfg["icl"] else []
    new = cfg["knowmem_max_new_tokens"]
    prompts = [_encode(ctx, knowmem_prompt(r["question"], shots), new) for r in rows]
    outs = ctx.generate(f"muse:{split}:{len(prompts)}:icl={len(shots)}", prompts, new, stop_at_eos=True)
    answers = [cut_answer(ctx.tokenizer.decode(o, skip_special_tokens=True)) for o in outs]
    values = rouge_l([r["answer"] for r in rows], answers, cfg["rouge"])
    return MetricValue(mean(values), len(values), values,
                       _details(cfg, shots=len(shots), max_new_tokens=new, truncated_prompts=_truncated(ctx, prompts, new)),
                       ids=[f"{split}-{i:03d}" for i in range(len(values))])


knowmem.splits = tuple(KNOWMEM_SPLITS)  # the split names it reads, for the config check (input_checks.known_splits)
