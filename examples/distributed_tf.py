"""Data parallel on TensorFlow: ``tf.distribute.MirroredStrategy``, a ``tf.function`` training step, SGD.

The model is a custom gated cell written as one step, with dropout on its input, a learned initial state
and ``remat`` (gradient checkpointing every 4 steps); it learns to output its input of the previous step.
It is lowered inside ``strategy.scope()`` (mirrored variables; a dropout mask generator with one stream per
replica). TensorFlow's replicas draw their own dropout masks (reproducible per seed, not the one-device
masks), so the check against one device — the first batch's all-reduced gradients — is made with dropout
off; training then runs with it.

    python examples/distributed_tf.py [--steps 30] [--batch 16]

Without GPUs it splits the CPU into 2 logical devices (``tf.config.set_logical_device_configuration``,
before TensorFlow starts). See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from _distributed_task import batch, build_model  # the same model and data on every runtime


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16, help="the global batch, split over the replicas")
    parser.add_argument("--lr", type=float, default=0.2)
    args = parser.parse_args(argv)
    if not tf.config.list_physical_devices("GPU"):  # 2 logical CPUs, set before TensorFlow starts
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    if args.batch % replicas:
        parser.error(f"--batch {args.batch} must be a multiple of the {replicas} replicas")
    with strategy.scope():
        layer = build_model().lower("tensorflow")
    variables = [layer.variables_by_name[k] for k in sorted(layer.variables_by_name)]

    def replica_grads(x, y, training):
        with tf.GradientTape() as tape:
            per_example = tf.reduce_mean((layer(x, training=training) - y) ** 2, axis=[1, 2])
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=args.batch)
        grads = tape.gradient(loss, variables)
        return tf.distribute.get_replica_context().all_reduce("sum", grads), loss

    @tf.function
    def train_step(x, y, training):
        grads, loss = strategy.run(replica_grads, args=(x, y, training))
        grads = [strategy.experimental_local_results(g)[0] for g in grads]  # all-reduced: equal on every replica
        for v, g in zip(variables, grads):
            v.assign_sub(args.lr * g)  # cross-replica context: every copy of the mirrored variable
        return strategy.reduce("sum", loss, axis=None), grads

    def distribute(x, y):
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch)
        return next(iter(strategy.experimental_distribute_dataset(dataset)))

    rng = np.random.default_rng(0)
    x, y = batch(rng, args.batch)
    with tf.GradientTape() as tape:  # one device, the whole batch, dropout off
        one = build_model().lower("tensorflow")
        loss = tf.reduce_mean((one(tf.constant(x)) - y) ** 2)
    g_one = tape.gradient(loss, [one.variables_by_name[k] for k in sorted(one.variables_by_name)])
    before = [v.numpy() for v in variables]
    _, grads = train_step(*distribute(x, y), False)
    check = max(float(np.abs(g.numpy() - h.numpy()).max()) for g, h in zip(grads, g_one))
    for v, w in zip(variables, before):
        v.assign(w)  # the check does not train: back to the initial weights
    print(f"{replicas} replicas ({', '.join(strategy.extended.worker_devices)}), global batch {args.batch}")
    print(f"first batch, dropout off: max |gradient mirrored - gradient on one device| = {check:.2e}")
    losses = []
    for step in range(args.steps):
        if step:
            x, y = batch(rng, args.batch)
        loss, _ = train_step(*distribute(x, y), True)
        losses.append(float(loss))
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:3d}  loss {losses[-1]:.4f}")
    return {"losses": losses, "check": check, "replicas": replicas}


if __name__ == "__main__":
    main()
