"""Read the records of an offline W&B run (`run-*.wandb`): wandb 0.31 ships no Python reader, so this
follows its LevelDB-style log format (7-byte file header; 32 KiB blocks; chunks with a 7-byte header
crc32/length/type, FULL=1 FIRST=2 MIDDLE=3 LAST=4) and decodes each record with wandb's own protobuf."""
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
FILE_HEADER = 7
CHUNK_HEADER = 7


def read_records(path: Path) -> list:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    records, pending, pos = [], b"", FILE_HEADER
    while pos + CHUNK_HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < CHUNK_HEADER:  # block trailer padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + CHUNK_HEADER])
        if kind == 0 and length == 0:
            pos += room
            continue
        chunk = data[pos + CHUNK_HEADER:pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def summarize(run_dir: Path) -> dict:
    """{'group', 'tags', 'config_keys', 'history_keys', 'summary_keys'} of one offline run folder."""
    (log,) = Path(run_dir).glob("run-*.wandb")
    out = {"group": None, "tags": [], "config_keys": set(), "history_keys": set(), "summary_keys": set()}
    for r in read_records(log):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["group"], out["tags"] = r.run.run_group, list(r.run.tags)
            out["config_keys"] |= {i.key for i in r.run.config.update}
        elif kind == "config":
            out["config_keys"] |= {i.key for i in r.config.update}
        elif kind == "history":
            out["history_keys"] |= {i.key or "/".join(i.nested_key) for i in r.history.item}
        elif kind == "summary":
            out["summary_keys"] |= {i.key or "/".join(i.nested_key) for i in r.summary.update}
    return out
