"""The jax engine's spelling of every op: ``jax.numpy`` / ``jax.nn`` expressions.

Values are batched jax arrays of shape (batch, *per_example) or unbatched parameters and
constants; every axis an emitter writes is negative, so it means the same for both.
Python operators and ``x[..., a:b]`` indexing come from :data:`codegen.COMMON`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from ..codegen import einsum_equation, reshape_target, split_cuts, transpose_perm

if TYPE_CHECKING:
    from rshop_backends.codegen import Emitter


def _hard_sigmoid(x: Any) -> Any:
    """``clip(x / 6 + 1/2, 0, 1)`` (Keras 3)."""
    return jnp.clip(x / 6.0 + 0.5, 0.0, 1.0)


def _softsign(x: Any) -> Any:
    return x / (1.0 + jnp.abs(x))


def _clip(x: Any, lo: float, hi: float) -> Any:
    """``jnp.clip`` with gradient 1 at the bounds, as torch's and TensorFlow's (``jnp.clip`` gives 0.5)."""
    return jnp.where((x < lo) | (x > hi), jnp.clip(x, lo, hi), x)


def _leaky_relu(x: Any, negative_slope: float) -> Any:
    """Gradient ``negative_slope`` at 0, as torch's and TensorFlow's (``jax.nn.leaky_relu`` gives 1)."""
    return jnp.where(x > 0, x, x * negative_slope)


NAMESPACE: dict[str, Any] = {
    "jnp": jnp,
    "jax": jax,
    "_hard_sigmoid": _hard_sigmoid,
    "_softsign": _softsign,
    "_clip": _clip,
    "_leaky_relu": _leaky_relu,
}


def constant(value: np.ndarray) -> Any:
    """A literal (numpy array, already in the compute dtype if float) as a jax array.

    64-bit integers become int32 when ``jax_enable_x64`` is off (what jax would do anyway,
    without its truncation warning).
    """
    value = np.asarray(value)
    if value.dtype.kind in "iu" and value.dtype.itemsize == 8 and not jax.config.jax_enable_x64:
        value = value.astype(np.int32 if value.dtype.kind == "i" else np.uint32)
    return value  # numpy: a literal in every trace (see layer._from_numpy)


def _fn(name: str) -> Emitter:
    return lambda n, a, t: f"{name}({a[0]})"


def _reduce(name: str) -> Emitter:
    return lambda n, a, t: f"jnp.{name}({a[0]}, axis={tuple(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})"


EMITTERS: dict[str, Emitter] = {
    # one split primitive for all pieces: its transpose is one concatenate (slicing each piece
    # pads every cotangent to full width; measured ~12% slower backward on the LSTM)
    "split": lambda n, a, t: f"jnp.split({a[0]}, {split_cuts(n)}, axis={n.attrs['axis']})",
    "abs": _fn("jnp.abs"),
    "sqrt": _fn("jnp.sqrt"),
    "exp": _fn("jnp.exp"),
    "log": _fn("jnp.log"),
    "tanh": _fn("jnp.tanh"),
    "sigmoid": _fn("jax.nn.sigmoid"),  # lax.logistic: never overflows
    "hard_sigmoid": _fn("_hard_sigmoid"),
    "relu": _fn("jax.nn.relu"),  # gradient 0 at 0, like the other engines
    "softplus": _fn("jax.nn.softplus"),  # logaddexp(x, 0): stable
    "softsign": _fn("_softsign"),
    "elu": _fn("jax.nn.elu"),  # alpha 1; expm1 of a clamped input, so no inf/nan gradients
    "maximum": lambda n, a, t: f"jnp.maximum({a[0]}, {a[1]})",
    "minimum": lambda n, a, t: f"jnp.minimum({a[0]}, {a[1]})",
    "softmax": lambda n, a, t: f"jax.nn.softmax({a[0]}, axis={n.attrs['axis']})",
    "einsum": lambda n, a, t: f"jnp.einsum({einsum_equation(n, t)!r}, {', '.join(a)})",
    "concat": lambda n, a, t: f"jnp.concatenate(({', '.join(a)},), axis={n.attrs['axis']})",
    "reshape": lambda n, a, t: f"jnp.reshape({a[0]}, {reshape_target(n, t, f'{a[0]}.shape[0]')})",
    "transpose": lambda n, a, t: f"jnp.transpose({a[0]}, {transpose_perm(n, t)})",
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "max": _reduce("max"),
    "where": lambda n, a, t: f"jnp.where({a[0]}, {a[1]}, {a[2]})",
    "sin": _fn("jnp.sin"),
    "cos": _fn("jnp.cos"),
    "erf": _fn("jax.lax.erf"),
    "silu": _fn("jax.nn.silu"),
    "selu": _fn("jax.nn.selu"),  # gradient at 0 from the left (scale * alpha), as torch
    "relu6": _fn("jax.nn.relu6"),  # gradient 0 at 0 and 6 (a custom jvp), as torch and TensorFlow
    "clip": lambda n, a, t: f"_clip({a[0]}, {n.attrs['min']!r}, {n.attrs['max']!r})",
    "gelu": lambda n, a, t: f"jax.nn.gelu({a[0]}, approximate={n.attrs['approximate']!r})",
    "leaky_relu": lambda n, a, t: f"_leaky_relu({a[0]}, {n.attrs['negative_slope']!r})",
    "log_softmax": lambda n, a, t: f"jax.nn.log_softmax({a[0]}, axis={n.attrs['axis']})",
    "pow": lambda n, a, t: f"jnp.power({a[0]}, {a[1]})",
}


# -- non-float values, shape and index ops (issue 12, items 5-6) ---------------------------------


def _cumsum(x: Any, axis: int, reverse: bool, exclusive: bool) -> Any:
    """Running sum along ``axis`` in ``x``'s dtype; ``exclusive`` shifts it one place (0 first)."""
    x = jnp.flip(x, axis) if reverse else x
    c = jnp.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:
        n = c.shape[axis]
        first = jax.lax.slice_in_dim(c, 0, 1, axis=axis)
        c = jnp.concatenate([jnp.zeros_like(first), jax.lax.slice_in_dim(c, 0, n - 1, axis=axis)], axis)
    return jnp.flip(c, axis) if reverse else c


def _gather(x: Any, idx: Any, axis: int, xb: bool, ib: bool) -> Any:
    """``take`` per example (see the numpy engine); indices out of [0, n) are clamped: inside jit their
    values are unknown and jax cannot raise (docs/decisions.md)."""
    x = jnp.asarray(x)
    idx = jnp.clip(jnp.asarray(idx), 0, x.shape[axis] - 1)
    if not ib:
        return jnp.take(x, idx, axis=axis)
    if not xb:
        return jnp.moveaxis(jnp.take(x, idx, axis=axis), x.ndim + axis, 0)
    pos = x.ndim + axis
    pre, post = x.shape[1:pos], x.shape[pos + 1 :]
    flat = idx.reshape((idx.shape[0],) + (1,) * len(pre) + (-1,) + (1,) * len(post))
    out = jnp.take_along_axis(x, flat, axis=pos)
    return out.reshape((x.shape[0],) + tuple(pre) + tuple(idx.shape[1:]) + tuple(post))


NAMESPACE.update({"_cumsum": _cumsum, "_gather": _gather})
EMITTERS.update(
    {
        "cast": lambda n, a, t: f"jnp.asarray({a[0]}).astype({n.attrs['dtype']!r})",
        "expand_dims": lambda n, a, t: f"jnp.expand_dims({a[0]}, {n.attrs['axis']})",
        "squeeze": lambda n, a, t: f"jnp.squeeze({a[0]}, axis={tuple(n.attrs['axes'])})",
        "min": _reduce("min"),
        "argmax": lambda n, a, t: (
            f"jnp.argmax({a[0]}, axis={n.attrs['axis']}, keepdims={n.attrs['keepdims']}).astype('int32')"
        ),
        "logsumexp": lambda n, a, t: (
            f"jax.nn.logsumexp({a[0]}, axis={tuple(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})"
        ),
        "cumsum": lambda n, a, t: f"_cumsum({a[0]}, {n.attrs['axis']}, {n.attrs['reverse']}, {n.attrs['exclusive']})",
        "gather": lambda n, a, t: f"_gather({a[0]}, {a[1]}, {n.attrs['axis']}, {t[0].batched}, {t[1].batched})",
    }
)
