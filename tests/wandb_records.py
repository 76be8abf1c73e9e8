"""Read an offline W&B run back from its ``.wandb`` file (offline runs cannot be read with ``wandb.Api``)."""

import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2

# The .wandb file is a LevelDB-style log: a 7-byte file header, then 32 KiB blocks of records, each with a 7-byte
# header (crc32, length, type); a record that does not fit in a block is split into FIRST, MIDDLE..., LAST chunks.
_BLOCK = 32768
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _chunks(data: bytes):
    ident, _magic, _version = struct.unpack("<4sHB", data[:_HEADER])
    assert ident == b":W&B", f"not a .wandb file: {ident!r}"
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        pos += _HEADER
        chunk = data[pos : pos + length]
        pos += length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
        else:
            break


@dataclass
class OfflineRun:
    history: dict[str, list[str]] = field(default_factory=dict)  # metric -> JSON values, in order
    config: dict[str, str] = field(default_factory=dict)  # key -> JSON value
    files: set[str] = field(default_factory=set)
    finished: bool = False  # the run's exit record was written


def read_offline_run(run_dir: Path, timeout: float = 60.0) -> OfflineRun:
    """
    Metrics, config and saved files of an offline run directory (``wandb/offline-run-*``).

    W&B writes the file from a service process, which may still be flushing when ``run.finish()`` returns in the
    calling process: read again until the run's exit record is there, for at most ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        run = _read(run_dir)
        if run.finished or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def _read(run_dir: Path) -> OfflineRun:
    (path,) = Path(run_dir).glob("run-*.wandb")
    run = OfflineRun()
    for raw in _chunks(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                run.history.setdefault(item.key or "/".join(item.nested_key), []).append(item.value_json)
        elif kind in ("config", "run"):  # init-time config arrives with the run record, later updates on their own
            updates = record.config.update if kind == "config" else record.run.config.update
            for item in updates:
                run.config[item.key or "/".join(item.nested_key)] = item.value_json
        elif kind == "files":
            run.files.update(f.path for f in record.files.files)
        elif kind == "exit":
            run.finished = True
    return run
