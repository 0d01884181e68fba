"""The limits of the .rshop format and of models (issue #9): zip bombs, oversized JSON, special
files, loop options that make the first call hang, states without weights behind them, names
and einsum equations. Each refusal is asserted with its error class and message, and the work
done before refusing is measured in bytes inflated or read, never in wall time."""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.conformance.conftest import assert_close, reference, run
from tests.conformance.tolerances import FORWARD_ATOL
from tests.data import make_hostile_corpus as corpus

import rshop_core
from rshop_core import RecurrentModel, limits, serialization
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.errors import RshopConfigError, RshopFormatError
from rshop_core.initializers import Learned
from rshop_core.layers import Dense
from rshop_core.symbolic import Input

HOSTILE = Path(__file__).parents[1] / "data" / "hostile"

_MODEL = {}


def small():
    """One small saved model, its document and its weights member (built once)."""
    if not _MODEL:
        raw = serialization.dumps(LSTMCell(3, input_dim=2).get_layer(seed=0))
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            _MODEL.update(raw=raw, doc=json.loads(zf.read("model.json")), weights=zf.read("weights.safetensors"))
    return _MODEL


def doc_copy():
    return json.loads(json.dumps(small()["doc"]))


def load_doc(doc, weights=None):
    return serialization.loads(
        corpus.pack(
            {
                "model.json": json.dumps(doc).encode(),
                "weights.safetensors": small()["weights"] if weights is None else weights,
            }
        )
    )


@pytest.fixture
def inflated(monkeypatch):
    """Counts the bytes every zip member read returns while the test runs."""
    count = {"bytes": 0}
    read = zipfile.ZipExtFile.read

    def counting(self, n=-1):
        out = read(self, n)
        count["bytes"] += len(out)
        return out

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting)
    return count


# -- item 8: zip bombs ---------------------------------------------------------------------
def test_zip_bomb_with_lying_sizes_stops_after_the_expected_bytes(inflated):
    data = corpus.zip_bomb(64 * 2**20)  # declares the honest weights size, inflates to 64 MiB
    assert len(data) < 2**17
    inflated["bytes"] = 0
    with pytest.raises(RshopFormatError, match=r"weights\.safetensors"):
        serialization.loads(data, "bomb")
    expected = len(small()["weights"]) + len(json.dumps(small()["doc"]))
    assert inflated["bytes"] <= expected + serialization.CHUNK_BYTES


def test_zip_bomb_with_honest_sizes_is_refused_before_inflating(inflated):
    data = corpus.zip_bomb(64 * 2**20, lie=False)
    inflated["bytes"] = 0
    with pytest.raises(
        RshopFormatError,
        match=r"member 'weights.safetensors': expected exactly \d+ uncompressed "
        r"bytes, received a declared size of 67",
    ):
        serialization.loads(data, "bomb")
    assert inflated["bytes"] <= len(json.dumps(small()["doc"])) + 8


def test_weights_member_size_comes_from_model_json():
    """One byte more or less than the parameters need is refused, whatever the zip says."""
    w = small()["weights"]
    for bad in (w + b"\0", w[:-1]):
        with pytest.raises(RshopFormatError, match=r"weights\.safetensors': expected exactly"):
            load_doc(doc_copy(), bad)


def test_safetensors_header_is_bounded_by_the_tensor_count():
    w = small()["weights"]
    n = 2**20
    head = n.to_bytes(8, "little")
    with pytest.raises(RshopFormatError, match=r"expected a safetensors header of at most \d+ bytes for 3 tensors"):
        load_doc(doc_copy(), head + b" " * n + w[8:])


def test_json_member_declared_too_large_is_refused_before_inflating(inflated):
    doc = json.dumps(small()["doc"]).encode() + b" " * serialization.MAX_JSON_BYTES
    data = corpus.deflated(doc, small()["weights"])
    inflated["bytes"] = 0
    with pytest.raises(
        RshopFormatError,
        match=f"member 'model.json': expected 0 to {serialization.MAX_JSON_BYTES} "
        "uncompressed bytes, received a declared size",
    ):
        serialization.loads(data, "padded")
    assert inflated["bytes"] == 0


def test_json_member_lying_about_its_size_stops_at_the_cap(inflated):
    doc = json.dumps(small()["doc"]).encode()
    data = corpus.lie_about_size(
        corpus.deflated(doc + b" " * (3 * serialization.MAX_JSON_BYTES), small()["weights"]), "model.json", len(doc)
    )
    inflated["bytes"] = 0
    with pytest.raises(RshopFormatError, match=r"model\.json"):
        serialization.loads(data, "lying json")
    assert inflated["bytes"] <= len(doc) + serialization.CHUNK_BYTES


# -- item 9: big JSON ----------------------------------------------------------------------
def reference_depth(raw: bytes) -> int:
    """The byte-by-byte depth scan the vectorised one replaced: the oracle."""
    depth = deepest = 0
    in_string = escaped = False
    for b in raw:
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
        elif b in (0x5D, 0x7D):
            depth -= 1
        deepest = max(deepest, depth)
    return deepest


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, [2, [3]]]}',
        '["[[[[", "]]"]',
        '{"k\\"[": ["\\\\", [["\\\\\\"[["]]]}',
        '"\\\\\\\\"[[1]]',
        "[]",
        "",
        '"unterminated [[[',
        '{"a": "\\u005b[", "b": {}}',
        '[[["\\\\"]]]',
    ],
)
def test_depth_scan_ignores_brackets_in_strings(text):
    raw = text.encode()
    for chunk in (1, 2, 5, serialization.CHUNK_BYTES):
        assert serialization.json_depth(raw, chunk) == reference_depth(raw)


def test_depth_scan_agrees_with_the_byte_scan_on_random_text():
    """Random token streams whose strings are real JSON strings (escapes, quotes and brackets
    inside). A backslash outside a string is invalid JSON: the parser stops there, before any
    nesting after it, so that is the only text on which the two scans may differ."""
    rng = np.random.default_rng(9)
    chars = '[]{}"\\a'
    for _ in range(300):
        tokens = []
        for _ in range(int(rng.integers(0, 40))):
            if rng.random() < 0.3:
                tokens.append(json.dumps("".join(chars[int(i)] for i in rng.integers(len(chars), size=5))))
            else:
                tokens.append("[]{},: 1"[int(rng.integers(8))])
        raw = "".join(tokens).encode()
        want = reference_depth(raw)
        for chunk in (1, 2, 3, 7, serialization.CHUNK_BYTES):  # state carried across chunk boundaries
            assert serialization.json_depth(raw, chunk) == want, (raw, chunk)


def test_deep_nesting_is_refused_before_parsing():
    deep = b'{"a": ' + b"[" * (serialization.MAX_DEPTH + 1) + b"]" * (serialization.MAX_DEPTH + 1) + b"}"
    with pytest.raises(RshopFormatError, match=f"expected JSON nested at most {serialization.MAX_DEPTH} deep"):
        serialization.parse_json(deep, "doc")
    quoted = b'{"a": "' + b"[" * 1000 + b'"}'
    assert serialization.parse_json(quoted, "doc") == {"a": "[" * 1000}


def test_padded_json_over_the_cap_is_refused(inflated):
    data = corpus.padded_json(serialization.MAX_JSON_BYTES)
    inflated["bytes"] = 0
    with pytest.raises(RshopFormatError, match=r"model\.json"):
        serialization.loads(data, "padded")
    assert inflated["bytes"] <= serialization.MAX_JSON_BYTES + serialization.CHUNK_BYTES


def test_padded_json_within_the_cap_loads():
    model = serialization.loads(corpus.padded_json(serialization.MAX_JSON_BYTES // 2), "padded")
    assert model.name == small()["doc"]["model"]["name"]


def test_huge_constant_is_refused_in_a_file_and_when_built():
    with pytest.raises(
        RshopFormatError,
        match=f"expected a constant of at most {limits.MAX_CONSTANT_ELEMENTS} "
        r"elements, received shape \(65537,\)",
    ):
        serialization.loads(corpus.huge_constant(limits.MAX_CONSTANT_ELEMENTS + 1), "constant")
    with pytest.raises(RshopConfigError, match=f"expected a constant of at most {limits.MAX_CONSTANT_ELEMENTS}"):
        corpus.small_model(lambda x: x + F.sum(F.constant(np.zeros(limits.MAX_CONSTANT_ELEMENTS + 1))))


def test_constant_holding_more_numbers_than_its_type_is_refused():
    doc = serialization.to_document(corpus.small_model(lambda x: x + F.sum(F.constant([1.0, 2.0]))))
    node = next(n for n in doc["model"]["graph"]["nodes"] if n["op"] == "constant")
    node["attrs"]["value"] = [[1.0] * 300] * 300
    with pytest.raises(RshopFormatError, match=r"expected a constant value of shape \(2,\), received more numbers"):
        serialization.loads(corpus.deflated(json.dumps(doc).encode(), serialization.safetensors_io.dump({})))


def test_constant_at_the_cap_loads():
    model = serialization.loads(corpus.huge_constant(limits.MAX_CONSTANT_ELEMENTS), "constant")
    assert max(n.type.shape for n in model.graph.nodes if n.op == "constant") == (limits.MAX_CONSTANT_ELEMENTS,)


def test_long_node_chain_is_refused_in_a_file_and_when_built():
    with pytest.raises(RshopFormatError, match=f"expected 1 to {limits.MAX_NODES} nodes"):
        serialization.loads(corpus.node_chain(limits.MAX_NODES), "chain")  # MAX_NODES + 1 nodes

    def chain(x):
        for _ in range(limits.MAX_NODES):
            x = -x
        return x

    with pytest.raises(
        RshopConfigError,
        match=f"expected at most {limits.MAX_NODES} nodes in one step graph, received {limits.MAX_NODES + 1}",
    ):
        corpus.small_model(chain)


def test_node_chain_at_the_cap_loads():
    model = serialization.loads(corpus.node_chain(limits.MAX_NODES - 1), "chain")
    assert len(model.graph.nodes) == limits.MAX_NODES


# -- item 10: special files ----------------------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero (POSIX)")
def test_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "zero.rshop"
    link.symlink_to("/dev/zero")
    with pytest.raises(RshopFormatError, match=r"zero\.rshop: expected a regular file, received a device"):
        rshop_core.load(link)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.rshop"
    os.mkfifo(fifo)
    result = {}

    def load():
        try:
            rshop_core.load(fifo)
        except Exception as e:  # the assertion below names what is expected
            result["error"] = e

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the reader so the thread can end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load() of a named pipe blocked")
    assert isinstance(result.get("error"), RshopFormatError)
    assert "expected a regular file, received a named pipe" in str(result["error"])


def test_directory_is_refused(tmp_path):
    with pytest.raises(RshopFormatError, match="expected a regular file, received a directory"):
        rshop_core.load(tmp_path)


def test_symlink_to_a_regular_file_loads(tmp_path):
    target = tmp_path / "m.rshop"
    target.write_bytes(small()["raw"])
    link = tmp_path / "link.rshop"
    link.symlink_to(target)
    assert rshop_core.load(link).to_json() == rshop_core.load(target).to_json()


def test_file_read_is_capped_whatever_its_reported_size(tmp_path, monkeypatch):
    path = tmp_path / "big.rshop"
    path.write_bytes(small()["raw"] + b"\0" * 100)
    monkeypatch.setattr(serialization, "MAX_FILE_BYTES", len(small()["raw"]))
    with pytest.raises(
        RshopFormatError, match=f"expected a file of at most {len(small()['raw'])} bytes, received more"
    ):
        rshop_core.load(path)


# -- item 11: loop options and states that allocate or trace without weights ---------------
def test_unroll_is_bounded_when_built_and_in_a_file():
    with pytest.raises(
        RshopConfigError,
        match=rf"option unroll: expected True, False or an int in \[1, "
        rf"{limits.MAX_UNROLL}\], received {limits.MAX_UNROLL + 1}",
    ):
        LSTMCell(3, input_dim=2).get_layer(unroll=limits.MAX_UNROLL + 1)
    doc = doc_copy()
    doc["model"]["options"]["unroll"] = 1_000_000
    with pytest.raises(RshopFormatError, match=r"option unroll: expected True, False or an int in \[1, 128\]"):
        load_doc(doc)


def test_default_output_length_is_bounded():
    with pytest.raises(RshopConfigError, match=f"option output_length: expected at most {limits.MAX_OUTPUT_LENGTH}"):
        rshop_core.LoopOptions(decode=True, output_length=limits.MAX_OUTPUT_LENGTH + 1)


def state_model(shape):
    x, h = Input((1,), name="x"), Input(shape, name="h")
    return RecurrentModel(x, x, [h], [h * 1.0], name="pass_through", seed=0)


def test_state_elements_are_bounded_when_built():
    with pytest.raises(
        RshopConfigError,
        match=f"expected states of at most {limits.MAX_STATE_ELEMENTS} elements "
        r"per example together, received 67108864 \(h \(8192, 8192\)\)",
    ):
        state_model((8192, 8192))


def test_state_elements_are_bounded_in_a_file():
    doc = serialization.to_document(state_model((4,)))
    body = doc["model"]
    for n in body["graph"]["nodes"]:
        if n["type"]["shape"] == [4]:
            n["type"]["shape"] = [2**31]
    body["states"][0]["shape"] = [2**31]
    with pytest.raises(RshopFormatError, match=f"expected states of at most {limits.MAX_STATE_ELEMENTS} elements"):
        serialization.loads(corpus.deflated(json.dumps(doc).encode(), serialization.safetensors_io.dump({})))


def test_stateful_batch_times_states_is_bounded():
    cell = GRUCell(2**14, input_dim=1)
    with pytest.raises(
        RshopConfigError,
        match=f"expected batch_size x state elements of at most "
        f"{limits.MAX_STATEFUL_ELEMENTS} for a stateful layer, received "
        "65536 x 16384",
    ):
        cell.get_layer(stateful=True, batch_size=2**16)


_UNROLLED = {}


def test_unroll_is_clamped_to_the_sequence_length(engine, monkeypatch):
    """unroll=MAX_UNROLL on a 3-step sequence traces at most a few steps and gives the reference's numbers."""
    if not _UNROLLED:
        _UNROLLED["model"] = GRUCell(3, input_dim=2).get_layer(seed=4, unroll=limits.MAX_UNROLL, return_sequences=True)
    model = _UNROLLED["model"]
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    calls = {"n": 0}
    if engine in ("tensorflow", "jax"):
        import importlib

        loop = importlib.import_module(f"rshop_backends.{engine}.loop")
        scan = loop.scan

        def counting_scan(step, *args, **kwargs):
            def counted(*a, **k):
                calls["n"] += 1
                return step(*a, **k)

            return scan(counted, *args, **kwargs)

        monkeypatch.setattr(loop, "scan", counting_scan)
    got = run(model, engine, x)
    assert_close(got, reference(model, x), FORWARD_ATOL["float32"], f"{engine} unroll={limits.MAX_UNROLL}, T=3")
    if engine == "tensorflow":
        assert 0 < calls["n"] <= 2 * 3  # peeled step + at most T - 1 unrolled + the remainder loop
    if engine == "jax":
        from rshop_backends.jax.loop import _unroll

        assert _unroll(limits.MAX_UNROLL, 3) == 3 and _unroll(5, 100) == 5 and _unroll(True, 7) == 7


# -- item 12: names and einsum equations ---------------------------------------------------
BAD_NAMES = ["a.b", "h\ud800", "tab\there", "x" * (limits.MAX_NAME + 1), "nul\x00"]


def test_empty_input_name_is_refused():  # a model or layer given "" takes its default name
    with pytest.raises(RshopConfigError, match="Input: expected a name of 1 to 256 printable characters"):
        Input((2,), name="")


@pytest.mark.parametrize("name", BAD_NAMES, ids=["dot", "surrogate", "control", "long", "nul"])
def test_bad_names_are_refused_when_built(name):
    with pytest.raises(RshopConfigError, match=r"expected a name of 1 to 256 printable characters without '\.'"):
        Input((2,), name=name)
    with pytest.raises(RshopConfigError, match=r"LSTMCell: expected a (layer )?name of"):
        LSTMCell(3, input_dim=2, name=name)
    with pytest.raises(RshopConfigError, match="model name of 1 to 256 printable characters"):
        LSTMCell(3, input_dim=2).get_layer(name=name)
    x = Input((2,))
    with pytest.raises(RshopConfigError, match="expected a name of 1 to 256"):
        F.tanh(x, name=name)


def test_dotted_state_name_is_refused_before_it_reaches_torch():
    with pytest.raises(RshopConfigError, match=r"Input: expected a name of .* received 'h.0'"):
        Input((2,), name="h.0")
    x, h = Input((2,), name="x"), Input((2,), name="h_0")
    h.name = "h.0"  # past the Input check: the state spec refuses it before any engine sees it
    with pytest.raises(RshopConfigError, match=r"node %1: expected a node name of .* received 'h.0'"):
        RecurrentModel(x, x + h, [h], [h + x], state_initializer=Learned())


@pytest.mark.parametrize(
    "where,bad",
    [
        (("model", "states", 0, "name"), "c.0"),
        (("model", "params", 0, "name"), "lstm.cell/kernel"),
        (("model", "graph", "nodes", 3, "name"), "n\ud800"),
        (("model", "name"), "m\x07"),
        (("model", "params", 0, "name"), "unqualified"),
    ],
    ids=["state-dot", "param-dot", "node-surrogate", "model-control", "param-unqualified"],
)
def test_bad_names_are_refused_in_a_file(where, bad):
    doc = doc_copy()
    target = doc
    for k in where[:-1]:
        target = target[k]
    old = target[where[-1]]
    target[where[-1]] = bad
    if where[1] == "params":  # rename the param everywhere, so only the name rule can refuse it
        for n in doc["model"]["graph"]["nodes"]:
            if n["op"] == "param" and n["attrs"]["name"] == old:
                n["attrs"]["name"] = n["name"] = bad
    with pytest.raises(RshopFormatError, match=r"printable characters without '\.'|qualified parameter name"):
        load_doc(doc)


@pytest.mark.parametrize(
    "eq",
    [
        "ａb,b->ａ",  # noqa: RUF001 - full-width letters on purpose
        "ab,b->a\u0301",
        "ab,b->a->a",
        "aβ,β->a",
        "ab,b-a",
    ],
)
def test_einsum_equations_are_ascii_when_built(eq):
    a, b = Input((2, 3), name="a"), Input((3,), name="b")
    with pytest.raises(RshopConfigError, match="einsum equation"):
        F.einsum(eq, a, b)


def test_non_ascii_einsum_is_refused_in_a_file():
    a, b = Input((2, 3), name="a"), Input((3,), name="b")
    model = RecurrentModel(a, F.einsum("ab,b->a", a, b), constants=[b], name="e", seed=0)
    text = json.dumps(serialization.to_document(model), ensure_ascii=False).replace("ab,b->a", "aβ,β->a")
    with pytest.raises(RshopFormatError, match="einsum equation of ASCII letters"):
        serialization.loads(corpus.deflated(text.encode(), serialization.safetensors_io.dump({})))


_NAMED = {}


def test_unusual_valid_names_run_on_every_engine(engine):
    """Names the rule allows (non-ASCII letters, '-', spaces, '/') lower and run like the reference."""
    if not _NAMED:
        x, h = Input((2,), name="x-état"), Input((3,), name="hidden state/ü")
        dense = Dense(3, name="dense-1")  # layer names are stricter: letters, digits, '_', '-'
        y = F.tanh(dense(F.concat([x, h])), name="tanh ü")
        _NAMED["model"] = RecurrentModel(
            x, y, [h], [y], state_initializer=Learned("ones"), name="modèle", seed=3, return_sequences=True
        )
        loaded = serialization.loads(serialization.dumps(_NAMED["model"]))
        assert loaded.to_json() == _NAMED["model"].to_json()
    model = _NAMED["model"]
    assert "initial_state/hidden state/ü" in model.param_specs
    x = np.random.default_rng(1).standard_normal((2, 4, 2))
    assert_close(run(model, engine, x), reference(model, x), FORWARD_ATOL["float32"], f"{engine} unusual names")


# -- the hostile corpus: each new class refused for its own reason -------------------------
REASONS = {
    "zip_bomb_lying_size": "corrupt one (Bad CRC-32 for file 'weights.safetensors')",  # stopped at the declared size
    "zip_bomb_declared_size": "member 'weights.safetensors': expected exactly",
    "json_lying_size": "corrupt one (Bad CRC-32 for file 'model.json')",
    "padded_json": "member 'model.json': expected 0 to 4194304 uncompressed bytes, received a declared size",
    "huge_constant": "expected a constant of at most 65536 elements",
    "long_node_chain": "expected 1 to 10000 nodes",
    "huge_unroll": "option unroll: expected True, False or an int in [1, 128]",
    "huge_state": "expected states of at most 16777216 elements per example together",
    "name_with_dot": "expected a name of 1 to 256 printable characters without '.'",
    "param_name_with_dot": "expected a name of 1 to 256 printable characters without '.'",
    "name_lone_surrogate": "node #3: expected a name of 1 to 256 printable characters",
    "name_control_character": "expected a name of 1 to 256 printable characters",
    "einsum_non_ascii": "expected an einsum equation of ASCII letters",
    "einsum_two_arrows": "expected an einsum equation of ASCII letters, ',' and one '->'",
}


@pytest.mark.parametrize("stem", sorted(REASONS))
def test_hostile_corpus_classes_of_issue_9(stem):
    with pytest.raises(RshopFormatError) as info:
        rshop_core.load(HOSTILE / f"{stem}.rshop")
    assert str(info.value).startswith(str(HOSTILE / stem))
    assert REASONS[stem] in str(info.value)


def test_max_weight_bytes_refuses_before_inflating(tmp_path, monkeypatch):
    """A file declaring more weight bytes than the caller allows is refused before any is inflated;
    one within the bound loads with the same weights."""
    model = LSTMCell(8, input_dim=3).get_layer(seed=0)
    path = serialization.save(model, tmp_path / "m.rshop")
    declared = 4 * (3 * 32 + 8 * 32 + 32)
    inflated = []
    real = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read", lambda self, n=-1: inflated.append(self.name) or real(self, n))
    with pytest.raises(
        RshopFormatError,
        match=rf"weights: expected at most {declared - 1} bytes \(max_weight_bytes\), "
        rf"received a model declaring {declared}\.",
    ):
        rshop_core.load(path, max_weight_bytes=declared - 1)
    assert inflated and set(inflated) == {"model.json"}, "only model.json may be inflated before the refusal"
    loaded = rshop_core.load(path, max_weight_bytes=declared)
    assert all(np.array_equal(loaded.get_weights()[k], v) for k, v in model.get_weights().items())
    with pytest.raises(RshopConfigError, match="max_weight_bytes: expected None or an int >= 0"):
        rshop_core.load(path, max_weight_bytes=-1)
