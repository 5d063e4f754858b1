"""The content of input files, for cache keys and run identities.

A model named by its folder is not identified by it: overwrite `model.safetensors` and the same path holds
another model. So inputs are keyed by a SHA-256 of their bytes. Why a full hash and not the safetensors
header: the header holds names, shapes and offsets, which a retrained model of the same architecture
shares exactly; only the values tell two such models apart.

Hashing is memoized per file by (path, size, mtime_ns, inode) under `<cache>/fingerprints/`, so a 5 GB
checkpoint is read once, not on every run. Writing a file in place changes its mtime (and usually its
size), which misses the memo and hashes it again; only a copy that forges size and mtime together
(`touch -r`) would be missed.
"""
import hashlib
import json
from pathlib import Path

from unlearn.storage.keys import key_of
from unlearn.storage.results import write_json

def _file_digest(path: Path, memo_dir: Path | None) -> str:
    stat = path.stat()
    memo = None
    if memo_dir is not None:
        memo = Path(memo_dir) / f"{key_of([str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino])}.json"
        if memo.is_file():
            return json.loads(memo.read_text())["sha256"]
    digest = hashlib.sha256()  # hashlib.file_digest needs Python 3.11; the project supports 3.10
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    value = digest.hexdigest()
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            write_json(memo, {"path": str(path), "sha256": value})
        except OSError:  # a read-only cache only costs the re-hash next time
            pass
    return value


def content_digest(path, memo_dir=None) -> str | None:
    """SHA-256 over the relative names and bytes of every file under `path` (or of the file itself);
    None when nothing is there (the loader reports the missing model with its own message)."""
    path = Path(path).expanduser()
    if path.is_file():
        files = [path]
        root = path.parent
    elif path.is_dir():
        root = path
        files = sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
    else:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + _file_digest(file, memo_dir).encode())
    return digest.hexdigest()[:16]



def weights_digest(model) -> str | None:
    """SHA-256 of a model's parameters and buffers, bit for bit (bf16/fp16 hashed as their raw 16 bits):
    two runs whose digests differ computed different weights, however close their numbers look."""
    import torch

    state = model.state_dict()
    if any(t.is_meta for t in state.values()):  # a model without data (a placement test's fake device)
        return None
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        raw = tensor.detach().cpu().contiguous()
        if raw.dtype in (torch.bfloat16, torch.float16):
            raw = raw.view(torch.int16)
        digest.update(name.encode() + b"\0")
        digest.update(raw.numpy().reshape(-1).view("uint8"))  # the buffer itself: no 540 MB copy per model
    return digest.hexdigest()[:16]


def texts_digest(texts) -> str:
    return key_of(list(texts))
