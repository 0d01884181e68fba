"""Writes tests/data/hostile/*.rshop: model files a loader must refuse with RshopFormatError.

Run from the repository root: ``python tests/data/make_hostile_corpus.py``. The files are
committed; this script documents how each was made. None of them does anything when loaded by
rshop, and each is refused before any payload could matter.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

from rshop_core import RecurrentModel, limits, serialization
from rshop_core import functional as F
from rshop_core.cells import LSTMCell
from rshop_core.symbolic import Input

OUT = Path(__file__).parent / "hostile"


def base():
    model = LSTMCell(3, input_dim=2).get_layer(seed=0)
    raw = serialization.dumps(model)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return json.loads(zf.read("model.json")), zf.read("weights.safetensors")


def pack(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def with_doc(doc, weights=None, text=None) -> bytes:
    _, w = base()
    raw = text.encode() if text is not None else json.dumps(doc).encode()
    return pack({"model.json": raw, "weights.safetensors": weights if weights is not None else w})


def lie_about_size(raw: bytes, member: str, size: int) -> bytes:
    """``raw`` (a zip without zip64 records) with ``member``'s declared uncompressed size set to
    ``size`` in both its local header and the central directory: a zip whose sizes lie."""
    out = bytearray(raw)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        info = zf.getinfo(member)
    struct.pack_into("<I", out, info.header_offset + 22, size)  # local file header
    name = member.encode()
    at = out.index(b"PK\x01\x02", out.index(b"PK\x01\x02"))
    while out[at + 46 : at + 46 + len(name)] != name:
        at = out.index(b"PK\x01\x02", at + 4)
    struct.pack_into("<I", out, at + 24, size)  # central directory entry
    return bytes(out)


def zip_bomb(inflated: int, lie: bool = True) -> bytes:
    """A valid model.json with a weights member that inflates to ``inflated`` bytes of zeros
    (deflate packs them about 1000:1); with ``lie`` its declared size is the honest one's."""
    doc, weights = base()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("model.json", json.dumps(doc))
        with zf.open("weights.safetensors", "w", force_zip64=False) as f:
            f.write(weights[: 8 + struct.unpack("<Q", weights[:8])[0]])
            block = bytes(1 << 20)
            left = inflated
            while left > 0:
                f.write(block[:left])
                left -= len(block)
    return lie_about_size(buf.getvalue(), "weights.safetensors", len(weights)) if lie else buf.getvalue()


def deflated(doc_text: bytes, weights: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("model.json", doc_text)
        zf.writestr("weights.safetensors", weights)
    return buf.getvalue()


def padded_json(pad: int) -> bytes:
    """A valid model whose model.json is followed by ``pad`` spaces (legal JSON whitespace)."""
    doc, weights = base()
    return deflated(json.dumps(doc).encode() + b" " * pad, weights)


def small_model(step, name="m"):
    """A stateless model of one step ``step(x) -> y`` over inputs of shape (4,)."""
    x = Input((4,), name="x")
    return RecurrentModel(x, step(x), name=name, seed=0)


def huge_constant(n: int) -> bytes:
    """A model whose step adds the sum of a constant of ``n`` zeros (as a file: rshop builds none
    over its limit)."""
    doc = serialization.to_document(small_model(lambda x: x + F.sum(F.constant([0.0]))))
    node = next(v for v in doc["model"]["graph"]["nodes"] if v["op"] == "constant")
    node["attrs"]["value"] = [0] * n
    node["type"]["shape"] = [n]
    return deflated(json.dumps(doc, separators=(",", ":")).encode(), serialization.safetensors_io.dump({}))


def node_chain(n: int) -> bytes:
    """A valid model whose step is a chain of ``n`` negations (n + 2 nodes)."""
    doc = serialization.to_document(small_model(lambda x: -x))
    nodes = doc["model"]["graph"]["nodes"]
    first = nodes[1]
    for k in range(2, n + 1):
        nodes.append({**first, "id": k, "inputs": [k - 1]})
    doc["model"]["graph"]["outputs"] = [n]
    return deflated(json.dumps(doc, separators=(",", ":")).encode(), serialization.safetensors_io.dump({}))


def huge_state(n: int) -> bytes:
    """A pass-through state of ``n`` elements per example: no weights behind what it allocates."""
    x, h = Input((1,), name="x"), Input((4,), name="h")
    doc = serialization.to_document(RecurrentModel(x, x, [h], [h * 1.0], name="pass_through", seed=0))
    for node in doc["model"]["graph"]["nodes"]:
        if node["type"]["shape"] == [4]:
            node["type"]["shape"] = [n]
    doc["model"]["states"][0]["shape"] = [n]
    return deflated(json.dumps(doc).encode(), serialization.safetensors_io.dump({}))


def einsum_model(equation: str) -> bytes:
    """A model whose step is ``einsum(equation, x, c)``, the equation written into the file as given."""
    a, b = Input((2, 3), name="a"), Input((3,), name="b")
    model = RecurrentModel(a, F.einsum("ab,b->a", a, b), constants=[b], name="e", seed=0)
    text = json.dumps(serialization.to_document(model), ensure_ascii=False).replace("ab,b->a", equation)
    return deflated(text.encode(), serialization.safetensors_io.dump({}))


def renamed(doc, path, name) -> bytes:
    """``doc`` with the name at ``path`` replaced (a parameter everywhere it is named)."""
    doc = json.loads(json.dumps(doc))
    target = doc
    for k in path[:-1]:
        target = target[k]
    old, target[path[-1]] = target[path[-1]], name
    for node in doc["model"]["graph"]["nodes"]:
        if node["op"] == "param" and node["attrs"]["name"] == old:
            node["attrs"]["name"] = node["name"] = name
    return with_doc(doc)


class Payload:
    def __reduce__(self):  # what a pickle-based loader would run; rshop never unpickles
        return (print, ("this must never run",))


def corpus() -> dict:
    doc, weights = base()
    out = {}
    out["pickle_file"] = pickle.dumps(Payload())
    out["pickle_member"] = pack(
        {"model.json": json.dumps(doc).encode(), "weights.safetensors": weights, "model.pkl": pickle.dumps(Payload())}
    )
    out["pickle_as_weights"] = pack(
        {"model.json": json.dumps(doc).encode(), "weights.safetensors": pickle.dumps(Payload())}
    )
    d = json.loads(json.dumps(doc))
    d["kind"] = {"module": "os", "class_name": "system", "config": {"command": "echo pwned"}}
    out["keras_style_class_injection"] = with_doc(d)
    d = json.loads(json.dumps(doc))
    d["model"]["graph"]["nodes"][4]["op"] = "__import__"
    out["unknown_op"] = with_doc(d)
    d = json.loads(json.dumps(doc))
    d["model"]["graph"]["nodes"][4]["attrs"] = {"module": "subprocess", "class_name": "Popen"}
    out["attrs_injection"] = with_doc(d)
    d = json.loads(json.dumps(doc))
    d["model"]["params"][0]["initializer"] = {"name": "builtins.eval", "source": "__import__('os')"}
    out["initializer_injection"] = with_doc(d)
    d = json.loads(json.dumps(doc))
    d["model"]["params"][0]["shape"] = [2**40, 2**40]
    out["huge_param_shape"] = with_doc(d)
    d = json.loads(json.dumps(doc))
    d["model"]["graph"]["nodes"][0]["type"]["shape"] = [2**20, 2**20, 2**20]
    out["huge_value_shape"] = with_doc(d)
    out["deep_nesting"] = with_doc(None, text='{"format": "rshop", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    out["truncated_zip"] = serialization.dumps(LSTMCell(3, input_dim=2).get_layer(seed=0))[:300]
    out["nan_in_json"] = with_doc(None, text=json.dumps(doc).replace('"seed": 0', '"seed": NaN'))
    d = json.loads(json.dumps(doc))
    out["newer_version"] = with_doc({**d, "version": serialization.VERSION + 1})
    n = struct.unpack("<Q", weights[:8])[0]
    out["weight_bytes_short"] = with_doc(doc, weights=weights[:-4])
    header = json.loads(weights[8 : 8 + n])
    name = sorted(k for k in header if k != "__metadata__")[0]
    header[name]["shape"] = [1]
    raw = json.dumps(header).encode()
    out["weight_shape_mismatch"] = with_doc(doc, weights=struct.pack("<Q", len(raw)) + raw + weights[8 + n :])
    raw = weights[8 : 8 + n].replace(b'"F32"', b'"F64"', 1)
    out["weight_dtype_mismatch"] = with_doc(doc, weights=weights[:8] + raw + weights[8 + n :])
    out["weight_header_length_lie"] = with_doc(doc, weights=struct.pack("<Q", 2**62) + weights[8:])
    header = json.loads(weights[8 : 8 + n])
    header.pop(name)
    raw = json.dumps(header).encode()
    out["missing_weight"] = with_doc(doc, weights=struct.pack("<Q", len(raw)) + raw + weights[8 + n :])
    dup = (
        weights[8 : 8 + n]
        .decode()
        .replace("{", '{"' + name + '": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, ', 1)
        .encode()
    )
    out["duplicate_weight"] = with_doc(doc, weights=struct.pack("<Q", len(dup)) + dup + weights[8 + n :])
    d = json.loads(json.dumps(doc))
    d["model"]["graph"]["nodes"][5]["inputs"] = [5]
    out["cyclic_graph"] = with_doc(d)
    out["not_json"] = with_doc(None, text="\x00\x01not json")
    out["json_array"] = with_doc(None, text="[1, 2, 3]")
    out["empty_file"] = b""
    # issue #9: files that cost time or memory before rshop bounded them (limits: docs/format.md)
    out["zip_bomb_lying_size"] = zip_bomb(16 * 2**20)
    out["zip_bomb_declared_size"] = zip_bomb(16 * 2**20, lie=False)
    raw = json.dumps(doc).encode()
    out["json_lying_size"] = lie_about_size(
        deflated(raw + b" " * (2 * serialization.MAX_JSON_BYTES), weights), "model.json", len(raw)
    )
    out["padded_json"] = padded_json(serialization.MAX_JSON_BYTES)
    out["huge_constant"] = huge_constant(limits.MAX_CONSTANT_ELEMENTS + 1)
    out["long_node_chain"] = node_chain(limits.MAX_NODES)
    d = json.loads(json.dumps(doc))
    d["model"]["options"]["unroll"] = 1_000_000
    out["huge_unroll"] = with_doc(d)
    out["huge_state"] = huge_state(2**31)
    out["name_with_dot"] = renamed(doc, ("model", "states", 0, "name"), "h.0")
    out["param_name_with_dot"] = renamed(doc, ("model", "params", 0, "name"), "lstm.cell/kernel")
    out["name_lone_surrogate"] = renamed(doc, ("model", "graph", "nodes", 3, "name"), "n\ud800")
    out["name_control_character"] = renamed(doc, ("model", "name"), "m\x1b[2J")
    out["einsum_non_ascii"] = einsum_model("aβ,β->a")
    out["einsum_two_arrows"] = einsum_model("ab,b->a->a")
    return out


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, data in corpus().items():
        (OUT / f"{name}.rshop").write_bytes(data)
    print(f"wrote {len(corpus())} files to {OUT}")
