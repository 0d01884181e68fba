"""Issue #9, construction trust: bad arguments raise clear RshopErrors, never a framework error,
a silent coercion or a model that quietly shares what should be separate."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import rshop_core
from rshop_core import RecurrentModel, RecurrentSequential, initializers, limits, serialization
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.errors import RshopConfigError, RshopDTypeError, RshopFormatError, RshopShapeError
from rshop_core.layers import Dense
from rshop_core.symbolic import Input


def _two_states(name_a="h", name_b="h", **kw):
    x, a, b = Input((3,), name="x"), Input((3,), name=name_a), Input((3,), name=name_b)
    new = F.add(x, a)
    return RecurrentModel(x, new, [a, b], [new, F.multiply(x, b)], **kw)


# -- duplicate state names ------------------------------------------------------------


def test_duplicate_state_names_refused():
    with pytest.raises(RshopConfigError) as info:
        _two_states(state_initializer=initializers.Learned())
    assert str(info.value) == (
        "RecurrentModel 'recurrent_model', state #1 'h': expected a name unique among the "
        "states, received the name of state #0 too. Give each state Input its own name=."
    )


def test_distinct_state_names_keep_separate_learned_states():
    m = _two_states("h", "g", state_initializer=initializers.Learned())
    assert [s.name for s in m.state_specs] == ["h", "g"]
    assert sorted(k for k in m.param_specs if k.startswith("initial_state/")) == ["initial_state/g", "initial_state/h"]


def test_hand_edited_file_with_duplicate_state_names_refused():
    model = LSTMCell(2, input_dim=2).get_layer(seed=1)
    with zipfile.ZipFile(io.BytesIO(serialization.dumps(model))) as zf:
        doc, weights = json.loads(zf.read("model.json")), zf.read("weights.safetensors")
    doc["model"]["states"][1]["name"] = "h"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.json", json.dumps(doc))
        zf.writestr("weights.safetensors", weights)
    with pytest.raises(RshopFormatError) as info:
        serialization.loads(buf.getvalue())
    assert "state #1 'h': expected a name unique among the states, received the name of state #0 too" in str(info.value)


def test_generated_state_names_stay_unique():
    """Stacks of same-named cells and nested models name their states apart (and still build)."""
    seq = RecurrentSequential()
    seq.add(LSTMCell(3, input_dim=2)).add(LSTMCell(3)).add(GRUCell(3))
    seq.build()
    names = [s.name for s in seq.state_specs]
    assert len(set(names)) == len(names) == 5
    inner = LSTMCell(3, input_dim=3).get_layer(seed=0)
    outer = RecurrentSequential()
    outer.add(inner).add(inner.clone("again"))
    outer.build()
    names = [s.name for s in outer.state_specs]
    assert len(set(names)) == len(names) == 4
    loaded = rshop_core.serialization.loads(serialization.dumps(outer))
    assert [s.name for s in loaded.state_specs] == names


# -- RecurrentSequential honours declared input_dim -----------------------------------------


def test_sequential_refuses_a_mismatched_input_dim():
    seq = RecurrentSequential(name="stack")
    seq.add(LSTMCell(4, input_dim=3)).add(Dense(5)).add(GRUCell(2, input_dim=4, name="g"))
    with pytest.raises(RshopShapeError) as info:
        seq.build()
    assert str(info.value).startswith(
        "RecurrentSequential 'stack', item #2 GRUCell 'g': expected its input_dim 4 to be the size reaching it, "
        "received 5 (the output of item #1)."
    )
    first = RecurrentSequential(name="s2").add(SimpleRNNCell(2, input_dim=3, name="r"))
    with pytest.raises(
        RshopShapeError,
        match=r"item #0 SimpleRNNCell 'r': expected its input_dim 3 .* received 6 "
        r"\(the stack's input x\)",
    ):
        first.build(6)


def test_sequential_consistent_input_dims_build():
    seq = RecurrentSequential().add(LSTMCell(4, input_dim=3)).add(GRUCell(2, input_dim=4))
    assert seq.build().input_shape == (3,)


# -- seeds, initializers, sizes, keywords ----------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_seed_must_be_a_non_negative_int(seed):
    with pytest.raises(RshopConfigError) as info:
        LSTMCell(2, input_dim=2).get_layer(seed=seed)
    assert f"argument seed: expected a non-negative int, received {seed!r}." in str(info.value)


def test_seed_numpy_int_accepted():
    assert LSTMCell(2, input_dim=2).get_layer(seed=np.int64(7)).seed == 7


@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda: initializers.RandomUniform(-1e308, 1e308), "expected minval <= maxval with a finite width"),
        (lambda: initializers.RandomUniform(1.0, 0.0), "expected minval <= maxval"),
        (lambda: initializers.RandomUniform(0.0, float("inf")), "RandomUniform maxval: expected a finite number"),
        (lambda: initializers.RandomNormal(0.0, -1.0), "RandomNormal stddev: expected a number >= 0"),
        (lambda: initializers.TruncatedNormal(float("nan")), "TruncatedNormal mean: expected a finite number"),
        (lambda: initializers.Orthogonal("2"), "Orthogonal gain: expected a finite number, received '2'"),
    ],
)
def test_initializer_arguments_checked(make, fragment):
    with pytest.raises(RshopConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_orthogonal_equals_householder_qr():
    """The Cholesky-QR orthogonal initializer gives the sign-fixed Householder Q (one and two passes)."""
    for shape in [(5, 20), (20, 5), (6, 6), (3, 9)]:
        got = initializers.Orthogonal()(shape, "float64", initializers.rng_for(3, "w"))
        rng = initializers.rng_for(3, "w")
        rows, cols = shape
        q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        np.testing.assert_allclose(got, q.T if rows < cols else q, atol=1e-12)


def test_wide_lstm_builds_without_drawing(monkeypatch):
    """LSTMCell(2000) builds without drawing a weight (no orthogonal factorisation of (2000, 8000));
    the weights drawn on first use are the seeded ones, orthogonal where asked."""
    calls = []
    real = initializers.Initializer.__call__
    monkeypatch.setattr(
        initializers.Initializer, "__call__", lambda self, *a, **k: calls.append(a) or real(self, *a, **k)
    )
    wide = LSTMCell(2000, input_dim=4).get_layer(seed=1)
    assert calls == []
    small = LSTMCell(300, input_dim=4).get_layer(seed=1)
    first = small.get_weights()
    assert len(calls) == 3  # kernel, recurrent kernel, bias: drawn once, on first use
    assert all(np.array_equal(first[k], v) for k, v in small.get_weights().items())
    r = first["lstm_cell/recurrent_kernel"].astype(np.float64)
    np.testing.assert_allclose(r @ r.T, np.eye(300), atol=1e-5)
    rng = initializers.rng_for(1, "lstm_cell/recurrent_kernel")
    np.testing.assert_array_equal(
        first["lstm_cell/recurrent_kernel"], initializers.Orthogonal()((300, 1200), "float32", rng)
    )
    assert wide.param_specs["lstm_cell/recurrent_kernel"].shape == (2000, 8000)


def test_parameter_count_bounded_by_the_format():
    with pytest.raises(RshopConfigError) as info:
        LSTMCell(100000, input_dim=3).get_layer()
    msg = str(info.value)
    assert f"expected at most {limits.MAX_PARAM_ELEMENTS} parameter entries in all" in msg
    assert "received 40001600000 (the largest, 'lstm_cell/recurrent_kernel', has shape (100000, 400000))" in msg


@pytest.mark.parametrize(
    "make,where,key,close",
    [
        (lambda: LSTMCell(8, unitz=3), "LSTMCell", "unitz", "units"),
        (lambda: GRUCell(8, recurent_activation="tanh"), "GRUCell", "recurent_activation", "recurrent_activation"),
        (
            lambda: LSTMCell(2, input_dim=2).get_layer(retrun_sequences=True),
            "RecurrentModel",
            "retrun_sequences",
            "return_sequences",
        ),
        (
            lambda: _two_states("h", "g", retrun_sequences=True),
            "RecurrentModel",
            "retrun_sequences",
            "return_sequences",
        ),
        (lambda: RecurrentSequential(stat_sync=True), "RecurrentSequential", "stat_sync", "state_sync"),
        (lambda: RecurrentSequential(go_backward=True), "RecurrentSequential", "go_backward", "go_backwards"),
    ],
)
def test_misspelled_keyword_names_the_closest(make, where, key, close):
    with pytest.raises(RshopConfigError) as info:
        make()
    assert str(info.value) == (
        f"{where}, keyword {key!r}: expected one of the keywords of {where}, received {key!r}. Did you mean {close!r}?"
    )


def test_unrelated_keyword_lists_the_valid_ones():
    with pytest.raises(RshopConfigError, match=r"keyword 'zzz'.*Valid keywords: .*units"):
        SimpleRNNCell(3, zzz=1)


def test_output_length_zero_refused():
    x = Input((2,), name="x")
    h = Input((2,), name="h")
    new = F.add(x, h)
    with pytest.raises(RshopConfigError, match=r"option output_length: expected an int >= 1 or None, received 0"):
        RecurrentModel(x, new, [h], [new], decode=True, output_length=0)
    model = RecurrentModel(x, new, [h], [new], decode=True, output_length=2)
    with pytest.raises(RshopConfigError, match=r"argument output_length: expected an int >= 1, received 0"):
        model.lower("numpy")(np.zeros((1, 2), np.float32), output_length=0)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "int32", np.float16])
def test_half_precision_lowering_refused(dtype):
    model = LSTMCell(2, input_dim=2).get_layer(seed=0)
    with pytest.raises(RshopDTypeError) as info:
        model.lower("numpy", dtype=dtype)
    assert "dtype: expected a floating dtype in ['float32', 'float64'], received" in str(info.value)
    assert "rshop computes in float32 or float64 only" in str(info.value)


def test_learned_state_cannot_take_a_layer_parameter_name():
    x, h = Input((2,), name="x"), Input((2,), name="h")
    new = Dense(2, name="initial_state", use_bias=False)(F.add(x, h))  # its kernel: 'initial_state/kernel'
    k = Input((2,), name="kernel")
    with pytest.raises(
        RshopConfigError,
        match=r"state 'kernel': expected its learned initial state "
        r"'initial_state/kernel' to be a new parameter",
    ):
        RecurrentModel(x, new, [h, k], [new, k], state_initializer=["zeros", initializers.Learned()])
