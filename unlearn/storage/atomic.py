"""Files a later step trusts are written to a temporary name in the same folder and renamed: a killed
process leaves the old file or the new one, never half of one. (JSON: `unlearn.storage.results.write_json`.)"""
import os
import tempfile
from pathlib import Path


def write_text(path, text: str) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
