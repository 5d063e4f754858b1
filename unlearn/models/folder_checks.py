"""Is a saved model folder complete? Checked before loading, so a half-copied or half-deleted model fails
with the missing file's name and the fix, not a safetensors traceback. Here, beside the loader, and not in
workflows/: the loader importing the workflows' input checks closed an import circle through the metrics."""
from pathlib import Path

from unlearn.errors import UnlearnError


def check_model_folder(path: Path) -> None:
    """A saved model's weights are all there, as safetensors; else say which file is missing and the fix."""
    path = Path(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        import json

        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (path / s).is_file()]
    else:
        missing = [] if (path / "model.safetensors").is_file() else ["model.safetensors"]
    if missing:
        raise UnlearnError(f"model folder {path} is incomplete: {missing[0]} is missing; {rebuild_hint(path)}")


def rebuild_hint(path: Path) -> str:
    """A folder inside the cache (memorized/<key>/..., models/<name>) is rebuilt by deleting its cache entry."""
    path = Path(path).resolve()
    for entry in [path, *path.parents]:
        if entry.parent.name in ("memorized", "models"):
            return f"it is a cache entry: delete {entry} and rerun to rebuild it"
    return "save the model there again (save_pretrained with safetensors) or point model.name_or_path elsewhere"
