"""Engine-free checks of the semantics RecurrentShop and Keras users bring (issue 12, items 1-4 and 11):
option defaults and old files, num_states / state_shapes, Input(batch_shape=...), the cell list form and
its errors, and RecurrentLayer's refusal of random state initializers on every Keras backend."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from rshop_core import (
    Bidirectional,
    Input,
    LoopOptions,
    RecurrentModel,
    RshopConfigError,
    RshopFormatError,
    RshopShapeError,
    serialization,
)
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.layers import Dense


def _decoder(**opts):
    v, s = Input((2,), name="v"), Input((3,), name="s")
    s_new = Dense(3, name="d")(F.concat([v, s]))
    return RecurrentModel(input=v, initial_states=[s], output=s_new, final_states=[s_new], decode=True, **opts)


# -- 1. decode's default output -------------------------------------------------------------
def test_return_sequences_default_follows_decode():
    assert LoopOptions().return_sequences is False
    assert LoopOptions(decode=True).return_sequences is True
    assert LoopOptions(decode=True, return_sequences=False).return_sequences is False
    assert _decoder(output_length=3, seed=0).options.return_sequences is True
    assert _decoder(output_length=3, seed=0, return_sequences=False).options.return_sequences is False
    assert LSTMCell(2, input_dim=2).get_layer(seed=0).options.return_sequences is False


def test_files_keep_the_return_sequences_they_state():
    last = _decoder(output_length=3, seed=0, return_sequences=False)
    doc = serialization.to_document(last)
    assert doc["model"]["options"]["return_sequences"] is False  # always written: older files stated it too
    assert serialization.from_document(doc).options.return_sequences is False
    seq = serialization.to_document(_decoder(output_length=3, seed=0))
    assert seq["model"]["options"]["return_sequences"] is True
    doc["model"]["options"]["return_sequences"] = None  # the code default is not a file value
    with pytest.raises(RshopFormatError, match=r"options.return_sequences: expected true or false, received None"):
        serialization.from_document(doc)


# -- 2. stateful without batch_size -----------------------------------------------------------
def test_stateful_without_batch_size_is_accepted():
    model = GRUCell(2, input_dim=2).get_layer(seed=0, stateful=True)
    assert model.options.stateful and model.options.batch_size is None


# -- 3. initializers, state facts, batch_shape ------------------------------------------------
def test_state_initializer_list_too_long_refused():
    with pytest.raises(RshopConfigError) as info:
        LSTMCell(2, input_dim=2).get_layer(seed=0, state_initializer=["zeros", "ones", "zeros"])
    assert str(info.value) == (
        "RecurrentModel 'lstm': expected at most one state_initializer per state (2), received 3. "
        "A shorter list initializes the first states; the rest start at zeros."
    )


def test_num_states_and_state_shapes():
    lstm = LSTMCell(4, input_dim=3)
    model = lstm.get_layer(seed=0)
    assert (lstm.num_states, lstm.state_shapes()) == (2, [(4,), (4,)])
    assert (model.num_states, model.state_shapes) == (2, [(4,), (4,)])
    bi = Bidirectional(GRUCell(5, input_dim=3).get_layer(seed=0, return_sequences=True))
    assert (bi.num_states, bi.state_shapes) == (2, [(5,), (5,)])
    nested = model.get_cell("inner")
    assert (nested.num_states, nested.state_shapes()) == (2, [(4,), (4,)])
    deferred = LSTMCell(4).get_layer(seed=0)
    with pytest.raises(RshopConfigError, match="expected a built model"):
        _ = deferred.num_states


def test_input_batch_shape():
    t = Input(batch_shape=(8, 3), name="x")
    assert (t.shape, t.batch) == ((3,), 8)
    assert Input((3,), batch_size=8).batch == 8 and Input((3,)).batch is None
    assert Input(batch_shape=(None, 3)).batch is None
    cases = [
        ({"shape": (4,), "batch_shape": (8, 3)}, "expected shape equal to batch_shape without its first"),
        ({"batch_shape": (8, 3), "batch_size": 2}, "expected batch_size equal to batch_shape[0] (8)"),
        ({"batch_shape": (0, 3)}, "batch_shape[0]: expected a batch size >= 1 or None, received 0"),
        ({"batch_shape": ()}, "batch_shape: expected a tuple (batch, *per-example shape), received ()"),
        ({}, "expected shape= (per example) or batch_shape=, received neither"),
    ]
    for kwargs, fragment in cases:
        with pytest.raises(RshopConfigError) as info:
            Input(name="x", **kwargs)
        assert fragment in str(info.value), (kwargs, str(info.value))


def _batch_model(x_batch, h_batch=None, **opts):
    x, h = Input(batch_shape=(x_batch, 2), name="x"), Input(batch_shape=(h_batch, 3), name="h")
    y = Dense(3, name="d")(F.concat([x, h]))
    return RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y], seed=0, **opts)


def test_batch_shape_against_batch_size_and_stateful():
    assert _batch_model(4, stateful=True).options.batch_size == 4
    assert _batch_model(4, stateful=True, batch_size=4).options.batch_size == 4
    assert _batch_model(4).options.batch_size is None  # not stateful: the model runs any batch
    with pytest.raises(RshopConfigError) as info:
        _batch_model(4, stateful=True, batch_size=2)
    assert "expected batch_size equal to the batch of Input 'x' (4), received batch_size=2" in str(info.value)
    with pytest.raises(RshopShapeError) as info:
        _batch_model(4, 5)
    assert "Input 'h': expected the batch size of Input 'x' (4), received batch_shape with 5" in str(info.value)


# -- 4. call forms ----------------------------------------------------------------------------
def test_cell_list_form_errors():
    cell = LSTMCell(3)
    x, h = Input((2,)), Input((3,))
    with pytest.raises(RshopConfigError) as info:
        cell([x, h])
    assert str(info.value) == (
        "LSTMCell 'lstm_cell': expected cell(x, states) or the list form cell([x, *states]) with 3 Tensors "
        "(x and 2 state(s)), received a list of 2."
    )
    with pytest.raises(RshopConfigError, match=r"the list form cell\(\[x, \*states\]\) with 3 Tensors .* Tensor"):
        cell(x)
    out = cell([x, h, h])
    assert isinstance(out, list) and [t.shape for t in out] == [(3,), (3,), (3,)]


def test_nested_cell_list_form_returns_a_list():
    inner = GRUCell(3, input_dim=2).get_layer(seed=0).get_cell("inner")
    x, h = Input((2,)), Input((3,))
    out = inner([x, h])
    assert isinstance(out, list) and [t.shape for t in out] == [(3,), (3,)]


def test_model_called_on_a_symbolic_sequence_refused():
    model = LSTMCell(4, input_dim=5).get_layer(seed=0)
    for m in (model, LSTMCell(4).get_layer(seed=0)):  # built, and made without input_dim
        with pytest.raises(RshopConfigError) as info:
            m(Input((7, 5)))
        msg = str(info.value)
        assert msg.startswith("RecurrentModel 'lstm', argument x: expected an array"), msg
        assert "rshop_backends.keras.RecurrentLayer(model)" in msg


# -- 11. RecurrentLayer and random state initializers, on every Keras backend -------------------
_KERAS_SCRIPT = r"""
import json
import keras
from rshop_core import RshopConfigError, initializers
from rshop_core.cells import LSTMCell
from rshop_backends.keras import RecurrentLayer
out = {"backend": keras.backend.backend()}
try:
    RecurrentLayer(LSTMCell(3, input_dim=2).get_layer(seed=0, state_initializer=[initializers.RandomNormal(0.0, 0.1)]))
    out["random"] = None
except RshopConfigError as e:
    out["random"] = str(e)
learned = [initializers.Learned(initializers.RandomNormal(0.0, 0.1)), "ones"]
layer = RecurrentLayer(LSTMCell(3, input_dim=2).get_layer(seed=0, state_initializer=learned))
y = keras.Sequential([keras.Input((4, 2)), layer])(keras.ops.zeros((2, 4, 2)))
out["learned_shape"] = list(keras.ops.shape(y))
try:
    LSTMCell(3, input_dim=2).get_layer(seed=0)(keras.Input((4, 2)))
    out["symbolic"] = None
except RshopConfigError as e:
    out["symbolic"] = str(e)
print("REPORT " + json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_keras_layer_refuses_random_state_initializers(backend):
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec(backend) is None:
        pytest.skip(f"the Keras backend {backend!r} needs keras and {backend}, not installed in this session")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", _KERAS_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][len("REPORT ") :])
    assert out["backend"] == backend
    assert out["random"] == (
        "RecurrentLayer: expected state initializers that are constant or learned, received the random "
        "RandomNormal(mean=0.0, stddev=0.1) for state 'h' of 'lstm'. Keras traces its steps, where rshop "
        "cannot draw a per-call random state the same way on every backend: use initializers.Learned(...) for "
        "a trained initial state, or pass initial_state= drawn with keras.random (and a "
        "keras.random.SeedGenerator) in your own call."
    )
    assert out["learned_shape"] == [2, 3]
    assert "received a symbolic keras.KerasTensor of shape (None, 4, 2)" in out["symbolic"]
    assert "rshop_backends.keras.RecurrentLayer(model)" in out["symbolic"]
