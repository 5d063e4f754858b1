"""Checks on the user's input that need no model: they run before anything is loaded or trained, so bad
input fails in seconds with one line naming the cause and the fix (the catalogue is in
docs/bad_input.md). Checks that need the tokenizer (token ids, prefix lengths) are in unlearn/data/encode.py.
"""
import os
import tempfile
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from unlearn.errors import ConfigError, UnlearnError, require

RECORD_SPLITS = ("forget", "retain", "holdout")
TEXT_SPLITS = ("utility", "validation")
# Every split name a metric reads: record and text splits, generation sets, TOFU sets, reasoning tasks.
# A metric that reads a new kind of split adds its name here, so a typo in eval.metrics is caught.
OTHER_SPLITS = ("wikitext", "all", "tofu_forget", "tofu_retain", "real_authors", "world_facts", "mean")


def known_splits() -> set[str]:
    """The names above, the reasoning tasks, and every registered metric's default split and declared
    splits (a new metric that reads its own kind of split is known without editing this file)."""
    import inspect

    from unlearn.metrics.reasoning import LOCAL_FILES
    from unlearn.metrics.registry import METRICS

    defaults = {inspect.signature(fn).parameters["split"].default for fn in METRICS.values()
                if "split" in inspect.signature(fn).parameters}
    # A metric that reads several splits of its own names them in a `splits` attribute (KnowMem).
    declared = {split for fn in METRICS.values() for split in getattr(fn, "splits", ())}
    return (set(RECORD_SPLITS) | set(TEXT_SPLITS) | set(OTHER_SPLITS) | set(LOCAL_FILES) | declared
            | {d for d in defaults if isinstance(d, str)})


def validate_missing_values(cfg) -> None:
    """`???` in a config (data=jsonl without data.path): named before OmegaConf raises deep inside a stage."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} has no value (it is ??? in its config); pass {missing[0]}=... on the command line")


def validate_eval_splits(eval_cfg) -> None:
    known = known_splits()
    for entry in eval_cfg.metrics:
        for split in entry.splits:
            require(split in known, f"eval metric {entry.get('label') or entry.name} asks for split {split!r}, which no "
                                    f"metric knows; use one of {sorted(known)}")


def validate_records(splits) -> None:
    """Record ids identify per-item results and the memorized target: they must be unique; texts non-empty."""
    records = [r for name in RECORD_SPLITS for r in splits.by_name(name)]
    dupes = [rid for rid, n in Counter(r.id for r in records).items() if n > 1]
    if dupes:
        raise UnlearnError(f"record id {dupes[0]!r} appears more than once ({len(dupes)} duplicated id(s)); make "
                           "data.id_field unique per record, or leave data.id_field unset to number the lines")
    empty = [r.id for r in records if not (r.text or "").strip()]
    if empty:
        raise UnlearnError(f"record {empty[0]} has empty text ({len(empty)} empty record(s)); remove them from the data")


def writable(folder, key: str, what: str) -> None:
    """`folder` can be created and written: a folder is made (and removed) in its nearest existing ancestor.
    Permission bits are not enough: root passes os.access on /proc or a read-only mount, and the first
    mkdir deep in a stage then fails with a traceback."""
    folder = Path(folder).expanduser()
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    problem = None if probe.is_dir() else "is not a folder"
    if problem is None:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".unlearn-probe-", dir=probe))
        except OSError as err:
            problem = f"takes no new folder: {err.strerror}"
    require(problem is None, f"{what} {folder} is not writable ({probe} {problem}); set {key}=<a writable folder>")


def validate_paths(cfg) -> None:
    writable(cfg.paths.cache_dir, "paths.cache_dir (or UNLEARN_CACHE_DIR)", "the cache folder")
    writable(cfg.paths.output_dir, "paths.output_dir", "the output folder")


def validate_input(cfg) -> None:
    """The model-free checks of a run's configuration (pipeline.validate_config calls this first)."""
    validate_missing_values(cfg)
    validate_paths(cfg)
    validate_eval_splits(cfg.eval)


__all__ = ["ConfigError", "validate_input", "validate_missing_values", "validate_eval_splits", "validate_records", "validate_paths"]
