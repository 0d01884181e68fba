"""RecurrentShop's docs/state_init.md: state initializers for all states, a shorter list, one per state."""

from __future__ import annotations

import numpy as np

from rshop_core import RecurrentSequential
from rshop_core.cells import GRUCell, LSTMCell

from .port import agrees

RNG = np.random.default_rng(50)
X = RNG.standard_normal((3, 4, 5))


def stack(state_initializer, input_dim=5):
    rnn = RecurrentSequential(state_initializer=state_initializer, return_states=True, seed=50)
    rnn.add(LSTMCell(10, input_dim=input_dim))
    rnn.add(GRUCell(10))
    return rnn


ALL_RANDOM = stack("random_normal")  # the same initializer for all three states
ZEROS = stack("zeros")
EACH = stack(["random_normal", "zeros", "glorot_uniform"], input_dim=10)


def test_one_initializer_for_all_states(engine):
    """Random initial states are drawn from the model's seed: the same numbers on every engine."""
    agrees(ALL_RANDOM, engine, X, "state_init.md random_normal")


def test_random_initial_states_are_used():
    """Not zeros: the same weights from zero initial states give other results."""
    ZEROS.set_weights(ALL_RANDOM.get_weights())
    a = ALL_RANDOM.lower("numpy", "float64")(X)
    b = ZEROS.lower("numpy", "float64")(X)
    assert all(np.max(np.abs(x - y)) > 1e-3 for x, y in zip(a[1:], b[1:]))


def test_shorter_list_pads_with_zeros(engine):
    """['random_normal'] initializes the first state (the LSTM's h) at random and the rest with zeros."""
    short = stack(["random_normal"])
    full = stack(["random_normal", "zeros", "zeros"])
    want = agrees(full, engine, X, "state_init.md full list")
    got = agrees(short, engine, X, "state_init.md shorter list")
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_one_initializer_per_state(engine):
    """The doc gives the first cell `batch_input_shape=(32, 10)` because Keras' glorot_uniform needed a known
    batch; rshop draws any initializer for the call's batch, so input_dim=10 is enough."""
    x = RNG.standard_normal((32, 4, 10))
    y, h, c, h_gru = agrees(EACH, engine, x, "state_init.md one per state")
    assert y.shape == (32, 10) and h.shape == c.shape == h_gru.shape == (32, 10)
