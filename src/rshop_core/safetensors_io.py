"""A small, strict reader and writer of the safetensors format (numpy only, no pickle).

Layout: 8 bytes little-endian header length N, N bytes of JSON header
``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the raw little-endian bytes of every tensor. The reader checks everything against limits
before touching the data and raises :class:`~rshop_core.errors.RshopFormatError` on any defect.
"""

from __future__ import annotations

import json
import struct
from typing import NoReturn

import numpy as np

from .errors import RshopFormatError

DTYPES: dict[str, np.dtype] = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
CODES = {v.name: k for k, v in DTYPES.items()}
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 100_000
MAX_ELEMENTS = 2**31


def _fail(msg: str) -> NoReturn:
    raise RshopFormatError(f"weights (safetensors): {msg}")


def dump(tensors: dict, metadata: dict | None = None) -> bytes:
    """Serialize ``{name: float32/float64 numpy array}`` (sorted by name) to safetensors bytes."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        code = CODES.get(a.dtype.name)
        if code is None:
            _fail(f"tensor {name!r}: expected float32 or float64, received {a.dtype}.")
        data = a.astype(DTYPES[code], copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # align the data to 8 bytes, as the format recommends
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def _elements(shape: object, name: str) -> int:
    if not isinstance(shape, list) or len(shape) > 32:
        _fail(f"tensor {name!r}: expected a shape as a list of at most 32 dims, received {shape!r}.")
    n = 1
    for d in shape:
        if not isinstance(d, int) or isinstance(d, bool) or d < 0:
            _fail(f"tensor {name!r}: expected non-negative int dims, received {shape!r}.")
        n *= d
        if n > MAX_ELEMENTS:
            _fail(f"tensor {name!r}: expected at most {MAX_ELEMENTS} elements, received shape {shape!r}.")
    return n


def load(data: bytes) -> tuple:
    """``(tensors, metadata)`` from safetensors bytes; every defect is an RshopFormatError."""
    if len(data) < 8:
        _fail(f"expected at least 8 bytes, received {len(data)}.")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        _fail(f"expected a header of at most {min(MAX_HEADER_BYTES, len(data) - 8)} bytes, received a length of {n}.")
    try:
        header = json.loads(
            data[8 : 8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _fail(f"expected a JSON header, received unreadable bytes ({type(e).__name__}).")
    if not isinstance(header, dict):
        _fail(f"expected a JSON object as header, received {type(header).__name__}.")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        _fail("expected __metadata__ to map strings to strings.")
    if len(header) > MAX_TENSORS:
        _fail(f"expected at most {MAX_TENSORS} tensors, received {len(header)}.")
    body = memoryview(data)[8 + n :]
    spans, out = [], {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            _fail(f"tensor {name!r}: expected exactly dtype, shape and data_offsets, received {info!r:.200}.")
        dtype = DTYPES.get(info["dtype"]) if isinstance(info["dtype"], str) else None
        if dtype is None:
            _fail(f"tensor {name!r}: expected dtype F32 or F64, received {info['dtype']!r:.50}.")
        count = _elements(info["shape"], name)
        offs = info["data_offsets"]
        if not (
            isinstance(offs, list)
            and len(offs) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
        ):
            _fail(f"tensor {name!r}: expected data_offsets [begin, end], received {offs!r:.100}.")
        begin, end = offs
        if not 0 <= begin <= end <= len(body) or end - begin != count * dtype.itemsize:
            _fail(
                f"tensor {name!r}: expected {count * dtype.itemsize} bytes within the {len(body)} data bytes, "
                f"received offsets [{begin}, {end}]."
            )
        spans.append((begin, end, name))
        out[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(info["shape"]).astype(dtype.newbyteorder("="))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            _fail(
                f"tensor {name!r}: expected data to start at byte {position} (no gaps or overlaps), received {begin}."
            )
        position = end
    if position != len(body):
        _fail(f"expected {position} data bytes, received {len(body)}.")
    return out, metadata


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"non-finite number {name}")
