"""LSTM layer timings: rshop on each engine beside the native anchors, in one process.

Workloads (../shared/ANCHORS.md): W1 batch 32, T 100, input 64, hidden 128; W2 batch 8, T 500.
"fb" = forward + gradients of sum(outputs) w.r.t. all weights. Each number is the best of
``--repeats`` medians of ``--runs`` calls, in ms, after warm-up. Writes docs/benchmarks.md
(and bench/results/latest.json).

    python bench/lstm_anchors.py [--quick] [--workloads W1,W2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

from rshop_core.cells import LSTMCell  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {"W1": (32, 100, 64, 128), "W2": (8, 500, 64, 128)}


def timed(fn, runs, repeats):
    fn()
    fn()  # warm-up: traces, compiles, allocator
    medians = []
    for _ in range(repeats):
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t) * 1e3)
        medians.append(statistics.median(samples))
    return min(medians)


def data(batch, steps, d_in, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, steps, d_in)).astype(np.float32)


def model_for(d_in, hidden):
    return LSTMCell(hidden, input_dim=d_in).get_layer(return_sequences=True, seed=0)


# -- torch ---------------------------------------------------------------------------
def torch_cases(x_np, hidden):
    import torch

    torch.set_num_threads(2)
    x = torch.from_numpy(x_np)
    out = {}
    layer = model_for(x_np.shape[-1], hidden).lower("torch")

    def rshop_fb():
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()

    out["rshop torch"] = (lambda: layer(x), rshop_fb)

    native = torch.nn.LSTM(x_np.shape[-1], hidden, batch_first=True)

    def native_fb():
        native.zero_grad(set_to_none=True)
        native(x)[0].sum().backward()

    out["torch.nn.LSTM"] = (lambda: native(x)[0], native_fb)

    w = {k: torch.nn.Parameter(torch.from_numpy(v)) for k, v in model_for(x_np.shape[-1], hidden).get_weights().items()}
    k, r, b = w["lstm_cell/kernel"], w["lstm_cell/recurrent_kernel"], w["lstm_cell/bias"]

    def hand():
        h = c = torch.zeros(x.shape[0], hidden)
        ys = []
        for xt in x.unbind(1):
            i, f, g, o = (xt @ k + h @ r + b).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys, 1)

    def hand_fb():
        for p in (k, r, b):
            p.grad = None
        hand().sum().backward()

    out["torch hand loop (unbind)"] = (hand, hand_fb)
    return out


# -- jax -----------------------------------------------------------------------------
def jax_cases(x_np, hidden):
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(x_np)
    out = {}
    layer = model_for(x_np.shape[-1], hidden).lower("jax")
    fwd = jax.jit(layer.apply)
    grad = jax.jit(jax.grad(lambda p, x: layer.apply(p, x).sum()))
    out["rshop jax"] = (lambda: fwd(layer.params, x).block_until_ready(),
                        lambda: jax.block_until_ready(grad(layer.params, x)))

    params = {k.split("/")[1]: jnp.asarray(v) for k, v in model_for(x_np.shape[-1], hidden).get_weights().items()}

    def scan_lstm(p, x):
        def step(carry, xt):
            h, c = carry
            i, f, g, o = jnp.split(xt @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"], 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h
        z = jnp.zeros((x.shape[0], hidden), x.dtype)
        return jnp.swapaxes(jax.lax.scan(step, (z, z), jnp.swapaxes(x, 0, 1))[1], 0, 1)

    hf = jax.jit(scan_lstm)
    hg = jax.jit(jax.grad(lambda p, x: scan_lstm(p, x).sum()))
    out["jax hand lax.scan"] = (lambda: hf(params, x).block_until_ready(),
                                lambda: jax.block_until_ready(hg(params, x)))
    return out


# -- tensorflow ----------------------------------------------------------------------
def tf_cases(x_np, hidden):
    import tensorflow as tf

    x = tf.constant(x_np)
    out = {}
    layer = model_for(x_np.shape[-1], hidden).lower("tensorflow")

    @tf.function
    def rshop_fb(x):
        with tf.GradientTape() as tape:
            s = tf.reduce_sum(layer(x))
        return tape.gradient(s, layer.trainable_variables)

    out["rshop tensorflow"] = (lambda: layer(x).numpy(), lambda: [g.numpy() for g in rshop_fb(x)])

    w = {k.split("/")[1]: tf.Variable(v) for k, v in model_for(x_np.shape[-1], hidden).get_weights().items()}

    def scan_lstm(x):
        def step(carry, xt):
            h, c = carry
            i, f, g, o = tf.split(xt @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"], 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            return h, c
        z = tf.zeros((tf.shape(x)[0], hidden))
        hs, _ = tf.scan(step, tf.transpose(x, [1, 0, 2]), initializer=(z, z))
        return tf.transpose(hs, [1, 0, 2])

    hf = tf.function(scan_lstm)

    @tf.function
    def hand_fb(x):
        with tf.GradientTape() as tape:
            s = tf.reduce_sum(scan_lstm(x))
        return tape.gradient(s, list(w.values()))

    out["tf.scan hand (tf.function)"] = (lambda: hf(x).numpy(), lambda: [g.numpy() for g in hand_fb(x)])

    try:
        import keras
    except ImportError:
        return out
    if keras.backend.backend() == "tensorflow":
        k_layer = keras.layers.LSTM(hidden, return_sequences=True)
        k_layer.build((None, None, x_np.shape[-1]))
        kf = tf.function(lambda x: k_layer(x))

        @tf.function
        def keras_fb(x):
            with tf.GradientTape() as tape:
                s = tf.reduce_sum(k_layer(x))
            return tape.gradient(s, k_layer.trainable_variables)

        out["Keras 3 LSTM, TF backend (tf.function)"] = (lambda: kf(x).numpy(),
                                                         lambda: [g.numpy() for g in keras_fb(x)])
    return out


FAMILIES = {"torch": torch_cases, "jax": jax_cases, "tensorflow": tf_cases}
PAIRS = [("rshop torch", "torch.nn.LSTM"), ("rshop torch", "torch hand loop (unbind)"),
         ("rshop jax", "jax hand lax.scan"), ("rshop tensorflow", "tf.scan hand (tf.function)"),
         ("rshop tensorflow", "Keras 3 LSTM, TF backend (tf.function)")]


def first_call_ms(engine, x_np, hidden):
    """Lowering plus the first call (trace/compile) of a fresh model, ms."""
    import importlib

    from rshop_backends import registry

    registry.load(engine)
    h = importlib.import_module(registry.info(engine).module + ".testing")
    x = h.to_native(x_np, "float32")
    t = time.perf_counter()
    h.to_numpy(model_for(x_np.shape[-1], hidden).lower(engine)(x))
    return (time.perf_counter() - t) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer runs (a smoke test of the harness)")
    ap.add_argument("--workloads", default="W1,W2")
    ap.add_argument("--engines", default="torch,jax,tensorflow")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args(argv)
    runs, repeats = (3, 1) if args.quick else (15, 3)
    results = {}
    for wl in args.workloads.split(","):
        batch, steps, d_in, hidden = WORKLOADS[wl]
        x_np = data(batch, steps, d_in)
        for fam in args.engines.split(","):
            for name, (fwd, fb) in FAMILIES[fam](x_np, hidden).items():
                results[(wl, name)] = (timed(fwd, runs, repeats), timed(fb, runs, repeats))
                print(f"{wl} {name:<42} fwd {results[(wl, name)][0]:8.2f} ms   fb {results[(wl, name)][1]:8.2f} ms",
                      flush=True)
        if wl == "W1":
            for fam in args.engines.split(","):
                results[(wl, f"first call rshop {fam}")] = (first_call_ms(fam, x_np, hidden), None)
    write_report(results, args, runs, repeats)


def write_report(results, args, runs, repeats):
    import importlib.metadata as md

    vers = []
    for d in ("numpy", "torch", "jax", "jaxlib", "tensorflow-cpu", "keras"):
        try:
            vers.append(f"{d} {md.version(d)}")
        except md.PackageNotFoundError:
            pass
    lines = ["# Benchmarks", "",
             "Generated by `nox -s bench` (`python bench/lstm_anchors.py`); do not edit by hand.", "",
             f"Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}; "
             f"{', '.join(vers)}. float32. Best of {repeats} medians of {runs} calls, ms.",
             "Workloads: W1 batch 32, T 100, input 64, hidden 128; W2 batch 8, T 500. LSTMCell layer with "
             "return_sequences; fb = forward + gradients of sum(outputs) w.r.t. all weights.", "",
             "| implementation | workload | fwd ms | fb ms |", "|---|---|---:|---:|"]
    for (wl, name), (f, b) in results.items():
        if not name.startswith("first call"):
            lines.append(f"| {name} | {wl} | {f:.2f} | {b:.2f} |")
    lines += ["", "## Ratios rshop / anchor (lower is better)", "",
              "| rshop | anchor | workload | fwd | fb |", "|---|---|---|---:|---:|"]
    for wl in args.workloads.split(","):
        for a, b in PAIRS:
            if (wl, a) in results and (wl, b) in results:
                ra, rb = results[(wl, a)], results[(wl, b)]
                lines.append(f"| {a} | {b} | {wl} | {ra[0] / rb[0]:.2f} | {ra[1] / rb[1]:.2f} |")
    firsts = [(k[1], v[0]) for k, v in results.items() if k[1].startswith("first call")]
    if firsts:
        lines += ["", "## First call (lowering + trace/compile + one W1 forward)", "",
                  "| engine | ms |", "|---|---:|"] + [f"| {n[len('first call '):]} | {v:.0f} |" for n, v in firsts]
    lines += ["", "Floor (ANCHORS.md): W1 is 0.63 GFLOP forward, 1.68 GFLOP fwd+bwd: 1.4 / 3.7 ms at this CPU's "
              "best sgemm rate.", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    res_dir = ROOT / "bench" / "results"
    res_dir.mkdir(exist_ok=True)
    (res_dir / "latest.json").write_text(json.dumps({f"{k[0]} {k[1]}": v for k, v in results.items()}, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
