"""Saving and loading models: one ``.rshop`` file, safe to load from anyone.

A ``.rshop`` file is a zip with exactly two members:

- ``model.json`` — the versioned IR document (:func:`to_document`): wiring, specs, options;
- ``weights.safetensors`` — every parameter, by qualified name.

Loading never executes code: no pickle, no ``eval``, no import of a name read from the file.
Ops resolve only through the closed op set, initializers only through their registry. Every
size is bounded and checked before use, and any defect — malformed, hostile or of a newer
version — raises :class:`~rshop_core.errors.RshopFormatError` and nothing else.
The format is specified in docs/format.md.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, NoReturn, overload

import numpy as np

from . import constraints, initializers, safetensors_io
from .dtypes import DTYPES
from .errors import RshopConfigError, RshopError, RshopFormatError
from .graph import Node, StepGraph, verify
from .limits import MAX_CONSTANT_ELEMENTS, MAX_NODES, MAX_PARAM_ELEMENTS, check_name
from .ops import OPS
from .options import LoopOptions
from .specs import ParamSpec, StateSpec
from .types import TensorType
from .weights import check_file_weights

if TYPE_CHECKING:
    from .bidirectional import Bidirectional
    from .lowerable import Lowerable
    from .model import RecurrentModel
    from .stack import SequenceStack

Json = Any
"""A value parsed from a file's JSON: any JSON type until the reader has checked it."""
Weights = dict[str, np.ndarray]

FORMAT = "rshop"
VERSION = 1
# Every limit below is listed, with why, in docs/format.md. The largest models of the test
# suite need 10 KiB of JSON and 63 nodes; a 16-layer LSTM stack 60 KiB and 353 nodes.
MAX_FILE_BYTES = 4 * 1024**3
MAX_JSON_BYTES = 4 * 1024**2  # uncompressed model.json
MAX_DEPTH = 64  # nesting of JSON containers
MAX_ELEMENTS = 2**31  # per-example elements of one value
MAX_WEIGHTS_HEADER = 4096  # safetensors header bytes: this plus MAX_HEADER_PER_TENSOR per tensor
MAX_HEADER_PER_TENSOR = 2048
CHUNK_BYTES = 1 << 20  # members are inflated this much at a time, never past their expected size
MEMBERS = ("model.json", "weights.safetensors")
MAX_LAYERS = 256  # layers of one SequenceStack
MAX_STACK_DEPTH = 8  # SequenceStacks inside SequenceStacks

__all__ = ["to_document", "from_document", "save", "load", "dumps", "loads", "VERSION"]


# -- writing --------------------------------------------------------------------------
def to_document(model: Lowerable) -> dict[str, Any]:
    """The JSON document of a model of any kind (:class:`~rshop_core.lowerable.Lowerable`; no weights)."""
    return {"format": FORMAT, "version": VERSION, "kind": model.KIND, "model": _body(model)}


def _body(model: Lowerable) -> dict[str, Any]:
    return _WRITERS[model.KIND](model)


def _bidirectional_body(model: Bidirectional) -> dict[str, Any]:
    return {
        "name": model.name,
        "merge_mode": model.merge_mode,
        "forward": _model_body(model.forward),
        "backward": _model_body(model.backward),
    }


def _stack_body(model: SequenceStack) -> dict[str, Any]:
    return {"name": model.name, "layers": [{"kind": m.KIND, "model": _body(m)} for m in model.layers]}


def _model_body(model: RecurrentModel) -> dict[str, Any]:
    g = model._require_built()
    return {
        "name": model.name,
        "seed": model.seed,
        "options": _options_json(model.options),
        "graph": {k: v for k, v in g.to_json().items() if k != "params"},
        "params": [p.to_json() for p in model.param_specs.values()],
        "states": [s.to_json() for s in model.state_specs],
        "readout": None if model.readout_spec is None else model.readout_spec.to_json(),
    }


# The document kinds, each with its writer and its reader (below): a new model kind adds one entry to both.
_WRITERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "RecurrentModel": _model_body,
    "Bidirectional": _bidirectional_body,
    "SequenceStack": _stack_body,
}


def dumps(model: Lowerable, weights: dict | None = None) -> bytes:
    """The bytes of a ``.rshop`` file for ``model`` (its own weights unless ``weights`` is given)."""
    doc = json.dumps(to_document(model), allow_nan=False, separators=(",", ":")).encode("utf-8")
    weights = model.get_weights() if weights is None else weights
    tensors = {k: np.asarray(weights[k]).astype(spec.dtype) for k, spec in model.param_specs.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo(MEMBERS[0], (2020, 1, 1, 0, 0, 0)), doc, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(
            zipfile.ZipInfo(MEMBERS[1], (2020, 1, 1, 0, 0, 0)),
            safetensors_io.dump(tensors, {"format": FORMAT, "version": str(VERSION)}),
        )
    return buf.getvalue()


def save(model: Lowerable, path: str | os.PathLike, weights: dict | None = None) -> Path:
    """Write ``model`` to ``path`` (a ``.rshop`` zip); returns the path."""
    out = Path(path)
    out.write_bytes(dumps(model, weights))
    return out


# Options added after version 1, with their defaults: written only when set, so a file not
# using them is exactly what an older reader accepts; a file without them reads the default.
LATER_OPTIONS = {"remat": False, "time_parallel": "auto", "newton_tol": None, "newton_max_iter": 50}


def _options_json(options: LoopOptions) -> dict[str, Any]:
    return {k: v for k, v in options.to_json().items() if not (k in LATER_OPTIONS and v == LATER_OPTIONS[k])}


# -- reading --------------------------------------------------------------------------
def load(path: str | os.PathLike, max_weight_bytes: int | None = None) -> Lowerable:
    """Read a ``.rshop`` file: a model of any kind (RecurrentModel, Bidirectional, SequenceStack) with its weights.

    Everything but the weights costs bounded work (docs/format.md); the weights cost what the
    file declares, up to the format's limit. ``max_weight_bytes`` refuses a file declaring more
    weight bytes than that before any of them is inflated: a bound for files from untrusted sources.
    """
    file = Path(path)
    try:
        data = _read_regular_file(file)
    except OSError as e:
        raise RshopFormatError(f"{file}: expected a readable .rshop file, received an error: {e}.") from None
    return loads(data, str(file), max_weight_bytes)


def _read_regular_file(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file (a symlink to one is fine) of at most
    MAX_FILE_BYTES. Opened non-blocking, so a named pipe never blocks; the opened descriptor is
    checked (not the path, which could change in between); and at most MAX_FILE_BYTES + 1 bytes
    are read whatever size the file reports (a device such as /dev/zero never gets this far)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a directory"
                if stat.S_ISDIR(mode)
                else "a named pipe"
                if stat.S_ISFIFO(mode)
                else "a device"
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket"
                if stat.S_ISSOCK(mode)
                else "not a regular file"
            )
            _fail(f"{path}: expected a regular file, received {kind}. Load .rshop files from regular files only.")
        chunks, total = [], 0
        while total <= MAX_FILE_BYTES:
            chunk = os.read(fd, min(CHUNK_BYTES * 16, MAX_FILE_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_FILE_BYTES:
            _fail(f"{path}: expected a file of at most {MAX_FILE_BYTES} bytes, received more.")
        return b"".join(chunks)
    finally:
        os.close(fd)


def loads(data: bytes, where: str = "model file", max_weight_bytes: int | None = None) -> Lowerable:
    """Read a ``.rshop`` file's bytes (``max_weight_bytes`` as in :func:`load`). Any defect raises
    RshopFormatError and nothing else."""
    if max_weight_bytes is not None and (
        isinstance(max_weight_bytes, bool) or not isinstance(max_weight_bytes, int) or max_weight_bytes < 0
    ):
        raise RshopConfigError(
            f"load, argument max_weight_bytes: expected None or an int >= 0, received {max_weight_bytes!r}."
        )
    try:
        return _loads(data, where, max_weight_bytes)
    except RshopFormatError as e:
        if str(e).startswith(where):
            raise
        raise RshopFormatError(f"{where}: {e}") from None
    except RshopError as e:  # a model the IR rejects (verify, specs): the file is invalid
        raise RshopFormatError(f"{where}: invalid model: {e}") from None
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
        MemoryError,
        zipfile.BadZipFile,
        EOFError,
        NotImplementedError,
        zlib.error,
    ) as e:  # see docs/format.md
        raise RshopFormatError(f"{where}: malformed model file ({type(e).__name__}: {str(e)[:200]}).") from None


def _fail(msg: str) -> NoReturn:
    raise RshopFormatError(msg)


def _loads(data: object, where: str, max_weight_bytes: int | None = None) -> Lowerable:
    if not isinstance(data, (bytes, bytearray)):
        _fail(f"{where}: expected bytes, received {type(data).__name__}.")
    if len(data) > MAX_FILE_BYTES:
        _fail(f"{where}: expected at most {MAX_FILE_BYTES} bytes, received {len(data)}.")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        _fail(f"{where}: expected a .rshop zip archive, received something else (first bytes {bytes(data[:8])!r}).")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = _member_infos(zf, where)
            doc = parse_json(_read_member(zf, infos[MEMBERS[0]], 0, MAX_JSON_BYTES, where), f"{where}: {MEMBERS[0]}")
            raw_weights = _read_weights_member(zf, infos[MEMBERS[1]], doc, where, max_weight_bytes)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        _fail(f"{where}: expected an intact zip archive, received a corrupt one ({str(e)[:120]}).")
    tensors, _ = safetensors_io.load(raw_weights)
    return from_document(doc, tensors)  # the file's weights: no initializer runs while loading


def _member_infos(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if sorted(names) != sorted(MEMBERS):
        _fail(f"{where}: expected exactly the members {list(MEMBERS)}, received {names[:10]}.")
    for info in infos:
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            _fail(
                f"{where}: member {info.filename!r}: expected an unencrypted, stored or deflated member, "
                f"received compression {info.compress_type} and flags {info.flag_bits:#x}."
            )
    return {i.filename: i for i in infos}


def _read_member(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    lo: int,
    hi: int,
    where: str,
    head: bytes = b"",
    stream: IO[bytes] | None = None,
) -> bytes:
    """Member ``info`` inflated, refused unless its declared size and the bytes it really
    inflates to are both within [lo, hi]. Never trusts the zip: it inflates at most
    CHUNK_BYTES at a time and stops as soon as more than ``hi`` bytes arrive, so a member
    that lies about its size costs at most ``hi`` + CHUNK_BYTES bytes of work."""
    if not lo <= info.file_size <= hi:
        _fail(
            f"{where}: member {info.filename!r}: expected {_span(lo, hi)} uncompressed bytes, received a "
            f"declared size of {info.file_size}."
        )
    chunks, total = [head], len(head)
    f = stream or zf.open(info)
    with f:
        while total <= hi:
            chunk = f.read(min(CHUNK_BYTES, hi + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if not lo <= total <= hi:
        _fail(
            f"{where}: member {info.filename!r}: expected {_span(lo, hi)} uncompressed bytes, received "
            f"{'more' if total > hi else total}."
        )
    return b"".join(chunks)


def _span(lo: int, hi: int) -> str:
    return f"exactly {hi}" if lo == hi else f"{lo} to {hi}"


def _read_weights_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, doc: Json, where: str, max_weight_bytes: int | None = None
) -> bytes:
    """The weights member, which must be exactly as long as model.json says: its safetensors
    header (bounded by the number of tensors) and every parameter's bytes (elements x itemsize)."""
    data_bytes, count = weights_budget(doc)
    if max_weight_bytes is not None and data_bytes > max_weight_bytes:
        _fail(
            f"{where}: weights: expected at most {max_weight_bytes} bytes (max_weight_bytes), received a model "
            f"declaring {data_bytes}."
        )
    with zf.open(info) as f:
        head = f.read(8)
        if len(head) < 8:
            _fail(f"{where}: member {info.filename!r}: expected at least 8 bytes, received {len(head)}.")
        (n,) = struct.unpack("<Q", head)
        limit = MAX_WEIGHTS_HEADER + MAX_HEADER_PER_TENSOR * count
        if n > limit:
            _fail(
                f"{where}: member {info.filename!r}: expected a safetensors header of at most {limit} bytes "
                f"for {count} tensors, received a length of {n}."
            )
        size = 8 + n + data_bytes
        return _read_member(zf, info, size, size, where, head, f)


def weights_budget(doc: Json) -> tuple[int, int]:
    """``(data bytes, tensor count)`` of the weights a model document declares: every parameter's
    elements x itemsize, checked against the limits before any weight byte is read."""
    _obj(doc, ("format", "version", "kind", "model"), "document")
    bodies = _leaf_bodies(doc["kind"], doc["model"], "model")
    specs: dict[str, int] = {}
    for prefix, body in bodies:
        params = body.get("params") if isinstance(body, dict) else None
        if not isinstance(params, list) or len(params) > safetensors_io.MAX_TENSORS:
            _fail(
                f"model: expected params as a list of at most {safetensors_io.MAX_TENSORS}, received "
                f"{type(params).__name__}."
            )
        for i, p in enumerate(params):
            w = f"model.params[{i}]"
            _obj(p, PARAM_KEYS, w, ("constraint",))
            if p["dtype"] not in ("float32", "float64"):
                _fail(f"{w}: expected dtype float32 or float64, received {p['dtype']!r:.40}.")
            specs[prefix + _str(p["name"], w)] = math.prod(_shape(p["shape"], w, False)) * np.dtype(p["dtype"]).itemsize
    total = sum(specs.values())
    if total > MAX_PARAM_ELEMENTS * 8:
        _fail(f"model: expected at most {MAX_PARAM_ELEMENTS} parameter entries, received {total} bytes of them.")
    return total, len(specs)


def _leaf_bodies(kind: Json, body: Json, where: str, prefix: str = "", depth: int = 0) -> list[tuple[str, Json]]:
    """``(weight name prefix, body)`` of every recurrent model a document of ``kind`` holds."""
    if kind == "Bidirectional" and isinstance(body, dict):
        return [(prefix, body.get("forward")), (prefix, body.get("backward"))]
    if kind == "SequenceStack" and isinstance(body, dict):
        layers = _layers(body, where, depth)
        return [
            leaf
            for i, item in enumerate(layers)
            for leaf in _leaf_bodies(
                item["kind"], item["model"], f"{where}.layers[{i}]", f"{prefix}layer_{i}/", depth + 1
            )
        ]
    return [(prefix, body)]  # a RecurrentModel (an unknown kind is refused when the document is read)


def _layers(body: dict[str, Json], where: str, depth: int) -> list[dict[str, Json]]:
    """The ``layers`` list of a SequenceStack body: 1 to MAX_LAYERS items ``{"kind", "model"}``."""
    if depth >= MAX_STACK_DEPTH:
        _fail(f"{where}: expected SequenceStacks nested at most {MAX_STACK_DEPTH} deep, received deeper.")
    layers = body.get("layers")
    if not isinstance(layers, list) or not 0 < len(layers) <= MAX_LAYERS:
        _fail(f"{where}.layers: expected a list of 1 to {MAX_LAYERS} layers, received {type(layers).__name__}.")
    for i, item in enumerate(layers):
        _obj(item, ("kind", "model"), f"{where}.layers[{i}]")
    return layers


def parse_json(raw: bytes, where: str) -> Json:
    """Strict JSON: UTF-8, at most MAX_JSON_BYTES, no NaN/Infinity, no duplicate keys, nesting
    at most MAX_DEPTH (scanned before parsing: deep nesting never reaches the parser)."""
    if len(raw) > MAX_JSON_BYTES:
        _fail(f"{where}: expected at most {MAX_JSON_BYTES} bytes of JSON, received {len(raw)}.")
    if json_depth(raw) > MAX_DEPTH:
        _fail(f"{where}: expected JSON nested at most {MAX_DEPTH} deep, received deeper.")
    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=safetensors_io._no_duplicates,
            parse_constant=safetensors_io._no_constants,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _fail(f"{where}: expected strict JSON, received invalid JSON ({str(e)[:120]}).")


def json_depth(raw: bytes, chunk: int = CHUNK_BYTES) -> int:
    """The deepest nesting of ``[``/``{`` in ``raw``, not counting brackets inside strings.

    Vectorised, in chunks (about 30 bytes of memory per byte of a chunk): a quote opens or closes
    a string unless it ends an odd run of backslashes, so string membership is the parity of the
    real quotes up to each byte. Between chunks only the depth, whether a string is open and the
    parity of a trailing run of backslashes are carried. (A backslash outside a string is invalid
    JSON: the parser stops there, before any nesting after it, so only the text before it
    matters, where this scan is exact.)"""
    data = np.frombuffer(raw, dtype=np.uint8)
    depth = deepest = inside = odd_run = 0
    for at in range(0, data.size, chunk):
        b = data[at : at + chunk]
        if odd_run:  # the previous chunk ended in an odd run of backslashes: one more stands for it
            b = np.concatenate((np.full(1, 0x5C, dtype=np.uint8), b))
        slash = b == 0x5C
        quotes = np.flatnonzero(b == 0x22)
        toggle = np.zeros(b.size, dtype=np.uint8)
        if quotes.size and slash.any():
            edge = np.zeros(1, dtype=np.int8)
            edges = np.flatnonzero(np.diff(np.concatenate((edge, slash.view(np.int8), edge))))
            starts, ends = edges[0::2], edges[1::2]  # runs of backslashes, [start, end)
            k = np.minimum(np.searchsorted(ends, quotes), ends.size - 1)
            quotes = quotes[~((ends[k] == quotes) & ((ends[k] - starts[k]) % 2 == 1))]
        toggle[quotes] = 1
        outside = np.bitwise_xor.accumulate(toggle) == inside  # 0: outside when no string was open
        step = np.zeros(b.size, dtype=np.int8)
        step[((b == 0x5B) | (b == 0x7B)) & outside] = 1
        step[((b == 0x5D) | (b == 0x7D)) & outside] = -1
        levels = np.cumsum(step, dtype=np.int32)
        deepest = max(deepest, depth + int(levels.max()))
        depth += int(levels[-1])
        inside ^= int(quotes.size % 2)
        trailing = b.size if slash.all() else int(np.argmin(slash[::-1]))
        odd_run = trailing % 2
    return deepest


def _obj(v: Json, keys: tuple[str, ...], where: str, optional: tuple[str, ...] = ()) -> dict[str, Json]:
    if not isinstance(v, dict):
        _fail(f"{where}: expected a JSON object, received {type(v).__name__}.")
    got = set(v)
    if not set(keys) <= got or not got <= set(keys) | set(optional):
        _fail(f"{where}: expected the keys {sorted(keys)}, received {sorted(map(str, got))[:20]}.")
    return v


def _str(v: Json, where: str) -> str:
    return check_name(v, where, "name", RshopFormatError)


def _int(v: Json, where: str, lo: int = 0, hi: int = 2**63) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v < hi:
        _fail(f"{where}: expected an integer in [{lo}, {hi}), received {v!r:.80}.")
    return v


def _ids(v: Json, where: str, n: int) -> tuple[int, ...]:
    if not isinstance(v, list) or len(v) > MAX_NODES:
        _fail(f"{where}: expected a list of node ids, received {type(v).__name__}.")
    return tuple(_int(i, where, 0, n) for i in v)


@overload
def _shape(v: Json, where: str, allow_none: Literal[False]) -> tuple[int, ...]: ...
@overload
def _shape(v: Json, where: str, allow_none: bool) -> tuple[int | None, ...]: ...
def _shape(v: Json, where: str, allow_none: bool) -> tuple[int | None, ...]:
    if not isinstance(v, list) or len(v) > 32:
        _fail(f"{where}: expected a shape of at most 32 dims, received {v!r:.80}.")
    total = 1
    for d in v:
        if d is None and allow_none:
            continue
        _int(d, where, 1, MAX_ELEMENTS + 1)
        total *= d
        if total > MAX_ELEMENTS:
            _fail(f"{where}: expected at most {MAX_ELEMENTS} elements per example, received shape {v!r:.80}.")
    return tuple(v)


def _type(v: Json, where: str) -> TensorType:
    _obj(v, ("shape", "dtype", "batched"), where)
    if v["dtype"] not in DTYPES or not isinstance(v["batched"], bool):
        _fail(f"{where}: expected a dtype in {list(DTYPES)} and a bool batched, received {v!r:.120}.")
    return TensorType(_shape(v["shape"], where, True), v["dtype"], v["batched"])


def _json_value(v: Json, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        _fail(f"{where}: expected attributes nested at most {MAX_DEPTH} deep.")
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            _fail(f"{where}: expected finite numbers, received {v!r}.")
        return
    if isinstance(v, list):
        for x in v:
            _json_value(x, where, depth + 1)
        return
    _fail(f"{where}: expected JSON scalars and lists as attributes, received {type(v).__name__}.")


def _leaves(v: Json, limit: int) -> int:
    """How many scalars the nested lists ``v`` hold, counting no further than ``limit`` + 1."""
    count, stack = 0, [v]
    while stack and count <= limit:
        x = stack.pop()
        if isinstance(x, list):
            stack.extend(x)
        else:
            count += 1
    return count


def _node(v: Json, k: int, where: str) -> Node:
    w = f"{where}, node #{k}"
    _obj(v, ("id", "op", "inputs", "attrs", "type", "name"), w)
    if not isinstance(v["op"], str) or v["op"] not in OPS:
        _fail(f"{w}: expected an op of the closed set, received {v['op']!r:.80}.")
    attrs = v["attrs"]
    if not isinstance(attrs, dict) or len(attrs) > 16:
        _fail(f"{w}: expected attributes as a small JSON object, received {type(attrs).__name__}.")
    for key, val in attrs.items():
        if key != "value":
            _json_value(val, f"{w}, attribute {key!r:.40}")
    t = _type(v["type"], w)
    if v["op"] == "constant":
        _obj(attrs, ("value", "dtype"), f"{w} attributes")
        if attrs["dtype"] not in DTYPES or None in t.shape or attrs["dtype"] != t.dtype:
            _fail(
                f"{w}: expected a constant of a known shape and of the node's dtype, received {attrs['dtype']!r:.40}."
            )
        if math.prod(t.shape) > MAX_CONSTANT_ELEMENTS:
            _fail(
                f"{w}: expected a constant of at most {MAX_CONSTANT_ELEMENTS} elements, received shape "
                f"{t.shape}. Pass large arrays as constants at call time or as parameters."
            )
        if _leaves(attrs["value"], MAX_CONSTANT_ELEMENTS) > math.prod(t.shape):
            _fail(f"{w}: expected a constant value of shape {t.shape}, received more numbers.")
        value = np.asarray(attrs["value"], dtype=object)
        leaves = value.reshape(-1) if value.ndim else [value.item()]
        if not all(isinstance(e, (int, float)) for e in leaves):
            _fail(f"{w}: expected a constant of numbers, received other values.")
        if value.shape != t.shape or t.batched:
            _fail(f"{w}: expected a constant value of shape {t.shape}, received shape {value.shape}.")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow shows as inf, refused just below
            arr = np.asarray(attrs["value"], dtype=attrs["dtype"])
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            _fail(f"{w}: expected finite constant values, received NaN or infinity.")
    return Node(
        _int(v["id"], w, 0, MAX_NODES), v["op"], _ids(v["inputs"], w, MAX_NODES), dict(attrs), t, _str(v["name"], w)
    )


PARAM_KEYS = ("name", "shape", "dtype", "initializer", "trainable", "regularizer")
"""The keys of a parameter; ``constraint`` (added after version 1) is written only when set."""


def _param(v: Json, where: str) -> ParamSpec:
    _obj(v, PARAM_KEYS, where, ("constraint",))
    if not isinstance(v["trainable"], bool):
        _fail(f"{where}: expected trainable true or false, received {v['trainable']!r:.40}.")
    _json_value(v["initializer"] if isinstance(v["initializer"], list) else [], where)
    return ParamSpec(
        _str(v["name"], where),
        _shape(v["shape"], where, False),
        v["dtype"],
        _initializer(v["initializer"], where),
        v["trainable"],
        v["regularizer"],
        _constraint(v.get("constraint"), where),
    )


def _constraint(v: Json, where: str) -> dict[str, Any] | None:
    """A parameter's constraint: absent/null, or ``{"name": <one of the closed set>, **numbers}``."""
    if v is None:
        return None
    w = f"{where}.constraint"
    if not isinstance(v, dict) or len(v) > 8:
        _fail(f"{w}: expected a constraint object of at most 8 keys, received {type(v).__name__}.")
    for key, value in v.items():
        if not isinstance(value, (list, str)):
            _json_value(value, w)
        elif isinstance(value, list) and (len(value) > 32 or not all(isinstance(a, int) for a in value)):
            _fail(f"{w}: expected {key} as a list of at most 32 ints, received {value!r:.80}.")
    return constraints.from_json(v, w, RshopFormatError).to_json()


def _initializer(v: Json, where: str) -> initializers.Initializer:
    if not isinstance(v, dict):
        _fail(f"{where}: expected an initializer object, received {type(v).__name__}.")
    text = json.dumps(v)
    if len(text) > 4096:
        _fail(f"{where}: expected a small initializer description, received {len(text)} characters.")
    return initializers.get(v, where)


def _state(v: Json, where: str) -> StateSpec:
    _obj(v, ("name", "shape", "dtype", "initializer"), where)
    return StateSpec(
        _str(v["name"], where), _shape(v["shape"], where, False), v["dtype"], _initializer(v["initializer"], where)
    )


def from_document(doc: Json, weights: dict | None = None) -> Lowerable:
    """A model from its JSON document; strict. Its weights are ``weights`` (checked to match exactly)
    or, when None, freshly drawn by the initializers from the model's seed."""
    _obj(doc, ("format", "version", "kind", "model"), "document")
    if doc["format"] != FORMAT:
        _fail(f"document: expected format {FORMAT!r}, received {doc['format']!r:.40}.")
    version = _int(doc["version"], "document version", 1, 2**31)
    if version > VERSION:
        _fail(
            f"document: expected format version <= {VERSION}, received {version}: written by a newer rshop. "
            "Upgrade rshop to load it."
        )
    if weights is not None and not isinstance(weights, dict):
        _fail(f"weights: expected a dict of arrays, received {type(weights).__name__}.")
    return _read(doc["kind"], doc["model"], "model", weights)


def _read(kind: Json, body: Json, where: str, weights: Weights | None, depth: int = 0) -> Lowerable:
    if kind not in _READERS:
        _fail(
            f"document: expected kind {' or '.join(repr(k) for k in _READERS)}, received {kind!r:.80}. "
            "Model files name no classes or modules to import."
        )
    return _READERS[kind](body, where, weights, depth)


def _read_model(body: Json, where: str, weights: Weights | None, depth: int) -> RecurrentModel:
    return _model(body, where, weights)


def _read_bidirectional(body: Json, where: str, weights: Weights | None, depth: int) -> Bidirectional:
    from .bidirectional import MERGE_MODES, Bidirectional

    body = _obj(body, ("name", "merge_mode", "forward", "backward"), where)
    if body["merge_mode"] not in MERGE_MODES:
        _fail(f"{where}: expected merge_mode in {list(MERGE_MODES)}, received {body['merge_mode']!r:.40}.")
    parts = [_model(body[k], f"{where}.{k}", weights, partial=True) for k in ("forward", "backward")]
    if weights is not None:
        check_file_weights({**parts[0].param_specs, **parts[1].param_specs}, weights, where)
    return Bidirectional._from_parts(parts[0], parts[1], body["merge_mode"], _str(body["name"], f"{where} name"))


def _read_stack(body: Json, where: str, weights: Weights | None, depth: int) -> SequenceStack:
    from .stack import SequenceStack

    _obj(body, ("name", "layers"), where)
    layers: list[Lowerable] = []
    for i, item in enumerate(_layers(body, where, depth)):
        prefix = f"layer_{i}/"
        own = None if weights is None else {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        layers.append(_read(item["kind"], item["model"], f"{where}.layers[{i}]", own, depth + 1))
    try:
        stack = SequenceStack(layers, name=_str(body["name"], f"{where} name"))
    except RshopConfigError as e:
        _fail(f"{where}: {e}")
    if weights is not None:
        check_file_weights(stack.param_specs, weights, where)
    return stack


_READERS: dict[str, Callable[[Json, str, Weights | None, int], Lowerable]] = {
    "RecurrentModel": _read_model,
    "Bidirectional": _read_bidirectional,
    "SequenceStack": _read_stack,
}


def _model(body: Json, where: str, weights: Weights | None = None, partial: bool = False) -> RecurrentModel:
    from .model import RecurrentModel

    _obj(body, ("name", "seed", "options", "graph", "params", "states", "readout"), where)
    later = tuple(LATER_OPTIONS)
    opts = _obj(
        body["options"],
        tuple(k for k in LoopOptions.__dataclass_fields__ if k not in later),
        f"{where}.options",
        optional=later,
    )
    for k, v in opts.items():
        _json_value(v, f"{where}.options.{k}")
    if not isinstance(opts["return_sequences"], bool):  # a file states it: None (the decode default) is for code
        _fail(f"{where}.options.return_sequences: expected true or false, received {opts['return_sequences']!r}.")
    options = LoopOptions(**opts)
    gd = _obj(body["graph"], ("nodes", "x", "states", "constants", "outputs", "final_states"), f"{where}.graph")
    if not isinstance(gd["nodes"], list) or not 0 < len(gd["nodes"]) <= MAX_NODES:
        _fail(f"{where}.graph: expected 1 to {MAX_NODES} nodes, received {type(gd['nodes']).__name__}.")
    nodes = tuple(_node(n, k, f"{where}.graph") for k, n in enumerate(gd["nodes"]))
    if not isinstance(body["params"], list) or not isinstance(body["states"], list):
        _fail(f"{where}: expected params and states as lists.")
    params: dict[str, ParamSpec] = {}
    for i, p in enumerate(body["params"]):
        spec = _param(p, f"{where}.params[{i}]")
        if spec.name in params:
            _fail(f"{where}.params: expected unique names, received {spec.name!r} twice.")
        params[spec.name] = spec
    used = [n.attrs.get("name") for n in nodes if n.op == "param"]
    if not all(isinstance(u, str) and u in params for u in used):
        _fail(f"{where}.graph: expected every param node to name a declared parameter.")
    n = len(nodes)
    graph = StepGraph(
        nodes,
        _ids(gd["x"], f"{where}.graph.x", n),
        _ids(gd["states"], f"{where}.graph.states", n),
        _ids(gd["constants"], f"{where}.graph.constants", n),
        _ids(gd["outputs"], f"{where}.graph.outputs", n),
        _ids(gd["final_states"], f"{where}.graph.final_states", n),
        {k: params[k] for k in params if k in used},
    )
    if len(graph.x) != 1:
        _fail(f"{where}.graph: expected exactly one input x, received {len(graph.x)}.")
    verify(graph, f"{where}.graph")
    states = [_state(s, f"{where}.states[{i}]") for i, s in enumerate(body["states"])]
    readout = None if body["readout"] is None else _state(body["readout"], f"{where}.readout")
    total = sum(int(np.prod(p.shape)) for p in params.values())
    if total > MAX_PARAM_ELEMENTS:
        _fail(f"{where}: expected at most {MAX_PARAM_ELEMENTS} parameter entries, received {total}.")
    if weights is not None:
        if partial:  # one direction of a Bidirectional: its own share of the file's weights
            weights = {k: weights[k] for k in params if k in weights}
        weights = check_file_weights(params, weights, where)
    return RecurrentModel._from_ir(
        _str(body["name"], f"{where} name"),
        _int(body["seed"], f"{where} seed"),
        options,
        graph,
        states,
        readout,
        params,
        weights,
    )
