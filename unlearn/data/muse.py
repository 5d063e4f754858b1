"""MUSE-News (Shi et al. 2024, arXiv 2407.06460) from the shared folder `<data_root>/muse/news`.

The shared copy is a PRE-RELEASE version of the data (jaechan-repo/muse_bench @ e000038, "first commit"):
its verbmem file is about half the size of the released one and its utility QA split is `retain2_qa`
(released: `retain_qa`). Every number computed on it is on that copy, not on the released benchmark.

Records for `data=muse_news`:
- forget: articles of `raw/forget.json` (the corpus MUSE unlearns). With `align: verbmem` (the CPU
  demo), the i-th forget record is the window of the article that the i-th VerbMem probe covers: the
  last `prefix_chars` characters of the probe's prompt (the record's prefix) followed by its true
  continuation. A model that memorizes these records can then be tested by VerbMem at a small scale;
  with `align: none` the records are whole articles in file order (cut to `max_chars`).
- retain: `privleak/retain2.json` (texts from MUSE's retain corpus; the raw retain split is not in the
  shared copy).
- holdout: `privleak/holdout.json` (never trained on: the non-member side of membership inference).
"""
import json
from pathlib import Path

from unlearn.data.records import Record
from unlearn.errors import UnlearnError

PRE_RELEASE = ("MUSE-News from a pre-release copy of the data (jaechan-repo/muse_bench @ e000038); "
               "numbers are not comparable to the released benchmark's")
# The shared copy names the utility QA split `retain2_qa`; the released data calls it `retain_qa`.
FILES = {
    "raw_forget": "raw/forget.json",
    "verbmem_forget": "verbmem/forget.json",
    "privleak_forget": "privleak/forget.json",
    "privleak_retain": "privleak/retain2.json",
    "privleak_holdout": "privleak/holdout.json",
    "knowmem_forget": "knowmem/forget_qa.json",
    "knowmem_forget_icl": "knowmem/forget_qa_icl.json",
    "knowmem_retain": "knowmem/retain2_qa.json",
    "knowmem_retain_icl": "knowmem/retain2_qa_icl.json",
}


def muse_file(root: str | None, corpus: str, name: str) -> Path:
    if not root:
        raise UnlearnError("MUSE reads the shared data folder: set UNLEARN_DATA_DIR=/path/to/shared/data "
                           "or paths.data_root=/path/to/shared/data")
    if name not in FILES:
        raise UnlearnError(f"MUSE file {name!r} is unknown; use one of {sorted(FILES)}")
    path = Path(root).expanduser() / "muse" / corpus / FILES[name]
    if not path.is_file():
        raise UnlearnError(f"missing MUSE file {path}; see muse/README.md in the shared data "
                           f"(the copy has News in full and Books knowmem only)")
    return path


def load_muse(root: str | None, corpus: str, name: str) -> list:
    with muse_file(root, corpus, name).open() as f:
        rows = json.load(f)
    if not isinstance(rows, list) or not rows:
        raise UnlearnError(f"{muse_file(root, corpus, name)} is not a non-empty JSON array")
    return rows


def _aligned_forget(root: str | None, n: int, prefix_chars: int) -> list[Record]:
    """The window of the forget corpus each VerbMem probe covers: prompt tail + true continuation."""
    articles = load_muse(root, "news", "raw_forget")
    probes = load_muse(root, "news", "verbmem_forget")
    if n > len(probes):
        raise UnlearnError(f"data.n_forget={n} with align=verbmem, but there are {len(probes)} VerbMem probes; "
                           "lower data.n_forget or set data.align=none")
    records = []
    for i, probe in enumerate(probes[:n]):
        # The probe's prompt ends where its continuation starts; the whitespace between them is in
        # neither, so it is taken from the article (a space where the prompt tail is not verbatim in
        # raw/forget.json: 1 of the 100 probes in the shared copy).
        prefix = probe["prompt"][-prefix_chars:]
        article = next((a for a in articles if prefix in a), "")
        start = article.find(prefix) + len(prefix) if article else -1
        gap = article[start:len(article) - len(article[start:].lstrip())] if start >= 0 else " "
        records.append(Record(id=f"muse-news-verbmem-{i:03d}", text=prefix + (gap or " ") + probe["gt"], prefix=prefix))
    return records


def muse_news_records(cfg, root: str | None) -> tuple[list[Record], list[Record], list[Record]]:
    """(forget, retain, holdout) for `data=muse_news`."""
    cut = cfg.get("max_chars") or None
    align = cfg.get("align", "verbmem")
    if align == "verbmem":
        forget = _aligned_forget(root, cfg.n_forget, cfg.get("prefix_chars", 200))
    elif align == "none":
        articles = load_muse(root, "news", "raw_forget")
        forget = [Record(id=f"muse-news-forget-{i:03d}", text=a[:cut]) for i, a in enumerate(articles[:cfg.n_forget])]
    else:
        raise UnlearnError(f"data.align={align!r}; use verbmem or none")
    retain = [Record(id=f"muse-news-retain-{i:03d}", text=t[:cut])
              for i, t in enumerate(load_muse(root, "news", "privleak_retain")[:cfg.n_retain])]
    holdout = [Record(id=f"muse-news-holdout-{i:03d}", text=t[:cut])
               for i, t in enumerate(load_muse(root, "news", "privleak_holdout")[:cfg.n_holdout])]
    for name, got, want in (("forget", forget, cfg.n_forget), ("retain", retain, cfg.n_retain), ("holdout", holdout, cfg.n_holdout)):
        if len(got) < want:
            raise UnlearnError(f"data.n_{name}={want} but MUSE-News has {len(got)} {name} texts here; lower data.n_{name}")
    return forget, retain, holdout


def pre_release_note(records: list[dict] | None = None, data_names=()) -> str:
    """A line for any table holding MUSE numbers (records whose details name the copy, or a data set
    named muse_*): they are on the pre-release copy."""
    hit = any(PRE_RELEASE == (r.get("details") or {}).get("data") for r in records or []) or \
        any(str(d).startswith("muse") for d in data_names)
    return f"\n\nNote: {PRE_RELEASE}." if hit else ""
