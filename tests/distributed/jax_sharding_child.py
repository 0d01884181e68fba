"""Child process of test_jax_sharding.py: 2 virtual CPU devices (XLA_FLAGS set by the parent before jax
starts), the global batch sharded over a 1-D mesh with ``NamedSharding``; gradients and stateful carry
compared with the same computation on one device. Prints one ``REPORT {json}`` line."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from dp_models import NAMES, SEED, build, data, max_abs, max_diff
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rshop_core import RshopConfigError


def grads_and_states(layer, sharding, x1, x2, w, eager_grad: bool) -> tuple[dict, list, str]:
    """The gradient of the second call's loss (the first call only feeds a stateful layer's states), the
    states after both calls, and the output's sharding; every array placed with ``sharding``."""
    xs1, xs2, ws = (jax.device_put(a, sharding) for a in (x1, x2, w))
    if layer.options.stateful:
        layer.reset_states()
        layer(xs1)  # the first call: its final states are carried into the second

    def loss(params, x, w, key=None):
        kw = {} if key is None else {"dropout_key": key}
        y = layer.apply(params, x, training=True, **kw)
        return jnp.sum(y * w) / x.shape[0]

    if eager_grad:  # numpy masks drawn for the global batch, reseeded for each run
        layer.reseed(SEED)
        g = jax.grad(loss)(layer.params, xs2, ws)
    else:  # a jitted step: masks from jax.random with one key
        g = jax.jit(jax.grad(loss))(layer.params, xs2, ws, jax.random.key(SEED))
    states = [np.asarray(s) for s in layer.states] if layer.options.stateful else []
    where = ""
    if sharding.num_devices > 1:  # the output, and a stateful layer's carried states, stay split by rows
        where = " ".join(str(s.sharding) for s in (layer.states or [])) + " " + str(layer(xs2).sharding)
    return {k: np.asarray(v) for k, v in g.items()}, states, where


# eager jax.grad (numpy masks) where masks or carried states are drawn or kept by Python; a jitted step (masks
# from dropout_key) for every model a jitted step can run (a stateful layer's carry needs eager calls)
MODES = {"lstm": ("jit",), "dropout_cell": ("eager", "jit"), "bidirectional": ("jit",), "stateful": ("eager",)}


def inference_loss(layer, params, x, w):
    return jnp.sum(layer.apply(params, jnp.asarray(x)) * w) / len(w)


def check(name: str, split, one) -> dict:
    model = build(name)
    x1, x2, w = data(name)
    out: dict = {}
    modes = MODES[name]
    for mode in modes:
        g_one, st_one, _ = grads_and_states(model.lower("jax"), one, x1, x2, w, mode == "eager")
        g_par, st_par, where = grads_and_states(model.lower("jax"), split, x1, x2, w, mode == "eager")
        out[mode] = max_diff(g_par, g_one)
        out["scale"] = max_abs(g_one)
        out["output_sharding"] = where
        if name == "dropout_cell" and mode == "eager":  # the masks matter: training != inference
            infer = model.lower("jax")
            g_inf = jax.grad(inference_loss, argnums=1)(infer, infer.params, x2, w)
            out["training_vs_inference"] = max_diff(g_one, {k: np.asarray(v) for k, v in g_inf.items()})
        if st_one:
            out["states"] = max(float(np.abs(a - b).max()) for a, b in zip(st_par, st_one))
    return out


def refused_explicit(devices) -> str:
    """The refusal of a jitted call on an array sharded over an Explicit mesh axis (jax.make_mesh's default)."""
    mesh = jax.make_mesh((2,), ("batch",), axis_types=(jax.sharding.AxisType.Explicit,), devices=devices)
    layer = build("lstm").lower("jax")
    x = jax.device_put(data("lstm")[0], NamedSharding(mesh, P("batch")))
    try:
        jax.jit(layer.apply)(layer.params, x)
    except RshopConfigError as e:
        return str(e)
    return ""


def main() -> None:
    devices = jax.devices()
    assert len(devices) == 2, devices
    mesh = Mesh(np.array(devices), ("batch",))  # Auto axes: jit propagates the batch sharding
    split = NamedSharding(mesh, P("batch"))  # rows of the batch over the two devices
    one = jax.sharding.SingleDeviceSharding(devices[0])
    report: dict = {"devices": len(devices), "refused_explicit": refused_explicit(devices)}
    for name in NAMES:
        report[name] = check(name, split, one)
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
