"""Evaluation records of the fixed models (original, target, oracle), shared by every run on one
memorized target.

Every job of a sweep evaluates the same original model, memorized target and oracle, so their rows in
each job's table are the same numbers. Computing them once per sweep instead of once per job leaves
one model of four to evaluate per job. A record is reused only when the memorized target (the cache
folder, keyed by model, data and seed), the metric's configuration, the evaluation's identity (prefix
length, batch size, device) and the metric code all match; skipped records (value null) are never stored, so a metric whose model or data
appears later runs.
"""
import hashlib
import json
import logging
from pathlib import Path

from unlearn.storage.code_hash import METRICS, code_hash
from unlearn.storage.results import write_json

log = logging.getLogger(__name__)

FIXED_ROLES = ("original", "target", "oracle")


def metric_code_hash() -> str:
    """The source of everything a metric value depends on besides the model: an edited metric, decoder or
    data encoder must not reuse numbers its old version computed."""
    return code_hash(METRICS)


class ReferenceCache:
    def __init__(self, folder: Path, identity: dict):
        self.folder = Path(folder)
        self.identity = identity

    def _path(self, role: str, split: str, label: str, config: dict) -> Path:
        material = json.dumps({"identity": self.identity, "code": metric_code_hash(), "role": role, "split": split,
                               "metric": label, "config": config}, sort_keys=True, default=str)
        return self.folder / f"{role}-{hashlib.sha256(material.encode()).hexdigest()[:16]}.json"

    def get(self, role: str, split: str, label: str, config: dict):
        """(record, per-item values, generations) computed before, or None."""
        if role not in FIXED_ROLES:
            return None
        path = self._path(role, split, label, config)
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        record = saved["record"]
        record["details"]["reused_from"] = str(path)
        log.info("evaluate: reusing %s %s/%s from %s: its key matched the memorized target (this folder), the metric's config, "
                 "the evaluation identity %s and metric code %s", role, split, label, path, self.identity, metric_code_hash())
        return record, saved["per_item"], saved["generations"]

    def put(self, role: str, split: str, label: str, config: dict, record: dict, per_item, generations: dict) -> None:
        if role not in FIXED_ROLES or record["value"] is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self._path(role, split, label, config),
                   {"record": record, "per_item": per_item, "generations": generations})
