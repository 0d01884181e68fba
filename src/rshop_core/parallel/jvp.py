"""The forward-mode derivative of a step graph, written in the closed op set itself.

:func:`jvp_graph` replays a step graph and, next to each node, builds its tangent in the direction
of a seed on the states, one rule per op (:data:`_RULES`), with :mod:`rshop_core.functional`.
Tangents of x, constants and parameters are zero and never built ("no tangent" propagates
symbolically), so a matmul of a state-free value emits nothing. The rules read the primal nodes'
values (``tanh``'s tangent is ``(1 - t²)·dt`` with ``t`` the primal ``tanh`` node), so nothing is
computed twice. Every engine evaluates the result with its ordinary generated code.

The seed directions that recover a Jacobian's nonzero entries come from :mod:`.seeds`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np

from .. import functional as F
from ..dtypes import FLOAT_DTYPES
from ..errors import RshopConfigError, RshopDTypeError, RshopNotImplementedError, RshopShapeError
from ..graph import Node, StepGraph
from ..limits import MAX_CONSTANT_ELEMENTS
from ..ops import COMPARE, Op
from ..replay import replay
from ..symbolic import Input, Tensor, apply, as_tensor
from ..tracing import trace

__all__ = ["jvp_graph"]

Tangent = Tensor | None
Rule = Callable[[Node, Tensor, list[Tensor], list[Tangent]], Tangent]


def _zeros_like(p: Tensor) -> Tensor:
    """Exact zeros of ``p``'s type (batched like ``p``): ``where(p > p, 0, 0)``, never ``0·p`` (NaN
    for an infinite ``p``)."""
    zero = as_tensor(0.0, p)
    return F.where(F.greater(p, p), zero, zero)


def _or_zeros(t: Tangent, p: Tensor) -> Tensor:
    return _zeros_like(p) if t is None else t


def _fit(t: Tangent, p: Tensor) -> Tangent:
    """``t`` broadcast to the shape of its primal ``p`` (an elementwise op may broadcast its inputs)."""
    if t is None or t.shape == p.shape:
        return t
    return t + _zeros_like(p)


def _scalar(v: float, like: Tensor) -> Tensor:
    return as_tensor(v, like)


def _add(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    if d[0] is None:
        return d[1]
    return d[0] if d[1] is None else d[0] + d[1]


def _subtract(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    if d[1] is None:
        return d[0]
    return -d[1] if d[0] is None else d[0] - d[1]


def _multiply(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    if d[1] is None:
        return d[0] * a[1]
    return a[0] * d[1] if d[0] is None else d[0] * a[1] + a[0] * d[1]


def _divide(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    # d(a/b) = (da - (a/b)·db) / b
    if d[1] is None:
        return d[0] / a[1]
    num = -(p * d[1]) if d[0] is None else d[0] - p * d[1]
    return num / a[1]


def _choose(cond: Tensor, da: Tangent, db: Tangent) -> Tangent:
    if da is None and db is None:
        return None
    return F.where(cond, 0.0 if da is None else da, 0.0 if db is None else db)


def _maximum(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    return _choose(F.greater_equal(a[0], a[1]), d[0], d[1])


def _minimum(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    return _choose(F.less_equal(a[0], a[1]), d[0], d[1])


def _where(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    return _choose(a[0], d[1], d[2])


def _unary(derivative: Callable[[Tensor, Tensor, Tensor], Tensor]) -> Rule:
    """A rule ``derivative(x, y, dx)`` of an elementwise op ``y = f(x)``."""

    def rule(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
        return None if d[0] is None else derivative(a[0], p, d[0])

    return rule


def _unary_attr(derivative: Callable[[Node, Tensor, Tensor], Tensor]) -> Rule:
    """A rule ``derivative(node, x, dx)`` of an elementwise op with attributes."""

    def rule(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
        return None if d[0] is None else derivative(n, a[0], d[0])

    return rule


def _hard_sigmoid(x: Tensor, y: Tensor, dx: Tensor) -> Tensor:
    inside = F.where(F.less(x, 3.0), dx * _scalar(1.0 / 6.0, dx), 0.0)
    return F.where(F.greater(x, -3.0), inside, 0.0)


def _softmax(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    if d[0] is None:
        return None
    inner = F.sum(p * d[0], axes=[n.attrs["axis"]], keepdims=True)
    return p * (d[0] - inner)


def _einsum(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    total: Tangent = None
    for k, t in enumerate(d):
        if t is None:
            continue
        term = F.einsum(n.attrs["equation"], *(t if j == k else x for j, x in enumerate(a)))
        total = term if total is None else total + term
    return total


def _matmul(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    assert d[1] is None, "the right operand of matmul is unbatched: it never reads a state"
    return None if d[0] is None else F.matmul(d[0], a[1])


def _concat(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    if all(t is None for t in d):
        return None
    return F.concat([_or_zeros(t, x) for t, x in zip(d, a)], axis=n.attrs["axis"])


def _same_op(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    """Linear index ops and sums: the same op on the tangent."""
    return None if d[0] is None else apply(n.op, [d[0]], n.attrs)


def _max(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    """The tangent at the maximum; elements tied for it share it equally (as jax's and torch's amax)."""
    if d[0] is None:
        return None
    axes, keep = n.attrs["axes"], n.attrs["keepdims"]
    top = p if keep else apply(Op.MAX, [a[0]], {"axes": axes, "keepdims": True})
    hit = F.equal(a[0], top)
    picked = F.sum(F.where(hit, d[0], 0.0), axes=axes, keepdims=keep)
    count = F.sum(F.where(hit, _scalar(1.0, d[0]), _scalar(0.0, d[0])), axes=axes, keepdims=keep)
    return picked / count


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _clip(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    """1 on the closed interval [min, max], bounds included (the engines' convention)."""
    if d[0] is None:
        return None
    inside = F.where(F.less_equal(a[0], n.attrs["max"]), d[0], 0.0)
    return F.where(F.greater_equal(a[0], n.attrs["min"]), inside, 0.0)


def _gelu(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    if d[0] is None:
        return None
    x = a[0]
    half = _scalar(0.5, x)
    if n.attrs["approximate"]:  # y = x/2 (1 + t), t = tanh(c (x + k x^3))
        c, k = math.sqrt(2.0 / math.pi), 0.044715
        t = F.tanh(_scalar(c, x) * (x + _scalar(k, x) * x * x * x))
        inner = _scalar(c, x) * (_scalar(1.0, x) + _scalar(3.0 * k, x) * x * x)
        slope = half * (_scalar(1.0, x) + t) + half * x * (_scalar(1.0, x) - t * t) * inner
    else:  # Phi(x) + x phi(x)
        cdf = half * (_scalar(1.0, x) + F.erf(x * _scalar(math.sqrt(0.5), x)))
        slope = cdf + x * F.exp(-(half * x * x)) * _scalar(1.0 / math.sqrt(2.0 * math.pi), x)
    return slope * d[0]


def _silu(x: Tensor, y: Tensor, dx: Tensor) -> Tensor:
    s = F.sigmoid(x)
    return s * (_scalar(1.0, x) + x * (_scalar(1.0, x) - s)) * dx


def _relu6(x: Tensor, y: Tensor, dx: Tensor) -> Tensor:
    """0 at both kinks (0 and 6), as every engine's relu6."""
    return F.where(F.greater(x, 0.0), F.where(F.less(x, 6.0), dx, 0.0), 0.0)


def _log_softmax(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    if d[0] is None:
        return None
    return d[0] - F.sum(F.exp(p) * d[0], axes=[n.attrs["axis"]], keepdims=True)


def _pow(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    """``b a^(b-1) da + log(a) y db``; the second term is taken as 0 where ``a <= 0`` (TensorFlow's choice)."""
    base, exponent = a
    out: Tangent = None
    if d[0] is not None:
        out = exponent * F.pow(base, exponent - _scalar(1.0, exponent)) * d[0]
    if d[1] is not None:
        positive = F.greater(base, 0.0)
        log_base = F.log(F.where(positive, base, 1.0))
        term = F.where(positive, log_base * p, 0.0) * d[1]
        out = term if out is None else out + term
    return out


def _no_tangent(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    return None


def _cast(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    """A float -> float cast casts the tangent too; a cast to or from bool or int32 has none."""
    if d[0] is None or p.dtype not in FLOAT_DTYPES or a[0].dtype not in FLOAT_DTYPES:
        return None
    return apply(Op.CAST, [d[0]], n.attrs)


def _min(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    """The tangent at the minimum; elements tied for it share it equally (as jax's and torch's amin)."""
    if d[0] is None:
        return None
    axes, keep = n.attrs["axes"], n.attrs["keepdims"]
    low = p if keep else apply(Op.MIN, [a[0]], {"axes": axes, "keepdims": True})
    hit = F.equal(a[0], low)
    picked = F.sum(F.where(hit, d[0], 0.0), axes=axes, keepdims=keep)
    count = F.sum(F.where(hit, _scalar(1.0, d[0]), _scalar(0.0, d[0])), axes=axes, keepdims=keep)
    return picked / count


def _logsumexp(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    """``sum(softmax(x) * dx)`` over the reduced axes, the softmax as ``exp(x - logsumexp(x))``."""
    if d[0] is None:
        return None
    axes, keep = n.attrs["axes"], n.attrs["keepdims"]
    top = p if keep else apply(Op.LOGSUMEXP, [a[0]], {"axes": axes, "keepdims": True})
    return F.sum(F.exp(a[0] - top) * d[0], axes=axes, keepdims=keep)


def _gather(n: Node, p: Tensor, a: list[Tensor], d: list[Tangent]) -> Tangent:
    """Linear in the gathered value: the same indices pick its tangent (indices are int: no tangent)."""
    return None if d[0] is None else apply(Op.GATHER, [d[0], a[1]], n.attrs)


def _dropout(
    n: Node, p: Tensor | None = None, a: list[Tensor] | None = None, d: list[Tangent] | None = None
) -> Tangent:
    raise RshopNotImplementedError(
        f"jvp of node %{n.id} {n.name!r} (op dropout): expected a step graph without dropout (an execution "
        "plan's graph, where dropout is already a multiplication by a mask or removed), received a dropout node. "
        "Take the graph from rshop_core.execution.plan_for(...).graph."
    )


def _custom(n: Node, p: Tensor | None = None, a: list[Tensor] | None = None, d: list[Tangent] | None = None) -> Tangent:
    raise RshopNotImplementedError(
        f"jvp of node %{n.id} {n.name!r} (custom op {n.attrs.get('op')!r}): expected built-in ops on the path from "
        "the states, received a custom op, which has no derivative rule in the IR. Run the step sequentially "
        "(time_parallel=False or 'auto')."
    )


_RULES: dict[str, Rule] = {
    Op.MATMUL: _matmul,
    Op.EINSUM: _einsum,
    Op.ADD: _add,
    Op.SUBTRACT: _subtract,
    Op.MULTIPLY: _multiply,
    Op.DIVIDE: _divide,
    Op.MAXIMUM: _maximum,
    Op.MINIMUM: _minimum,
    Op.NEGATIVE: _unary(lambda x, y, dx: -dx),
    Op.ABS: _unary(lambda x, y, dx: F.where(F.greater_equal(x, 0.0), dx, -dx)),
    Op.SQUARE: _unary(lambda x, y, dx: _scalar(2.0, x) * x * dx),
    Op.SQRT: _unary(lambda x, y, dx: dx / (_scalar(2.0, y) * y)),
    Op.EXP: _unary(lambda x, y, dx: y * dx),
    Op.LOG: _unary(lambda x, y, dx: dx / x),
    Op.TANH: _unary(lambda x, y, dx: (_scalar(1.0, y) - y * y) * dx),
    Op.SIGMOID: _unary(lambda x, y, dx: y * (_scalar(1.0, y) - y) * dx),
    Op.HARD_SIGMOID: _unary(_hard_sigmoid),
    Op.RELU: _unary(lambda x, y, dx: F.where(F.greater(x, 0.0), dx, 0.0)),
    Op.SOFTPLUS: _unary(lambda x, y, dx: F.sigmoid(x) * dx),
    Op.SOFTSIGN: _unary(lambda x, y, dx: dx / F.square(_scalar(1.0, x) + F.abs(x))),
    Op.ELU: _unary(lambda x, y, dx: F.where(F.greater(x, 0.0), dx, (y + _scalar(1.0, y)) * dx)),
    Op.SOFTMAX: _softmax,
    Op.CONCAT: _concat,
    Op.SPLIT: _same_op,
    Op.SLICE: _same_op,
    Op.RESHAPE: _same_op,
    Op.TRANSPOSE: _same_op,
    Op.SUM: _same_op,
    Op.MEAN: _same_op,
    Op.MAX: _max,
    Op.WHERE: _where,
    Op.DROPOUT: _dropout,
    Op.PARAM: _no_tangent,
    Op.CONSTANT: _no_tangent,
    **{op: _no_tangent for op in COMPARE},
    Op.CUSTOM: _custom,
    Op.SIN: _unary(lambda x, y, dx: F.cos(x) * dx),
    Op.COS: _unary(lambda x, y, dx: -(F.sin(x) * dx)),
    Op.ERF: _unary(lambda x, y, dx: _scalar(2.0 / math.sqrt(math.pi), x) * F.exp(-F.square(x)) * dx),
    Op.SILU: _unary(_silu),
    Op.SELU: _unary(
        lambda x, y, dx: F.where(F.greater(x, 0.0), _scalar(_SELU_SCALE, x) * dx, (y + _SELU_SCALE * _SELU_ALPHA) * dx)
    ),
    Op.RELU6: _unary(_relu6),
    Op.CLIP: _clip,
    Op.GELU: _gelu,
    Op.LEAKY_RELU: _unary_attr(lambda n, x, dx: F.where(F.greater(x, 0.0), dx, dx * n.attrs["negative_slope"])),
    Op.LOG_SOFTMAX: _log_softmax,
    Op.POW: _pow,
    # non-float values, shape and index ops (issue 12, items 5-6): int and bool values carry no tangent
    Op.CAST: _cast,
    Op.EXPAND_DIMS: _same_op,
    Op.SQUEEZE: _same_op,
    Op.MIN: _min,
    Op.ARGMAX: _no_tangent,
    Op.LOGSUMEXP: _logsumexp,
    Op.CUMSUM: _same_op,
    Op.GATHER: _gather,
}


def _seed_tangent(seed: np.ndarray, state: Tensor, where: str, k: int) -> Tangent:
    """The tangent of a state input: None for a zero seed; else the seed as a literal, made batched
    (``s * 0 + seed``: two cheap elementwise ops, where ``where(s > s, ...)`` costs a select) so every
    tangent computed from it is batched like the states. A non-finite state makes the tangent NaN, which
    a parallel Newton loop treats as not converging."""
    if not np.any(seed):
        return None
    flat = seed.reshape(-1)
    if np.all(flat == flat[0]):
        value = as_tensor(float(flat[0]), state)
    elif seed.size > MAX_CONSTANT_ELEMENTS:
        raise RshopNotImplementedError(
            f"{where}: expected a seed for state #{k} of at most {MAX_CONSTANT_ELEMENTS} elements, or one "
            f"value everywhere, received {seed.size} elements with different values. Use a diagonal seed "
            "(all ones) or a smaller state."
        )
    else:
        value = as_tensor(np.asarray(seed, dtype=state.dtype), state)
    return F.add(F.multiply(state, as_tensor(0.0, state)), value)


def _check_seeds(graph: StepGraph, seeds: Sequence[Sequence[np.ndarray]], where: str) -> None:
    for c, direction in enumerate(seeds):
        if len(direction) != len(graph.states):
            raise RshopConfigError(
                f"{where}: expected one seed per state ({len(graph.states)}) in direction {c}, received "
                f"{len(direction)}. Give seeds[c][i] for every state i."
            )
        for i, (seed, sid) in enumerate(zip(direction, graph.states)):
            t = graph.nodes[sid].type
            if t.dtype not in ("float32", "float64"):
                raise RshopDTypeError(
                    f"{where}: expected floating states to differentiate, received state #{i} "
                    f"{graph.nodes[sid].name!r} of {t.describe()}. Carry the state as a float."
                )
            arr = np.asarray(seed)
            if arr.shape != t.shape:
                raise RshopShapeError(
                    f"{where}: expected seed [{c}][{i}] of the per-example shape {t.shape} of state "
                    f"{graph.nodes[sid].name!r}, received shape {arr.shape}."
                )
            if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
                raise RshopConfigError(
                    f"{where}: expected seed [{c}][{i}] of finite floats, received {arr.dtype} "
                    f"{'with non-finite values' if arr.dtype.kind == 'f' else 'values'}."
                )


def jvp_graph(graph: StepGraph, seeds: Sequence[Sequence[np.ndarray]], where: str = "jvp of a step graph") -> StepGraph:
    """The step graph computing the final states ``f`` and their tangents in each seed direction.

    ``seeds[c][i]``: the tangent of state ``i`` in direction ``c`` (the state's per-example shape).
    The result has the same x, state and constant inputs (same order and types); its outputs are
    ``[f_0, ..., f_{S-1}]`` then, per direction ``c``, ``[df_0, ..., df_{S-1}]`` (``S·(1 + C)`` in all,
    each tangent ``J_f · seeds[c]``), and its final states are ``f``. Seeds become ``constant`` nodes.
    Refuses ``dropout`` nodes (plans rewrite them first) with RshopNotImplementedError.
    """
    _check_seeds(graph, seeds, where)
    env: dict[int, Tensor] = {}
    groups = {"x": [], "state": [], "constant": []}  # type: dict[str, list[Tensor]]
    for role, ids in (("x", graph.x), ("state", graph.states), ("constant", graph.constants)):
        for i in ids:
            node = graph.nodes[i]
            env[i] = Input(node.type.shape, node.type.dtype, name=node.name)
            groups[role].append(env[i])
    for n in graph.nodes:
        if n.op == Op.DROPOUT:
            _dropout(n)
    primal = replay(graph, env)
    finals = [primal[i] for i in graph.final_states]
    tangents: list[Tensor] = []
    for direction in seeds:
        dot = _Tangents(primal)
        for k, sid in enumerate(graph.states):
            seed = np.asarray(direction[k])
            if seed.size and np.all(seed == 1):
                dot.unit[sid] = functools.partial(_seed_tangent, seed, primal[sid], where, k)
            else:
                dot.built[sid] = _seed_tangent(seed, primal[sid], where, k)
        for n in graph.nodes:
            if n.op != Op.INPUT:
                dot.derive(n)
        tangents += [_batched(_or_zeros(dot.of(f), primal[f]), primal[f]) for f in graph.final_states]
    return trace(groups["x"], groups["state"], groups["constant"], finals + tangents, finals, where)


_ELEMENTWISE = frozenset(
    (Op.ADD, Op.SUBTRACT, Op.MULTIPLY, Op.DIVIDE, Op.MAXIMUM, Op.MINIMUM, Op.WHERE, Op.NEGATIVE, Op.ABS)
    + (Op.SQUARE, Op.SQRT, Op.EXP, Op.LOG, Op.TANH, Op.SIGMOID, Op.RELU, Op.SOFTPLUS, Op.SOFTSIGN, Op.ELU)
    + (Op.HARD_SIGMOID,)
    + (Op.SIN, Op.COS, Op.ERF, Op.SILU, Op.SELU, Op.RELU6, Op.CLIP, Op.GELU, Op.LEAKY_RELU, Op.POW)
)


class _Tangents:
    """The tangents of one direction, node by node. A state whose seed is all ones stays *unit* (not
    built) as long as it is only multiplied by values without a tangent: ``d(u * h) = u`` costs nothing,
    where a built seed would cost two batched ops and the product a third. An unbatched tangent (``u``
    itself) feeds elementwise rules as it is and is made batched before any other rule reads it."""

    def __init__(self, primal: dict[int, Tensor]) -> None:
        self.primal = primal
        self.built: dict[int, Tangent] = {}
        self.unit: dict[int, Callable[[], Tangent]] = {}  # node id -> builds its all-ones seed when needed

    def of(self, i: int) -> Tangent:
        if i not in self.built and i in self.unit:
            self.built[i] = self.unit[i]()
        return self.built.get(i)

    def derive(self, n: Node) -> None:
        ins = n.inputs
        if n.op == Op.MULTIPLY and len(ins) == 2:
            units = [i in self.unit and i not in self.built for i in ins]
            if units.count(True) == 1:
                other = ins[units.index(False)]
                if other not in self.unit and self.built.get(other) is None:
                    self.built[n.id] = _fit(self.primal[other], self.primal[n.id])
                    return
        d = [self.of(i) for i in ins]
        if all(t is None for t in d):
            self.built[n.id] = None
            return
        if n.op not in _ELEMENTWISE:
            d = [None if t is None else _batched(t, self.primal[i]) for t, i in zip(d, ins)]
        p = self.primal[n.id]
        self.built[n.id] = _fit(_RULES[n.op](n, p, [self.primal[i] for i in ins], d), p)


def _batched(t: Tensor, like: Tensor) -> Tensor:
    """``t`` (shaped like ``like``) batched like ``like``: unchanged when it already is."""
    if t.type.batched or not like.type.batched:
        return t
    return F.add(F.multiply(like, as_tensor(0.0, like)), t)
