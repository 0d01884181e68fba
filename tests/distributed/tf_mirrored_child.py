"""Child process of test_tf_mirrored.py: 2 logical CPUs (tf.config.set_logical_device_configuration, before
TensorFlow starts), ``tf.distribute.MirroredStrategy`` over them, each model of ``dp_models`` lowered inside
``strategy.scope()`` and differentiated per replica inside a ``tf.function`` (the all-reduced sum of the
replicas' gradients of ``sum(y_r * W_r) / B``), compared with one device on the whole batch.

TensorFlow's replicas share one layer object and draw dropout masks from its mirrored
``tf.random.Generator``, one stream per replica: masks are per replica (deterministic per seed), not the
global batch's, so the dropout cell's gradients are compared in inference mode, and its training mode is
checked for reproducibility and for masks that differ between replicas. A stateful layer is refused under
the strategy; its states are carried with ``return_states``/``initial_state=`` instead. Prints one
``REPORT {json}`` line."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from dp_models import GLOBAL_BATCH, NAMES, SEED, build, carried, data, max_abs, max_diff  # noqa: E402

from rshop_core import RshopConfigError  # noqa: E402

REPLICAS = 2
B = GLOBAL_BATCH // REPLICAS


def shard(strategy, a: np.ndarray, same: bool = False):
    """A per-replica value: replica r holds rows [r B, (r + 1) B) of ``a`` (the first rows everywhere: same)."""

    def rows(ctx):
        r = 0 if same else ctx.replica_id_in_sync_group
        return tf.constant(a[r * B : (r + 1) * B])

    return strategy.experimental_distribute_values_from_function(rows)


def replica_grads(strategy, layer, x, w, training, initial=None, reduce=True):
    """Per replica: the gradients of sum(y_r * W_r) / B (summed over replicas when ``reduce``), and the
    final states when the layer returns them."""
    names = sorted(layer.variables_by_name)

    @tf.function
    def step(x, w, initial):
        def replica(x, w, initial):
            with tf.GradientTape() as tape:
                out = layer(x, initial_state=initial, training=training)
                y, states = (out[0], list(out[1:])) if isinstance(out, tuple) else (out, [])
                loss = tf.reduce_sum(y * w) / GLOBAL_BATCH
            g = tape.gradient(loss, [layer.variables_by_name[k] for k in names])
            if reduce:
                g = tf.distribute.get_replica_context().all_reduce("sum", g)
            return g, states

        return strategy.run(replica, args=(x, w, initial))

    g, states = step(x, w, initial)
    local = lambda v: [t.numpy() for t in strategy.experimental_local_results(v)]
    per_replica = [dict(zip(names, gs)) for gs in zip(*[local(v) for v in g])]
    return per_replica, [np.concatenate(local(s)) for s in states]


def one_device(layer, x, w, training, initial=None):
    with tf.GradientTape() as tape:
        out = layer(tf.constant(x), initial_state=initial, training=training)
        y = out[0] if isinstance(out, tuple) else out
        loss = tf.reduce_sum(y * w) / GLOBAL_BATCH
    names = sorted(layer.variables_by_name)
    g = tape.gradient(loss, [layer.variables_by_name[k] for k in names])
    return {k: v.numpy() for k, v in zip(names, g)}


def refused(fn, *args) -> str:
    try:
        fn(*args)
    except RshopConfigError as e:
        return str(e)
    return ""


def check(strategy, name: str) -> dict:
    x1, x2, w = data(name)
    one = build(name).lower("tensorflow")
    out: dict = {}
    if name == "stateful":  # one device: the stateful layer; the strategy: states carried by hand
        one(tf.constant(x1))
        start = [tf.identity(s) for s in one.states]
        g_one = one_device(one, x2, w, True)
        want = [s.numpy() for s in one.states]
        with strategy.scope():
            layer = carried(name).lower("tensorflow")
            stateful = build(name).lower("tensorflow")
        _, first = replica_grads(strategy, layer, shard(strategy, x1), shard(strategy, w), True)
        init = [shard(strategy, s) for s in first]
        g_par, finals = replica_grads(strategy, layer, shard(strategy, x2), shard(strategy, w), True, init)
        out["states"] = max(float(np.abs(a - b).max()) for a, b in zip(finals, want))
        out["first_states"] = max(float(np.abs(a - b.numpy()).max()) for a, b in zip(first, start))
        out["refused_stateful"] = refused(
            lambda: replica_grads(strategy, stateful, shard(strategy, x1), shard(strategy, w), True)
        )
    else:
        training = name != "dropout_cell"  # dropout: per-replica masks, compared in inference mode
        g_one = one_device(one, x2, w, training)
        with strategy.scope():
            layer = build(name).lower("tensorflow")
        g_par, _ = replica_grads(strategy, layer, shard(strategy, x2), shard(strategy, w), training)
    out["replica0"] = max_diff(g_par[0], g_one)
    out["replica1"] = max_diff(g_par[1], g_one)
    out["scale"] = max_abs(g_one)
    if name == "dropout_cell":
        runs = []
        for _ in range(2):  # the same seed, the same per-replica masks
            layer.reseed(SEED)
            runs.append(replica_grads(strategy, layer, shard(strategy, x2), shard(strategy, w), True)[0][0])
        out["training_repeat"] = max_diff(runs[0], runs[1])
        out["training_vs_inference"] = max_diff(runs[0], g_par[0])
        layer.reseed(SEED)  # the same rows on both replicas: different masks, different gradients
        same = replica_grads(strategy, layer, shard(strategy, x2, True), shard(strategy, w, True), True, None, False)
        out["replicas_differ"] = max_diff(same[0][0], same[0][1])
        outside = build(name).lower("tensorflow")  # lowered outside the scope: refused for dropout
        out["refused_outside_scope"] = refused(
            lambda: replica_grads(strategy, outside, shard(strategy, x2), shard(strategy, w), True)
        )
        replica_set = build(name).lower("tensorflow")
        replica_set.set_replica(1, 2)  # for one process per replica, not a strategy's shared layer
        out["refused_set_replica"] = refused(
            lambda: replica_grads(strategy, replica_set, shard(strategy, x2), shard(strategy, w), False)
        )
        out["refused_eager"] = refused(
            lambda: strategy.run(lambda x: layer(x, training=True), args=(shard(strategy, x2),))
        )
    return out


def main() -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == REPLICAS
    report: dict = {"replicas": strategy.num_replicas_in_sync}
    for name in NAMES:
        report[name] = check(strategy, name)
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
