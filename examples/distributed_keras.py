"""Data parallel with Keras 3's distribution API: ``keras.distribution.DataParallel``, ``Model.fit``.

The model is a custom gated cell written as one step, with dropout on its input, a learned initial state
and ``remat`` (gradient checkpointing every 4 steps), inside ``rshop_backends.keras.RecurrentLayer``; it
learns to output its input of the previous step. Keras' distribution API runs on its jax backend (the
default here): every step sees the global batch, so training with the distribution computes what one
device computes. The script trains twice, with and without ``DataParallel``, and prints the largest
difference between the two runs' final weights.

    python examples/distributed_keras.py [--steps 30] [--batch 16]

On a CPU-only machine it asks XLA for 2 host devices (``--xla_force_host_platform_device_count=2``, set
before jax starts). See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # the distribution API runs on Keras' jax backend
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")  # 2 CPU devices without a GPU

import keras
import numpy as np
from _distributed_task import FEATURES, STEPS_T, batch, build_model  # the same model and data on every runtime

from rshop_backends.keras import RecurrentLayer


def train(x: np.ndarray, y: np.ndarray, args: argparse.Namespace, show: bool = False) -> tuple[list[float], dict]:
    rnn = RecurrentLayer(build_model())
    model = keras.Sequential([keras.Input((STEPS_T, FEATURES)), rnn])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=args.lr), loss="mse")

    def report(step: int, logs: dict) -> None:  # Keras' loss: the mean over the epoch's batches so far
        if show and (step % 10 == 0 or step == args.steps - 1):
            print(f"step {step:3d}  loss (running mean) {logs['loss']:.4f}")

    progress = keras.callbacks.LambdaCallback(on_train_batch_end=report)
    history = model.fit(x, y, batch_size=args.batch, epochs=1, shuffle=False, verbose=0, callbacks=[progress])
    return history.history["loss"], rnn.get_rshop_weights()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps (batches of one epoch)")
    parser.add_argument("--batch", type=int, default=16, help="the global batch, split over the devices")
    parser.add_argument("--lr", type=float, default=0.2)
    args = parser.parse_args(argv)
    x, y = batch(np.random.default_rng(0), args.steps * args.batch)
    devices = keras.distribution.list_devices()
    if args.batch % len(devices):
        parser.error(f"--batch {args.batch} must be a multiple of the {len(devices)} devices")
    _, one = train(x, y, args)  # one device
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    print(f"{len(devices)} devices ({keras.backend.backend()} backend), global batch {args.batch}, {args.steps} steps")
    loss, parallel = train(x, y, args, show=True)
    check = max(float(np.abs(parallel[k] - one[k]).max()) for k in one)
    print(f"max |weights after DataParallel training - weights after one-device training| = {check:.2e}")
    return {"loss": loss[0], "check": check, "devices": len(devices)}


if __name__ == "__main__":
    main()
