"""WikiText paragraphs for open-ended generation: the shared folder offline, the hub online."""
import json
from collections.abc import Iterator
from pathlib import Path

from unlearn.errors import UnlearnError


def wikitext_paragraphs(root: str | None, hub_config: str = "wikitext-103-raw-v1", hub_split: str = "train") -> tuple[str, Iterator[str]]:
    """(source description, paragraphs). With a data root: WikiText-2 raw test (= WikiText-103 test
    articles) from `<root>/wikitext2_raw`; without: the hub dataset EMSO used (WikiText-103 train), streamed."""
    if root:
        path = Path(root).expanduser() / "wikitext2_raw" / "wiki.test.articles.jsonl"
        if not path.is_file():
            raise UnlearnError(f"missing data file {path}; see wikitext2_raw/README.md in the shared data")

        def local():
            with path.open() as f:
                for line in f:
                    yield from (p.strip() for p in json.loads(line)["text"].split("\n"))

        return f"{path.parent.name}/wiki.test (local)", local()
    try:
        import datasets

        ds = datasets.load_dataset("wikitext", hub_config, split=hub_split, streaming=True)
    except Exception:  # noqa: BLE001 - offline, or the hub refused
        raise UnlearnError("WikiText needs the shared data root offline: set UNLEARN_DATA_DIR or paths.data_root") from None
    return f"hub wikitext/{hub_config}/{hub_split}", (r["text"].strip() for r in ds)
