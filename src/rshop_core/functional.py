"""One function per op of the closed set, for writing step graphs by hand.

Every function takes and returns symbolic :class:`~rshop_core.symbolic.Tensor` values;
axes are per example (the batch axis is implicit and never counted)::

    from rshop_core import Input, functional as F
    h = Input((8,)); enc = Input((None, 8))            # a constant: an encoder sequence
    scores = F.einsum("td,d->t", enc, h)              # (batch, T)
    context = F.einsum("t,td->d", F.softmax(scores), enc)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from numpy.typing import ArrayLike

from .ops import COMPARE, ELEMENTWISE_BINARY, ELEMENTWISE_UNARY, Op
from .symbolic import Tensor, apply, as_tensor

Operand = Tensor | ArrayLike
"""An argument of an elementwise op: a Tensor, or a number / array made a literal (``constant`` node)."""
Axes = int | Sequence[int] | None

__all__ = list(ELEMENTWISE_BINARY + ELEMENTWISE_UNARY + COMPARE) + [
    "matmul",
    "einsum",
    "softmax",
    "concat",
    "split",
    "slice",
    "reshape",
    "transpose",
    "sum",
    "mean",
    "max",
    "where",
    "constant",
    "linear",
    "dropout",
    "clip",
    "gelu",
    "leaky_relu",
    "log_softmax",
    "pow",
    "swish",
    "mish",
    "hard_silu",
    "hard_swish",
    # non-float values, shape and index ops (issue 12, items 5-6)
    "cast",
    "expand_dims",
    "squeeze",
    "min",
    "argmax",
    "logsumexp",
    "cumsum",
    "gather",
    "take",
]


class BinaryOp(Protocol):
    """``f(a, b, name=None)``: one elementwise binary op (or comparison) of the closed set."""

    def __call__(self, a: Operand, b: Operand, name: str | None = None) -> Tensor: ...


class UnaryOp(Protocol):
    """``f(x, name=None)``: one elementwise unary op of the closed set."""

    def __call__(self, x: Tensor, name: str | None = None) -> Tensor: ...


def _binary(op: str) -> BinaryOp:
    def f(a: Operand, b: Operand, name: str | None = None) -> Tensor:
        a = as_tensor(a, b if isinstance(b, Tensor) else None)
        return apply(op, [a, as_tensor(b, a)], name=name)

    f.__name__ = f.__qualname__ = op
    f.__doc__ = f"Elementwise ``{op}(a, b)`` with numpy broadcasting of per-example shapes."
    return f


def _unary(op: str) -> UnaryOp:
    def f(x: Tensor, name: str | None = None) -> Tensor:
        return apply(op, [x], name=name)

    f.__name__ = f.__qualname__ = op
    f.__doc__ = f"Elementwise ``{op}(x)``."
    return f


# One name per op, spelled out so that readers and type checkers see them; tests/unit/test_typing.py checks
# that they are exactly ELEMENTWISE_BINARY + COMPARE and ELEMENTWISE_UNARY.
add = _binary(Op.ADD)
subtract = _binary(Op.SUBTRACT)
multiply = _binary(Op.MULTIPLY)
divide = _binary(Op.DIVIDE)
maximum = _binary(Op.MAXIMUM)
minimum = _binary(Op.MINIMUM)
greater = _binary(Op.GREATER)
greater_equal = _binary(Op.GREATER_EQUAL)
less = _binary(Op.LESS)
less_equal = _binary(Op.LESS_EQUAL)
equal = _binary(Op.EQUAL)
negative = _unary(Op.NEGATIVE)
abs = _unary(Op.ABS)
square = _unary(Op.SQUARE)
sqrt = _unary(Op.SQRT)
exp = _unary(Op.EXP)
log = _unary(Op.LOG)
tanh = _unary(Op.TANH)
sigmoid = _unary(Op.SIGMOID)
hard_sigmoid = _unary(Op.HARD_SIGMOID)
relu = _unary(Op.RELU)
softplus = _unary(Op.SOFTPLUS)
softsign = _unary(Op.SOFTSIGN)
elu = _unary(Op.ELU)
sin = _unary(Op.SIN)
cos = _unary(Op.COS)
erf = _unary(Op.ERF)
silu = _unary(Op.SILU)
selu = _unary(Op.SELU)
relu6 = _unary(Op.RELU6)


def linear(x: Tensor, name: str | None = None) -> Tensor:
    """The identity activation: returns ``x`` itself, adds no node."""
    return x


def constant(value: ArrayLike, dtype: str = "float32") -> Tensor:
    """A literal, unbatched value."""
    import numpy as np

    from .symbolic import Tensor as _T  # noqa: F401  (keeps the public signature small)

    return as_tensor(np.asarray(value, dtype=dtype))


def matmul(a: Tensor, w: Tensor, name: str | None = None) -> Tensor:
    """``a @ w`` with ``w`` an unbatched 2-D matrix: (batch, ..., k) x (k, n) -> (batch, ..., n)."""
    return apply(Op.MATMUL, [a, w], name=name)


def einsum(equation: str, *operands: Tensor, name: str | None = None) -> Tensor:
    """``einsum`` over per-example subscripts (no ``...``); batched operands share the batch."""
    return apply(Op.EINSUM, list(operands), {"equation": equation}, name=name)


def softmax(x: Tensor, axis: int = -1, name: str | None = None) -> Tensor:
    return apply(Op.SOFTMAX, [x], {"axis": axis}, name=name)


def concat(values: Iterable[Tensor], axis: int = -1, name: str | None = None) -> Tensor:
    return apply(Op.CONCAT, list(values), {"axis": axis}, name=name)


def split(x: Tensor, sizes: int | Sequence[int], axis: int = -1, name: str | None = None) -> list[Tensor]:
    """Cut ``x`` along ``axis`` into pieces of ``sizes`` (a list) or ``sizes`` equal pieces (an int)."""
    if isinstance(sizes, int) and not isinstance(sizes, bool):
        n = x.shape[axis]
        if n is None or n % sizes:
            from .errors import RshopShapeError

            raise RshopShapeError(
                f"node {name or 'split'!r} (op split): expected an axis divisible into {sizes} "
                f"equal pieces, received {x.type.describe()} (axis {axis})."
            )
        pieces = [n // sizes] * sizes
    else:
        pieces = list(sizes)  # type: ignore[arg-type]  # a bool is refused by list() here, as it always was
    return [
        apply(Op.SPLIT, [x], {"sizes": list(pieces), "axis": axis, "index": i}, name=name) for i in range(len(pieces))
    ]


def slice(
    x: Tensor, begin: int, end: int, axis: int = -1, name: str | None = None
) -> Tensor:  # shadows the builtin: mirrors the op name
    return apply(Op.SLICE, [x], {"axis": axis, "begin": begin, "end": end}, name=name)


def reshape(x: Tensor, shape: Sequence[int | None], name: str | None = None) -> Tensor:
    """Reshape per example; the batch axis is kept. One dimension may be -1 or None (inferred); a value
    with an unknown dimension (an encoder of any length) must give it that -1."""
    return apply(Op.RESHAPE, [x], {"shape": list(shape)}, name=name)


def transpose(x: Tensor, perm: Sequence[int], name: str | None = None) -> Tensor:
    return apply(Op.TRANSPOSE, [x], {"perm": list(perm)}, name=name)


def sum(x: Tensor, axes: Axes = None, keepdims: bool = False, name: str | None = None) -> Tensor:
    """Sum over per-example ``axes`` (all of them when None; never the batch)."""
    return apply(Op.SUM, [x], {"axes": axes, "keepdims": keepdims}, name=name)


def mean(x: Tensor, axes: Axes = None, keepdims: bool = False, name: str | None = None) -> Tensor:
    return apply(Op.MEAN, [x], {"axes": axes, "keepdims": keepdims}, name=name)


def max(x: Tensor, axes: Axes = None, keepdims: bool = False, name: str | None = None) -> Tensor:
    return apply(Op.MAX, [x], {"axes": axes, "keepdims": keepdims}, name=name)


def dropout(x: Tensor, rate: float, name: str | None = None) -> Tensor:
    """Variational dropout: in training, ``x`` times one mask per sequence (scaled by 1/(1-rate))."""
    return apply(Op.DROPOUT, [x], {"rate": rate}, name=name)


def where(cond: Tensor, a: Operand, b: Operand, name: str | None = None) -> Tensor:
    a = as_tensor(a, b if isinstance(b, Tensor) else None)
    return apply(Op.WHERE, [cond, a, as_tensor(b, a)], name=name)


def clip(x: Tensor, min: float, max: float, name: str | None = None) -> Tensor:
    """``x`` limited to ``[min, max]`` (``keras.ops.clip``, ``torch.clamp``). Its gradient is 1 on the closed
    interval, bounds included (torch's and TensorFlow's convention; jax's ``jnp.clip`` gives 0.5 there)."""
    return apply(Op.CLIP, [x], {"min": min, "max": max}, name=name)


def gelu(x: Tensor, approximate: bool = False, name: str | None = None) -> Tensor:
    """``x * Phi(x)`` with ``Phi`` the standard normal CDF (exact, Keras' default); ``approximate=True``:
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (torch's ``approximate='tanh'``)."""
    return apply(Op.GELU, [x], {"approximate": approximate}, name=name)


def leaky_relu(x: Tensor, negative_slope: float = 0.2, name: str | None = None) -> Tensor:
    """``x`` where ``x > 0``, else ``negative_slope * x``. The default slope is Keras 3's 0.2 (torch and jax:
    0.01); the gradient at 0 is ``negative_slope``, as torch's and TensorFlow's."""
    return apply(Op.LEAKY_RELU, [x], {"negative_slope": negative_slope}, name=name)


def log_softmax(x: Tensor, axis: int = -1, name: str | None = None) -> Tensor:
    """``x - logsumexp(x)`` along ``axis``, computed stably (never ``log(softmax(x))``)."""
    return apply(Op.LOG_SOFTMAX, [x], {"axis": axis}, name=name)


def pow(a: Operand, b: Operand, name: str | None = None) -> Tensor:
    """``a ** b`` elementwise with broadcasting (floats only); ``b`` is usually a number (``pow(x, 3.0)``).

    A negative base gives a real result only for an integer-valued exponent; otherwise NaN, on every engine.
    A tensor exponent is differentiated as ``log(a) * a ** b``, defined for ``a > 0`` only."""
    a = as_tensor(a, b if isinstance(b, Tensor) else None)
    return apply(Op.POW, [a, as_tensor(b, a)], name=name)


def swish(x: Tensor, name: str | None = None) -> Tensor:
    """Keras' alias of :func:`silu`: ``x * sigmoid(x)``."""
    return silu(x, name=name)


def mish(x: Tensor, name: str | None = None) -> Tensor:
    """``x * tanh(softplus(x))``: three ops, the formula Keras and jax evaluate."""
    return multiply(x, tanh(softplus(x)), name=name)


def hard_silu(x: Tensor, name: str | None = None) -> Tensor:
    """``x * relu6(x + 3) / 6`` (Keras 3's ``hard_silu``), written ``x * hard_sigmoid(x)``: the same function."""
    return multiply(x, hard_sigmoid(x), name=name)


hard_swish = hard_silu
# -- non-float values, shape and index ops (issue 12, items 5-6) ---------------------------------


def cast(x: Tensor, dtype: str, name: str | None = None) -> Tensor:
    """``x`` as ``dtype`` (float32, float64, bool, int32). float -> int32 truncates toward zero,
    -> bool is ``x != 0``, bool -> number is 0 / 1. Gradients pass through float -> float casts only."""
    return apply(Op.CAST, [x], {"dtype": dtype}, name=name)


def expand_dims(x: Tensor, axis: int, name: str | None = None) -> Tensor:
    """A new size-1 axis at ``axis`` of the result (per example: ``axis=0`` is the first axis after the batch)."""
    return apply(Op.EXPAND_DIMS, [x], {"axis": axis}, name=name)


def squeeze(x: Tensor, axes: int | Sequence[int], name: str | None = None) -> Tensor:
    """``x`` without its size-1 ``axes`` (named explicitly; the batch axis is never removed)."""
    return apply(Op.SQUEEZE, [x], {"axes": axes if isinstance(axes, int) else list(axes)}, name=name)


def min(x: Tensor, axes: Axes = None, keepdims: bool = False, name: str | None = None) -> Tensor:
    """Minimum over per-example ``axes`` (all of them when None; never the batch)."""
    return apply(Op.MIN, [x], {"axes": axes, "keepdims": keepdims}, name=name)


def argmax(x: Tensor, axis: int = -1, keepdims: bool = False, name: str | None = None) -> Tensor:
    """The int32 index of the first maximum along ``axis``; no gradient flows through it."""
    return apply(Op.ARGMAX, [x], {"axis": axis, "keepdims": keepdims}, name=name)


def logsumexp(x: Tensor, axes: Axes = None, keepdims: bool = False, name: str | None = None) -> Tensor:
    """``log(sum(exp(x)))`` over per-example ``axes``, without overflow (the maximum is taken out first)."""
    return apply(Op.LOGSUMEXP, [x], {"axes": axes, "keepdims": keepdims}, name=name)


def cumsum(
    x: Tensor, axis: int = -1, reverse: bool = False, exclusive: bool = False, name: str | None = None
) -> Tensor:
    """Running sum along ``axis``; ``reverse``: summed from the end; ``exclusive``: each entry without itself
    (the first is 0), as ``tf.math.cumsum``."""
    return apply(Op.CUMSUM, [x], {"axis": axis, "reverse": reverse, "exclusive": exclusive}, name=name)


def gather(x: Tensor, indices: Tensor | ArrayLike, axis: int = 0, name: str | None = None) -> Tensor:
    """``numpy.take(x, indices, axis)`` per example: the result's shape is ``x.shape[:axis] + indices.shape +
    x.shape[axis+1:]``. ``indices`` are int32 in ``[0, x.shape[axis])`` (an int list or array becomes a
    literal, checked now); a batched ``indices`` picks per example (a pointer network's argmax), an unbatched
    ``x`` is a table every example reads (an embedding). Indices out of range at call time: numpy and torch
    raise an RshopShapeError naming the node, jax and tensorflow (inside compiled loops) clamp them."""
    if not isinstance(indices, Tensor):
        import numpy as np

        arr = np.asarray(indices)
        if arr.dtype.kind not in "iu":
            from .errors import RshopDTypeError

            raise RshopDTypeError(
                f"node {name or 'gather'!r} (op gather): expected integer indices, received {arr.dtype}."
            )
        n = x.shape[axis] if -x.type.rank <= axis < x.type.rank else None
        if arr.size and n is not None and (arr.min() < 0 or arr.max() >= n):
            from .errors import RshopShapeError

            bad = arr[(arr < 0) | (arr >= n)].flat[0]
            raise RshopShapeError(
                f"node {name or 'gather'!r} (op gather): expected indices in [0, {n}) along axis {axis}, received "
                f"{int(bad)}. Indices are never wrapped or clamped where rshop can see them."
            )
        indices = as_tensor(arr.astype("int32"), None)
    return apply(Op.GATHER, [x, indices], {"axis": axis}, name=name)


take = gather
"""``take(x, indices, axis)``: the numpy name of :func:`gather`."""
