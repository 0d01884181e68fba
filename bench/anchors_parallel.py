"""Time-parallel anchors: hand-written minGRU layers, independent of rshop, and the engines' linear scans alone.

minGRU (Feng et al. 2024, "Were RNNs all we needed?"), per step::

    z_t = sigmoid(x_t W_z + b_z),  h~_t = x_t W_h + b_h,  h_t = (1 - z_t) * h_{t-1} + z_t * h~_t,  h_0 = 0

It is affine in h, so all T states are one linear scan with a_t = 1 - z_t and b_t = z_t * h~_t.
The anchors (factories ``(weights, x_numpy) -> adapters.Impl``, like the other anchors' modules):

- :func:`jax_associative`: the scan by ``jax.lax.associative_scan`` (jitted; the gradient by jax);
- :func:`jax_sequential`: a ``jax.lax.scan`` loop over time (jitted);
- :func:`torch_sequential`: an eager torch loop over ``x.unbind(1)`` (autograd).

:func:`scan_alone` times one engine's ``rshop_backends.<engine>.parallel.linear_scan`` by itself on
(batch, T, hidden) (the gradient of ``sum(h)`` w.r.t. a, b and h0). Run this file to print the table
of docs/_tp_scan.md: ``PYTHONPATH=src:bench python bench/anchors_parallel.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from adapters import Impl, jax_impl, tf_impl, torch_impl

SIZES = [(8, 256, 8, 32), (8, 1024, 8, 32), (8, 4096, 8, 32)]  # (batch, T, input, hidden)


def weights(input_size, hidden, seed=0):
    """minGRU weights: W_z, W_h (input, hidden) ~ N(0, 1/input), b_z, b_h (hidden,) ~ N(0, 0.1^2)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w = {k: rng.standard_normal((input_size, hidden)) / np.sqrt(input_size) for k in ("W_z", "W_h")}
    return w | {k: 0.1 * rng.standard_normal(hidden) for k in ("b_z", "b_h")}


def inputs(batch, T, input_size, seed=1):
    import numpy as np

    return np.random.default_rng(seed).standard_normal((batch, T, input_size)).astype(np.float32)


def _jax_gates(p, x):
    import jax

    z = jax.nn.sigmoid(x @ p["W_z"] + p["b_z"])
    return 1 - z, z * (x @ p["W_h"] + p["b_h"])


def jax_associative(w, x_np):
    import jax
    import jax.numpy as jnp

    def compose(first, second):
        (a1, b1), (a2, b2) = first, second
        return a2 * a1, a2 * b1 + b2

    def apply(p, x):
        return jax.lax.associative_scan(compose, _jax_gates(p, x), axis=1)[1]

    return jax_impl(apply, {k: jnp.asarray(v, jnp.float32) for k, v in w.items()}, jnp.asarray(x_np))


def jax_sequential(w, x_np):
    import jax
    import jax.numpy as jnp

    def apply(p, x):
        a, b = _jax_gates(p, x)

        def step(h, ab):
            h = ab[0] * h + ab[1]
            return h, h

        h0 = jnp.zeros((x.shape[0], a.shape[-1]), x.dtype)
        return jnp.swapaxes(jax.lax.scan(step, h0, (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)))[1], 0, 1)

    return jax_impl(apply, {k: jnp.asarray(v, jnp.float32) for k, v in w.items()}, jnp.asarray(x_np))


def torch_sequential(w, x_np):
    import torch

    torch.set_num_threads(2)
    p = {k: torch.nn.Parameter(torch.tensor(v, dtype=torch.float32)) for k, v in w.items()}
    x = torch.from_numpy(x_np)

    def forward():
        h = x.new_zeros(x.shape[0], p["W_z"].shape[1])
        ys = []
        for xt in x.unbind(1):
            z = torch.sigmoid(xt @ p["W_z"] + p["b_z"])
            h = (1 - z) * h + z * (xt @ p["W_h"] + p["b_h"])
            ys.append(h)
        return torch.stack(ys, 1)

    return torch_impl(forward, list(p.values()))


ANCHORS = {
    "jax hand associative_scan": jax_associative,
    "jax hand lax.scan": jax_sequential,
    "torch hand loop (unbind)": torch_sequential,
}


def scan_alone(engine, batch, T, hidden, variant="linear_scan"):
    """``rshop_backends.<engine>.parallel.<variant>`` on a in (0, 1), b ~ N(0, 1), h0 = 0 (float32)."""
    import importlib

    import numpy as np

    rng = np.random.default_rng(2)
    arrays = [rng.uniform(0, 1, (batch, T, hidden)), rng.standard_normal((batch, T, hidden)), np.zeros((batch, hidden))]
    arrays = [v.astype(np.float32) for v in arrays]
    scan = getattr(importlib.import_module(f"rshop_backends.{engine}.parallel"), variant)
    if engine == "jax":
        import jax.numpy as jnp

        return jax_impl(lambda p, unused: scan(*p), [jnp.asarray(v) for v in arrays], jnp.zeros(()))
    if engine == "torch":
        import torch

        torch.set_num_threads(2)
        ts = [torch.nn.Parameter(torch.from_numpy(v)) for v in arrays]
        return torch_impl(lambda: scan(*ts), ts)
    import tensorflow as tf

    vs = [tf.Variable(v) for v in arrays]
    return tf_impl(lambda unused: scan(*vs), vs, tf.zeros(()))


def _check(impl: Impl, want, what):
    import numpy as np

    err = float(np.max(np.abs(impl.out() - want)))
    assert err < 1e-3, f"{what}: max abs difference {err:.3g} from the torch loop"


def main(argv=None):
    from timing import measure

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat of three runs")
    args = parser.parse_args(argv)
    print("| batch, T, input, hidden | implementation | forward ms | forward+backward ms |")
    print("|---|---|---:|---:|")
    for batch, T, n_in, hidden in SIZES:
        w, x = weights(n_in, hidden), inputs(batch, T, n_in)
        want = None
        for name, factory in reversed(ANCHORS.items()):  # the torch loop first: the others are checked against it
            impl = factory(w, x)
            want = impl.out() if want is None else (_check(impl, want, name), want)[1]
            fwd, fb = (measure(f, "W1", args.quick)["ms"] for f in (impl.fwd, impl.fb))
            print(f"| {batch}, {T}, {n_in}, {hidden} | {name} | {fwd:.2f} | {fb:.2f} |")
        for engine, variant in [("torch", "linear_scan"), ("tensorflow", "linear_scan"), ("jax", "linear_scan")] + [
            ("jax", "custom_vjp_scan")
        ]:
            impl = scan_alone(engine, batch, T, hidden, variant)
            fwd, fb = (measure(f, "W1", args.quick)["ms"] for f in (impl.fwd, impl.fb))
            print(f"| {batch}, {T}, -, {hidden} | rshop {engine} {variant} alone | {fwd:.2f} | {fb:.2f} |")


if __name__ == "__main__":
    main()
