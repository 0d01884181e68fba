"""Building models: wiring errors, state specs, weights, verify()."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel, verify
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.errors import RshopConfigError, RshopDTypeError, RshopShapeError
from rshop_core.layers import Activation, Dense, add, subtract


def readme(**kw):
    x_t = Input(shape=(5,))
    h_tm1 = Input(shape=(10,))
    h_t = Activation("tanh")(add([Dense(10)(x_t), Dense(10, use_bias=False)(h_tm1)]))
    return RecurrentModel(input=x_t, initial_states=[h_tm1], output=h_t, final_states=[h_t], **kw)


def test_readme_model_structure():
    m = readme(seed=0)
    assert m.input_shape == (5,)
    assert [s.shape for s in m.state_specs] == [(10,)]
    assert sorted(m.params) == ["dense/bias", "dense/kernel", "dense_1/kernel"]
    assert m.get_weights()["dense/kernel"].shape == (5, 10)
    assert "tanh" in m.summary()


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = readme(seed=1), readme(seed=1), readme(seed=2)
    for k in a.params:
        np.testing.assert_array_equal(a.get_weights()[k], b.get_weights()[k])
    assert not np.array_equal(a.get_weights()["dense/kernel"], c.get_weights()["dense/kernel"])


def test_state_count_and_shape_mismatch():
    x, h = Input((5,)), Input((10,))
    y = Dense(10)(x)
    with pytest.raises(RshopConfigError, match=r"expected as many final_states as initial_states \(1\), received 0"):
        RecurrentModel(input=x, initial_states=[h], output=y, final_states=[])
    with pytest.raises(RshopShapeError, match=r"state #0: expected the final state to have the initial state's type"):
        RecurrentModel(input=x, initial_states=[h], output=y, final_states=[Dense(9)(x)])


def test_unknown_activation_and_initializer():
    with pytest.raises(RshopConfigError, match=r"expected an activation in \[.*'tanh'.*\], received 'tanhh'"):
        Dense(3, activation="tanhh")
    msg = (
        r"LSTMCell 'lstm_cell' kernel_initializer: expected an initializer in \[.*'glorot_uniform'.*\] "
        r"or an Initializer, received 'glorot'"
    )
    with pytest.raises(RshopConfigError, match=msg):
        LSTMCell(3, input_dim=2, kernel_initializer="glorot")
    with pytest.raises(RshopConfigError, match="recurrent_activation"):
        GRUCell(3, recurrent_activation="nope")


def test_bad_options():
    msg = r"option unroll: expected True, False or an int in \[1, 128\], received 0"
    with pytest.raises(RshopConfigError, match=msg):
        readme(unroll=0)
    with pytest.raises(RshopConfigError, match="option go_backwards: expected True or False"):
        readme(go_backwards="yes")


def test_merge_argument_errors():
    x = Input((3,))
    with pytest.raises(RshopConfigError, match="add: expected a list of at least 2 tensors"):
        add(x)
    with pytest.raises(RshopConfigError, match="subtract: expected a list of exactly 2 tensors, received 3"):
        subtract([x, x, x])


def test_set_weights_checks_everything():
    m = readme(seed=0)
    w = m.get_weights()
    with pytest.raises(RshopConfigError, match=r"missing \['dense_1/kernel'\]"):
        m.set_weights({k: v for k, v in w.items() if k != "dense_1/kernel"})
    with pytest.raises(RshopShapeError, match=r"weight 'dense/bias': expected shape \(10,\), received \(9,\)"):
        m.set_weights({**w, "dense/bias": np.zeros(9, np.float32)})
    with pytest.raises(RshopDTypeError, match="expected dtype float32, received float64"):
        m.set_weights({**w, "dense/bias": np.zeros(10)})
    w["dense/bias"] = np.full(10, 0.5, np.float32)
    m.set_weights(w)
    assert m.get_weights()["dense/bias"][0] == 0.5


def test_cell_without_input_dim_builds_on_demand():
    m = SimpleRNNCell(4).get_layer(seed=0)
    assert not m.built
    with pytest.raises(RshopConfigError, match=r"call model.build\(input_dim\)"):
        m.lower("numpy")
    m.build(3)
    assert m.params["simple_rnn_cell/kernel"].shape == (3, 4)


def test_verify_names_the_bad_node():
    g = LSTMCell(3, input_dim=2).get_layer(seed=0).graph
    nodes = list(g.nodes)
    bad = nodes[4]
    nodes[4] = dataclasses.replace(bad, inputs=(bad.inputs[0], 99))
    with pytest.raises(RshopConfigError, match=r"node %4 .*expected inputs that are earlier nodes"):
        verify(dataclasses.replace(g, nodes=tuple(nodes)))
    nodes = list(g.nodes)
    nodes[4] = dataclasses.replace(bad, op="conv2d")
    with pytest.raises(RshopConfigError, match=r"expected an op of the closed set, received 'conv2d'"):
        verify(dataclasses.replace(g, nodes=tuple(nodes)))


def test_graph_json_is_plain_json():
    import json

    doc = LSTMCell(3, input_dim=2).get_layer(seed=0).to_json()
    assert json.loads(json.dumps(doc)) == doc
