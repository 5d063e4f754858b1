"""Refusal answers for IDK fine-tuning: project-written templates shipped in unlearn/resources."""
import random
from dataclasses import replace
from functools import cache
from importlib.resources import files

from unlearn.data.records import Record
from unlearn.errors import UnlearnError


@cache
def refusal_templates() -> tuple[str, ...]:
    text = (files("unlearn") / "resources" / "idontknow.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def refusal_for(index: int, seed: int = 0) -> str:
    """One template per item, fixed by its index (as Closer-Look seeds its choice by the item index)."""
    templates = refusal_templates()
    return random.Random(seed * 1_000_003 + index).choice(templates)


def with_refusals(records: list[Record], seed: int = 0) -> list[Record]:
    """The same questions (same ids) answered with a refusal."""
    missing = [r.id for r in records if r.question is None]
    if missing:
        raise UnlearnError(
            f"refusal answers need question/answer records, but {missing[0]} has no question; use QA data (data=tofu)"
        )
    return [replace(r, text=refusal_for(i, seed)) for i, r in enumerate(records)]
