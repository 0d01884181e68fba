"""Run by tests/test_keras_constraints.py once per Keras backend, in a fresh process with ``KERAS_BACKEND`` set.

Fits a Keras model holding a RecurrentLayer whose rshop weights carry constraints (cells' keywords and
RecurrentShop's RHN form, a ``keras.constraints`` object given to an rshop Dense) for a few steps, and
prints what the weights look like before and after as one JSON line ``REPORT {...}``.
"""

from __future__ import annotations

import json

import keras
import numpy as np

from rshop_backends.keras import RecurrentLayer
from rshop_core import Input, RecurrentModel, constraints
from rshop_core.cells import LSTMCell
from rshop_core.layers import Activation, Dense, add


def rhn_form():
    """A step written as RecurrentShop's RHN example writes its Dense: ``kernel_constraint=max_norm(...)``."""
    x_t, h = Input((5,), name="x"), Input((6,), name="h")
    h_t = Activation("tanh")(
        add(
            [
                Dense(6, kernel_constraint=keras.constraints.max_norm(0.3), bias_constraint="non_neg")(x_t),
                Dense(6, use_bias=False, kernel_constraint=constraints.unit_norm())(h),
            ]
        )
    )
    return RecurrentModel(input=x_t, initial_states=[h], output=h_t, final_states=[h_t], seed=0)


def lstm():
    cell = LSTMCell(
        6,
        input_dim=6,
        kernel_constraint=constraints.max_norm(0.4),
        recurrent_constraint="non_neg",
        bias_constraint=constraints.min_max_norm(0.5, 1.0),
    )
    return cell.get_layer(seed=1)


def facts(w):
    """What each constraint promises, measured."""
    return {
        "dense_kernel_max_norm": float(np.linalg.norm(w["dense/kernel"], axis=0).max()),
        "dense_bias_min": float(w["dense/bias"].min()),
        "dense_1_kernel_norms": [float(v) for v in np.linalg.norm(w["dense_1/kernel"], axis=0)],
        "lstm_kernel_max_norm": float(np.linalg.norm(w["lstm_cell/kernel"], axis=0).max()),
        "lstm_recurrent_min": float(w["lstm_cell/recurrent_kernel"].min()),
        "lstm_bias_norm": float(np.linalg.norm(w["lstm_cell/bias"])),
    }


def weights(*layers):
    out = {}
    for layer in layers:
        out.update(layer.get_rshop_weights())
    return out


def main():
    report = {"backend": keras.backend.backend()}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 7, 5)).astype("float32")
    target = rng.standard_normal((8, 6)).astype("float32")
    first, second = RecurrentLayer(rhn_form()), RecurrentLayer(lstm())
    seq = keras.Sequential([keras.Input((7, 5)), first, keras.layers.RepeatVector(3), second])
    seq.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    initial = weights(first, second)
    report["before"] = facts(initial)
    seq.fit(x, target * 3.0, epochs=3, batch_size=4, verbose=0)
    trained = weights(first, second)
    report["after"] = facts(trained)
    # training moved every weight beyond where projecting the initial weights would put it
    specs = {**first.rshop_model.param_specs, **second.rshop_model.param_specs}
    projected = {
        q: constraints.from_json(s.constraint, q)(initial[q]) if s.constraint else initial[q] for q, s in specs.items()
    }
    report["moved"] = {q: float(np.abs(trained[q] - projected[q]).max()) for q in sorted(specs)}
    # the Keras variables carry Keras' constraint objects, and a layer rebuilt from its config does too
    report["keras_constraints"] = {
        q: type(v.constraint).__name__ if v.constraint is not None else None
        for q, v in sorted({**first.rshop_variables, **second.rshop_variables}.items())
    }
    again = RecurrentLayer.from_config(second.get_config())
    again.build((None, 3, 6))
    report["from_config"] = {
        q: v.constraint.get_config() if v.constraint is not None else None for q, v in again.rshop_variables.items()
    }
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
