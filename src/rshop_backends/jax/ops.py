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

from ..codegen import einsum_equation, reshape_shape, split_cuts, transpose_perm

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
    "reshape": lambda n, a, t: f"jnp.reshape({a[0]}, {reshape_shape(n, t)})",
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
