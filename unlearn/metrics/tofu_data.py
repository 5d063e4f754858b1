"""TOFU evaluation sets and the memoized passes every TOFU / Closer-Look metric reads (spec §3.10–3.11).

Sets (split names in results): `tofu_forget` = `<forget_split>_perturbed`, `tofu_retain` =
`retain_perturbed`, `real_authors` / `world_facts` = their `_perturbed` files. Per model and set, one
greedy generation pass (ROUGE, TE, CS, ES) and one teacher-forced pass per answer field
(probability, truth ratio), all through the chat template (`qa_prompt`) with question tokens masked;
which tokens after the question are scored is `scoring` (`tofu_scoring.py`: a preset per reference code).
Ratios keep open-unlearning's 1e-10 guards, so a collapsed model gets the references' values.
"""
import math
from dataclasses import dataclass

from unlearn.data.tofu import load_tofu_rows, qa_prompt, record_id
from unlearn.errors import UnlearnError
from unlearn.generation.forward import teacher_forced
from unlearn.metrics.context import EvalContext
from unlearn.metrics.registry import MetricSkipped
from unlearn.metrics.tofu_scoring import DEFAULT_SCORING, check_scoring, scored_sequence

SETS = ("tofu_forget", "tofu_retain", "real_authors", "world_facts")
UTILITY_SETS = ("tofu_retain", "real_authors", "world_facts")
# TOFU defaults; Closer-Look evaluates only the first 300 retain rows (set limits: {tofu_retain: 300}).
DEFAULTS = {"forget_split": "forget10", "limit": None, "limits": {}, "max_new_tokens": 200, "use_chat_template": True,
            "batch_size": None, "scoring": DEFAULT_SCORING}
# open-unlearning's guard on every ratio of probabilities (truth ratio, normalized probability, 1/R).
GUARD = 1e-10


def tofu_settings(ctx: EvalContext) -> dict:
    cfg = {**DEFAULTS, **ctx.setting("tofu")}
    check_scoring(cfg["scoring"])
    return cfg


def file_for(split: str, cfg: dict) -> str:
    if split == "tofu_forget":
        return f"{cfg['forget_split']}_perturbed"
    if split == "tofu_retain":
        return "retain_perturbed"
    if split in ("real_authors", "world_facts"):
        return f"{split}_perturbed"
    raise MetricSkipped(f"{split!r} is not a TOFU evaluation set; use any of {SETS}")


def rows(ctx: EvalContext, split: str) -> list[dict]:
    """The set's rows; of `tofu_forget`, only those of the forget records the evaluation may measure
    (`env.forget_ids`: a relearning attack measures the records it held back, never those it trained on)."""
    cfg = tofu_settings(ctx)
    name = file_for(split, cfg)
    limit = (cfg.get("limits") or {}).get(split, cfg["limit"])
    only = ctx.env.forget_ids if split == "tofu_forget" else None

    def load():
        try:
            loaded = load_tofu_rows(ctx.env.data_root, name)[:limit]
        except UnlearnError as exc:
            raise MetricSkipped(str(exc)) from None
        if only is None:
            return loaded
        kept = [row for i, row in enumerate(loaded) if record_id(cfg["forget_split"], i) in only]
        if not kept:
            raise MetricSkipped(f"none of the {len(only)} forget records measured here is among the {len(loaded)} rows of {name}")
        return kept

    return ctx.memo(("tofu_rows", name, limit, only), load)


def _prompts(ctx: EvalContext, split: str) -> list[list[int]]:
    cfg = tofu_settings(ctx)
    return [ctx.tokenizer.encode(qa_prompt(ctx.tokenizer, r["question"], cfg["use_chat_template"]), add_special_tokens=False)
            for r in rows(ctx, split)]


def generations(ctx: EvalContext, split: str) -> list[str]:
    """Greedy answers to the set's questions (stopping at EOS), decoded."""
    cfg = tofu_settings(ctx)
    prompts = _prompts(ctx, split)
    outs = ctx.generate(f"tofu:{file_for(split, cfg)}:{len(prompts)}", prompts, cfg["max_new_tokens"])
    return [ctx.tokenizer.decode(o, skip_special_tokens=True) for o in outs]


def answer_nll(ctx: EvalContext, split: str, field: str) -> list[list[float]]:
    """Per row, the mean NLL of each answer in `field` (a string or a list of strings) given the question,
    over the tokens `scoring` picks; one teacher-forced pass over all of them."""
    cfg = tofu_settings(ctx)

    def compute():
        data = rows(ctx, split)
        seqs, owners, starts = [], [], []
        for i, row in enumerate(data):
            answers = row[field] if isinstance(row[field], list) else [row[field]]
            for answer in answers:
                ids, first = scored_sequence(ctx.tokenizer, row["question"], answer, cfg["use_chat_template"], cfg["scoring"])
                seqs.append(ids)
                owners.append(i)
                starts.append(first - 1)  # nll[j] predicts token j+1: scored tokens start at nll[first - 1]
        nll = teacher_forced(ctx.model, seqs, ctx.pad_id, cfg["batch_size"] or ctx.batch_size).nll
        out: list[list[float]] = [[] for _ in data]
        for owner, start, values in zip(owners, starts, nll):
            answer = values[start:]
            out[owner].append(sum(answer) / len(answer) if answer else float("inf"))
        return out

    key = ("tofu_nll", file_for(split, cfg), len(rows(ctx, split)), field, cfg["scoring"], cfg["use_chat_template"])
    return ctx.memo(key, compute)


def normalized_prob(avg_nll: float) -> float:
    """Length-normalized probability P(a|q) = exp(-mean token NLL)."""
    return math.exp(-avg_nll)


@dataclass
class TruthRatios:
    values: list[float]  # R = P_pert / P_correct per item

    def closer_to_1(self) -> float:
        return sum(min(r, 1 / (r + GUARD)) for r in self.values) / len(self.values)

    def true_better(self) -> float:
        return sum(max(0.0, 1 - r) for r in self.values) / len(self.values)


def truth_ratios(ctx: EvalContext, split: str) -> TruthRatios:
    """R = geometric-mean probability of the perturbed answers over that of the correct one: the
    paraphrased answer for forget/retain, the original answer for real authors and world facts."""
    correct_field = "paraphrased_answer" if split in ("tofu_forget", "tofu_retain") else "answer"
    correct = answer_nll(ctx, split, correct_field)
    perturbed = answer_nll(ctx, split, "perturbed_answer")
    return TruthRatios([truth_ratio(c, pert) for (c,), pert in zip(correct, perturbed)])


def truth_ratio(correct_nll: float, perturbed_nll: list[float]) -> float:
    """R = P_pert / (P_correct + 1e-10), P_pert the geometric mean over the perturbed answers."""
    return math.exp(-(sum(perturbed_nll) / len(perturbed_nll))) / (math.exp(-correct_nll) + GUARD)


def normalized_over_options(correct: float, perturbed: list[float]) -> float:
    """P(a) / (P(a) + sum of the perturbed answers' P + 1e-10): real authors' and world facts' probability."""
    return correct / (correct + sum(perturbed) + GUARD)


def rouge_recalls(ctx: EvalContext, split: str) -> list[float]:
    """ROUGE-L recall of each greedy answer against the ground-truth answer (rouge-score, stemmed)."""
    def compute():
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        return [scorer.score(r["answer"], g)["rougeL"].recall for r, g in zip(rows(ctx, split), generations(ctx, split))]

    cfg = tofu_settings(ctx)
    return ctx.memo(("tofu_rouge", file_for(split, cfg), len(rows(ctx, split)), cfg["max_new_tokens"]), compute)
