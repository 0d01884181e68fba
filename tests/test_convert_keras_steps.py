"""from_keras_step on the steps RecurrentShop users wrote: slicing, keras.ops.split, einsum and matmul attention
over a constant, reductions and shape ops, the Dot layer, and Keras SimpleRNNCell / GRUCell / LSTMCell inside the
step. Each imported model runs on every engine under test and agrees with the Keras step model itself, run by
hand over time on the active Keras backend; what cannot be imported is refused naming the layer and the nearest
supported form."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="keras is not installed in this session: importer tests need it")

from conformance.conftest import run  # noqa: E402  (tests/ is on sys.path)
from rshop_core.convert.keras_step import from_keras_step  # noqa: E402
from rshop_core.errors import RshopConfigError  # noqa: E402

L, ops = keras.layers, keras.ops
ATOL = 2e-5
B, T, E, H, S = 2, 5, 4, 6, 7  # batch, steps, input features, hidden units, encoder length


def keras_loop(step, x, states, constants=(), n_out=1):
    """The Keras step model run by hand over time: (outputs stacked over time, final states)."""
    ys = []
    for t in range(x.shape[1]):
        res = step([x[:, t], *states, *constants])
        res = [keras.ops.convert_to_numpy(r) for r in (res if isinstance(res, (list, tuple)) else [res])]
        ys.append(res[0])
        states = res[n_out:]
    return np.stack(ys, axis=1), states


def randomize(layers, seed):
    """Give every weight of ``layers`` (biases included, which Keras starts at zero) uniform random values."""
    rng = np.random.default_rng(seed)
    for layer in layers:
        layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in layer.get_weights()])


class Case:
    """A Keras step model, its rshop import, data and the Keras results, built once per module."""

    def __init__(self, step, states, finals, constants=(), seed=0, **options):
        rng = np.random.default_rng(seed)
        self.step = step
        self.model = from_keras_step(
            step, states, finals, constants=list(constants) or None, return_sequences=True, return_states=True,
            seed=0, **options,
        )  # fmt: skip
        self.x = rng.standard_normal((B, T, step.inputs[0].shape[-1])).astype("float32")
        self.constants = [  # an unknown (None) length is S
            rng.standard_normal((B, *(d or S for d in c.shape[1:]))).astype("float32") for c in constants
        ]
        zeros = [np.zeros((B, *s.shape[1:]), "float32") for s in states]
        self.want_y, self.want_states = keras_loop(step, self.x, zeros, self.constants)

    def check(self, engine):
        got = run(self.model, engine, self.x, constants=self.constants or None)
        want = [self.want_y, *self.want_states]
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert g.shape == w.shape, f"result #{i} on {engine}: {g.shape} vs {w.shape}"
            err = float(np.max(np.abs(g - w)))
            assert err <= ATOL, f"result #{i} on {engine}: max abs error {err:.3g}"


# -- slicing ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rhn():
    """A depth-2 recurrent highway step (RecurrentShop's RHN example) with its gates cut out by slicing."""
    keras.utils.set_random_seed(1)
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    s = h
    dense = []
    for layer in range(2):
        rec = L.Dense(3 * H, name=f"r{layer}")
        dense.append(rec)
        z = rec(s)
        if layer == 0:
            inp = L.Dense(3 * H, use_bias=False, name="w")
            dense.append(inp)
            z = L.Add()([z, inp(x)])
        hh, t, c = ops.tanh(z[:, :H]), ops.sigmoid(z[:, H : 2 * H]), ops.sigmoid(z[:, 2 * H :])
        s = L.Add()([L.Multiply()([hh, t]), L.Multiply()([s, c])])
    randomize(dense, 1)
    return Case(keras.Model([x, h], [s, s]), [h], [s])


def test_rhn_step_with_slicing(engine, rhn):
    assert sum(n.op == "slice" for n in rhn.model.graph.nodes) == 6
    rhn.check(engine)


@pytest.fixture(scope="module")
def indexing():
    """Every indexing form: ints (the axis dropped), None, '...', negative bounds, open ends; with reshapes,
    transposes and keras.ops.concatenate around them."""
    keras.utils.set_random_seed(2)
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    enc = keras.Input((None, H), name="enc")  # a constant of unknown length
    d = L.Dense(H, name="d")
    randomize([d], 2)
    grid = L.Reshape((2, 3))(d(x))  # (2, 3)
    flipped = ops.transpose(grid, (0, 2, 1))  # (3, 2)
    parts = [
        h[:, -2:],
        h[:, 1:2] * x[:, 0][:, None],  # an int index drops the axis; None puts one back
        flipped[:, 1],  # (2,)
        ops.reshape(flipped[..., -1:], (-1, 3)),
        enc[:, 0, :2],  # the first encoder step: its time size is unknown
        ops.max(enc[:, None], axis=1)[:, 1, -2:],  # a new axis on a value of unknown size: expand_dims
        ops.sum(enc[:, :, 0][:, :, None], axis=1),  # an int index on it: slice, then squeeze
    ]
    mix = L.Dense(H, name="mix")
    h_new = ops.tanh(mix(ops.concatenate(parts, axis=-1)))
    randomize([mix], 3)
    return Case(keras.Model([x, h, enc], [h_new, h_new]), [h], [h_new], constants=[enc])


def test_indexing_forms(engine, indexing):
    ops_used = {n.op for n in indexing.model.graph.nodes}
    assert {"slice", "reshape", "transpose", "expand_dims", "squeeze", "sum"} <= ops_used
    indexing.check(engine)


# -- split -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def split_gated():
    """A gated step whose gates come from keras.ops.split: equal sections, and split points."""
    keras.utils.set_random_seed(3)
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    gates = L.Dense(3 * H, name="gates")
    randomize([gates], 4)
    z, r, cand = ops.split(gates(L.Concatenate()([x, h])), 3, axis=-1)
    z = ops.sigmoid(z)
    h_new = z * h + (1.0 - z) * ops.tanh(cand + ops.sigmoid(r) * h)
    head, mid, tail = ops.split(h_new, [1, 4], axis=1)  # sizes 1, 3, 2
    y = ops.concatenate([tail, head * mid[:, :2]], axis=1)
    return Case(keras.Model([x, h], [y, h_new]), [h], [h_new])


def test_split_gated_step(engine, split_gated):
    assert sum(n.op == "split" for n in split_gated.model.graph.nodes) == 6
    split_gated.check(engine)


# -- attention over a constant (the encoder sequence) ---------------------------------------------------
@pytest.fixture(scope="module")
def einsum_attention():
    """Luong-style attention written with keras.ops.einsum and softmax, the encoder a constant of unknown length."""
    keras.utils.set_random_seed(4)
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    enc = keras.Input((None, H), name="enc")
    query, cell = L.Dense(H, name="query"), L.Dense(H, activation="tanh", name="cell")
    randomize([query, cell], 5)
    scores = ops.einsum("btd,bd->bt", enc, query(h))
    weights = ops.softmax(scores, axis=-1)
    context = ops.einsum("bt,btd->bd", weights, enc)
    h_new = cell(L.Concatenate()([x, h, context]))
    return Case(keras.Model([x, h, enc], [h_new, h_new]), [h], [h_new], constants=[enc])


def test_einsum_attention_step(engine, einsum_attention):
    einsum_attention.check(engine)


@pytest.fixture(scope="module")
def matmul_attention():
    """The same attention without einsum: Multiply, keras.ops.sum, expand_dims, squeeze, matmul, the Dot layer,
    a Softmax layer, max / min / mean reductions."""
    keras.utils.set_random_seed(5)
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    enc = keras.Input((None, H), name="enc")
    query, cell = L.Dense(H, name="query"), L.Dense(H, activation="tanh", name="cell")
    randomize([query, cell], 6)
    q = query(h)
    scores = ops.sum(L.Multiply()([enc, ops.expand_dims(q, 1)]), axis=-1)  # (batch, S)
    scores = scores - ops.max(scores, axis=-1, keepdims=True)
    weights = L.Softmax()(scores)
    context = ops.squeeze(ops.matmul(ops.expand_dims(weights, 1), enc), axis=1)  # (batch, H)
    dotted = L.Dot(axes=(2, 1))([enc, q])  # the scores again, (batch, S)
    spread = ops.max(dotted, axis=1, keepdims=True) - ops.min(dotted, axis=1, keepdims=True)
    pooled = ops.mean(enc, axis=1)
    h_new = cell(L.Add()([L.Concatenate()([x, h, context]), L.Concatenate()([x * 0.0, pooled, context * spread])]))
    return Case(keras.Model([x, h, enc], [h_new, h_new]), [h], [h_new], constants=[enc])


def test_matmul_and_dot_attention_step(engine, matmul_attention):
    matmul_attention.check(engine)


# -- Keras cells inside the step -------------------------------------------------------------------------
def _cell_step(kind):
    keras.utils.set_random_seed(6)
    x = keras.Input((E,), name="x")
    proj = L.Dense(5, activation="relu", name="proj")
    if kind == "lstm":
        h, c = keras.Input((H,), name="h"), keras.Input((H,), name="c")
        cell = L.LSTMCell(H, name="inner")
        y, (h_new, c_new) = cell(proj(x), [h, c])
        states, finals = [h, c], [h_new, c_new]
    else:
        h = keras.Input((H,), name="h")
        if kind == "rnn":
            cell = L.SimpleRNNCell(H, activation="relu", name="inner")
            y, (h_new,) = cell(proj(x), [h])
        else:
            cell = L.GRUCell(H, reset_after=kind == "gru_reset_after", name="inner")
            y, h_new = cell(proj(x), h)  # a single state may be passed bare, as Keras allows
        states, finals = [h], [h_new]
    out = L.Dense(3, name="out")
    randomize([proj, cell, out], 7)
    return Case(keras.Model([x, *states], [out(y), *finals]), states, finals), cell


CELL_KINDS = ["rnn", "gru_reset_after", "gru_reset_before", "lstm"]


@pytest.fixture(scope="module")
def cell_steps():
    return {kind: _cell_step(kind) for kind in CELL_KINDS}


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_nested_keras_cell(engine, cell_steps, kind):
    case, cell = cell_steps[kind]
    weights = case.model.get_weights()
    for local, value in (("kernel", cell.kernel), ("recurrent_kernel", cell.recurrent_kernel), ("bias", cell.bias)):
        assert np.array_equal(weights[f"inner/{local}"], keras.ops.convert_to_numpy(value)), local
    case.check(engine)


@pytest.fixture(scope="module")
def stacked_cells():
    """A GRUCell feeding an LSTMCell in one step (RecurrentShop's stacked cells), with dropout rates kept."""
    keras.utils.set_random_seed(8)
    x = keras.Input((E,), name="x")
    h1, h2, c2 = keras.Input((H,), name="h1"), keras.Input((3,), name="h2"), keras.Input((3,), name="c2")
    gru, lstm = L.GRUCell(H, dropout=0.25, name="gru"), L.LSTMCell(3, recurrent_dropout=0.5, name="lstm")
    y1, h1_new = gru(x, h1)
    y2, (h2_new, c2_new) = lstm(y1, [h2, c2])
    randomize([gru, lstm], 9)
    return Case(keras.Model([x, h1, h2, c2], [y2, h1_new, h2_new, c2_new]), [h1, h2, c2], [h1_new, h2_new, c2_new])


def test_stacked_keras_cells(engine, stacked_cells):
    rates = {n.attrs["rate"] for n in stacked_cells.model.graph.nodes if n.op == "dropout"}
    assert rates == {0.25, 0.5}
    stacked_cells.check(engine)


@pytest.fixture(scope="module")
def tied_cell():
    """One Keras GRUCell called twice in the step (two layers sharing weights): one rshop cell, one set of weights."""
    keras.utils.set_random_seed(10)
    x, h = keras.Input((E,), name="x"), keras.Input((H,), name="h")
    gru, back = L.GRUCell(H, name="tied"), L.Dense(E, name="back")
    y1, h1 = gru(x, h)
    y2, h2 = gru(back(y1), h1)
    randomize([gru, back], 11)
    return Case(keras.Model([x, h], [y2, h2]), [h], [h2])


def test_keras_cell_called_twice_shares_weights(engine, tied_cell):
    assert sorted(k for k in tied_cell.model.get_weights() if k.startswith("tied/")) == [
        "tied/bias",
        "tied/kernel",
        "tied/recurrent_kernel",
    ]
    tied_cell.check(engine)


# -- refusals (raised while importing, before any engine: the same everywhere) ---------------------------
def _refused(out, inputs, states):
    with pytest.raises(RshopConfigError) as e:
        from_keras_step(keras.Model(inputs, out), states, [out])
    return str(e.value)


def test_unsupported_layer_names_it_and_the_nearest_form():
    x, h = keras.Input((H,)), keras.Input((H,))
    msg = _refused(L.LayerNormalization(name="norm")(L.Add()([x, h])), [x, h], [h])
    assert msg.startswith("from_keras_step, layer LayerNormalization 'norm': expected a supported layer (Dense, ")
    assert "received keras.src.layers.normalization.layer_normalization.LayerNormalization." in msg
    assert "Nearest supported form: keras.ops.mean, keras.ops.sqrt and arithmetic" in msg
    assert "keras.ops call (" in msg and "GetItem" in msg and "Einsum" in msg
    msg = _refused(L.Lambda(lambda v: v * 2.0, name="twice")(L.Add()([x, h])), [x, h], [h])
    assert "layer Lambda 'twice'" in msg and "Nearest supported form: the keras.ops calls it makes" in msg
    assert "Lambda and custom layers are never imported" in msg


def test_whole_sequence_layer_in_a_step_points_at_its_cell():
    x_seq, h = keras.Input((3, H)), keras.Input((H,))
    msg = _refused(L.LSTM(H, name="seq")(x_seq), [x_seq, h], [h])
    assert msg.startswith("from_keras_step, layer LSTM 'seq': expected a supported layer")
    assert "Nearest supported form: keras.layers.LSTMCell called on (x_t, states) inside the step." in msg


@pytest.mark.parametrize(
    ("build", "parts"),
    [
        (lambda x, h: h[:, ::2], ["op GetItem", "slice step 2", "expected a step of 1"]),
        (lambda x, h: h[1:, :], ["op GetItem", "on the batch axis", "expected ':' there"]),
        (  # constant indices import (tests/test_convert_keras_ops_wired.py); a tensor of ids crosses the batch
            lambda x, h: ops.take(h, ops.cast(x, "int32"), axis=1),
            ["op Take", "indices that are a tensor of the step", "keras.ops.take_along_axis(x, ids, axis=-1)"],
        ),
        (lambda x, h: ops.einsum("bd,bd->d", x, h), ["op Einsum", "mixes or reduces the batch axis 'b'"]),
        (lambda x, h: ops.sum(h, axis=0), ["op Sum", "axis 0 is the batch axis"]),
        (lambda x, h: ops.sum(h), ["op Sum", "axis=None reduces over the batch too"]),
        (lambda x, h: ops.matmul(x, h), ["op Matmul", "matmul of per-example ranks 1 and 1"]),
        (lambda x, h: L.Dot(axes=1, normalize=True)([x, h]), ["layer Dot", "normalize=True"]),
    ],
    ids=["step", "batch_index", "take", "einsum_batch", "sum_batch", "sum_all", "matmul_rank", "dot_normalize"],
)
def test_unsupported_forms_say_why(build, parts):
    x, h = keras.Input((H,)), keras.Input((H,))
    msg = _refused(build(x, h), [x, h], [h])
    assert msg.startswith("from_keras_step, ")
    for p in parts:
        assert p in msg, (p, msg)
