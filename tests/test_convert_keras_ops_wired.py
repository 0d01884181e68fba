"""from_keras_step on the ops of issue 12 (casts, comparisons, where on bool masks and int32 ids, take /
take_along_axis as gather, argmax, logsumexp, cumsum, clip, elu, expand_dims / squeeze, min, the activation
layers LeakyReLU / ELU / ReLU(max_value=6) and the new activation names), and weight constraints carried over by
the whole-layer converter ``from_keras`` and by Keras cells inside a step.

Each imported step runs on every engine under test and agrees with the Keras step model itself, run by hand over
time on the active Keras backend (the helpers of tests/test_convert_keras_steps.py); each refusal is an
RshopConfigError naming the Keras op or layer and the form to write instead."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="keras is not installed in this session: importer tests need it")

from rshop_core import constraints  # noqa: E402
from rshop_core.convert import from_keras, to_keras  # noqa: E402
from rshop_core.convert.keras_step import from_keras_step  # noqa: E402
from rshop_core.errors import RshopConfigError  # noqa: E402
from test_convert_keras_steps import Case, keras_loop, randomize  # noqa: E402

L, ops = keras.layers, keras.ops
B, T, E, H, S = 2, 5, 4, 6, 7  # batch, steps, input features, hidden units, encoder length


def _case(step, states, finals, x, constants):
    """A :class:`Case` whose input and constants (``{Keras Input: numpy value}``: bool masks, int32 ids) are
    given, not drawn as floats."""
    case = Case.__new__(Case)
    case.step = step
    case.model = from_keras_step(
        step, states, finals, constants=list(constants) or None, return_sequences=True, return_states=True, seed=0
    )
    case.x, case.constants = x, list(constants.values())
    zeros = [np.zeros((B, *s.shape[1:]), "float32") for s in states]
    case.want_y, case.want_states = keras_loop(step, x, zeros, case.constants)
    return case


# -- a masked pointer-attention step: a bool mask and int32 ids as constants ----------------------------
@pytest.fixture(scope="module")
def pointer():
    keras.utils.set_random_seed(21)
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    enc = keras.Input((None, H), name="enc")
    mask = keras.Input((None,), dtype="bool", name="mask")  # True where the encoder step is real
    ids = keras.Input((2,), dtype="int32", name="ids")  # two encoder positions each example points at
    query, cell = L.Dense(H, name="query"), L.Dense(H, activation="tanh", name="cell")
    randomize([query, cell], 22)
    scores = ops.where(mask, ops.einsum("btd,bd->bt", enc, query(h)), -1e9)
    weights = ops.softmax(scores, axis=-1)
    context = ops.einsum("bt,btd->bd", weights, enc)
    lse = ops.logsumexp(scores, axis=-1, keepdims=True)
    pointer = ops.cast(ops.argmax(scores, axis=-1), "float32")[:, None] / 7.0
    picked = ops.take_along_axis(weights, ids, axis=1)  # per-example ids: gather
    first = ops.take(enc, 0, axis=1)  # a constant index on an axis of unknown size
    total = ops.max(ops.cumsum(weights, axis=-1), axis=-1, keepdims=True)  # 1
    padded = ops.sum(ops.cast(ops.logical_not(mask), "float32"), axis=-1, keepdims=True)
    h_new = cell(ops.concatenate([x, h, context, lse * 0.1, pointer, picked, first, total, padded * 0.1], axis=-1))
    step = keras.Model([x, h, enc, mask, ids], [h_new, h_new])
    rng = np.random.default_rng(23)
    m = rng.uniform(size=(B, S)) < 0.7
    m[:, 0] = True  # every example has a real step
    values = {
        enc: rng.standard_normal((B, S, H)).astype("float32"),
        mask: m,
        ids: rng.integers(0, S, (B, 2)).astype("int32"),
    }
    return _case(step, [h], [h_new], rng.standard_normal((B, T, E)).astype("float32"), values)


def test_masked_pointer_attention_with_bool_and_int_constants(engine, pointer):
    g = pointer.model.graph
    assert [g.nodes[i].type.dtype for i in g.constants] == ["float32", "bool", "int32"]
    assert {"where", "logsumexp", "argmax", "cast", "gather", "cumsum", "expand_dims"} <= {n.op for n in g.nodes}
    pointer.check(engine)


# -- elementwise forms, comparisons and activation layers ----------------------------------------------
@pytest.fixture(scope="module")
def activations():
    keras.utils.set_random_seed(24)
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    z_dense = L.Dense(H, name="z")
    silu_dense = L.Dense(H, activation="silu", name="silu_dense")
    out = L.Dense(H, activation="tanh", name="out")
    randomize([z_dense, silu_dense, out], 25)
    z = z_dense(L.Concatenate()([x, h])) * 2.0
    positive = ops.greater(z, 0.0)
    parts = [
        L.LeakyReLU(negative_slope=0.1)(z),
        L.ELU()(z),
        L.ReLU(max_value=6)(z * 4.0),
        ops.elu(z),
        ops.clip(z, -0.5, 0.5),
        ops.power(ops.abs(z) + 0.1, 1.5),
        ops.where(positive, z, ops.sin(z)),
        ops.cast(ops.less_equal(z, 0.1), "float32"),
        ops.cast(ops.logical_and(positive, ops.less(z, 1.0)), "float32"),
        ops.cast(ops.logical_or(ops.greater_equal(z, 1.0), ops.equal(z, 0.0)), "float32"),
        ops.cast(ops.not_equal(ops.cast(z * 3.0, "int32"), 0), "float32"),  # float -> int32 truncates
        ops.min(z, axis=-1, keepdims=True),
        ops.squeeze(ops.expand_dims(z, 1), axis=1) + z[:, None][:, 0],
        L.Activation("mish")(z),
        L.Activation("gelu")(z),
        L.Activation("selu")(z),
        L.Activation("relu6")(z * 4.0),
        L.Activation("log_softmax")(z),
        L.Activation("hard_silu")(z),
        L.Activation("leaky_relu")(z),
        silu_dense(h),
    ]
    h_new = out(ops.concatenate(parts, axis=-1))
    step = keras.Model([x, h], [h_new, h_new])
    x_data = np.random.default_rng(26).standard_normal((B, T, E)).astype("float32")
    return _case(step, [h], [h_new], x_data, {})


def test_activation_layers_comparisons_and_casts(engine, activations):
    used = {n.op for n in activations.model.graph.nodes}
    assert {"leaky_relu", "elu", "relu6", "clip", "pow", "min", "squeeze", "selu", "gelu", "silu"} <= used
    assert {"greater", "less_equal", "less", "equal", "greater_equal", "cast", "where", "log_softmax"} <= used
    assert "maximum" not in used and "negative" not in used  # min is the op, not -max(-x)
    slopes = sorted(n.attrs["negative_slope"] for n in activations.model.graph.nodes if n.op == "leaky_relu")
    assert slopes == [0.1, 0.2]  # the LeakyReLU layer's, and the 'leaky_relu' activation's (Keras 3's 0.2)
    activations.check(engine)


# -- ids per step, cast to int32 in the step: an embedding table looked up with keras.ops.take -----------
@pytest.fixture(scope="module")
def embedding():
    keras.utils.set_random_seed(27)
    V = 9
    ids, h = keras.Input((2,), name="ids"), keras.Input((H,), name="h")  # x_t is floating: ids as floats
    table = np.random.default_rng(28).standard_normal((V, 3)).astype("float32")
    emb = ops.reshape(ops.take(table, ops.cast(ids, "int32"), axis=0), (-1, 6))  # (batch, 2, 3) -> (batch, 6)
    cell = L.Dense(H, activation="tanh", name="cell")
    randomize([cell], 29)
    h_new = cell(ops.concatenate([emb, h], axis=-1))
    step = keras.Model([ids, h], [h_new, h_new])
    x = np.random.default_rng(30).integers(0, V, (B, T, 2)).astype("float32")
    return _case(step, [h], [h_new], x, {})


def test_ids_cast_in_the_step_look_up_a_constant_table(engine, embedding):
    gathers = [n for n in embedding.model.graph.nodes if n.op == "gather"]
    assert len(gathers) == 1 and not embedding.model.graph.nodes[gathers[0].inputs[0]].type.batched  # the table
    embedding.check(engine)


# -- refusals (raised while importing, before any engine: the same everywhere) ---------------------------
def _refused(build, x_dtype="float32"):
    x, h = keras.Input((H,), dtype=x_dtype), keras.Input((H,))
    enc = keras.Input((None, H))
    out = build(x, h, enc)
    with pytest.raises(RshopConfigError) as e:
        from_keras_step(keras.Model([x, h, enc], out), [h], [out], constants=[enc])
    return str(e.value)


@pytest.mark.parametrize(
    ("build", "parts"),
    [
        (lambda x, h, e: ops.take(h, [1, 2], axis=None), ["op Take", "axis=None flattens the batch"]),
        (
            lambda x, h, e: ops.sum(ops.take(e, [-1], axis=1), axis=1),
            ["op Take", "a negative index on axis 1, whose size is unknown"],
        ),
        (
            lambda x, h, e: ops.sum(ops.take_along_axis(e, ops.cast(e, "int32"), axis=2), axis=1),
            ["op TakeAlongAxis", "per-example ranks 2 and 2", "reshape to (batch, n) first"],
        ),
        (lambda x, h, e: ops.cast(ops.cast(h, "int64"), "float32"), ["op Cast", "dtype 'int64'", "float32, int32"]),
        (lambda x, h, e: h * ops.cast(ops.argmax(h), "float32"), ["op Argmax", "axis=None flattens the batch"]),
        (lambda x, h, e: h + ops.sum(ops.cumsum(h, axis=None)), ["op Cumsum", "axis=None flattens the batch"]),
        (lambda x, h, e: ops.elu(h, alpha=0.5), ["op Elu", "alpha=0.5", "keras.ops.where(x > 0, x, alpha"]),
        (lambda x, h, e: L.ELU(alpha=0.5, name="e")(h), ["layer ELU 'e'", "alpha=0.5 (expected alpha=1.0"]),
        (
            lambda x, h, e: L.ReLU(max_value=3.0, name="r3")(h),
            ["layer ReLU 'r3'", "max_value=3.0", "ReLU(max_value=6): relu6", "keras.ops.clip"],
        ),
        (
            lambda x, h, e: L.ReLU(negative_slope=0.1, name="rs")(h),
            ["layer ReLU 'rs'", "negative_slope=0.1", "LeakyReLU(negative_slope)"],
        ),
        (lambda x, h, e: ops.where(h, x, h), ["op Where", "condition of dtype float32", "keras.ops.greater(x, 0)"]),
        (lambda x, h, e: ops.cast(ops.logical_not(h), "float32"), ["op LogicalNot", "argument of dtype float32"]),
        (
            lambda x, h, e: L.Activation("celu", name="act")(h),
            ["layer Activation 'act'", "activation 'celu'", "rshop's are elu, exponential, gelu"],
        ),
    ],
    ids=[
        "take_axis_none",
        "take_negative_unknown",
        "take_along_rank2",
        "cast_int64",
        "argmax_all",
        "cumsum_all",
        "elu_alpha",
        "elu_layer_alpha",
        "relu_max3",
        "relu_slope",
        "where_float",
        "logical_not_float",
        "celu",
    ],
)
def test_unsupported_forms_say_why(build, parts):
    msg = _refused(build)
    assert msg.startswith("from_keras_step, ")
    for p in parts:
        assert p in msg, (p, msg)


@pytest.mark.parametrize(
    ("where", "dtype", "parts"),
    [
        ("x", "int32", ["expected dtype float32, received int32", "pass int32 or bool values as constants="]),
        ("const", "int64", ["expected dtype float32 or int32 or bool, received int64"]),
        ("state", "int32", ["expected dtype float32, received int32", "States and readouts are float32"]),
    ],
)
def test_input_dtypes(where, dtype, parts):
    x = keras.Input((H,), dtype=dtype if where == "x" else "float32", name="x")
    h = keras.Input((H,), dtype=dtype if where == "state" else "float32", name="h")
    c = keras.Input((H,), dtype=dtype if where == "const" else "float32", name="c")
    out = ops.cast(x, "float32") + ops.cast(h, "float32") + ops.cast(c, "float32")
    with pytest.raises(RshopConfigError) as e:
        from_keras_step(keras.Model([x, h, c], out), [h], [out], constants=[c])
    msg = str(e.value)
    assert msg.startswith("from_keras_step, Input ")
    for p in parts:
        assert p in msg, (p, msg)


# -- weight constraints: from_keras and Keras cells inside a step ----------------------------------------
KERAS_CONSTRAINTS = {
    "kernel": lambda: keras.constraints.MaxNorm(0.5),
    "recurrent": lambda: keras.constraints.UnitNorm(axis=1),
    "bias": lambda: keras.constraints.MinMaxNorm(0.5, 1.0, rate=0.7),
}
WANT = {
    "kernel": {"name": "max_norm", "max_value": 0.5, "axis": 0},
    "recurrent_kernel": {"name": "unit_norm", "axis": 1},
    "bias": {"name": "min_max_norm", "min_value": 0.5, "max_value": 1.0, "rate": 0.7, "axis": 0},
}


@pytest.fixture(scope="module")
def constrained_lstm():
    """A Keras LSTM with all three constraints and large weights (every constraint moves something)."""
    layer = L.LSTM(H, **{f"{k}_constraint": make() for k, make in KERAS_CONSTRAINTS.items()})
    layer.build((None, None, E))
    rng = np.random.default_rng(31)
    layer.set_weights([(2.0 * rng.standard_normal(w.shape)).astype("float32") for w in layer.get_weights()])
    return layer, from_keras(layer)


def _keras_projected(layer):
    """Keras' own constraints applied to the layer's weights: local weight name -> numpy array."""
    cell = layer.cell
    out = {}
    for local, var, c in (
        ("kernel", cell.kernel, cell.kernel_constraint),
        ("recurrent_kernel", cell.recurrent_kernel, cell.recurrent_constraint),
        ("bias", cell.bias, cell.bias_constraint),
    ):
        out[local] = keras.ops.convert_to_numpy(c(var.value))
    return out


def test_from_keras_keeps_constraints(constrained_lstm):
    _, model = constrained_lstm
    got = {k.rsplit("/", 1)[-1]: s.constraint for k, s in model.param_specs.items()}
    assert got == WANT
    back = to_keras(model)  # and back: the same keras constraints
    assert back.cell.kernel_constraint.get_config() == {"max_value": 0.5, "axis": 0}
    assert type(back.cell.recurrent_constraint).__name__ == "UnitNorm"
    assert back.cell.bias_constraint.get_config() == {"min_value": 0.5, "max_value": 1.0, "rate": 0.7, "axis": 0}


def test_apply_constraints_projects_like_keras(engine, constrained_lstm):
    layer, model = constrained_lstm
    lowered = model.lower(engine)
    assert {k.rsplit("/", 1)[-1]: v for k, v in lowered.constraints.items()} == WANT
    lowered.apply_constraints()
    want = _keras_projected(layer)
    for k, v in lowered.get_weights().items():
        np.testing.assert_allclose(v, want[k.rsplit("/", 1)[-1]], rtol=2e-5, atol=2e-6, err_msg=f"{k} on {engine}")


def test_keras_cell_in_a_step_keeps_its_constraints():
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    cell = L.GRUCell(H, kernel_constraint=keras.constraints.NonNeg(), name="g")
    y, h_new = cell(x, h)
    model = from_keras_step(keras.Model([x, h], [y, h_new]), [h], [h_new])
    assert model.param_specs["g/kernel"].constraint == constraints.non_neg().to_json()
    assert model.param_specs["g/recurrent_kernel"].constraint is None


def test_custom_constraint_classes_are_refused_naming_the_layer():
    class Clip(keras.constraints.Constraint):
        def __call__(self, w):
            return keras.ops.clip(w, -1.0, 1.0)

    layer = L.SimpleRNN(H, bias_constraint=Clip(), name="custom_rnn")
    layer.build((None, None, E))
    with pytest.raises(RshopConfigError) as e:
        from_keras(layer)
    msg = str(e.value)
    assert msg.startswith("from_keras(SimpleRNN), layer 'custom_rnn': bias_constraint=")
    assert "Clip is not supported; expected None or a keras MaxNorm, UnitNorm, NonNeg or MinMaxNorm" in msg
    assert "apply your projection after each optimizer step" in msg
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    inner = L.SimpleRNNCell(H, kernel_constraint=Clip(), name="inner")
    y, (h_new,) = inner(x, [h])
    with pytest.raises(RshopConfigError) as e:
        from_keras_step(keras.Model([x, h], [y, h_new]), [h], [h_new])
    assert str(e.value).startswith("from_keras_step, layer SimpleRNNCell 'inner': kernel_constraint=")
