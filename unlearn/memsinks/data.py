"""Corpus -> documents with sequence ids for one paradigm, and the checks that fail before training.

standard / memsinks: general documents once, each repeated sequence R times (same id every time, except a
`id_noise` fraction of the repetitions, which carry a wrong, fresh id); dedup: each repeated sequence once.
All paradigms train the same number of steps on rows of the same shape: the same token budget.
"""
import random

from unlearn.errors import ConfigError, require
from unlearn.memsinks.corpus import Corpus
from unlearn.memsinks.hashing import MAX_ID, document_id
from unlearn.memsinks.packing import Document

PARADIGMS = ("standard", "memsinks", "dedup", "posthoc")


def check_budget(corpus: Corpus, repetitions: int, max_repeated_share: float) -> None:
    """One clear line when the general corpus is too small to hide R repetitions in (measured in characters,
    before any tokenizer exists)."""
    require(repetitions >= 1, f"corpus.repetitions={repetitions} must be >= 1")
    general = sum(len(t) for t in corpus.general)
    repeated = repetitions * sum(len(t) for t in corpus.repeated)
    share = repeated / max(1, general + repeated)
    if share > max_repeated_share:
        raise ConfigError(
            f"the general corpus is too small for R={repetitions} repetitions: repeated text would be {share:.0%} of the "
            f"training text (corpus.max_repeated_share={max_repeated_share}); lower corpus.repetitions or "
            f"corpus.n_repeated, or use a larger corpus")


def noisy_ids(seq_id: int, text: str, repetitions: int, id_noise: float, rng: random.Random) -> list[int]:
    """The id of each repetition: round(id_noise·R) of them (chosen at random) get a wrong, fresh id."""
    require(0 <= id_noise < 1, f"corpus.id_noise={id_noise} must be in [0, 1): the fraction of repetitions with a wrong id")
    wrong = set(rng.sample(range(repetitions), round(id_noise * repetitions)))
    return [document_id(f"{text}\0noise{k}") if k in wrong else seq_id for k in range(repetitions)]


def training_documents(corpus: Corpus, encode, paradigm: str, repetitions: int, id_noise: float, seed: int) -> list[Document]:
    require(paradigm in PARADIGMS, f"paradigm={paradigm!r} is unknown; use one of {PARADIGMS}")
    rng = random.Random(seed)
    docs = [Document(encode(t), document_id(t)) for t in corpus.general]
    reps = 1 if paradigm == "dedup" else repetitions
    for text, seq_id in zip(corpus.repeated, corpus.repeated_ids):
        tokens = encode(text)
        ids = noisy_ids(seq_id, text, reps, id_noise, rng) if paradigm == "memsinks" else [seq_id] * reps
        docs += [Document(tokens, i) for i in ids]
    assert all(1 <= d.seq_id <= MAX_ID for d in docs)
    rng.shuffle(docs)
    return docs
