"""The unit of data: a text record with a stable id, grouped into forget / retain / holdout splits."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Record:
    id: str
    text: str
    # The part given to the model when testing extraction (e.g. a person's name); "" when the
    # evaluation chooses the prefix length in tokens instead.
    prefix: str = ""
    # Token ids in the source's own tokenizer (GPT-2 ids for the extraction challenge). Used as-is
    # when the model shares that tokenizer, so no re-tokenization drift enters the forget set.
    source_ids: tuple[int, ...] | None = None
    source_prefix_len: int | None = None
    # QA records (TOFU): `text` is the answer and the prompt is built from `question` with the model's
    # chat template at encode time, so the same record serves models with different templates.
    question: str | None = None


@dataclass
class Splits:
    forget: list[Record]
    retain: list[Record]
    holdout: list[Record]
    # Plain texts the model never trains on: perplexity (utility) and early-stop validation.
    utility: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    source_tokenizer: str | None = None  # name of the tokenizer behind `source_ids`

    def by_name(self, name: str) -> list[Record]:
        return getattr(self, name)

    def ids(self) -> dict[str, list[str]]:
        return {name: [r.id for r in self.by_name(name)] for name in ("forget", "retain", "holdout")}

    def texts(self) -> list[str]:
        records = [r for name in ("forget", "retain", "holdout") for r in self.by_name(name)]
        return [t for r in records for t in (r.question, r.text) if t] + self.utility + self.validation


def content_digest(splits: Splits) -> str:
    """A hash of every record's text, prompt, question and ids: data files edited under the same ids must
    not reuse a target memorized from the old text."""
    import dataclasses

    from unlearn.storage.keys import key_of

    return key_of(dataclasses.asdict(splits))
