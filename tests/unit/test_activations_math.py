"""The math ops and Keras activations in rshop_core: the numpy engine's erf against ``math.erf``, the type
rules' errors, the activation names (which are one op, which compositions), their forward-mode rules
against central differences, their dependency rules, and a save/load round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.unit.parallel_helpers import Point, compile_graph
from tests.unit.test_parallel_structure import hand, param

from rshop_backends.numpy.special import erf
from rshop_core import Input, RecurrentModel, activations
from rshop_core import functional as F
from rshop_core.errors import RshopConfigError, RshopDTypeError
from rshop_core.ops import Op
from rshop_core.parallel import analyze, jvp_graph


def test_numpy_erf_is_float64_accurate():
    xs = np.concatenate([np.linspace(-7.0, 7.0, 40001), [0.0, 1e-300, 2.0, np.nextafter(2.0, 0.0), 30.0, -1e10]])
    want = np.array([math.erf(v) for v in xs])
    got = erf(xs)
    assert got.dtype == np.float64
    rel = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
    assert rel.max() < 2e-15, (rel.max(), xs[np.argmax(rel)])
    assert erf(np.array([np.inf, -np.inf])).tolist() == [1.0, -1.0]
    assert np.isnan(erf(np.array([np.nan]))[0])
    assert math.copysign(1.0, erf(np.array([-0.0]))[0]) == -1.0
    assert erf(np.float32([0.5])).dtype == np.float32


@pytest.mark.parametrize(
    "build, error, parts",
    [
        (lambda x: F.clip(x, 2.0, 1.0, name="c"), RshopConfigError, ["node 'c' (op clip)", "min <= max", "Swap"]),
        (lambda x: F.clip(x, 0.0, math.inf, name="c"), RshopConfigError, ["max as a finite number", "inf"]),
        (lambda x: F.clip(x, "0", 1.0, name="c"), RshopConfigError, ["min as a finite number", "'0'"]),
        (lambda x: F.gelu(x, approximate="tanh", name="g"), RshopConfigError, ["approximate as a bool", "'tanh'"]),
        (lambda x: F.leaky_relu(x, True, name="l"), RshopConfigError, ["negative_slope as a finite number"]),
        (lambda x: F.log_softmax(x, axis=1, name="s"), RshopConfigError, ["an axis in [-1, 1)", "received 1"]),
        (lambda x: F.pow(F.greater(x, 0.0), F.greater(x, 1.0), name="p"), RshopDTypeError, ["a floating operand"]),
        (lambda x: F.sin(F.greater(x, 0.0), name="s"), RshopDTypeError, ["node 's' (op sin)", "a floating operand"]),
    ],
    ids=["clip_bounds", "clip_inf", "clip_str", "gelu_str", "slope_bool", "log_softmax_axis", "pow_bool", "sin_bool"],
)
def test_type_rules_name_the_node_and_say_what_to_pass(build, error, parts):
    with pytest.raises(error) as e:
        build(Input((3,), name="x"))
    msg = str(e.value)
    assert all(p in msg for p in parts), msg


def test_attributes_are_normalized_and_shapes_broadcast():
    x = Input((2, 3), name="x")
    assert F.clip(x, 0, 1).attrs == {"min": 0.0, "max": 1.0}
    assert F.leaky_relu(x).attrs == {"negative_slope": 0.2}
    assert F.gelu(x).attrs == {"approximate": False}
    assert F.log_softmax(x, axis=0).attrs == {"axis": -2}
    p = F.pow(x, np.array([1.0, 2.0, 3.0]))  # a per-column exponent, broadcast over the rows
    assert p.op == Op.POW and p.shape == (2, 3) and p.type.batched
    assert F.pow(x, 2).dtype == "float32"


def test_activation_names_follow_keras_and_say_which_are_one_op():
    x = Input((4,), name="x")
    one_op = {
        "gelu": (Op.GELU, {"approximate": False}),
        "gelu_tanh": (Op.GELU, {"approximate": True}),
        "silu": (Op.SILU, {}),
        "swish": (Op.SILU, {}),
        "leaky_relu": (Op.LEAKY_RELU, {"negative_slope": 0.2}),
        "selu": (Op.SELU, {}),
        "relu6": (Op.RELU6, {}),
        "log_softmax": (Op.LOG_SOFTMAX, {"axis": -1}),
    }
    for name, (op, attrs) in one_op.items():
        y = activations.get(name)(x)
        assert (y.op, y.attrs, y.inputs[0] is x) == (op, attrs, True), name
    mish = activations.get("mish")(x)
    assert mish.op == Op.MULTIPLY and {t.op for t in mish.inputs} == {Op.INPUT, Op.TANH}
    for name in ("hard_silu", "hard_swish"):
        y = activations.get(name)(x)
        assert y.op == Op.MULTIPLY and {t.op for t in y.inputs} == {Op.INPUT, Op.HARD_SIGMOID}
    with pytest.raises(RshopConfigError) as e:
        activations.get("gelu_new", "SimpleRNNCell 'c' activation")
    assert "SimpleRNNCell 'c' activation: expected an activation in [" in str(e.value)
    assert "'gelu_tanh'" in str(e.value)


def test_a_composed_activation_is_never_taken_for_a_one_op_slot():
    """The cell matcher maps (op, attrs) to an activation name only for activations of one op reading x:
    mish's last op is a multiply, which must not read as 'mish' wherever a cell multiplies."""
    from rshop_core.patterns import _activation_ops

    table = _activation_ops()
    assert (Op.MULTIPLY, "{}") not in table
    assert table[(Op.GELU, '{"approximate": true}')] == "gelu_tanh"
    assert table[(Op.SILU, "{}")] in ("silu", "swish")


def test_numpy_engine_computes_the_textbook_formulas():
    x = np.linspace(-4.0, 7.0, 23).reshape(1, 1, 23)
    inp, h = Input((23,), name="x"), Input((1,), name="h")
    outs = [
        F.gelu(inp),
        F.gelu(inp, approximate=True),
        F.silu(inp),
        F.selu(inp),
        F.relu6(inp),
        F.leaky_relu(inp),
        F.mish(inp),
        F.hard_silu(inp),
        F.log_softmax(inp),
        F.clip(inp, -1.0, 2.0),
        F.pow(F.abs(inp), 0.5),
        F.sin(inp) + F.cos(inp),
    ]
    model = RecurrentModel(input=inp, initial_states=[h], output=outs, final_states=[h], return_sequences=True)
    got = [o[0, 0] for o in model.lower("numpy", "float64")(x)]
    v = x[0, 0]
    ref_erf = np.array([math.erf(t / math.sqrt(2)) for t in v])
    c = math.sqrt(2 / math.pi)
    want = [
        0.5 * v * (1 + ref_erf),
        0.5 * v * (1 + np.tanh(c * (v + 0.044715 * v**3))),
        v / (1 + np.exp(-v)),
        1.0507009873554804934193349852946 * np.where(v > 0, v, 1.6732632423543772848170429916717 * (np.exp(v) - 1)),
        np.minimum(np.maximum(v, 0), 6),
        np.where(v > 0, v, 0.2 * v),
        v * np.tanh(np.log1p(np.exp(v))),
        v * np.minimum(np.maximum(v + 3, 0), 6) / 6,
        v - np.log(np.sum(np.exp(v))),
        np.minimum(np.maximum(v, -1), 2),
        np.sqrt(np.abs(v)),
        np.sin(v) + np.cos(v),
    ]
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-14, err_msg=f"output #{i}")


def test_log_softmax_is_stable_where_log_of_softmax_is_not():
    inp, h = Input((3,), name="x"), Input((1,), name="h")
    model = RecurrentModel(input=inp, initial_states=[h], output=F.log_softmax(inp), final_states=[h])
    y = model.lower("numpy", "float64")(np.array([[[0.0, 1000.0, -1000.0]]]))
    np.testing.assert_allclose(y, [[-1000.0, 0.0, -2000.0]], rtol=1e-15, atol=0)


def math_ops_step(x, s, k):
    """Every new op reading a state, for the forward-mode rules (also used by test_parallel_jvp)."""
    (h,) = s  # (12,)
    return [all_ops(h + F.matmul(x, param("w/x", (3, 12))))]


def all_ops(z):
    p = F.split(z, 12)
    parts = [
        F.sin(p[0]) + F.cos(p[1]),
        F.erf(p[2]),
        F.clip(p[3], -0.2, 0.3),
        F.pow(F.square(p[4]) + 0.5, 1.5) + F.pow(p[5], 3.0),
        F.pow(F.sigmoid(p[6]) + 0.5, F.tanh(p[7])),
        F.gelu(p[8]) + F.gelu(p[9], approximate=True),
        F.silu(p[10]) + F.selu(p[11]),
        F.leaky_relu(p[0], 0.1) + F.relu6(p[1] * 4.0),
    ]
    soft = F.log_softmax(F.slice(z, 0, 4))
    return F.concat([*parts, soft]) * 0.5


def test_forward_mode_rules_match_central_differences():
    g = hand(math_ops_step, ((12,),))
    assert {Op.SIN, Op.COS, Op.ERF, Op.CLIP, Op.POW, Op.GELU, Op.SILU, Op.SELU, Op.LEAKY_RELU, Op.RELU6} <= {
        n.op for n in g.nodes
    }
    p = Point(g, batch=3, seed=4)
    seeds = [[np.random.default_rng(9).standard_normal(12)]]
    out, _ = p.run(compile_graph(jvp_graph(g, seeds)))
    v = np.broadcast_to(seeds[0][0], p.flat(p.states).shape)
    s0, eps = p.flat(p.states), 1e-6
    fd = (p.finals(compile_graph(g), s0 + eps * v) - p.finals(compile_graph(g), s0 - eps * v)) / (2 * eps)
    np.testing.assert_allclose(p.flat(out[1:]), fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


def test_dependency_rules_keep_elementwise_ops_diagonal_and_log_softmax_coupled():
    def step(x, s, k):
        (h,) = s
        a = F.clip(h, -1.0, 1.0) + F.gelu(h) + F.leaky_relu(h) + F.pow(h, 2.0) + F.erf(h) + F.relu6(h)
        return [a + F.silu(h) * F.selu(h) + F.sin(h) * F.cos(h)]

    assert analyze(hand(step, ((4,),))).block == 1
    coupled = analyze(hand(lambda x, s, k: [F.log_softmax(s[0])], ((4,),)))
    assert coupled.block == 4


def test_new_ops_survive_save_and_load(tmp_path):
    from rshop_core.layers import Dense
    from rshop_core.serialization import load

    g_in, h = Input((3,), name="x"), Input((12,), name="h")
    out = all_ops(Dense(12, name="mix")(F.concat([g_in, h])))
    model = RecurrentModel(input=g_in, initial_states=[h], output=out, final_states=[out], seed=2)
    x = np.random.default_rng(0).standard_normal((2, 3, 3))
    want = model.lower("numpy", "float64")(x)
    back = load(model.save(tmp_path / "m.rshop"))
    ops = {n.op: n.attrs for n in back.graph.nodes}
    assert ops[Op.GELU] in ({"approximate": False}, {"approximate": True})
    assert ops[Op.CLIP] == {"min": -0.2, "max": 0.3} and ops[Op.LEAKY_RELU] == {"negative_slope": 0.1}
    np.testing.assert_array_equal(back.lower("numpy", "float64")(x), want)


def test_keras_step_with_the_new_activations_imports_exactly():
    keras = pytest.importorskip("keras")
    from rshop_backends.keras import from_keras_step

    x_t, h = keras.Input((3,)), keras.Input((4,))
    z = keras.layers.Dense(4, activation="gelu")(keras.layers.Concatenate()([x_t, h]))
    z = keras.ops.leaky_relu(z) + keras.ops.gelu(z, approximate=True) + keras.ops.sin(z) * keras.ops.erf(z)
    z = keras.ops.silu(z) + keras.layers.Activation("mish")(z) + keras.ops.power(keras.ops.relu6(z), 2.0)
    h_new = keras.layers.Activation("tanh")(z + keras.ops.log_softmax(z))
    step = keras.Model([x_t, h], h_new)
    rnn = from_keras_step(step, initial_states=[h], final_states=[h_new])
    xs = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    state = np.zeros((2, 4), np.float32)
    for t in range(5):  # Keras runs the step itself
        state = keras.ops.convert_to_numpy(step([xs[:, t], state]))
    np.testing.assert_allclose(rnn.lower("numpy", "float64")(xs.astype(np.float64)), state, rtol=1e-5, atol=1e-5)
