"""JAX anchors: hand-written ``lax.scan`` loops, plain and split-gate, for the LSTM and C1.

Plain: one ``x W + h U + b`` then split.  Split-gate (flax OptimizedLSTMCell style): the
weights are held per gate and each gate is ``x W_g + h U_g + b_g``: the add comes after the
split, which speeds up JAX's backward on CPU (the jax engine's GRAD_PASSES use split_gates for that).
"""

from __future__ import annotations

from adapters import jax_impl


def _scan(step, x, hidden):
    import jax
    import jax.numpy as jnp

    z = jnp.zeros((x.shape[0], hidden), x.dtype)
    return jnp.swapaxes(jax.lax.scan(step, (z, z), jnp.swapaxes(x, 0, 1))[1], 0, 1)


def _per_gate(w):
    """kernel/recurrent_kernel/bias cut into the four gates' own arrays (i, f, g, o)."""
    import numpy as np

    cut = {k: np.split(w[k], 4, axis=-1) for k in ("kernel", "recurrent_kernel", "bias")}
    return {f"{k}_{g}": cut[k][n] for k in cut for n, g in enumerate("ifgo")}


def _cell(kind, zi, zf, zg, zo, c, p):
    """The LSTM or C1 update from the four gate pre-activations."""
    import jax
    import jax.numpy as jnp

    s = jax.nn.sigmoid
    if kind == "lstm":
        c = s(zf) * c + s(zi) * jnp.tanh(zg)
        return s(zo) * jnp.tanh(c), c
    c = s(zf + p["peephole_f"] * c) * c + s(zi + p["peephole_i"] * c) * jnp.tanh(zg)
    return s(zo + p["peephole_o"] * c) * jnp.tanh(c), c


def plain_scan(kind, w, x_np):
    import jax.numpy as jnp

    hidden = w["recurrent_kernel"].shape[0]

    def apply(p, x):
        def step(carry, xt):
            h, c = carry
            zi, zf, zg, zo = jnp.split(xt @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"], 4, axis=-1)
            h, c = _cell(kind, zi, zf, zg, zo, c, p)
            return (h, c), h

        return _scan(step, x, hidden)

    return jax_impl(apply, {k: jnp.asarray(v) for k, v in w.items()}, jnp.asarray(x_np))


def split_scan(kind, w, x_np):
    import jax.numpy as jnp

    hidden = w["recurrent_kernel"].shape[0]
    params = {k: v for k, v in w.items() if k.startswith("peephole")} | _per_gate(w)

    def apply(p, x):
        def step(carry, xt):
            h, c = carry
            z = [xt @ p[f"kernel_{g}"] + h @ p[f"recurrent_kernel_{g}"] + p[f"bias_{g}"] for g in "ifgo"]
            h, c = _cell(kind, *z, c, p)
            return (h, c), h

        return _scan(step, x, hidden)

    return jax_impl(apply, {k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(x_np))
