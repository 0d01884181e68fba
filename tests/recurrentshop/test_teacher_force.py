"""RecurrentShop's docs/teacher_force.md: a readout stack trained on the ground truth of the previous step."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import RecurrentSequential, RshopConfigError
from rshop_core.cells import LSTMCell
from rshop_core.layers import Activation

from .port import agrees

RNG = np.random.default_rng(30)


def teacher_forced():
    rnn = RecurrentSequential(readout="add", teacher_force=True, return_sequences=True, seed=30)
    rnn.add(LSTMCell(10, input_dim=10))
    rnn.add(LSTMCell(10))
    rnn.add(LSTMCell(10))
    rnn.add(Activation("softmax"))
    return rnn


RNN = teacher_forced()
X_TRUE = RNG.random((3, 7, 10))  # the doc's (32, 7, 10), with a smaller batch
Y_TRUE = RNG.random((3, 7, 10))


def test_training_call_feeds_the_ground_truth(engine):
    """RecurrentShop: `y = rnn(x, ground_truth=y_true)`, then `fit`; rshop: a training call with ground_truth=."""
    (y,) = agrees(RNN, engine, X_TRUE, "teacher_force.md training", ground_truth=Y_TRUE, training=True)
    assert y.shape == (3, 7, 10)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)  # the softmax at the end


def test_prediction_needs_no_ground_truth(engine):
    """RecurrentShop's `model.predict([X, zeros])` (a dummy ground truth) is `layer(X)`: the model feeds back
    its own outputs."""
    (y,) = agrees(RNN, engine, X_TRUE, "teacher_force.md prediction")
    assert y.shape == (3, 7, 10)


def test_step_t_reads_ground_truth_t_minus_1():
    """Step t reads ground_truth[t-1], never ground_truth[t]: changing the last target changes nothing."""
    layer = RNN.lower("numpy", "float64")
    y = layer(X_TRUE, ground_truth=Y_TRUE, training=True)
    moved = Y_TRUE.copy()
    moved[:, -1] += 1.0
    np.testing.assert_array_equal(layer(X_TRUE, ground_truth=moved, training=True), y)
    moved[:, 2] += 1.0
    assert np.max(np.abs(layer(X_TRUE, ground_truth=moved, training=True)[:, 3] - y[:, 3])) > 1e-6


def test_ground_truth_at_prediction_is_refused(engine):
    """Passing the dummy ground truth at inference would be ignored silently: rshop refuses it, the same on every
    engine."""
    from conformance.conftest import harness, native

    h = harness(engine)
    layer = RNN.lower(engine)
    with pytest.raises(RshopConfigError) as e:
        layer(native(h, X_TRUE, "float32"), ground_truth=native(h, np.zeros((3, 7, 10)), "float32"), training=False)
    msg = str(e.value)
    assert "argument ground_truth: expected none for a call with training=False" in msg
    assert "Pass training=True to teacher-force, or drop ground_truth." in msg
