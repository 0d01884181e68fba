"""The flagship demo: one custom RNN, written once, trained natively, checked on every engine.

1. Define a recurrent step with the RecurrentShop-style functional API.
2. Train it on the default engine (jax, torch or tensorflow: whichever rshop chose) on the
   "adding problem": each sequence carries random values and two markers; the target is the
   sum of the two marked values.
3. Lower the trained weights to every installed engine and print a parity table against the
   numpy float64 reference (``rshop_backends.parity.compare``, public API only).

    pip install "rshop[all,examples]"     # tqdm for the progress bar
    python examples/demo.py [--steps 1500] [--engine torch]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm  # pip install "rshop[examples]"

import rshop_backends
from rshop_backends import to_native, to_numpy
from rshop_backends.parity import compare
from rshop_core import Input, RecurrentModel
from rshop_core.layers import Activation, Dense, add

T, UNITS = 12, 24


def build_model(seed=0):
    x_t = Input(shape=(2,), name="x")
    h_tm1 = Input(shape=(UNITS,), name="h")
    h_t = Activation("tanh")(add([Dense(UNITS)(x_t), Dense(UNITS, use_bias=False)(h_tm1)]))
    y_t = Dense(1, name="readout")(h_t)
    return RecurrentModel(input=x_t, initial_states=[h_tm1], output=y_t, final_states=[h_t], name="adder", seed=seed)


def adding_problem(rng, batch, length=T):
    values = rng.uniform(0.0, 1.0, (batch, length))
    marks = np.zeros((batch, length))
    for row in marks:
        row[rng.choice(length, 2, replace=False)] = 1.0
    x = np.stack([values, marks], axis=-1).astype(np.float32)
    return x, (values * marks).sum(axis=1, keepdims=True).astype(np.float32)


def progress(steps, engine):
    """The training progress bar (tqdm): one tick per step, the loss beside it."""
    return tqdm(total=steps, desc=f"  training on {engine}", unit="step", dynamic_ncols=True, mininterval=0.2)


# -- one native training loop per engine: each is how you would train the layer by hand --------
def train_jax(model, data, steps, lr):
    import jax
    import jax.numpy as jnp

    layer = model.lower("jax")
    params = layer.params
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)

    @jax.jit
    def update(params, m, v, i, x, y):
        loss, g = jax.value_and_grad(lambda p: jnp.mean((layer.apply(p, x) - y) ** 2))(params)
        m = jax.tree_util.tree_map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
        corr = jnp.sqrt(1 - 0.999**i) / (1 - 0.9**i)
        params = jax.tree_util.tree_map(lambda p, a, b: p - lr * corr * a / (jnp.sqrt(b) + 1e-8), params, m, v)
        return params, m, v, loss

    with progress(steps, "jax") as bar:
        for i, (x, y) in enumerate(data(steps), 1):
            params, m, v, loss = update(params, m, v, i, jnp.asarray(x), jnp.asarray(y))
            bar.update()
            if i % 20 == 0 or i == steps:
                bar.set_postfix(mse=f"{float(loss):.5f}")
    return {k: np.asarray(p) for k, p in params.items()}


def train_torch(model, data, steps, lr):
    import torch

    layer = model.lower("torch")
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    with progress(steps, "torch") as bar:
        for i, (x, y) in enumerate(data(steps), 1):
            loss = torch.mean((layer(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update()
            if i % 20 == 0 or i == steps:
                bar.set_postfix(mse=f"{loss.item():.5f}")
    return layer.get_weights()


def train_tensorflow(model, data, steps, lr):
    import tensorflow as tf

    layer = model.lower("tensorflow")
    variables = layer.trainable_variables
    slots = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in variables]

    @tf.function(reduce_retracing=True)
    def update(x, y, i):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((layer(x) - y) ** 2)
        corr = tf.sqrt(1 - 0.999**i) / (1 - 0.9**i)
        for var, g, (m, v) in zip(variables, tape.gradient(loss, variables), slots):
            m.assign(0.9 * m + 0.1 * g)
            v.assign(0.999 * v + 0.001 * g * g)
            var.assign_sub(lr * corr * m / (tf.sqrt(v) + 1e-8))
        return loss

    with progress(steps, "tensorflow") as bar:
        for i, (x, y) in enumerate(data(steps), 1):
            loss = update(tf.constant(x), tf.constant(y), tf.constant(float(i)))
            bar.update()
            if i % 20 == 0 or i == steps:
                bar.set_postfix(mse=f"{float(loss):.5f}")
    return layer.get_weights()


TRAINERS = {"jax": train_jax, "torch": train_torch, "tensorflow": train_tensorflow}


def parity_table(model, x):
    """Run the trained model on every installed engine and compare it with numpy float64 (public API:
    rshop_backends.parity.compare); then each engine's time per call, its arrays made with to_native."""
    report = compare(model, x)
    print("\n" + report.table())
    print(f"\n  {'engine':<11} {'ms/call':>9}")
    for name in report.engines:
        layer = model.lower(name)
        xs = to_native(x, name, "float32")
        to_numpy(layer(xs))  # first call: trace / compile
        started = time.perf_counter()
        to_numpy(layer(xs))
        print(f"  {name:<11} {(time.perf_counter() - started) * 1e3:9.2f}")
    missing = [name for name, installed in rshop_backends.engines().items() if not installed]
    if missing:
        print(f"  not installed: {', '.join(missing)}")
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--engine", default=None, help="train on this engine instead of the default")
    ap.add_argument("--lr", type=float, default=1e-2)
    args = ap.parse_args(argv)

    model = build_model(seed=0)
    engine = args.engine or rshop_backends.backend()
    print(f"rshop demo: a custom RNN (tanh(x W + h U + b), readout Dense(1)), {T} steps, {UNITS} units")
    print(f"engine: {engine} ({'chosen with --engine' if args.engine else 'the default engine'})")
    print(model.summary().split("\n", 1)[1].split("\nstate")[0])
    if engine not in TRAINERS:
        raise SystemExit(f"engine {engine!r} cannot train (numpy is inference-only); pass --engine")

    rng = np.random.default_rng(0)
    x_test, y_test = adding_problem(np.random.default_rng(1), 512)
    before = float(np.mean((model.lower("numpy")(x_test) - y_test) ** 2))
    print(
        f"\ntraining on the adding problem (test mse before: {before:.4f}; always guessing 1.0 gives "
        f"{float(np.mean((1.0 - y_test) ** 2)):.4f})"
    )
    weights = TRAINERS[engine](model, lambda n: (adding_problem(rng, 64) for _ in range(n)), args.steps, args.lr)
    model.set_weights(weights)
    after = float(np.mean((model.lower("numpy")(x_test) - y_test) ** 2))
    print(f"\ntest mse after training: {after:.5f}")
    print("\nparity of the trained model, float32 engines vs the numpy float64 reference (512 sequences):")
    report = parity_table(model, x_test)
    trivial = float(np.mean((1.0 - y_test) ** 2))
    if not after < trivial / 4:
        raise SystemExit(f"training reached mse {after:.4f}, not 4x better than guessing ({trivial:.4f})")
    report.assert_close()  # every engine within tolerance of the float64 reference, or RshopParityError


if __name__ == "__main__":
    main()
