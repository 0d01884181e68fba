"""int32 and bool sequences as the scanned input x (token ids, per-step masks), on every engine.

A character-level step reads one int32 id per time step, embeds it by gathering from a parameter table
and runs a GRU-like update; a second step reads a bool vector per time step (``where``, ``cast``); a third
is affine in its state with coefficients gathered by the ids (so its time-parallel scan runs on int x).
Forward results are compared with the numpy float64 reference, gradients (the embedding table's
included) with float64 central differences; the x dtype errors must be identical on every engine.
Each lowered layer is shared by the tests (jax and tensorflow compile per shape and call kind).
"""

from __future__ import annotations

import numpy as np
import pytest

import rshop_core
from rshop_core import Bidirectional, Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.errors import RshopDTypeError
from rshop_core.layers import Dense, Embedding

from .conftest import as_tuple, assert_close, central_differences, harness, native, only_engine, reference, run
from .tolerances import FORWARD_ATOL, GRAD_RTOL

VOCAB, EMB, H = 7, 3, 4
B, T = 3, 5
LENGTHS = np.array([5, 2, 3], np.int32)


def char_model(**opts):
    """ids (batch, T) int32 -> embedding (gather) -> a GRU-like update -> logits over the vocabulary."""
    ids, h = Input((), "int32", name="ids"), Input((H,), name="h")
    e = Embedding(VOCAB, EMB, embeddings_initializer="glorot_uniform", name="emb")(ids)
    z = F.sigmoid(Dense(H, name="wz")(e) + Dense(H, use_bias=False, name="uz")(h))
    c = F.tanh(Dense(H, name="wc")(e) + Dense(H, use_bias=False, name="uc")(h))
    h_new = (1.0 - z) * h + z * c
    logits = Dense(VOCAB, name="out")(h_new)
    return RecurrentModel(input=ids, initial_states=[h], output=logits, final_states=[h_new], **{"seed": 21, **opts})


def bits_model(**opts):
    """A bool vector per step: chooses between two transforms of the state and feeds 0/1 features."""
    bits, h = Input((3,), "bool", name="bits"), Input((H,), name="h")
    flags = F.cast(bits, "float32")
    turned = F.where(F.slice(bits, 0, 1), Dense(H, use_bias=False, name="ua")(h), -h)
    h_new = F.tanh(Dense(H, name="w")(flags) + turned)
    return RecurrentModel(input=bits, initial_states=[h], output=h_new, final_states=[h_new], **{"seed": 22, **opts})


def gated_model(**opts):
    """Affine in the state with diagonal coefficients gathered by the ids: h = a[id] * h + b[id]."""
    ids, h = Input((), "int32", name="ids"), Input((H,), name="h")
    a = F.sigmoid(Embedding(VOCAB, H, embeddings_initializer="glorot_uniform", name="gate")(ids))
    b = Embedding(VOCAB, H, embeddings_initializer="glorot_uniform", name="shift")(ids)
    h_new = a * h + b
    return RecurrentModel(
        input=ids, initial_states=[h], output=F.tanh(h_new), final_states=[h_new], **{"seed": 23, **opts}
    )


SEQ = {"return_sequences": True, "return_states": True}
BUILDS = {
    "char": lambda: char_model(**SEQ),
    "char_backwards": lambda: char_model(go_backwards=True, **SEQ),
    "bits": lambda: bits_model(**SEQ),
    "gated_scan": lambda: gated_model(time_parallel="scan", **SEQ),
}


def ids(seed=0, batch=B, steps=T):
    return np.random.default_rng(seed).integers(0, VOCAB, (batch, steps)).astype(np.int32)


def bits(seed=0):
    return np.random.default_rng(seed).random((B, T, 3)) < 0.5


def inputs_of(name, seed=0):
    return bits(seed) if name == "bits" else ids(seed)


@pytest.fixture(scope="module")
def models():
    return {k: build() for k, build in BUILDS.items()}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_forward_matches_reference(engine, models, layers, name):
    x = inputs_of(name)
    want = reference(models[name], x)
    got = run(models[name], engine, x, layer=layers(name, engine))
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/{name}")
    assert x.dtype in (np.int32, np.bool_) and want[0].shape[:2] == (B, T)


@pytest.mark.parametrize("how", ["mask", "sequence_lengths"])
def test_masked_calls_match_reference(engine, models, layers, how):
    """Masked steps keep the state and hold the output; the int x is sliced like a float one."""
    x = ids(1)
    call = {"mask": np.arange(T)[None, :] < LENGTHS[:, None]} if how == "mask" else {"sequence_lengths": LENGTHS}
    want = reference(models["char"], x, **call)
    got = run(models["char"], engine, x, layer=layers("char", engine), **call)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/{how}")
    # example 1 has 2 real steps: its final state is the state after step 2 of the unmasked run
    short = reference(models["char"], x[1:2, :2])
    assert np.allclose(want[1][1], short[1][0], atol=1e-12)


def test_gradients_match_finite_differences(trainable_engine, models, layers):
    """Gradients reach the embedding table (only the rows of ids that occur) and every other parameter."""
    model = models["char"]
    x = ids(2)
    x[:, :] = np.minimum(x, VOCAB - 2)  # id VOCAB - 1 never occurs: its row gets no gradient
    mask = np.arange(T)[None, :] < LENGTHS[:, None]
    ref = model.lower("numpy", "float64")
    w_out = np.random.default_rng(9).standard_normal((B, T, VOCAB))
    want = central_differences(ref.params, lambda: float(np.sum(as_tuple(ref(x, mask=mask))[0] * w_out)))
    h = harness(trainable_engine)
    got = h.loss_grads(
        layers("char", trainable_engine),
        native(h, x, "float32"),
        w_out.astype(np.float32),
        mask=native(h, mask, "float32"),
    )
    assert sorted(got) == sorted(want) == sorted(model.param_specs)
    table = got["emb/embeddings"]
    assert np.all(table[VOCAB - 1] == 0.0) and float(np.max(np.abs(table[np.unique(x)]))) > 1e-3
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for k in want:
        err = float(np.max(np.abs(got[k].astype(np.float64) - want[k])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}: d/d {k} off by {err:.3g}"


def test_time_parallel_scan_on_int_x(trainable_engine, models, layers):
    """The associative scan runs a step whose coefficients are gathered by int ids (no derivative w.r.t.
    x is needed); values and gradients agree with the sequential float64 reference."""
    model = models["gated_scan"]
    layer = layers("gated_scan", trainable_engine)
    assert "scan" in layer.explain().time
    x = ids(3)
    seq = gated_model(**SEQ)
    want = reference(seq, x)
    assert_close(run(model, trainable_engine, x, layer=layer), want, FORWARD_ATOL["float32"], trainable_engine)
    ref = seq.lower("numpy", "float64")
    w_out = np.random.default_rng(4).standard_normal((B, T, H))
    fd = central_differences(ref.params, lambda: float(np.sum(as_tuple(ref(x))[0] * w_out)))
    h = harness(trainable_engine)
    got = h.loss_grads(layer, native(h, x, "float32"), w_out.astype(np.float32))
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in fd.values()))
    for k in fd:
        err = float(np.max(np.abs(got[k].astype(np.float64) - fd[k])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}: d/d {k} off by {err:.3g}"


def test_stateful_carry_and_bidirectional(engine):
    """A stateful char model carries its state across two halves of the ids; a Bidirectional one runs the
    int sequence both ways (its backward copy slices the ids in reverse)."""
    x = ids(5, batch=2, steps=6)
    stateful = char_model(stateful=True, return_sequences=True, seed=31)
    layer = stateful.lower(engine)
    first = run(stateful, engine, x[:, :3], layer=layer)[0]
    second = run(stateful, engine, x[:, 3:], layer=layer)[0]
    whole = reference(char_model(return_sequences=True, seed=31), x)[0]
    assert_close((np.concatenate([first, second], axis=1),), (whole,), FORWARD_ATOL["float32"], f"{engine} carry")
    bi = Bidirectional(char_model(return_sequences=True, seed=32))
    assert_close(run(bi, engine, x), reference(bi, x), FORWARD_ATOL["float32"], f"{engine} bidirectional")


def test_x_dtype_errors_are_the_same_everywhere(engine, models, layers):
    """A float array where int32 ids are declared, a bool one where int32 is, and ids where a float x is:
    one RshopDTypeError per mistake, with the same text on every engine, naming the input."""
    h = harness(engine)
    layer = layers("char", engine)
    with pytest.raises(RshopDTypeError) as e:
        layer(h.to_native(ids().astype(np.float32), "float32"))
    assert str(e.value) == (
        "RecurrentModel 'recurrent_model', argument x 'ids': expected dtype int32, received float32. rshop never "
        "casts silently: pass a int32 array (its Input declares dtype='int32'), e.g. arr.astype('int32')."
    )
    with pytest.raises(RshopDTypeError, match=r"argument x 'ids': expected dtype int32, received bool\. "):
        layer(h.to_native(ids() > 2, "bool"))
    with pytest.raises(RshopDTypeError) as e:
        layers("bits", engine)(h.to_native(bits().astype(np.int32), "int32"))
    assert "argument x 'bits': expected dtype bool, received int32." in str(e.value)
    x_t, state = Input((2,), name="x"), Input((H,), name="h")
    h_new = F.tanh(Dense(H, name="d")(x_t) + state)
    plain = RecurrentModel(input=x_t, initial_states=[state], output=h_new, final_states=[h_new], seed=1)
    with pytest.raises(RshopDTypeError) as e:
        plain.lower(engine)(h.to_native(np.zeros((B, T, 2), np.int32), "int32"))
    assert str(e.value) == (
        "RecurrentModel 'recurrent_model', argument x: expected dtype float32, received int32. rshop never casts "
        "silently: pass a float32 array (floats compute in the lowering's dtype); a int32 value must be declared "
        "so: Input(..., dtype='int32')."
    )


def test_save_load_and_float64_lowering(engine, models, tmp_path):
    """A saved char model loads with its int32 x and runs on every engine; a float64 lowering keeps the ids
    int32 (only floats change dtype)."""
    model = models["char"]
    loaded = rshop_core.load(model.save(tmp_path / "char.rshop"))
    assert loaded.input_dtype == "int32" and loaded.dtype == "float32"
    x = ids(6)
    assert_close(run(loaded, engine, x), reference(model, x), FORWARD_ATOL["float32"], f"{engine}/loaded")
    with harness(engine).float64_scope():
        got = run(model, engine, x, dtype="float64")
    assert_close(got, reference(model, x), FORWARD_ATOL["float64"], f"{engine}/float64")


def test_tensorflow_serving_signature_takes_int32_ids(request, models, layers):
    """The SavedModel signature declares x as the Input does (int32 ids), not in the layer's float dtype."""
    only_engine(request, "tensorflow", "a tf.function serving signature")
    import tensorflow as tf

    serve = layers("char", "tensorflow").serving_signature()
    spec = serve.input_signature[0]
    assert (spec.dtype, spec.shape.as_list()) == (tf.int32, [None, None])
    x = ids(7)
    got = serve(tf.constant(x))["output_0"].numpy()
    assert_close((got,), reference(models["char"], x)[:1], FORWARD_ATOL["float32"], "serving")
