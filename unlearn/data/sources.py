"""Where records come from: generated, the extraction-challenge arrays, JSONL files, or HF datasets.

The shared data root comes from `paths.data_root` (default: the UNLEARN_DATA_DIR environment variable).
Sources that need it fail at once with the fix when it is missing.
"""
import json
import random
from pathlib import Path

import numpy as np

from unlearn.data.records import Record
from unlearn.data.synthetic import synthetic_records
from unlearn.errors import UnlearnError


def data_root(root: str | None, what: str) -> Path:
    if not root:
        raise UnlearnError(
            f"{what} reads the shared data folder, but no data root is set. Set UNLEARN_DATA_DIR=/path/to/shared/data "
            "or pass paths.data_root=/path/to/shared/data"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise UnlearnError(f"data root {path} does not exist; fix UNLEARN_DATA_DIR or paths.data_root")
    return path


def _need_file(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise UnlearnError(f"missing data file {path}; {hint}")
    return path


def load_records(cfg, root: str | None) -> list[Record]:
    """All candidate records of a `conf/data/*.yaml` node, in a stable order."""
    kind = cfg.source
    if kind == "synthetic":
        total = cfg.n_forget + cfg.n_retain + cfg.n_holdout
        return synthetic_records(total, cfg.seed)
    if kind == "extraction_challenge":
        return _extraction_challenge(cfg, data_root(root, "data=extraction_challenge"))
    if kind == "paragraph_memorization":
        from unlearn.data.paragraphs import paragraph_records

        return paragraph_records(cfg, data_root(root, "data=paragraph_memorization"), gpt2_tokenizer)
    if kind == "jsonl":
        return _jsonl(cfg, root)
    if kind == "hf":
        return _hf(cfg)
    if kind in ("tofu", "muse_news"):
        raise UnlearnError(f"{kind} splits come from load_splits(), not load_records()")
    raise UnlearnError(f"data.source={kind!r} is unknown; use synthetic, extraction_challenge, paragraph_memorization, jsonl or hf")


def gpt2_tokenizer(root: Path):
    from transformers import AutoTokenizer

    folder = root / "gpt2_tokenizer"
    _need_file(folder / "vocab.json", "the GPT-2 tokenizer ships in the shared data folder as gpt2_tokenizer/")
    return AutoTokenizer.from_pretrained(folder)


def _extraction_challenge(cfg, root: Path) -> list[Record]:
    folder = root / "lm_extraction_benchmark"
    hint = "see lm_extraction_benchmark/README.md in the shared data"
    arrays = {part: np.load(_need_file(folder / f"{cfg.split}_{part}.npy", hint)) for part in ("preprefix", "prefix", "suffix")}
    parts = (["preprefix"] if cfg.include_preprefix else []) + ["prefix", "suffix"]
    ids = np.concatenate([arrays[p] for p in parts], axis=1).astype(np.int64)
    prefix_len = ids.shape[1] - arrays["suffix"].shape[1]
    tok = gpt2_tokenizer(root)
    needed = cfg.n_forget + cfg.n_retain + cfg.n_holdout
    rows = list(range(ids.shape[0]))
    # The official README keeps the last rows as internal validation: holdout comes from the end.
    body, tail = rows[: len(rows) - cfg.n_holdout], rows[len(rows) - cfg.n_holdout:]
    if cfg.get("shuffle"):  # draw forget/retain from all rows (size=paper_di: a different 32 per seed)
        random.Random(cfg.seed).shuffle(body)
    chosen = body[: cfg.n_forget + cfg.n_retain] + tail if needed <= len(rows) else rows
    records = []
    for i in chosen:
        row = ids[i].tolist()
        records.append(Record(
            id=f"{cfg.split}-{i:05d}",
            text=tok.decode(row),
            prefix=tok.decode(row[:prefix_len]),
            source_ids=tuple(row),
            source_prefix_len=prefix_len,
        ))
    return records


def _jsonl(cfg, root: str | None) -> list[Record]:
    path = Path(cfg.path).expanduser()
    if not path.is_absolute() and root:
        path = Path(root).expanduser() / path
    _need_file(path, "set data.path to a JSONL file with one object per line")
    records = []
    with path.open() as f:
        for line_no, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UnlearnError(f"{path}:{line_no + 1}: not valid JSON ({err.msg}, column {err.colno}); "
                                   "fix that line: the file needs one JSON object per line") from None
            if not isinstance(row, dict):
                raise UnlearnError(f"{path}:{line_no + 1}: a JSON {type(row).__name__}, not an object; "
                                   f'write one object per line, like {{"{cfg.text_field}": "..."}}')
            if cfg.text_field not in row:
                raise UnlearnError(f"{path}:{line_no + 1} has no field {cfg.text_field!r}; set data.text_field")
            rid = str(row.get(cfg.id_field, line_no)) if cfg.get("id_field") else f"line-{line_no:06d}"
            prefix = row.get(cfg.prefix_field, "") if cfg.get("prefix_field") else ""
            if not isinstance(row[cfg.text_field], str) or not row[cfg.text_field].strip():
                raise UnlearnError(f"{path}:{line_no + 1}: field {cfg.text_field!r} is empty or not a string; "
                                   "remove that record or give it text")
            text = prefix + row[cfg.text_field] if cfg.get("prefix_field") else row[cfg.text_field]
            records.append(Record(id=rid, text=text, prefix=prefix))
    return records


def _hf(cfg) -> list[Record]:
    from unlearn.models.hub import hub_offline

    try:
        import datasets

        ds = datasets.load_dataset(cfg.hf_name, cfg.get("config"), split=cfg.get("hf_split", "train"))
    except Exception as exc:  # noqa: BLE001 - datasets raises many types for "not available"
        where = "the hub is unreachable" if hub_offline() else str(exc).splitlines()[0]
        raise UnlearnError(
            f"dataset {cfg.hf_name!r} could not be loaded ({where}); download it where there is network, "
            "or export it to JSONL and use data=jsonl data.path=/path/file.jsonl"
        ) from None
    return [Record(id=f"{cfg.hf_name}-{i:06d}", text=row[cfg.text_field]) for i, row in enumerate(ds) if row[cfg.text_field].strip()]


# Sources whose records are question -> answer (methods that rewrite answers, like IDK+AP, need one).
QA_SOURCES = ("tofu",)


def load_splits(cfg, root: str | None) -> tuple[list[Record], list[Record], list[Record]]:
    """(forget, retain, holdout). TOFU names its own splits; other sources are cut from one list."""
    if cfg.source == "tofu":
        from unlearn.data.tofu import tofu_records

        root = str(data_root(root, "data=tofu")) if root else None
        return (
            tofu_records(root, cfg.forget_split, cfg.n_forget),
            tofu_records(root, cfg.retain_split, cfg.n_retain),
            tofu_records(root, cfg.holdout_split, cfg.n_holdout),
        )
    if cfg.source == "muse_news":
        from unlearn.data.muse import muse_news_records

        return muse_news_records(cfg, root)
    if cfg.get("retain_from"):  # the retain set from another corpus (EMSO: 10,000 CC-News sequences for GD/KL)
        forget, _, holdout = assign_splits(load_records(cfg, root), cfg, n_retain=0)
        return forget, external_retain(cfg.retain_from, cfg.n_retain, cfg.seed), holdout
    return assign_splits(load_records(cfg, root), cfg)


def external_retain(spec, n: int, seed: int) -> list[Record]:
    records = load_records(spec, None)
    if spec.get("shuffle"):
        records = records[:]
        random.Random(seed).shuffle(records)
    if len(records) < n:
        raise UnlearnError(f"data.retain_from has {len(records)} records, data.n_retain asks for {n}; lower data.n_retain")
    return records[:n]


def assign_splits(records: list[Record], cfg, n_retain: int | None = None) -> tuple[list[Record], list[Record], list[Record]]:
    if cfg.get("shuffle", False):
        records = records[:]
        random.Random(cfg.seed).shuffle(records)
    nf, nr, nh = cfg.n_forget, cfg.n_retain if n_retain is None else n_retain, cfg.n_holdout
    if nf + nr + nh > len(records):
        raise UnlearnError(
            f"data asks for {nf} forget + {nr} retain + {nh} holdout records but the source has {len(records)}; "
            "lower data.n_forget / n_retain / n_holdout"
        )
    return records[:nf], records[nf:nf + nr], records[nf + nr:nf + nr + nh]


def wikitext_texts(root: str | None, n: int, offset: int, max_chars: int) -> list[str]:
    """Paragraphs of WikiText-2 test (no headings), from the shared folder or the hub."""
    if root:
        path = _need_file(Path(root).expanduser() / "wikitext2_raw" / "wiki.test.articles.jsonl", "see wikitext2_raw/README.md")
        paragraphs = []
        with path.open() as f:
            for line in f:
                paragraphs += [p.strip() for p in json.loads(line)["text"].split("\n")]
    else:
        try:
            import datasets

            paragraphs = [r["text"].strip() for r in datasets.load_dataset("wikitext", "wikitext-2-raw-v1", split="test")]
        except Exception:  # noqa: BLE001
            raise UnlearnError("WikiText needs the shared data root offline: set UNLEARN_DATA_DIR") from None
    paragraphs = [p for p in paragraphs if len(p) > 200 and not p.startswith("=")]
    return [p[:max_chars] for p in paragraphs[offset:offset + n]]
