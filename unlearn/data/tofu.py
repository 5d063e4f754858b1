"""TOFU (fictitious-author QA): read any split from the shared folder, or the hub by name when online.

Every row keeps all its fields (paraphrased / perturbed answers, options) for the TOFU metrics; the
question/answer pair becomes a QA `Record` for training and memorization metrics.
"""
import json
from pathlib import Path

from unlearn.data.records import Record
from unlearn.errors import UnlearnError


def load_tofu_rows(root: str | None, split: str) -> list[dict]:
    if root:
        path = Path(root).expanduser() / "tofu" / f"{split}.json"
        if not path.is_file():
            raise UnlearnError(f"TOFU split {split!r} not found at {path}; see tofu/README.md in the shared data for the split names")
        with path.open() as f:
            return [json.loads(line) for line in f if line.strip()]
    try:
        import datasets

        return list(datasets.load_dataset("locuslab/TOFU", split, split="train"))
    except Exception:  # noqa: BLE001 - offline or unknown split
        raise UnlearnError(f"TOFU split {split!r} needs the shared data folder offline: set UNLEARN_DATA_DIR") from None


def record_id(split: str, row: int) -> str:
    """The id of the record made from row `row` of `split` (also the row's id in `<split>_perturbed`,
    whose rows are the same questions in the same order)."""
    return f"{split}-{row:04d}"


def tofu_records(root: str | None, split: str, limit: int | None = None) -> list[Record]:
    rows = load_tofu_rows(root, split)[:limit]
    return [Record(id=record_id(split, i), text=row["answer"], question=row["question"]) for i, row in enumerate(rows)]


def qa_prompt(tokenizer, question: str, use_chat_template: bool = True) -> str:
    """The question as the model expects it: its chat template when it has one, else a plain Q/A frame."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
    return f"Question: {question}\nAnswer: "
