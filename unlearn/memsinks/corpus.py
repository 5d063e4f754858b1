"""The training corpus of a MemSinks run: general text, a set of natural sequences repeated R times,
held-out sequences of the same kind (never trained on) and validation text.

Offline (`corpus.source=local`, default): general text = WikiText-2 paragraphs from the data root, the
repeated and held-out sets = TOFU author answers (`corpus.answers_per_doc` consecutive answers of one
author per document), or a JSONL file of {"text", optional "id"} documents (`corpus.repeated_path`).
Online (`corpus.source=hub`): general text and repeated stories from a hub dataset (default
roneneldan/TinyStories, as in the paper's controlled study); offline this fails at once naming the id.
"""
import json
import random
from dataclasses import dataclass
from pathlib import Path

from unlearn.data.tofu import load_tofu_rows
from unlearn.errors import ConfigError, UnlearnError, require
from unlearn.memsinks.hashing import MAX_ID, document_id
from unlearn.models.hub import hub_offline


@dataclass
class Corpus:
    general: list[str]
    repeated: list[str]
    repeated_ids: list[int]
    heldout: list[str]
    validation: list[str]
    source: str


def wikitext_paragraphs(root) -> list[list[str]]:
    """Paragraphs per article (headings dropped), WikiText-2 raw from `<root>/wikitext2_raw`."""
    path = Path(root).expanduser() / "wikitext2_raw" / "wiki.test.articles.jsonl"
    if not path.is_file():
        raise UnlearnError(f"missing data file {path}; set UNLEARN_DATA_DIR (paths.data_root) to the shared data folder")
    articles = []
    with path.open() as f:
        for line in f:
            text = json.loads(line)["text"].replace("\r\n", "\n")
            paras = [p.strip() for p in text.split("\n") if p.strip() and not p.strip().startswith("=")]
            articles.append([p for p in paras if len(p) > 80])
    return articles


def tofu_documents(root, per_doc: int) -> list[str]:
    """Consecutive answers of one author joined into one document (TOFU has 20 answers per author)."""
    rows = load_tofu_rows(root, "full")
    docs = []
    for start in range(0, len(rows) - per_doc + 1, per_doc):
        docs.append(" ".join(r["answer"].strip() for r in rows[start:start + per_doc]))
    return docs


def jsonl_documents(path) -> tuple[list[str], list[int | None]]:
    path = Path(path).expanduser()
    require(path.is_file(), f"corpus.repeated_path={path} does not exist; give a JSONL file of {{\"text\": ..., \"id\": ...}}")
    texts, ids = [], []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            texts.append(row["text"])
            ids.append(row.get("id"))
    return texts, ids


def assign_ids(texts: list[str], explicit: list | None = None) -> list[int]:
    """A hash of each document by default; explicit ids (ints >= 1) where given."""
    out = []
    for i, text in enumerate(texts):
        given = explicit[i] if explicit else None
        if given is None:
            out.append(document_id(text))
        else:
            require(isinstance(given, int) and 1 <= given <= MAX_ID,
                    f"document {i} has id {given!r}; explicit sequence ids must be integers in [1, {MAX_ID}] (0 is reserved)")
            out.append(given)
    return out


def _hub_texts(dataset: str, split: str, n: int, field: str = "text") -> list[str]:
    if hub_offline():
        raise ConfigError(f"corpus.source=hub needs the Hugging Face hub for {dataset!r}, which cannot be reached; "
                          "use corpus.source=local (WikiText + TOFU from the data root) offline")
    import datasets

    stream = datasets.load_dataset(dataset, split=split, streaming=True)
    out = []
    for row in stream:
        if row[field].strip():
            out.append(row[field].strip())
        if len(out) >= n:
            break
    return out


def load_corpus(cfg, root, seed: int) -> Corpus:
    n_rep, n_held = cfg.n_repeated, cfg.n_heldout
    require(n_rep >= 1, f"corpus.n_repeated={n_rep}: the repeated set needs at least one sequence")
    if cfg.source == "hub":
        general = _hub_texts(cfg.hub.dataset, cfg.hub.general_split, cfg.hub.n_general)
        stories = _hub_texts(cfg.hub.dataset, cfg.hub.repeated_split, n_rep + n_held + cfg.hub.n_validation)
        repeated, heldout, validation = stories[:n_rep], stories[n_rep:n_rep + n_held], stories[n_rep + n_held:]
        return Corpus(general, repeated, assign_ids(repeated), heldout, validation, f"hub {cfg.hub.dataset}")
    require(cfg.source == "local", f"corpus.source={cfg.source!r} is unknown; use local or hub")
    require(root, "corpus.source=local reads the shared data folder: set UNLEARN_DATA_DIR or paths.data_root")
    articles = wikitext_paragraphs(root)
    n_val = max(1, int(len(articles) * cfg.validation_fraction))
    general = [p for a in articles[:-n_val] for p in a][: cfg.get("max_general_docs") or None]
    validation = [p for a in articles[-n_val:] for p in a]
    if cfg.get("repeated_path"):
        texts, explicit = jsonl_documents(cfg.repeated_path)
    else:
        texts, explicit = tofu_documents(root, cfg.answers_per_doc), None
    require(len(texts) >= n_rep + n_held,
            f"the repeated-set source has {len(texts)} documents but corpus.n_repeated + corpus.n_heldout = {n_rep + n_held}; "
            "lower them")
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    rep, held = order[:n_rep], order[n_rep:n_rep + n_held]
    ids = assign_ids([texts[i] for i in rep], [explicit[i] for i in rep] if explicit else None)
    return Corpus(general, [texts[i] for i in rep], ids, [texts[i] for i in held], validation,
                  "local wikitext2_raw + " + (str(cfg.repeated_path) if cfg.get("repeated_path") else "tofu/full answers"))
