"""Byte-reproducible NPZ/JSON writing and validated reading of golden files.

``np.savez`` stamps every zip entry with the current local time, so two runs differ in
their bytes. :func:`npz_bytes` writes the same format (an uncompressed zip of ``.npy``
files, readable by ``np.load``) with a fixed entry date (1980-01-01, the zip epoch), fixed
permissions and sorted entry names.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from febm_ref._io import atomic_write_bytes, to_json

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def npz_bytes(arrays: dict) -> bytes:
    """An ``.npz`` archive of ``arrays`` (name -> array) whose bytes depend only on the data.

    Arrays are stored C-contiguous, little-endian, without pickles; entry names are
    ``<key>.npy`` in sorted key order.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            value = np.ascontiguousarray(arrays[key])
            if value.dtype.kind == "f":
                value = value.astype("<f8", copy=False)
            elif value.dtype.kind in "iu":
                value = value.astype("<i8", copy=False)
            else:
                raise TypeError(f"golden array {key!r} has dtype {value.dtype}; only float64/int64 "
                                "are written")
            payload = io.BytesIO()
            np.lib.format.write_array(payload, value, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, payload.getvalue())
    return buffer.getvalue()


def json_bytes(obj) -> bytes:
    """JSON text (2-space indent, keys in insertion order, trailing newline) as UTF-8."""
    return (to_json(obj, indent=2) + "\n").encode("utf-8")


def write_file(directory: Path, name: str, data: bytes) -> dict:
    """Atomically write ``data``; return ``{"file", "bytes", "sha256"}`` for the manifest."""
    path = atomic_write_bytes(Path(directory) / name, data)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # mkstemp creates 0600; golden files are meant to be shared
    return {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_npz(path: Path) -> dict:
    """All arrays of an ``.npz`` file as a dict (no pickles allowed)."""
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
