"""Custom ops (issue #12 item 9), engine-free: registration rules, the type rule and its errors, JSON
attributes, files (round trip, refusal of an unregistered op, hand-edited hostile files) and the
time-parallel analysis. Every op is registered inside its test and unregistered after it."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from tests.data import make_hostile_corpus as corpus

import rshop_core
from rshop_core import Input, RecurrentModel, TensorType, custom_ops, serialization
from rshop_core import functional as F
from rshop_core.errors import RshopConfigError, RshopFormatError, RshopNotImplementedError, RshopShapeError
from rshop_core.layers import Dense
from rshop_core.parallel.jvp import jvp_graph


def _scaled_ref(x, scale=2.0):
    return x * scale


def _same_type(types, attrs):
    return types[0]


@pytest.fixture
def scaled():
    op = rshop_core.register_op("unittest.scaled", reference=_scaled_ref, infer=_same_type)
    yield op
    custom_ops.unregister("unittest.scaled")


def _cell(op, **options):
    x, h = Input((3,), name="x"), Input((2,), name="h")
    new = op(Dense(2, name="d")(x) + h, scale=0.5, name="sc")
    return RecurrentModel(input=x, initial_states=[h], output=new, final_states=[new], seed=1, **options)


# --- registration -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, says",
    [
        ("swish", "expected a namespaced op name '<library>.<op>'"),
        ("tanh", "(a built-in op)"),
        ("os:system", "expected a namespaced op name"),
        ("mylib.", "expected a namespaced op name"),
        ("rshop.gelu", "expected a name outside the 'rshop.' namespace"),
    ],
)
def test_names_must_be_namespaced_and_not_builtin(name, says):
    with pytest.raises(RshopConfigError) as e:
        rshop_core.register_op(name, reference=_scaled_ref, infer=_same_type)
    assert says in str(e.value)
    assert f"register_op({name!r})" in str(e.value)
    assert name not in custom_ops.registered()


def test_registration_needs_a_type_rule_and_one_kind_of_implementation():
    with pytest.raises(RshopConfigError, match="expected a type rule infer"):
        rshop_core.register_op("unittest.norule", reference=_scaled_ref)
    with pytest.raises(RshopConfigError, match="expected either a composition or engine implementations"):
        rshop_core.register_op(
            "unittest.both", reference=_scaled_ref, composition=lambda x: x * 2.0, torch=lambda x: x * 2.0
        )
    with pytest.raises(RshopConfigError, match="argument torch: expected a callable or None"):
        rshop_core.register_op("unittest.notfn", reference=_scaled_ref, infer=_same_type, torch="torch.mul")
    assert not {"unittest.norule", "unittest.both", "unittest.notfn"} & set(custom_ops.registered())


def test_reregistering_the_same_definition_is_a_no_op_and_another_is_refused(scaled):
    assert rshop_core.register_op("unittest.scaled", reference=_scaled_ref, infer=_same_type) is scaled
    with pytest.raises(RshopConfigError) as e:
        rshop_core.register_op("unittest.scaled", reference=lambda x: x, infer=_same_type)
    assert "received 'unittest.scaled', registered with another definition" in str(e.value)
    assert "custom_ops.unregister(name)" in str(e.value)
    assert custom_ops.registered()["unittest.scaled"] is scaled


def test_unregister_an_unknown_name():
    said = "unregister: expected a registered op name, received 'nobody.op'"
    with pytest.raises(RshopConfigError, match=re.escape(said)):
        custom_ops.unregister("nobody.op")


# --- building: attributes and the type rule ---------------------------------------------------------------
def test_node_records_name_and_json_attributes(scaled):
    x = Input((3,), name="x")
    y = scaled(x, scale=0.5, name="sc")
    assert (y.op, y.attrs, y.name, y.type) == ("custom", {"op": "unittest.scaled", "scale": 0.5}, "sc", x.type)
    assert scaled(x, shape=(1, 2)).attrs["shape"] == [1, 2]  # tuples are stored as JSON lists
    assert scaled(x).name == "scaled"  # default node name: the op's last name part


@pytest.mark.parametrize(
    "attrs, says",
    [
        ({"scale": np.float32(2.0)}, "received float32"),
        ({"table": {"a": 1}}, "received dict"),
        ({"fn": print}, "received builtin_function_or_method"),
        ({"scale": float("nan")}, "expected finite numbers"),
        ({"op": "other.op"}, "other than 'op' and 'name'"),
    ],
)
def test_attributes_must_be_json_data(scaled, attrs, says):
    with pytest.raises(RshopConfigError) as e:
        scaled(Input((3,)), **attrs)
    assert str(e.value).startswith("custom op 'unittest.scaled'")
    assert says in str(e.value)


def test_type_rule_errors_name_the_node():
    def rule(types, attrs):
        if types[0].shape[-1] % 2:
            raise RshopShapeError(f"expected an even last axis, received {types[0].describe()}.")
        return TensorType(types[0].shape[:-1] + (types[0].shape[-1] // 2,), types[0].dtype)

    op = rshop_core.register_op("unittest.halve", reference=lambda x: x[..., ::2], infer=rule)
    picky = rshop_core.register_op(
        "unittest.picky", reference=lambda x: x, infer=lambda types, attrs: types[0].shape[5]
    )  # an IndexError inside the rule
    try:
        assert op(Input((4,))).shape == (2,)
        with pytest.raises(RshopShapeError) as e:
            op(Input((3,)), name="half")
        assert str(e.value) == ("node 'half' (op custom): expected an even last axis, received float32(batch, 3).")
        with pytest.raises(RshopShapeError) as e:
            picky(Input((3,)), name="p")
        assert "node 'p' (op custom): expected inputs the type rule of custom op 'unittest.picky' accepts" in str(
            e.value
        )
        assert "IndexError" in str(e.value)
    finally:
        custom_ops.unregister("unittest.halve")
        custom_ops.unregister("unittest.picky")


def test_type_rule_must_keep_the_batch():
    op = rshop_core.register_op(
        "unittest.unbatch", reference=lambda x: x[0], infer=lambda t, a: TensorType(t[0].shape, batched=False)
    )
    try:
        with pytest.raises(RshopShapeError, match=re.escape("to return a batched type (as its inputs are), received")):
            op(Input((3,)))
    finally:
        custom_ops.unregister("unittest.unbatch")


def test_composition_is_inlined_and_checked_against_its_rule():
    op = rshop_core.register_op(
        "unittest.softsq", reference=lambda x: np.log1p(x * x), composition=lambda x: F.log(x * x + 1.0)
    )
    wrong = rshop_core.register_op(
        "unittest.wrongrule",
        reference=lambda x: x,
        composition=lambda x: F.sum(x),
        infer=_same_type,
    )
    try:
        y = op(Input((3,)), name="ss")
        assert (y.op, y.name) == ("log", "ss")
        said = "expected the composition to return float32(batch, 3) (its type rule)"
        with pytest.raises(RshopShapeError, match=re.escape(said)):
            wrong(Input((3,)))
    finally:
        custom_ops.unregister("unittest.softsq")
        custom_ops.unregister("unittest.wrongrule")


# --- numpy engine and files -------------------------------------------------------------------------
def test_numpy_runs_the_reference_and_files_round_trip(scaled):
    m = _cell(scaled, return_sequences=True)
    xs = np.random.default_rng(0).standard_normal((2, 4, 3))
    got = np.asarray(m.lower("numpy", "float64")(xs))
    w, b = (np.asarray(m.lower("numpy", "float64").params[k]) for k in ("d/kernel", "d/bias"))
    h, want = np.zeros((2, 2)), []
    for t in range(4):
        h = 0.5 * (xs[:, t] @ w + b + h)
        want.append(h)
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=0, atol=1e-12)
    raw = serialization.dumps(m)
    doc = json.loads(zipfile.ZipFile(io.BytesIO(raw)).read("model.json"))
    (node,) = [n for n in doc["model"]["graph"]["nodes"] if n["op"] == "custom"]
    assert node["attrs"] == {"op": "unittest.scaled", "scale": 0.5}
    again = serialization.loads(raw)
    np.testing.assert_array_equal(np.asarray(again.lower("numpy", "float64")(xs)), got)


def test_a_composition_is_saved_as_builtin_ops_and_loads_unregistered():
    op = rshop_core.register_op("unittest.sq", reference=np.square, composition=lambda x: x * x)
    try:
        x, h = Input((2,), name="x"), Input((2,), name="h")
        new = op(x + h)
        raw = serialization.dumps(RecurrentModel(input=x, initial_states=[h], output=new, final_states=[new]))
    finally:
        custom_ops.unregister("unittest.sq")
    ops = {n.op for n in serialization.loads(raw).graph.nodes}
    assert ops == {"input", "add", "multiply"}


def test_loading_an_unregistered_op_is_refused_by_name(scaled):
    raw = serialization.dumps(_cell(scaled))
    custom_ops.unregister("unittest.scaled")
    try:
        with pytest.raises(RshopFormatError) as e:
            serialization.loads(raw)
        msg = str(e.value)
        assert msg.startswith("model file: model.graph, node %")
        assert "expected a custom op registered in this process, received 'unittest.scaled', which is not" in msg
        assert "rshop_core.register_op('unittest.scaled', ...)" in msg
        assert "nothing in a file is imported or run" in msg
    finally:
        rshop_core.register_op("unittest.scaled", reference=_scaled_ref, infer=_same_type)  # for the fixture


# --- hostile files: hand-edited documents ------------------------------------------------------------
_SAVED: dict = {}


def _saved_doc():
    """A saved model with one custom node (``unittest.hostile``), its document and weights (built once)."""
    if not _SAVED:
        op = rshop_core.register_op("unittest.hostile", reference=_scaled_ref, infer=_same_type)
        try:
            raw = serialization.dumps(_cell(op))
        finally:
            custom_ops.unregister("unittest.hostile")
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            _SAVED.update(doc=json.loads(zf.read("model.json")), weights=zf.read("weights.safetensors"))
    return json.loads(json.dumps(_SAVED["doc"]))


def _load_edited(edit):
    doc = _saved_doc()
    (node,) = [n for n in doc["model"]["graph"]["nodes"] if n["op"] == "custom"]
    edit(node)
    return serialization.loads(
        corpus.pack({"model.json": json.dumps(doc).encode(), "weights.safetensors": _SAVED["weights"]})
    )


# a module that exists, is not imported by rshop or the test run, and has no side effects on import
_PROBE = "xml.dom.pulldom"


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda n: None, "expected a custom op registered in this process, received 'unittest.hostile'"),
        (lambda n: n["attrs"].update(op=f"{_PROBE}"), f"received {_PROBE!r}, which is not"),
        (lambda n: n["attrs"].update(op="os:system"), "expected a custom op name '<library>.<op>', received 'os:sys"),
        (lambda n: n["attrs"].update(op=["os", "system"]), "expected a custom op name '<library>.<op>'"),
        (lambda n: n.update(op="unittest.hostile"), "expected an op of the closed set, received 'unittest.hostile'"),
        (lambda n: n.update(op="os.system"), "expected an op of the closed set, received 'os.system'"),
        (
            lambda n: n["attrs"].update(scale={"py/object": "os.system", "args": ["echo hi"]}),
            "expected JSON scalars and lists as attributes, received dict",
        ),
        (lambda n: n["attrs"].pop("op"), "expected a custom op name '<library>.<op>', received None"),
    ],
)
def test_hostile_custom_nodes_are_refused_without_importing_anything(edit, says):
    assert _PROBE not in sys.modules
    with pytest.raises(RshopFormatError) as e:
        _load_edited(edit)
    assert str(e.value).startswith("model file:")
    assert says in str(e.value)
    assert _PROBE not in sys.modules


def test_hostile_attrs_are_refused_even_when_the_op_is_registered(scaled):
    """With the op registered, the node's attributes still have to be JSON data under identifier keys."""
    op = rshop_core.register_op("unittest.hostile", reference=_scaled_ref, infer=_same_type)
    try:
        assert _load_edited(lambda n: None) is not None  # the untouched file loads
        with pytest.raises(RshopFormatError, match="expected attribute names that are Python identifiers"):
            _load_edited(lambda n: n["attrs"].update({"__class__.__init__": 1}))
        with pytest.raises(RshopFormatError, match="received dict"):
            _load_edited(lambda n: n["attrs"].update(scale={"a": 1}))
    finally:
        custom_ops.unregister("unittest.hostile")
    assert op is not None


def test_loading_in_a_fresh_process_imports_nothing(tmp_path):
    """A fresh interpreter loads a file naming an unregistered op: refused, and no module named by the
    file was imported (the name is a real, importable module path)."""
    path = tmp_path / "m.rshop"
    doc = _saved_doc()
    (node,) = [n for n in doc["model"]["graph"]["nodes"] if n["op"] == "custom"]
    node["attrs"]["op"] = _PROBE
    path.write_bytes(corpus.pack({"model.json": json.dumps(doc).encode(), "weights.safetensors": _SAVED["weights"]}))
    code = (
        "import sys, rshop_core\n"
        "try:\n"
        f"    rshop_core.load({str(path)!r})\n"
        "except rshop_core.RshopFormatError as e:\n"
        "    print('refused', 'which is not' in str(e))\n"
        f"print({_PROBE!r} in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["refused", "True", "False"]


# --- time-parallel analysis --------------------------------------------------------------------------
def test_auto_runs_sequentially_and_says_which_custom_op(scaled):
    m = _cell(scaled)  # time_parallel="auto" by default
    text = str(m.lower("numpy").explain())
    said = r"over time: sequential: node %\d+ 'sc' \(custom op 'unittest.scaled'\) reads the states \(a custom op"
    assert re.search(said, text), text


@pytest.mark.parametrize("mode", ["scan", "newton"])
def test_scan_and_newton_refuse_a_state_reading_custom_op(scaled, mode):
    m = _cell(scaled, time_parallel=mode)
    with pytest.raises(RshopConfigError) as e:
        m.lower("numpy")(np.zeros((1, 3, 3), np.float32))
    msg = str(e.value)
    assert f"(time_parallel={mode!r}): expected the states to pass through built-in ops only" in msg
    assert "'sc' (custom op 'unittest.scaled') reads the states" in msg
    assert "Use time_parallel=False." in msg


def test_a_custom_op_on_the_input_alone_keeps_the_scan(scaled):
    x, h = Input((2,), name="x"), Input((2,), name="h")
    new = scaled(x, scale=3.0) + h * 0.5
    m = RecurrentModel(input=x, initial_states=[h], output=new, final_states=[new], time_parallel="scan")
    xs = np.random.default_rng(1).standard_normal((2, 5, 2))
    got = np.asarray(m.lower("numpy", "float64")(xs))
    hs = np.zeros((2, 2))
    for t in range(5):
        hs = 3.0 * xs[:, t] + 0.5 * hs
    np.testing.assert_allclose(got, hs, rtol=0, atol=1e-12)
    assert "associative scan" in str(m.lower("numpy").explain())


def test_jvp_of_a_custom_node_is_refused(scaled):
    g = _cell(scaled).graph
    with pytest.raises(RshopNotImplementedError) as e:
        jvp_graph(g, [[np.ones(2)]])
    assert "custom op 'unittest.scaled'" in str(e.value) and "has no derivative rule" in str(e.value)
