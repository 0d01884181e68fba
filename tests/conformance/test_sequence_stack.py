"""SequenceStack is a model kind like the others: one lowered layer on every engine, equal to running
its layers one after another (numpy float64), and a .rshop round trip (document kind SequenceStack)."""

from __future__ import annotations

import numpy as np
import pytest

import rshop_core
from rshop_core import Bidirectional, SequenceStack, serialization
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.errors import RshopConfigError, RshopFormatError

from .conftest import assert_close, run
from .tolerances import FORWARD_ATOL

X = np.random.default_rng(3).standard_normal((2, 5, 3))


def _stack():
    rng = np.random.default_rng(7)
    first = Bidirectional(
        GRUCell(4, input_dim=3).get_layer(name="a", seed=1, return_sequences=True, return_states=True)
    )
    second = Bidirectional(
        LSTMCell(2, input_dim=8).get_layer(name="b", seed=2, return_sequences=True), merge_mode="sum"
    )
    stack = SequenceStack([first, second], name="two_bidirectional")
    stack.set_weights(
        {k: (v + 0.1 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in stack.get_weights().items()}
    )
    return stack


STACK = _stack()


def _by_hand(stack, x):
    """The layers lowered one by one on numpy float64, each reading the previous one's first output."""
    states = []
    for layer in stack.layers:
        out = layer.lower("numpy", "float64")(x)
        out = out if isinstance(out, tuple) else (out,)
        n = len(layer.state_specs) if layer.options.return_states else 0
        states += list(out[len(out) - n :]) if n else []
        head = out[: len(out) - n]
        x = head[0]
    return (*head, *states)


def test_stack_lowers_to_one_layer_equal_to_its_layers_in_turn(engine):
    want = _by_hand(STACK, X)
    assert len(want) == 3  # the last output, then the first layer's forward and backward states
    assert_close(run(STACK, engine, X), want, FORWARD_ATOL["float32"], f"{engine} SequenceStack")


def test_stack_round_trips_through_rshop(engine, tmp_path):
    loaded = rshop_core.load(STACK.save(tmp_path / "stack.rshop"))
    assert isinstance(loaded, SequenceStack)
    doc = serialization.to_document(loaded)
    assert doc["kind"] == "SequenceStack" and [d["kind"] for d in doc["model"]["layers"]] == ["Bidirectional"] * 2
    assert doc == serialization.to_document(STACK)
    assert sorted(loaded.get_weights()) == sorted(STACK.get_weights())
    assert_close(run(loaded, engine, X), _by_hand(STACK, X), FORWARD_ATOL["float32"], f"{engine} loaded stack")


def test_stack_initial_states_go_to_their_layers(engine):
    h0 = [
        np.full((2, 4), 0.3),
        np.full((2, 4), -0.2),
        np.full((2, 2), 0.1),
        np.zeros((2, 2)),
        np.full((2, 2), 0.5),
        np.zeros((2, 2)),
    ]
    first, second = STACK.layers
    a = first.lower("numpy", "float64")(X, initial_state=h0[:2])
    b = second.lower("numpy", "float64")(a[0], initial_state=h0[2:])
    assert_close(run(STACK, engine, X, initial_state=h0), (b, *a[1:]), FORWARD_ATOL["float32"], f"{engine} h0")


def test_stack_refuses_constants_and_a_wrong_state_count(engine):
    with pytest.raises(RshopConfigError, match=r"SequenceStack 'two_bidirectional': expected no constants"):
        run(STACK, engine, X, constants=[np.zeros((2, 3))])
    with pytest.raises(RshopConfigError, match=r"argument initial_state: expected 6 states .*, received 1\."):
        run(STACK, engine, X, initial_state=[np.zeros((2, 4))])


def test_stack_document_with_stray_weights_is_refused():
    raw = serialization.dumps(STACK, {**STACK.get_weights()})
    loaded = serialization.loads(raw)
    assert sorted(loaded.get_weights()) == sorted(STACK.get_weights())
    doc = serialization.to_document(STACK)
    weights = {**STACK.get_weights(), "layer_2/x": np.zeros(1, np.float32)}
    with pytest.raises(RshopFormatError, match=r"unexpected \['layer_2/x'\]"):
        serialization.from_document(doc, weights)


def test_stack_refuses_stateful_layers():
    model = GRUCell(2, input_dim=3).get_layer(name="s", seed=0, stateful=True, batch_size=2)
    with pytest.raises(RshopConfigError, match=r"layer 0: expected a model without stateful=True"):
        SequenceStack([model])
