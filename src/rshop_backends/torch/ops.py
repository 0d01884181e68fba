"""The torch engine's spelling of every op (float32 and float64).

Each emitter returns one torch expression; the generated step (see
:mod:`rshop_backends.codegen`) is straight-line code over tensors of shape
(batch, *per_example) for batched values and (*per_example) for parameters. All axes
are negative, so they index batched and unbatched tensors alike. Ops in
``codegen.COMMON`` (Python operators, ``@``, basic slicing) are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from rshop_core.checks import check_indices

from ..codegen import einsum_equation, reshape_target, transpose_perm

if TYPE_CHECKING:
    from rshop_backends.codegen import Emitter
    from rshop_core.types import TensorType


def _hard_sigmoid(x: Any) -> Any:
    return torch.clamp(x / 6.0 + 0.5, 0.0, 1.0)


NAMESPACE: dict[str, Any] = {"torch": torch, "F": F, "_hard_sigmoid": _hard_sigmoid}


def constant(value: np.ndarray) -> Any:
    """A literal (numpy array, already in the compute dtype) as a CPU tensor.

    A layer moved with ``.to(device)`` / ``.double()`` runs a copy of the generated step
    whose literals are on its device and in its float dtype (``torch/layer.py`` ``_moved``).
    """
    return torch.as_tensor(value.copy())


def _fn(name: str) -> Emitter:
    return lambda n, a, t: f"{name}({a[0]})"


def _reduce(fn: Any) -> Any:
    def emit(n: Any, a: Any, t: Any) -> Any:
        axes = tuple(n.attrs["axes"])
        if not axes:  # reducing no axis is the identity (torch reads dim=() as "all dims")
            return a[0]
        return f"{fn}({a[0]}, dim={axes}, keepdim={n.attrs['keepdims']})"

    return emit


EMITTERS: dict[str, Emitter] = {
    "abs": _fn("torch.abs"),
    "sqrt": _fn("torch.sqrt"),
    "exp": _fn("torch.exp"),
    "log": _fn("torch.log"),
    "tanh": _fn("torch.tanh"),
    "sigmoid": _fn("torch.sigmoid"),
    "hard_sigmoid": _fn("_hard_sigmoid"),
    "relu": _fn("torch.relu"),
    # log1p(exp(x)) up to x = 40, x above: exact to float64 rounding, never overflows.
    "softplus": lambda n, a, t: f"F.softplus({a[0]}, 1.0, 40.0)",
    "softsign": _fn("F.softsign"),
    "elu": _fn("F.elu"),
    "maximum": lambda n, a, t: f"torch.maximum({a[0]}, {a[1]})",
    "minimum": lambda n, a, t: f"torch.minimum({a[0]}, {a[1]})",
    "softmax": lambda n, a, t: f"torch.softmax({a[0]}, {n.attrs['axis']})",
    "einsum": lambda n, a, t: f"torch.einsum({einsum_equation(n, t)!r}, {', '.join(a)})",
    "concat": lambda n, a, t: f"torch.cat(({', '.join(a)},), {n.attrs['axis']})",
    "reshape": lambda n, a, t: f"{a[0]}.reshape({reshape_target(n, t, f'{a[0]}.shape[0]')})",
    "transpose": lambda n, a, t: f"{a[0]}.permute({transpose_perm(n, t)})",
    "sum": _reduce("torch.sum"),
    "mean": _reduce("torch.mean"),
    "max": _reduce("torch.amax"),
    "where": lambda n, a, t: f"torch.where({a[0]}, {a[1]}, {a[2]})",
    "split": lambda n, a, t: f"torch.split({a[0]}, {n.attrs['sizes']}, {n.attrs['axis']})",
    "sin": _fn("torch.sin"),
    "cos": _fn("torch.cos"),
    "erf": _fn("torch.erf"),
    "silu": _fn("F.silu"),
    "selu": _fn("F.selu"),
    "relu6": _fn("F.relu6"),
    "clip": lambda n, a, t: f"torch.clamp({a[0]}, {n.attrs['min']!r}, {n.attrs['max']!r})",
    "gelu": lambda n, a, t: f"F.gelu({a[0]}, approximate={'tanh' if n.attrs['approximate'] else 'none'!r})",
    "leaky_relu": lambda n, a, t: f"F.leaky_relu({a[0]}, {n.attrs['negative_slope']!r})",
    "log_softmax": lambda n, a, t: f"torch.log_softmax({a[0]}, {n.attrs['axis']})",
    "pow": lambda n, a, t: f"torch.pow({a[0]}, {a[1]})",
}


def _addmm(types: Any) -> Any:
    """``o + a @ b`` as one ``torch.addmm`` when ``a`` is (batch, k) and ``o`` broadcasts to the result."""
    o, a, w, out = types
    if not (a.batched and a.rank == 1 and not w.batched and out.rank == 1):
        return None
    if (o.batched and o.rank != 1) or (not o.batched and o.rank > 1) or o.dtype != out.dtype:
        return None
    return "torch.addmm({o}, {a}, {b})"


def _addcmul(types: Any) -> Any:
    """``o + a * b`` as one ``torch.addcmul`` (float operands; the result has the broadcast shape)."""
    if any(t.dtype == "bool" for t in types) or len({t.dtype for t in types}) != 1:
        return None
    o, a, b, _out = types
    if not (o.batched or a.batched or b.batched):
        return None
    if any(x.batched and x.rank != _out.rank for x in types):  # a lower-rank batched operand is lifted first
        return None
    return "torch.addcmul({o}, {a}, {b})"


def _subcmul(types: Any) -> Any:
    """``o - a * b`` as one ``torch.addcmul(..., value=-1)`` (as :func:`_addcmul`; the product on the right)."""
    return None if _addcmul(types) is None else "torch.addcmul({o}, {a}, {b}, value=-1)"


# Two nodes as one torch op (rshop_backends.codegen): each op of the eager loop costs a
# dispatch and an autograd node, whatever its size.
FUSIONS: dict[tuple[str, str], Callable[[list[TensorType]], str | None]] = {
    ("add", "matmul"): _addmm,
    ("add", "multiply"): _addcmul,
    ("subtract", "multiply"): _subcmul,
}


# -- non-float values, shape and index ops (issue 12, items 5-6) ---------------------------------

_DTYPES = {"float32": "torch.float32", "float64": "torch.float64", "bool": "torch.bool", "int32": "torch.int32"}


def _cumsum(x: Any, axis: int, reverse: bool, exclusive: bool) -> Any:
    """Running sum along ``axis`` in ``x``'s dtype (torch would widen int32 to int64); ``exclusive``
    shifts it one place (0 first)."""
    x = torch.flip(x, (axis,)) if reverse else x
    c = torch.cumsum(x, axis, dtype=x.dtype)
    if exclusive:
        n = c.shape[axis]
        c = torch.cat([torch.zeros_like(c.narrow(axis, 0, 1)), c.narrow(axis, 0, n - 1)], axis)
    return torch.flip(c, (axis,)) if reverse else c


def _gather(x: Any, idx: Any, axis: int, xb: bool, ib: bool, where: str) -> Any:
    """``take`` per example (see the numpy engine); indices out of [0, n) raise an RshopShapeError (their
    values are known: torch runs eagerly)."""
    n = x.shape[axis]
    if idx.numel() and bool(((idx < 0) | (idx >= n)).any()):
        check_indices(idx.cpu().numpy(), n, axis, where)
    pos = x.dim() + axis
    if not ib or not xb:
        out = torch.index_select(x, pos, idx.reshape(-1)).reshape(x.shape[:pos] + idx.shape + x.shape[pos + 1 :])
        return out if not ib else torch.movedim(out, pos, 0)
    pre, post = x.shape[1:pos], x.shape[pos + 1 :]
    flat = idx.reshape((idx.shape[0],) + (1,) * len(pre) + (-1,) + (1,) * len(post)).long()
    out = torch.gather(x, pos, flat.expand(x.shape[:pos] + flat.shape[pos : pos + 1] + x.shape[pos + 1 :]))
    return out.reshape((x.shape[0],) + pre + idx.shape[1:] + post)


NAMESPACE.update({"_cumsum": _cumsum, "_gather": _gather})
EMITTERS.update(
    {
        "cast": lambda n, a, t: f"{a[0]}.to({_DTYPES[n.attrs['dtype']]})",
        "expand_dims": lambda n, a, t: f"torch.unsqueeze({a[0]}, {n.attrs['axis']})",
        "squeeze": lambda n, a, t: f"torch.squeeze({a[0]}, {tuple(n.attrs['axes'])})",
        "min": _reduce("torch.amin"),
        "argmax": lambda n, a, t: (
            f"torch.argmax({a[0]}, {n.attrs['axis']}, keepdim={n.attrs['keepdims']}).to(torch.int32)"
        ),
        "logsumexp": _reduce("torch.logsumexp"),
        "cumsum": lambda n, a, t: f"_cumsum({a[0]}, {n.attrs['axis']}, {n.attrs['reverse']}, {n.attrs['exclusive']})",
        "gather": lambda n, a, t: (
            f"_gather({a[0]}, {a[1]}, {n.attrs['axis']}, {t[0].batched}, {t[1].batched}, "
            f"{f'node {n.name!r} (op gather)'!r})"
        ),
    }
)
