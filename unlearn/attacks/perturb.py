"""Prompt-perturbation attack: ask for the same record with another prompt (Thaker et al., arXiv
2410.02879: unlearning overfits to the exact test queries). Each variant is a record split with the same
record ids, the same order and the same continuation to reproduce, only the prompt differs; a metric is
re-measured per variant and the worst case (the most leakage) is taken per item.

Every variant is scored on exactly the clean prompt's continuation tokens: a variant that changed the
text to reproduce would change the metric's scale (k more tokens to recite = EM_len up to k higher for
every model), and the worst case over variants would read that as recovered knowledge.

Extraction-style records (a prefix, then the text to recite), on token ids:
- `shift_-k`: the prefix window ends k tokens earlier; the k tokens between it and the continuation are
  cut out (neither given nor scored), so the model is asked for the same continuation after a gap.
  A positive shift would move part of the continuation into the prompt, so it is not a variant;
- `truncate_k`: the first k prefix tokens dropped, the continuation unchanged;
- `replace_k`: k prefix tokens replaced by random tokens (seeded), the continuation unchanged.
Question/answer records (TOFU): `paraphrase`, the question replaced by its `paraphrased_question` from the
`<forget_split>_perturbed` file (the shared TOFU copy has paraphrased questions only; its "perturbed"
fields are wrong *answers*, which are not prompts).
"""
import random
import re

from unlearn.data.encode import EncodedSplit
from unlearn.errors import require

KINDS = ("shift", "truncate", "replace", "paraphrase")
_VARIANT = re.compile(r"^(shift|truncate|replace)_(-?\d+)$|^paraphrase$")


def validate(params: dict) -> None:
    variants = list(params.get("variants") or [])
    require(variants, "perturb attack: give variants, e.g. [shift_2, shift_-2, truncate_2, replace_2, paraphrase]")
    for v in variants:
        m = _VARIANT.match(str(v))
        require(m is not None, f"perturb attack: variant {v!r} is unknown; use shift_-K, truncate_K, replace_K (K tokens) or paraphrase")
        if m.group(1) in ("truncate", "replace"):
            require(int(m.group(2)) >= 1, f"perturb attack: {v} needs K >= 1")
        if m.group(1) == "shift":
            require(int(m.group(2)) <= -1, f"perturb attack: {v} would put part of the text to reproduce into the prompt; "
                    "every variant is scored on the clean continuation, so shift only left (shift_-K), or use truncate_K")


def token_variant(split: EncodedSplit, variant: str, vocab_size: int, seed: int, special_ids=()) -> EncodedSplit:
    """One extraction-style variant of every record, with the record's own continuation. A record whose
    prefix is too short for the variant keeps at least one prompt token."""
    kind, k = variant.rsplit("_", 1)
    k = int(k)
    rng = random.Random(f"{seed}-{variant}")
    special = set(special_ids)
    ids_out, prefix_out = [], []
    for ids, p in zip(split.input_ids, split.prefix_lens):
        ids = list(ids)
        continuation = ids[p:]
        if kind == "shift":  # window [0, p - |k|), then the continuation: the |k| tokens between are cut out
            end = max(1, p + k)
            ids, p = ids[:end] + continuation, end
        elif kind == "truncate":
            drop = min(k, p - 1)
            ids, p = ids[drop:], p - drop
        elif kind == "replace":
            for pos in rng.sample(range(p), min(k, p)):
                new = ids[pos]
                while new == ids[pos] or new in special:
                    new = rng.randrange(vocab_size)
                ids[pos] = new
        require(ids[p:] == continuation, f"perturb variant {variant} changed the text to reproduce")
        ids_out.append(ids)
        prefix_out.append(p)
    return EncodedSplit(list(split.record_ids), ids_out, prefix_out)


def paraphrased_records(records, paraphrases: dict[str, str]):
    """QA records with each question replaced by its paraphrase (records without one keep theirs)."""
    from dataclasses import replace

    require(all(r.question is not None for r in records), "perturb variant paraphrase needs question/answer records (data=tofu)")
    return [replace(r, question=paraphrases.get(r.question, r.question)) for r in records]


def tofu_paraphrases(data_cfg, root) -> dict[str, str]:
    """question -> paraphrased_question from the `<forget_split>_perturbed` TOFU file."""
    from unlearn.data.tofu import load_tofu_rows

    rows = load_tofu_rows(root, f"{data_cfg.forget_split}_perturbed")
    return {row["question"]: row["paraphrased_question"] for row in rows if row.get("paraphrased_question")}
