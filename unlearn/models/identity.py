"""What identifies a model as an input: its config plus the content of the files it loads from.

Every cache key and run identity that depends on a model takes `model_identity(spec, cache_dir)`, never
the config alone: a local folder is keyed by its files' bytes (unlearn/storage/fingerprint.py), a hub
model by the snapshot commit it resolves to, the bundled model by its GGUF file. A tiny model is built
from its config and the run's seed and data, which the keys already hold.
"""
from pathlib import Path

from unlearn.storage.fingerprint import content_digest
from unlearn.storage.keys import to_plain


def _hub_snapshot(spec) -> str | None:
    """The commit of the cached snapshot the loader will read (offline: the cache is all there is)."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(spec.name_or_path, revision=spec.get("revision"), local_files_only=True)
    except Exception:  # not cached: the loader fails with its own message; nothing to key by
        return None
    return Path(folder).name


def model_files(spec) -> Path | None:
    """The file or folder a model's weights are read from, where that is a path on this machine."""
    if spec.source == "local":
        return Path(str(spec.name_or_path)).expanduser()
    if spec.source == "gguf_package":
        from unlearn.models.load import find_gguf

        return find_gguf(spec.package, spec.gguf_file)
    return None


def model_content(spec, cache_dir) -> str | None:
    if spec.source == "hub":
        return _hub_snapshot(spec)
    files = model_files(spec)
    return content_digest(files, Path(cache_dir).expanduser() / "fingerprints") if files is not None else None


def model_identity(spec, cache_dir) -> dict:
    return {**to_plain(spec), "content": model_content(spec, cache_dir)}
