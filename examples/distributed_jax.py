"""Data parallel on jax: the batch sharded over every device with ``NamedSharding``, one jitted SGD step.

The model is a custom gated cell written as one step, with dropout on its input, a learned initial state
and ``remat`` (gradient checkpointing every 4 steps); it learns to output its input of the previous step.
jax sees the global batch, so a sharded step computes exactly what one device computes on the whole batch:
the script checks the first step's gradients against one device and prints the largest difference.

    python examples/distributed_jax.py [--steps 30] [--batch 16]

On a CPU-only machine it asks XLA for 2 host devices (``--xla_force_host_platform_device_count=2``, set
before jax starts); on GPUs the batch is sharded over the GPUs. See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")  # 2 CPU devices without a GPU

import jax
import jax.numpy as jnp
import numpy as np
from _distributed_task import batch, build_model  # the same model and data on every runtime
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16, help="the global batch, split over the devices")
    parser.add_argument("--lr", type=float, default=0.2)
    args = parser.parse_args(argv)
    devices = jax.devices()
    if args.batch % len(devices):
        parser.error(f"--batch {args.batch} must be a multiple of the {len(devices)} devices")
    mesh = Mesh(np.array(devices), ("batch",))
    rows, replicated = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
    layer = build_model().lower("jax")

    def loss(params, x, y, key):
        return jnp.mean((layer.apply(params, x, training=True, dropout_key=key) - y) ** 2)

    @jax.jit
    def update(params, x, y, key):
        value, grads = jax.value_and_grad(loss)(params, x, y, key)
        return jax.tree.map(lambda p, g: p - args.lr * g, params, grads), value, grads

    params = jax.device_put(layer.params, replicated)
    key, rng = jax.random.key(0), np.random.default_rng(0)
    print(f"{len(devices)} devices ({devices[0].platform}), global batch {args.batch}")
    losses, check = [], float("nan")
    for step in range(args.steps):
        x, y = batch(rng, args.batch)
        key, sub = jax.random.split(key)
        if step == 0:  # the same gradient on one device, whole batch, same dropout key
            one = jax.device_put((params, x, y), devices[0])
            g_one = jax.jit(jax.grad(loss))(*one, sub)
        params, value, grads = update(params, jax.device_put(x, rows), jax.device_put(y, rows), sub)
        if step == 0:
            check = max(float(np.abs(np.asarray(grads[k]) - np.asarray(g_one[k])).max()) for k in grads)
            print(f"step 0: max |gradient sharded - gradient on one device| = {check:.2e}")
        losses.append(float(value))
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:3d}  loss {losses[-1]:.4f}")
    return {"losses": losses, "check": check, "devices": len(devices)}


if __name__ == "__main__":
    main()
