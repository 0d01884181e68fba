"""bool and int32 values, cast, and the shape / index ops of attention code, on every engine.

Two compact steps exercise every new op (each case costs jax and tensorflow one compile per shape, so the
tests share one lowered layer per engine): a masked attention step reading a bool padding mask and int32
positions as constants, and a pointer-network step that picks an encoder row with argmax + gather and
embeds the picked id from a table. Forward results are compared with the numpy float64 reference,
gradients with float64 central differences; call errors must be the same on every engine.
"""

from __future__ import annotations

import numpy as np
import pytest

import rshop_core
from rshop_core import Input, RecurrentModel, serialization
from rshop_core import functional as F
from rshop_core.errors import RshopDTypeError, RshopShapeError
from rshop_core.layers import Dense, Layer

from .conftest import as_tuple, assert_close, central_differences, harness, native, reference, run
from .tolerances import FORWARD_ATOL, GRAD_RTOL

T_ENC, D = 6, 4


def masked_attention_model(**opts):
    """Scores of a query against an encoder, positions added as a float feature, padded steps masked
    with a bool constant; the context, a log-partition and running attention mass feed the state."""
    x_t, h = Input((3,), name="x"), Input((D,), name="h")
    enc = Input((None, D), name="encoder")
    pad = Input((None,), "bool", name="pad")
    pos = Input((None,), "int32", name="positions")
    q = Dense(D, name="query")(h)
    diff = enc - q  # (T, d) - (d,): numpy broadcasting per example
    scores = -F.sum(diff * diff, axes=-1) * 0.25 + F.cast(pos, "float32") * 0.1
    scores = F.where(pad, scores, -1e9)
    weights = F.softmax(scores)
    context = F.squeeze(F.expand_dims(F.einsum("t,td->d", weights, enc), 0), 0)
    lse = F.logsumexp(scores, axes=-1, keepdims=True)  # (1,)
    closest = F.min(F.sum(diff * diff, axes=-1), keepdims=True)  # (1,)
    mass = F.cumsum(weights, reverse=True, exclusive=True)  # (T,)
    pairs = F.reshape(enc, (None, 2, 2))  # (T*2, 2, 2), T unknown when built
    spread = F.mean(F.max(pairs, axes=[-1]), axes=[0])  # (2,)
    live = F.sum(F.cast(pad, "float32"), keepdims=True)  # (1,)
    h_new = F.tanh(Dense(D, name="update")(F.concat([x_t, context, h, lse * 0.1, closest * 0.1, spread, live * 0.1])))
    out = F.concat([h_new, F.slice(mass, 0, 2)])
    return RecurrentModel(
        input=x_t, initial_states=[h], output=out, final_states=[h_new], constants=[enc, pad, pos], seed=11, **opts
    )


class _Table(Layer):
    """An embedding table (5, 3) read with int32 ids inside the step."""

    def __call__(self, ids):
        return F.gather(self.add_weight("embeddings", (5, 3), "glorot_uniform"), ids, axis=0)


def pointer_model(**opts):
    """A pointer network's step: argmax over the scores points at an encoder row (gathered per example),
    the pointed position (int32, clipped into the table) is embedded, literal indices pick two steps."""
    x_t, h = Input((3,), name="x"), Input((D,), name="h")
    enc = Input((T_ENC, D), name="encoder")
    scores = F.einsum("td,d->t", enc, Dense(D, name="query")(F.concat([x_t, h])))  # no ties at h = 0
    i = F.argmax(scores)  # int32 per example, no gradient
    row = F.gather(enc, i, axis=0)  # (d,): batched indices into a batched encoder
    ids = F.minimum(i, 4)  # int32 arithmetic stays int32
    emb = _Table(name="table")(F.expand_dims(ids, 0))  # (1, 3): an unbatched table, batched ids
    ends = F.gather(enc, [0, T_ENC - 1], axis=-2)  # (2, d): literal indices, checked when built
    counts = F.cast(F.cumsum(F.cast(F.greater(scores, 0.0), "int32")), "float32")  # (T,)
    keep = F.cast(F.equal(F.argmax(scores, keepdims=True), 0), "float32")  # (1,)
    h_new = F.tanh(
        Dense(D, name="update")(
            F.concat([x_t, row, F.reshape(emb, [3]), F.reshape(ends, [-1]) * 0.5, counts * 0.1, keep, h])
        )
    )
    return RecurrentModel(
        input=x_t, initial_states=[h], output=h_new, final_states=[h_new], constants=[enc], seed=12, **opts
    )


def attention_inputs(batch=2, steps=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, 3))
    enc = rng.standard_normal((batch, T_ENC, D))
    pad = np.ones((batch, T_ENC), bool)
    pad[0, 4:] = False
    pos = np.tile(np.arange(T_ENC, dtype=np.int32), (batch, 1))
    return x, [enc, pad, pos]


def pointer_inputs(batch=3, steps=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, steps, 3)), [rng.standard_normal((batch, T_ENC, D))]


BUILDS = {"masked_attention": (masked_attention_model, attention_inputs), "pointer": (pointer_model, pointer_inputs)}


@pytest.fixture(scope="module")
def models():
    return {k: build(return_sequences=True, return_states=True) for k, (build, _) in BUILDS.items()}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_forward_matches_reference(engine, models, layers, name):
    model, (_, inputs) = models[name], BUILDS[name]
    x, consts = inputs()
    want = reference(model, x, constants=consts)
    got = run(model, engine, x, constants=consts, layer=layers(name, engine))
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/{name}")
    assert want[0].shape == (x.shape[0], x.shape[1], D + (2 if name == "masked_attention" else 0))


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_gradients_match_finite_differences(trainable_engine, models, layers, name):
    model, (_, inputs) = models[name], BUILDS[name]
    x, consts = inputs(seed=5)
    ref = model.lower("numpy", "float64")
    y = as_tuple(ref(x, constants=consts))[0]
    w_out = np.random.default_rng(7).standard_normal(y.shape)
    want = central_differences(ref.params, lambda: float(np.sum(as_tuple(ref(x, constants=consts))[0] * w_out)))
    h = harness(trainable_engine)
    layer = layers(name, trainable_engine)
    got = h.loss_grads(
        layer,
        native(h, x, "float32"),
        w_out.astype(np.float32),
        constants=[native(h, c, "float32") for c in consts],
    )
    assert sorted(got) == sorted(want)
    assert float(np.max(np.abs(want["table/embeddings" if name == "pointer" else "query/kernel"]))) > 0
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for k in want:
        err = float(np.max(np.abs(got[k].astype(np.float64) - want[k])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}/{name}: d/d {k} off by {err:.3g}"


def test_float_where_bool_is_declared_names_the_input(engine, models, layers):
    """The same RshopDTypeError on every engine, naming the constant and what to pass."""
    x, (enc, pad, pos) = attention_inputs()
    layer = layers("masked_attention", engine)
    with pytest.raises(RshopDTypeError) as e:
        run(models["masked_attention"], engine, x, constants=[enc, pad.astype(np.float32), pos], layer=layer)
    assert str(e.value) == (
        "RecurrentModel 'recurrent_model', constant #1 'pad': expected dtype bool, received float32. rshop never "
        "casts silently: pass a bool array (its Input declares dtype='bool'), e.g. arr.astype('bool')."
    )
    with pytest.raises(RshopDTypeError, match=r"constant #0: expected dtype float32, received int32\. .*"):
        h = harness(engine)
        layer(
            native(h, x, "float32"),
            constants=[
                h.to_native(enc.astype(np.int32), "int32"),
                native(h, pad, "float32"),
                native(h, pos, "float32"),
            ],
        )


def test_gather_out_of_range(engine):
    """numpy and torch see the indices and refuse them; jax and tensorflow clamp them inside their compiled
    loops (docs/decisions.md): the result is then the reference at the clamped indices."""
    x_t, h = Input((2,), name="x"), Input((3,), name="h")
    idx = Input((2,), "int32", name="idx")
    table = Input((4, 3), name="rows")
    h_new = F.tanh(F.sum(F.gather(table, idx, axis=0), axes=[0]) + h + Dense(3, name="d")(x_t))
    model = RecurrentModel(input=x_t, initial_states=[h], output=h_new, final_states=[h_new], constants=[table, idx])
    rng = np.random.default_rng(3)
    x, rows = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 4, 3))
    bad = np.array([[0, 4], [1, 2]], np.int32)
    if engine in ("numpy", "torch"):
        with pytest.raises(RshopShapeError, match=r"node 'gather' \(op gather\): expected indices in \[0, 4\) along"):
            run(model, engine, x, constants=[rows, bad])
    else:
        want = reference(model, x, constants=[rows, np.clip(bad, 0, 3)])
        assert_close(run(model, engine, x, constants=[rows, bad]), want, FORWARD_ATOL["float32"], engine)


def test_round_trip_keeps_bool_int_constants_and_new_ops(engine, models, layers, tmp_path):
    model = models["masked_attention"]
    loaded = rshop_core.load(model.save(tmp_path / "masked.rshop"))
    assert serialization.to_document(loaded) == serialization.to_document(model)
    pointer = serialization.loads(serialization.dumps(models["pointer"]))
    x, consts = attention_inputs(seed=4)
    assert_close(
        run(loaded, engine, x, constants=consts),
        reference(model, x, constants=consts),
        FORWARD_ATOL["float32"],
        f"{engine}/loaded",
    )
    px, pc = pointer_inputs(seed=4)
    assert_close(
        run(pointer, engine, px, constants=pc),
        reference(models["pointer"], px, constants=pc),
        FORWARD_ATOL["float32"],
        f"{engine}/loaded pointer",
    )
