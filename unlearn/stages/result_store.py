"""Evaluation results on disk, rewritten atomically after every metric so an interrupted evaluation
keeps what it finished and a re-run into the same directory resumes.

results.json = {**header, "records": [...]}, per_item.json = {model: {split: {metric: {ids, values}}}},
generations.json = {model: {generation key: {prompts, generations}}}. A record is done when it has
a value and was computed with the same configuration (`details.config`) by the same metric code (the header's
`code`, `code_hash(METRICS)`); skipped records (value
null) are tried again, since the missing model or data may be there now.
"""
import json
import logging
from pathlib import Path

from unlearn.errors import ConfigError
from unlearn.storage.code_hash import METRICS, code_hash
from unlearn.storage.results import write_json


log = logging.getLogger(__name__)


def _load(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default


def _normal(obj):
    """JSON round trip, so configs compare equal whether they came from YAML or from results.json."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


class ResultStore:
    def __init__(self, out_dir, header: dict, overwrite: bool = False, identity_keys: tuple[str, ...] = ()):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        # "in_progress" until the owner sets "complete": a killed evaluation never looks finished.
        self.header = {**dict(header), "status": "in_progress"}
        old = {} if overwrite else _load(self.dir / "results.json", {})
        for key in identity_keys:
            if old and key in old and _normal(old[key]) != _normal(header.get(key)):
                raise ConfigError(
                    f"{self.dir} holds results for a different {key} ({old[key]!r}); pass overwrite=true to replace "
                    "them or choose another output directory (hydra.run.dir=...)"
                )
        # Records computed by other metric code are never taken over: a metric edit between an interrupted
        # evaluation and its resume would otherwise mix old numbers into the new table.
        self.header["code"] = code_hash(METRICS)
        if old and old.get("code") != self.header["code"]:
            if old.get("records"):
                log.warning("%s holds records computed by other metric code (%s, now %s): they are computed again", self.dir,
                            old.get("code"), self.header["code"])
            old, overwrite = {}, True
        self.records: list[dict] = old.get("records", [])
        self.per_item: dict = {} if overwrite else _load(self.dir / "per_item.json", {})
        self.generations: dict = {} if overwrite else _load(self.dir / "generations.json", {})

    def _find(self, model: str, split: str, metric: str) -> int | None:
        for i, r in enumerate(self.records):
            if (r["model"], r["split"], r["metric"]) == (model, split, metric):
                return i
        return None

    def done(self, model: str, split: str, metric: str, config: dict) -> bool:
        i = self._find(model, split, metric)
        if i is None:
            return False
        r = self.records[i]
        return r["value"] is not None and _normal(r["details"].get("config")) == _normal(config)

    def add(self, record: dict, per_item: dict | None, generations: dict) -> None:
        i = self._find(record["model"], record["split"], record["metric"])
        if i is None:
            self.records.append(record)
        else:
            self.records[i] = record
        if per_item is not None:
            self.per_item.setdefault(record["model"], {}).setdefault(record["split"], {})[record["metric"]] = per_item
        if generations:
            self.generations.setdefault(record["model"], {}).update(generations)
        self.flush()

    def flush(self) -> None:
        write_json(self.dir / "per_item.json", self.per_item)
        write_json(self.dir / "generations.json", self.generations)
        # results.json last: a record listed there always has its per-item values on disk.
        write_json(self.dir / "results.json", {**self.header, "records": self.records})
