"""Child process of test_keras_data_parallel.py: Keras 3 on its jax backend with 2 virtual CPU devices
(XLA_FLAGS and KERAS_BACKEND set by the parent), ``keras.distribution.DataParallel`` over both. For each model
of ``dp_models`` one ``Model.fit`` step of SGD with learning rate 1 (so the change of every rshop weight is
minus its gradient) with and without the distribution; a stateful model is refused by ``RecurrentLayer``,
and its states are carried with ``return_states`` / ``initial_state=`` through ``predict``. Prints one
``REPORT {json}`` line."""

from __future__ import annotations

import json

import keras
import numpy as np
from dp_models import GLOBAL_BATCH, NAMES, STEPS, build, carried, data, max_abs, max_diff

from rshop_backends.keras import RecurrentLayer
from rshop_core import RshopConfigError


def weighted_sum(w, y):
    """Per example ``sum(y * W)``; Keras averages over the batch: ``sum(y * W) / B``."""
    return keras.ops.sum(w * y, axis=(1, 2))


def fit_step(name: str) -> tuple[dict, dict]:
    """The weight change (= -gradient) of one SGD(1.0) step on the whole batch, and what else is compared."""
    x1, x2, w = data(name)
    extra: dict = {}
    if name == "stateful":
        rnn = RecurrentLayer(carried(name))
        xin, hin, cin = keras.Input((STEPS, x1.shape[-1])), keras.Input((5,)), keras.Input((5,))
        y, h, c = rnn(xin, initial_state=[hin, cin])
        states_model = keras.Model([xin, hin, cin], [h, c])
        model = keras.Model([xin, hin, cin], y)
        zeros = np.zeros((GLOBAL_BATCH, 5), "float32")
        s1 = states_model.predict([x1, zeros, zeros], batch_size=GLOBAL_BATCH, verbose=0)  # the first call
        inputs = [x2, *s1]
        extra["states"] = states_model.predict(inputs, batch_size=GLOBAL_BATCH, verbose=0)  # after two calls
    else:
        rnn = RecurrentLayer(build(name))
        model = keras.Sequential([keras.Input((STEPS, x1.shape[-1])), rnn])
        inputs = x2
        if name == "dropout_cell":  # under the distribution too, training calls draw masks
            extra["training_vs_inference"] = float(
                np.abs(np.asarray(model(x2, training=True)) - np.asarray(model(x2, training=False))).max()
            )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=weighted_sum)
    before = rnn.get_rshop_weights()
    model.fit(inputs, w, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    after = rnn.get_rshop_weights()
    extra["variable_sharding"] = str(rnn.weights[0].value.sharding)
    return {k: before[k].astype("float64") - after[k] for k in before}, extra


def main() -> None:
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == 2, devices
    report: dict = {"devices": len(devices), "backend": keras.backend.backend()}
    try:
        RecurrentLayer(build("stateful"))
        report["refused_stateful"] = ""
    except RshopConfigError as e:
        report["refused_stateful"] = str(e)
    one = {name: fit_step(name) for name in NAMES}
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    report["data_layout"] = str(distribution.get_data_layout((GLOBAL_BATCH, STEPS, 3)).axes)
    for name in NAMES:
        g_par, extra = fit_step(name)
        g_one, extra_one = one[name]
        out = {"grads": max_diff(g_par, g_one), "scale": max_abs(g_one), "sharding": extra["variable_sharding"]}
        if "states" in extra:
            out["states"] = max(float(np.abs(a - b).max()) for a, b in zip(extra["states"], extra_one["states"]))
        if "training_vs_inference" in extra:
            out["training_vs_inference"] = extra["training_vs_inference"]
        report[name] = out
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
