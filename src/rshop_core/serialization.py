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
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import initializers, safetensors_io
from .dtypes import DTYPES
from .errors import RshopError, RshopFormatError
from .graph import Node, StepGraph, verify
from .ops import OPS
from .options import LoopOptions
from .specs import ParamSpec, StateSpec
from .types import TensorType

FORMAT = "rshop"
VERSION = 1
MAX_FILE_BYTES = 4 * 1024 ** 3
MAX_JSON_BYTES = 64 * 1024 ** 2
MAX_DEPTH = 64  # nesting of JSON containers
MAX_NODES = 100_000
MAX_ELEMENTS = 2 ** 31  # per-example elements of one value
MAX_NAME = 256
MAX_PARAM_ELEMENTS = 2 ** 28  # all parameters of one model together (1 GiB of float32)
MEMBERS = ("model.json", "weights.safetensors")

__all__ = ["to_document", "from_document", "save", "load", "dumps", "loads", "VERSION"]


# -- writing --------------------------------------------------------------------------
def to_document(model) -> dict:
    """The JSON document of a RecurrentModel or Bidirectional (no weights)."""
    from .bidirectional import Bidirectional

    if isinstance(model, Bidirectional):
        body = {"name": model.name, "merge_mode": model.merge_mode,
                "forward": _model_body(model.forward), "backward": _model_body(model.backward)}
        return {"format": FORMAT, "version": VERSION, "kind": "Bidirectional", "model": body}
    return {"format": FORMAT, "version": VERSION, "kind": "RecurrentModel", "model": _model_body(model)}


def _model_body(model) -> dict:
    model._require_built()
    g = model.graph
    return {"name": model.name, "seed": model.seed, "options": _options_json(model.options),
            "graph": {k: v for k, v in g.to_json().items() if k != "params"},
            "params": [p.to_json() for p in model.param_specs.values()],
            "states": [s.to_json() for s in model.state_specs],
            "readout": None if model.readout_spec is None else model.readout_spec.to_json()}


def dumps(model, weights: dict | None = None) -> bytes:
    """The bytes of a ``.rshop`` file for ``model`` (its own weights unless ``weights`` is given)."""
    doc = json.dumps(to_document(model), allow_nan=False, separators=(",", ":")).encode("utf-8")
    weights = model.get_weights() if weights is None else weights
    tensors = {k: np.asarray(weights[k]).astype(spec.dtype) for k, spec in model.param_specs.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo(MEMBERS[0], (2020, 1, 1, 0, 0, 0)), doc, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(zipfile.ZipInfo(MEMBERS[1], (2020, 1, 1, 0, 0, 0)),
                    safetensors_io.dump(tensors, {"format": FORMAT, "version": str(VERSION)}))
    return buf.getvalue()


def save(model, path, weights: dict | None = None) -> Path:
    """Write ``model`` to ``path`` (a ``.rshop`` zip); returns the path."""
    path = Path(path)
    path.write_bytes(dumps(model, weights))
    return path


# Options added after version 1, with their defaults: written only when set, so a file not
# using them is exactly what an older reader accepts; a file without them reads the default.
LATER_OPTIONS = {"remat": False}


def _options_json(options) -> dict:
    return {k: v for k, v in options.to_json().items() if not (k in LATER_OPTIONS and v == LATER_OPTIONS[k])}


# -- reading --------------------------------------------------------------------------
def load(path):
    """Read a ``.rshop`` file: a RecurrentModel (or Bidirectional) with its weights."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            _fail(f"{path}: expected a file of at most {MAX_FILE_BYTES} bytes, received {size}.")
        data = path.read_bytes()
    except OSError as e:
        raise RshopFormatError(f"{path}: expected a readable .rshop file, received an error: {e}.") from None
    return loads(data, str(path))


def loads(data: bytes, where: str = "model file"):
    """Read a ``.rshop`` file's bytes. Any defect raises RshopFormatError and nothing else."""
    try:
        return _loads(data, where)
    except RshopFormatError as e:
        if str(e).startswith(where):
            raise
        raise RshopFormatError(f"{where}: {e}") from None
    except RshopError as e:  # a model the IR rejects (verify, specs): the file is invalid
        raise RshopFormatError(f"{where}: invalid model: {e}") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
            MemoryError, zipfile.BadZipFile, EOFError, NotImplementedError, zlib.error) as e:  # see docs/format.md
        raise RshopFormatError(f"{where}: malformed model file ({type(e).__name__}: {str(e)[:200]}).") from None


def _fail(msg):
    raise RshopFormatError(msg)


def _loads(data, where):
    if not isinstance(data, (bytes, bytearray)):
        _fail(f"{where}: expected bytes, received {type(data).__name__}.")
    if len(data) > MAX_FILE_BYTES:
        _fail(f"{where}: expected at most {MAX_FILE_BYTES} bytes, received {len(data)}.")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        _fail(f"{where}: expected a .rshop zip archive, received something else (first bytes {bytes(data[:8])!r}).")
    try:
        raw_doc, raw_weights = _members(data, where)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as e:
        _fail(f"{where}: expected an intact zip archive, received a corrupt one ({str(e)[:120]}).")
    doc = parse_json(raw_doc, f"{where}: {MEMBERS[0]}")
    tensors, _ = safetensors_io.load(raw_weights)
    return from_document(doc, tensors)  # the file's weights: no initializer runs while loading


def _members(data, where):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if sorted(names) != sorted(MEMBERS):
            _fail(f"{where}: expected exactly the members {list(MEMBERS)}, received {names[:10]}.")
        limits = {MEMBERS[0]: MAX_JSON_BYTES, MEMBERS[1]: MAX_FILE_BYTES}
        for info in infos:
            if (info.file_size > limits[info.filename] or info.flag_bits & 0x1
                    or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)):
                _fail(f"{where}: member {info.filename!r}: expected an unencrypted, stored or deflated member of "
                      f"at most {limits[info.filename]} bytes, received {info.file_size} bytes.")
        return zf.read(MEMBERS[0]), zf.read(MEMBERS[1])


def _check_weights(specs: dict, tensors: dict, where: str) -> dict:
    missing = sorted(set(specs) - set(tensors))
    extra = sorted(set(tensors) - set(specs))
    if missing or extra:
        _fail(f"{where}: weights: expected exactly the parameters {sorted(specs)[:20]}, received missing "
              f"{missing[:20]}, unexpected {extra[:20]}.")
    for k, spec in specs.items():
        if tensors[k].shape != spec.shape or tensors[k].dtype.name != spec.dtype:
            _fail(f"{where}: weight {k!r}: expected {spec.dtype} {spec.shape}, received {tensors[k].dtype} "
                  f"{tensors[k].shape}.")
        if not np.all(np.isfinite(tensors[k])):
            _fail(f"{where}: weight {k!r}: expected finite numbers, received NaN or infinity.")
    return {k: tensors[k] for k in specs}


def parse_json(raw: bytes, where: str):
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, nesting at most MAX_DEPTH."""
    depth = deepest = 0
    in_string = escaped = False
    for b in raw:  # a bounded scan before parsing: deep nesting never reaches the parser
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_DEPTH:
                _fail(f"{where}: expected JSON nested at most {MAX_DEPTH} deep, received deeper.")
        elif b in (0x5D, 0x7D):
            depth -= 1
        deepest = max(deepest, depth)
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=safetensors_io._no_duplicates,
                          parse_constant=safetensors_io._no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _fail(f"{where}: expected strict JSON, received invalid JSON ({str(e)[:120]}).")


def _obj(v, keys, where, optional=()):
    if not isinstance(v, dict):
        _fail(f"{where}: expected a JSON object, received {type(v).__name__}.")
    got = set(v)
    if not set(keys) <= got or not got <= set(keys) | set(optional):
        _fail(f"{where}: expected the keys {sorted(keys)}, received {sorted(map(str, got))[:20]}.")
    return v


def _str(v, where):
    if not isinstance(v, str) or not 0 < len(v) <= MAX_NAME:
        _fail(f"{where}: expected a name of 1 to {MAX_NAME} characters, received {v!r:.80}.")
    return v


def _int(v, where, lo=0, hi=2 ** 63):
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v < hi:
        _fail(f"{where}: expected an integer in [{lo}, {hi}), received {v!r:.80}.")
    return v


def _ids(v, where, n):
    if not isinstance(v, list) or len(v) > MAX_NODES:
        _fail(f"{where}: expected a list of node ids, received {type(v).__name__}.")
    return tuple(_int(i, where, 0, n) for i in v)


def _shape(v, where, allow_none):
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


def _type(v, where):
    _obj(v, ("shape", "dtype", "batched"), where)
    if v["dtype"] not in DTYPES or not isinstance(v["batched"], bool):
        _fail(f"{where}: expected a dtype in {list(DTYPES)} and a bool batched, received {v!r:.120}.")
    return TensorType(_shape(v["shape"], where, True), v["dtype"], v["batched"])


def _json_value(v, where, depth=0):
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


def _node(v, k, where):
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
            _fail(f"{w}: expected a constant of a known shape and of the node's dtype, "
                  f"received {attrs['dtype']!r:.40}.")
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
    return Node(_int(v["id"], w, 0, MAX_NODES), v["op"], _ids(v["inputs"], w, MAX_NODES), dict(attrs), t,
                _str(v["name"], w))


def _param(v, where):
    _obj(v, ("name", "shape", "dtype", "initializer", "trainable", "regularizer"), where)
    if not isinstance(v["trainable"], bool):
        _fail(f"{where}: expected trainable true or false, received {v['trainable']!r:.40}.")
    _json_value(v["initializer"] if isinstance(v["initializer"], list) else [], where)
    return ParamSpec(_str(v["name"], where), _shape(v["shape"], where, False), v["dtype"],
                     _initializer(v["initializer"], where), v["trainable"], v["regularizer"])


def _initializer(v, where):
    if not isinstance(v, dict):
        _fail(f"{where}: expected an initializer object, received {type(v).__name__}.")
    text = json.dumps(v)
    if len(text) > 4096:
        _fail(f"{where}: expected a small initializer description, received {len(text)} characters.")
    return initializers.get(v, where)


def _state(v, where):
    _obj(v, ("name", "shape", "dtype", "initializer"), where)
    return StateSpec(_str(v["name"], where), _shape(v["shape"], where, False), v["dtype"],
                     _initializer(v["initializer"], where))


def from_document(doc, weights: dict | None = None):
    """A model from its JSON document; strict. Its weights are ``weights`` (checked to match exactly)
    or, when None, freshly drawn by the initializers from the model's seed."""
    _obj(doc, ("format", "version", "kind", "model"), "document")
    if doc["format"] != FORMAT:
        _fail(f"document: expected format {FORMAT!r}, received {doc['format']!r:.40}.")
    version = _int(doc["version"], "document version", 1, 2 ** 31)
    if version > VERSION:
        _fail(f"document: expected format version <= {VERSION}, received {version}: written by a newer rshop. "
              "Upgrade rshop to load it.")
    if weights is not None and not isinstance(weights, dict):
        _fail(f"weights: expected a dict of arrays, received {type(weights).__name__}.")
    if doc["kind"] == "RecurrentModel":
        return _model(doc["model"], "model", weights)
    if doc["kind"] == "Bidirectional":
        from .bidirectional import MERGE_MODES, Bidirectional

        body = _obj(doc["model"], ("name", "merge_mode", "forward", "backward"), "model")
        if body["merge_mode"] not in MERGE_MODES:
            _fail(f"model: expected merge_mode in {list(MERGE_MODES)}, received {body['merge_mode']!r:.40}.")
        parts = [_model(body[k], f"model.{k}", weights, partial=True) for k in ("forward", "backward")]
        if weights is not None:
            _check_weights({**parts[0].param_specs, **parts[1].param_specs}, weights, "model")
        return Bidirectional._from_parts(*parts, body["merge_mode"], _str(body["name"], "model name"))
    _fail(f"document: expected kind 'RecurrentModel' or 'Bidirectional', received {doc['kind']!r:.80}. "
          "Model files name no classes or modules to import.")


def _model(body, where, weights=None, partial=False):
    from .model import RecurrentModel

    _obj(body, ("name", "seed", "options", "graph", "params", "states", "readout"), where)
    later = tuple(LATER_OPTIONS)
    opts = _obj(body["options"], tuple(k for k in LoopOptions.__dataclass_fields__ if k not in later),
                f"{where}.options", optional=later)
    for k, v in opts.items():
        _json_value(v, f"{where}.options.{k}")
    options = LoopOptions(**opts)
    gd = _obj(body["graph"], ("nodes", "x", "states", "constants", "outputs", "final_states"), f"{where}.graph")
    if not isinstance(gd["nodes"], list) or not 0 < len(gd["nodes"]) <= MAX_NODES:
        _fail(f"{where}.graph: expected 1 to {MAX_NODES} nodes, received {type(gd['nodes']).__name__}.")
    nodes = tuple(_node(n, k, f"{where}.graph") for k, n in enumerate(gd["nodes"]))
    if not isinstance(body["params"], list) or not isinstance(body["states"], list):
        _fail(f"{where}: expected params and states as lists.")
    params = {}
    for i, p in enumerate(body["params"]):
        spec = _param(p, f"{where}.params[{i}]")
        if spec.name in params:
            _fail(f"{where}.params: expected unique names, received {spec.name!r} twice.")
        params[spec.name] = spec
    used = [n.attrs.get("name") for n in nodes if n.op == "param"]
    if not all(isinstance(u, str) and u in params for u in used):
        _fail(f"{where}.graph: expected every param node to name a declared parameter.")
    n = len(nodes)
    graph = StepGraph(nodes, _ids(gd["x"], f"{where}.graph.x", n), _ids(gd["states"], f"{where}.graph.states", n),
                      _ids(gd["constants"], f"{where}.graph.constants", n),
                      _ids(gd["outputs"], f"{where}.graph.outputs", n),
                      _ids(gd["final_states"], f"{where}.graph.final_states", n),
                      {k: params[k] for k in params if k in used})
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
        weights = _check_weights(params, weights, where)
    return RecurrentModel._from_ir(_str(body["name"], f"{where} name"), _int(body["seed"], f"{where} seed"), options,
                                   graph, states, readout, params, weights)
