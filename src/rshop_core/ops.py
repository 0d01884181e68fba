"""The closed op set of the rshop IR, documented in one place.

Every node of a step graph has one of the ops below. An op is pure: it maps its
input values (and JSON attributes) to one output value. Shapes are *per example*;
the batch axis is implicit and engines add it (see :mod:`rshop_core.types`).
All axis attributes are stored negative (counted from the last axis), so they mean
the same thing for batched and unbatched values.

==============  =======  =============================================================
op              inputs   meaning (per example; ``attrs`` in brackets)
==============  =======  =============================================================
input           0        a step argument [role: x|state|constant, index]
param           0        a trainable or frozen parameter [name]
constant        0        a literal array [value (nested lists), dtype]
matmul          2        ``a @ w``; ``w`` unbatched, 2-D
einsum          1..n     einsum over per-example operands [equation], no ``...``
add, subtract,  2        elementwise, numpy broadcasting
multiply,
divide,
maximum,
minimum
negative, abs,  1        elementwise
square, sqrt,
exp, log,
tanh, sigmoid,
hard_sigmoid,             ``clip(x / 6 + 1/2, 0, 1)`` (Keras 3)
relu, softplus,
softsign, elu
softmax         1        along [axis]
concat          1..n     along [axis]; all operands batched alike
split           1        piece [index] of cutting [axis] into [sizes]
slice           1        ``x[begin:end]`` on one [axis]
reshape         1        to per-example [shape] (one -1 allowed)
transpose       1        permute per-example axes [perm]
sum, mean, max  1        reduce [axes] (per-example, negative), [keepdims]
greater,        2        elementwise comparison, bool result
greater_equal,
less,
less_equal,
equal
where           3        ``cond ? a : b`` elementwise, cond bool
dropout         1        variational dropout [rate]: training multiplies by one mask per
                         sequence (drawn per call, scaled by 1/(1-rate)); inference: identity
custom          1..n     an op registered in code [op: its name, then its own JSON attrs]
                         (:mod:`rshop_core.custom_ops`); a file naming an unregistered one is refused
sin, cos, erf,  1        elementwise; ``selu`` with Keras' alpha and scale; ``relu6`` is
silu, selu,              ``min(max(x, 0), 6)``; ``silu`` is ``x * sigmoid(x)``
relu6
clip            1        ``min(max(x, [min]), [max])``, gradient 1 on [min, max] (bounds included)
gelu            1        ``x * Phi(x)`` exact, or its tanh form when [approximate]
leaky_relu      1        ``x`` for x > 0, else [negative_slope] * x
log_softmax     1        ``x - logsumexp(x)`` along [axis]
pow             2        ``a ** b`` elementwise, numpy broadcasting
cast            1        ``x`` as [dtype]: float -> int truncates toward zero, -> bool is ``x != 0``
expand_dims     1        a size-1 axis inserted at [axis] (counted in the result)
squeeze         1        the size-1 [axes] removed
min             1        reduce [axes] (per-example, negative), [keepdims]
argmax          1        int32 index of the first maximum along [axis], [keepdims]
logsumexp       1        ``log(sum(exp(x)))`` over [axes], [keepdims], computed stably
cumsum          1        running sum along [axis]; [reverse]: from the end; [exclusive]: without x itself
gather          2        ``take(x, indices)`` along [axis] of ``x``; int32 indices in [0, n)
==============  =======  =============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from .dtypes import DTYPES
from .errors import RshopConfigError, RshopDTypeError, RshopShapeError
from .types import TensorType, dims_compatible

__all__ = [
    "Op",
    "OpDef",
    "OPS",
    "infer_type",
    "op_names",
    "ELEMENTWISE_BINARY",
    "ELEMENTWISE_UNARY",
    "COMPARE",
    "REDUCE",
    "LEAVES",
]


class Op:
    """The name of every op of the closed set, one constant each (``Op.MATMUL == "matmul"``).

    Plain strings, because that is what a node's ``op`` and the JSON format hold; code names an op
    through these constants so that a renamed or removed op fails at import, not at run time."""

    INPUT = "input"
    PARAM = "param"
    CONSTANT = "constant"
    MATMUL = "matmul"
    EINSUM = "einsum"
    ADD = "add"
    SUBTRACT = "subtract"
    MULTIPLY = "multiply"
    DIVIDE = "divide"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    NEGATIVE = "negative"
    ABS = "abs"
    SQUARE = "square"
    SQRT = "sqrt"
    EXP = "exp"
    LOG = "log"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    HARD_SIGMOID = "hard_sigmoid"
    RELU = "relu"
    SOFTPLUS = "softplus"
    SOFTSIGN = "softsign"
    ELU = "elu"
    SOFTMAX = "softmax"
    CONCAT = "concat"
    SPLIT = "split"
    SLICE = "slice"
    RESHAPE = "reshape"
    TRANSPOSE = "transpose"
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    GREATER = "greater"
    GREATER_EQUAL = "greater_equal"
    LESS = "less"
    LESS_EQUAL = "less_equal"
    EQUAL = "equal"
    WHERE = "where"
    DROPOUT = "dropout"
    CUSTOM = "custom"
    SIN = "sin"
    COS = "cos"
    ERF = "erf"
    SILU = "silu"
    SELU = "selu"
    RELU6 = "relu6"
    CLIP = "clip"
    GELU = "gelu"
    LEAKY_RELU = "leaky_relu"
    LOG_SOFTMAX = "log_softmax"
    POW = "pow"
    # non-float values and the shape / index ops of attention code (issue 12, items 5-6)
    CAST = "cast"
    EXPAND_DIMS = "expand_dims"
    SQUEEZE = "squeeze"
    MIN = "min"
    ARGMAX = "argmax"
    LOGSUMEXP = "logsumexp"
    CUMSUM = "cumsum"
    GATHER = "gather"


def op_names() -> tuple:
    """Every op name of :class:`Op`, in the order it declares them."""
    return tuple(v for k, v in vars(Op).items() if k.isupper())


ELEMENTWISE_BINARY = (Op.ADD, Op.SUBTRACT, Op.MULTIPLY, Op.DIVIDE, Op.MAXIMUM, Op.MINIMUM)
ELEMENTWISE_UNARY = (
    Op.NEGATIVE,
    Op.ABS,
    Op.SQUARE,
    Op.SQRT,
    Op.EXP,
    Op.LOG,
    Op.TANH,
    Op.SIGMOID,
    Op.HARD_SIGMOID,
    Op.RELU,
    Op.SOFTPLUS,
    Op.SOFTSIGN,
    Op.ELU,
    Op.SIN,
    Op.COS,
    Op.ERF,
    Op.SILU,
    Op.SELU,
    Op.RELU6,
)
COMPARE = (Op.GREATER, Op.GREATER_EQUAL, Op.LESS, Op.LESS_EQUAL, Op.EQUAL)
REDUCE = (Op.SUM, Op.MEAN, Op.MAX)
LEAVES = (Op.INPUT, Op.PARAM, Op.CONSTANT)  # typed where they are created; no inputs


@dataclass(frozen=True)
class OpDef:
    name: str
    arity: tuple  # (min, max); max None = any
    infer: Callable[[str, list[TensorType], dict], tuple[TensorType, dict]]  # -> (type, normalized attrs)


def _fail(
    where: str, expected: str, received: str, fix: str | None = None, cls: type[Exception] = RshopShapeError
) -> NoReturn:
    msg = f"{where}: expected {expected}, received {received}."
    if fix:
        msg += f" {fix}"
    raise cls(msg)


def _same_dtype(where: str, types: list[TensorType]) -> str:
    dts = {t.dtype for t in types}
    if len(dts) > 1:
        _fail(
            where,
            "operands of one dtype",
            " and ".join(t.describe() for t in types),
            "rshop never casts silently: make both operands the same dtype.",
            RshopDTypeError,
        )
    return types[0].dtype


def _require_float(where: str, t: TensorType) -> None:
    if t.dtype not in ("float32", "float64"):
        _fail(where, "a floating operand", t.describe(), cls=RshopDTypeError)


def _norm_axis(where: str, axis: object, rank: int) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
        _fail(
            where,
            f"an axis in [{-rank}, {rank}) of a rank-{rank} per-example value",
            repr(axis),
            "Axes count per example: the batch axis is implicit.",
            RshopConfigError,
        )
    return axis - rank if axis >= 0 else axis


def _broadcast(where: str, types: list[TensorType]) -> tuple[tuple, bool]:
    """Broadcast per-example shapes with numpy's rules (shapes aligned on their last axis). The batch
    axis is not one of them: engines put a batched operand of a lower rank on the result's rank
    (``x[:, None, ...]``, see ``rshop_backends.codegen``) before the numpy broadcasting they do."""
    rank = max(t.rank for t in types)
    out = []
    for i in range(rank):
        dim = 1
        for t in types:
            j = i - (rank - t.rank)
            if j < 0:
                continue
            d = t.shape[j]
            if d == 1:
                continue
            if dim == 1:
                dim = d
            elif d is None or dim is None:
                dim = d if dim is None else dim
            elif d != dim:
                _fail(where, "shapes that broadcast", " and ".join(t.describe() for t in types))
        out.append(dim)
    return tuple(out), any(t.batched for t in types)


def _elementwise_binary(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    dt = _same_dtype(where, types)
    if dt == "bool":
        _fail(
            where,
            "numeric operands (float32, float64 or int32)",
            " and ".join(t.describe() for t in types),
            "Arithmetic on bool is not defined alike by every framework: choose with where(cond, a, b), or "
            "cast the mask first (cast(mask, 'float32')).",
            RshopDTypeError,
        )
    shape, batched = _broadcast(where, types)
    return TensorType(shape, dt, batched), {}


def _float_binary(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    """A binary op defined on floats only (``divide``: int division differs between frameworks)."""
    for t in types:
        if t.dtype not in ("float32", "float64"):
            _fail(
                where,
                "floating operands",
                " and ".join(x.describe() for x in types),
                "Cast integer operands first: cast(x, 'float32').",
                RshopDTypeError,
            )
    return _elementwise_binary(where, types, attrs)


def _compare(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    _same_dtype(where, types)
    shape, batched = _broadcast(where, types)
    return TensorType(shape, "bool", batched), {}


def _unary(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    _require_float(where, types[0])
    return types[0], {}


def _softmax(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    _require_float(where, t)
    if t.rank == 0:
        _fail(where, "a value of per-example rank >= 1", t.describe())
    return t, {"axis": _norm_axis(where, attrs.get("axis", -1), t.rank)}


def _matmul(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    a, w = types
    dt = _same_dtype(where, types)
    if w.batched or w.rank != 2:
        _fail(
            where,
            "a right operand that is an unbatched 2-D matrix (a parameter)",
            w.describe(),
            "For products between two batched values use einsum.",
        )
    if a.rank < 1 or not dims_compatible(a.shape[-1], w.shape[0]):
        _fail(where, f"a left operand whose last axis is {w.shape[0]}", a.describe())
    return TensorType(a.shape[:-1] + (w.shape[1],), dt, a.batched), {}


_SUBSCRIPTS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")  # what every engine accepts


def _einsum(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    eq = attrs.get("equation")
    if not isinstance(eq, str) or "->" not in eq or "." in eq:
        _fail(where, "an explicit einsum equation 'ab,bc->ac' without '...'", repr(eq), cls=RshopConfigError)
    if eq.count("->") != 1 or not all(c in _SUBSCRIPTS or c in ",-> " for c in eq):
        _fail(where, "an einsum equation of ASCII letters, ',' and one '->'", repr(eq), cls=RshopConfigError)
    lhs, rhs = eq.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) != len(types):
        _fail(where, f"{len(terms)} operands for {eq!r}", f"{len(types)}", cls=RshopConfigError)
    sizes: dict = {}
    for term, t in zip(terms, types):
        if not set(term) <= _SUBSCRIPTS or len(term) != t.rank or len(set(term)) != len(term):
            _fail(
                where,
                f"operand subscripts {term!r} to name each of its {t.rank} axes once",
                t.describe(),
                cls=RshopConfigError,
            )
        for c, d in zip(term, t.shape):
            if c in sizes and not dims_compatible(sizes[c], d):
                _fail(where, f"axis {c!r} of size {sizes[c]}", f"{d} in {t.describe()}")
            if sizes.get(c) is None:
                sizes[c] = d
    if any(c not in sizes for c in rhs) or len(set(rhs)) != len(rhs):
        _fail(where, "output subscripts taken from the operands", repr(rhs), cls=RshopConfigError)
    dt = _same_dtype(where, types)
    return TensorType(tuple(sizes[c] for c in rhs), dt, any(t.batched for t in types)), {"equation": f"{lhs}->{rhs}"}


def _concat(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    dt = _same_dtype(where, types)
    r = types[0].rank
    if any(t.rank != r for t in types) or len({t.batched for t in types}) != 1:
        _fail(where, "operands of one rank, all batched or all unbatched", ", ".join(t.describe() for t in types))
    axis = _norm_axis(where, attrs.get("axis", -1), r)
    shape = []
    for i in range(r):
        ds = [t.shape[i] for t in types]
        if i == r + axis:
            shape.append(None if None in ds else sum(ds))
        else:
            known = {d for d in ds if d is not None}
            if len(known) > 1:
                _fail(where, f"equal sizes off the concat axis (axis {i})", ", ".join(t.describe() for t in types))
            shape.append(known.pop() if known else None)
    return TensorType(tuple(shape), dt, types[0].batched), {"axis": axis}


def _split(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    axis = _norm_axis(where, attrs.get("axis", -1), t.rank)
    sizes, index = attrs.get("sizes"), attrs.get("index")
    if (
        not isinstance(sizes, list)
        or not sizes
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
    ):
        _fail(where, "sizes as a list of positive ints", repr(sizes), cls=RshopConfigError)
    if t.shape[axis] is not None and sum(sizes) != t.shape[axis]:
        _fail(where, f"sizes adding up to {t.shape[axis]}", f"{sizes} (sum {sum(sizes)})")
    if not isinstance(index, int) or not 0 <= index < len(sizes):
        _fail(where, f"an index in [0, {len(sizes)})", repr(index), cls=RshopConfigError)
    shape = list(t.shape)
    shape[axis] = sizes[index]
    return TensorType(tuple(shape), t.dtype, t.batched), {"sizes": sizes, "axis": axis, "index": index}


def _slice(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    axis = _norm_axis(where, attrs.get("axis", -1), t.rank)
    begin, end = attrs.get("begin", 0), attrs.get("end")
    n = t.shape[axis]
    ok = isinstance(begin, int) and begin >= 0 and isinstance(end, int) and end > begin
    if not ok or (n is not None and end > n):
        _fail(where, f"0 <= begin < end <= {n}", f"begin={begin!r}, end={end!r}", cls=RshopConfigError)
    shape = list(t.shape)
    shape[axis] = end - begin
    return TensorType(tuple(shape), t.dtype, t.batched), {"axis": axis, "begin": begin, "end": end}


def _reshape(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    new = attrs.get("shape")
    if isinstance(new, list):
        new = [-1 if d is None else d for d in new]  # None: the one unknown dimension, as -1
    if (
        not isinstance(new, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1) for d in new)
        or new.count(-1) > 1
    ):
        _fail(where, "a shape of positive ints with at most one -1 (or None)", repr(new), cls=RshopConfigError)
    total = 1
    for d in t.shape:
        total *= 1 if d is None else d
    known = 1
    for d in new:
        if d != -1:
            known *= d
    if None in t.shape:  # the unknown size goes to the one -1, whatever it is at call time
        if -1 not in new or total % known:
            _fail(
                where,
                f"a shape with one -1 (or None) whose other dimensions multiply to a divisor of {total} (the "
                f"known part of {t.describe()})",
                repr(new),
                "A value with an unknown dimension keeps it: give it the -1.",
            )
        return TensorType(tuple(None if d == -1 else d for d in new), t.dtype, t.batched), {"shape": new}
    if (-1 in new and total % known) or (-1 not in new and known != total):
        _fail(where, f"a shape with {total} elements per example", repr(new))
    out = tuple(total // known if d == -1 else d for d in new)
    return TensorType(out, t.dtype, t.batched), {"shape": list(out)}


def _transpose(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    perm = attrs.get("perm")
    if not isinstance(perm, list) or sorted(perm) != list(range(t.rank)):
        _fail(where, f"a permutation of range({t.rank})", repr(perm), cls=RshopConfigError)
    return TensorType(tuple(t.shape[p] for p in perm), t.dtype, t.batched), {"perm": perm}


def _reduce(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    axes = attrs.get("axes")
    if axes is None:
        axes = list(range(t.rank))
    if isinstance(axes, int):
        axes = [axes]
    axes = sorted({_norm_axis(where, a, t.rank) for a in axes})
    keep = bool(attrs.get("keepdims", False))
    shape = (
        [1 if (i - t.rank) in axes else d for i, d in enumerate(t.shape)]
        if keep
        else [d for i, d in enumerate(t.shape) if (i - t.rank) not in axes]
    )
    return TensorType(tuple(shape), t.dtype, t.batched), {"axes": axes, "keepdims": keep}


def _where(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    c, a, b = types
    if c.dtype != "bool":
        _fail(where, "a bool condition", c.describe(), cls=RshopDTypeError)
    dt = _same_dtype(where, [a, b])
    shape, batched = _broadcast(where, types)
    return TensorType(shape, dt, batched), {}


def _dropout(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    _require_float(where, t)
    rate = attrs.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        _fail(where, "a dropout rate in [0, 1)", repr(rate), cls=RshopConfigError)
    if not t.batched or None in t.shape:
        _fail(where, "a batched value with a known per-example shape", t.describe())
    return t, {"rate": float(rate)}


def _custom(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    from .custom_registry import infer_custom  # imported when used: the registry is optional to the op table

    return infer_custom(where, types, attrs)


def _number(where: str, attrs: dict, key: str, default: object = None) -> float:
    """A finite JSON number attribute (an int is taken as its float)."""
    v = attrs.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _fail(where, f"{key} as a finite number", repr(v), cls=RshopConfigError)
    return float(v)


def _clip(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    _require_float(where, types[0])
    lo, hi = _number(where, attrs, "min"), _number(where, attrs, "max")
    if lo > hi:
        _fail(where, "min <= max", f"min={lo!r}, max={hi!r}", "Swap the bounds.", RshopConfigError)
    return types[0], {"min": lo, "max": hi}


def _gelu(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    _require_float(where, types[0])
    approximate = attrs.get("approximate", False)
    if not isinstance(approximate, bool):
        _fail(
            where,
            "approximate as a bool",
            repr(approximate),
            "Pass approximate=True for the tanh form (torch's approximate='tanh').",
            RshopConfigError,
        )
    return types[0], {"approximate": approximate}


def _leaky_relu(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    _require_float(where, types[0])
    return types[0], {"negative_slope": _number(where, attrs, "negative_slope", 0.2)}


def _pow(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    for t in types:
        _require_float(where, t)
    return _elementwise_binary(where, types, attrs)


def _leaf(where: str, types: list[TensorType], attrs: dict) -> NoReturn:
    # leaves carry their type on the node itself
    raise AssertionError("leaf ops are typed where they are created")


OPS: dict = {}
for _n in LEAVES:
    OPS[_n] = OpDef(_n, (0, 0), _leaf)
for _n in ELEMENTWISE_BINARY:
    OPS[_n] = OpDef(_n, (2, 2), _elementwise_binary)
for _n in COMPARE:
    OPS[_n] = OpDef(_n, (2, 2), _compare)
for _n in ELEMENTWISE_UNARY:
    OPS[_n] = OpDef(_n, (1, 1), _unary)
for _n in REDUCE:
    OPS[_n] = OpDef(_n, (1, 1), _reduce)
OPS.update(
    {
        Op.SOFTMAX: OpDef(Op.SOFTMAX, (1, 1), _softmax),
        Op.MATMUL: OpDef(Op.MATMUL, (2, 2), _matmul),
        Op.EINSUM: OpDef(Op.EINSUM, (1, None), _einsum),
        Op.CONCAT: OpDef(Op.CONCAT, (1, None), _concat),
        Op.SPLIT: OpDef(Op.SPLIT, (1, 1), _split),
        Op.SLICE: OpDef(Op.SLICE, (1, 1), _slice),
        Op.RESHAPE: OpDef(Op.RESHAPE, (1, 1), _reshape),
        Op.TRANSPOSE: OpDef(Op.TRANSPOSE, (1, 1), _transpose),
        Op.WHERE: OpDef(Op.WHERE, (3, 3), _where),
        Op.DROPOUT: OpDef(Op.DROPOUT, (1, 1), _dropout),
        Op.CUSTOM: OpDef(Op.CUSTOM, (1, None), _custom),
        Op.CLIP: OpDef(Op.CLIP, (1, 1), _clip),
        Op.GELU: OpDef(Op.GELU, (1, 1), _gelu),
        Op.LEAKY_RELU: OpDef(Op.LEAKY_RELU, (1, 1), _leaky_relu),
        Op.LOG_SOFTMAX: OpDef(Op.LOG_SOFTMAX, (1, 1), _softmax),
        Op.POW: OpDef(Op.POW, (2, 2), _pow),
    }
)
OPS[Op.DIVIDE] = OpDef(Op.DIVIDE, (2, 2), _float_binary)


# -- non-float values, cast, and the shape / index ops of attention code (issue 12, items 5-6) ----


def _flag(where: str, attrs: dict, key: str) -> bool:
    value = attrs.get(key, False)
    if not isinstance(value, bool):
        _fail(where, f"{key} as True or False", repr(value), cls=RshopConfigError)
    return value


def _cast(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    dtype = attrs.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        _fail(where, f"a dtype in {list(DTYPES)}", repr(dtype), cls=RshopDTypeError)
    return TensorType(t.shape, dtype, t.batched), {"dtype": dtype}


def _expand_dims(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    axis = _norm_axis(where, attrs.get("axis", -1), t.rank + 1)  # an axis of the result
    shape = list(t.shape)
    shape.insert(t.rank + 1 + axis, 1)
    return TensorType(tuple(shape), t.dtype, t.batched), {"axis": axis}


def _squeeze(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    axes = attrs.get("axes")
    if isinstance(axes, int):
        axes = [axes]
    if not isinstance(axes, list) or not axes:
        _fail(
            where,
            "the axes to remove (an int or a non-empty list)",
            repr(axes),
            "Name them: an axis of unknown size at build time must not vanish at call time.",
            RshopConfigError,
        )
    norm = sorted({_norm_axis(where, a, t.rank) for a in axes})
    for a in norm:
        if t.shape[a] != 1:
            _fail(where, f"axis {a} of size 1", t.describe())
    shape = tuple(d for i, d in enumerate(t.shape) if i - t.rank not in norm)
    return TensorType(shape, t.dtype, t.batched), {"axes": norm}


def _numeric(where: str, t: TensorType) -> None:
    if t.dtype == "bool":
        _fail(where, "a numeric operand (float32, float64 or int32)", t.describe(), "Cast it first.", RshopDTypeError)


def _min(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    _numeric(where, types[0])
    return _reduce(where, types, attrs)


def _logsumexp(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    _require_float(where, types[0])
    return _reduce(where, types, attrs)


def _argmax(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    _numeric(where, t)
    if t.rank == 0:
        _fail(where, "a value of per-example rank >= 1", t.describe())
    axis = _norm_axis(where, attrs.get("axis", -1), t.rank)
    keep = _flag(where, attrs, "keepdims")
    shape = [1 if i - t.rank == axis else d for i, d in enumerate(t.shape)]
    if not keep:
        del shape[t.rank + axis]
    return TensorType(tuple(shape), "int32", t.batched), {"axis": axis, "keepdims": keep}


def _cumsum(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    _numeric(where, t)
    if t.rank == 0:
        _fail(where, "a value of per-example rank >= 1", t.describe())
    axis = _norm_axis(where, attrs.get("axis", -1), t.rank)
    reverse, exclusive = _flag(where, attrs, "reverse"), _flag(where, attrs, "exclusive")
    return t, {"axis": axis, "reverse": reverse, "exclusive": exclusive}


def _gather(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    x, idx = types
    if idx.dtype != "int32":
        _fail(
            where,
            "int32 indices",
            idx.describe(),
            "Make them int32: argmax gives int32, cast(x, 'int32') converts floats.",
            RshopDTypeError,
        )
    if x.rank == 0:
        _fail(where, "a value of per-example rank >= 1 to gather from", x.describe())
    axis = _norm_axis(where, attrs.get("axis", 0), x.rank)
    pos = x.rank + axis
    shape = x.shape[:pos] + idx.shape + x.shape[pos + 1 :]
    return TensorType(shape, x.dtype, x.batched or idx.batched), {"axis": axis}


_DTYPE_SHAPE_RULES: dict[str, OpDef] = {
    Op.CAST: OpDef(Op.CAST, (1, 1), _cast),
    Op.EXPAND_DIMS: OpDef(Op.EXPAND_DIMS, (1, 1), _expand_dims),
    Op.SQUEEZE: OpDef(Op.SQUEEZE, (1, 1), _squeeze),
    Op.MIN: OpDef(Op.MIN, (1, 1), _min),
    Op.ARGMAX: OpDef(Op.ARGMAX, (1, 1), _argmax),
    Op.LOGSUMEXP: OpDef(Op.LOGSUMEXP, (1, 1), _logsumexp),
    Op.CUMSUM: OpDef(Op.CUMSUM, (1, 1), _cumsum),
    Op.GATHER: OpDef(Op.GATHER, (2, 2), _gather),
}

OPS.update(_DTYPE_SHAPE_RULES)


def infer_type(op: str, types: list, attrs: dict, where: str) -> tuple[TensorType, dict]:
    """Check an op application and return ``(result type, normalized attrs)``."""
    if op not in OPS:
        raise RshopConfigError(f"{where}: expected an op of the closed set {sorted(OPS)}, received {op!r}.")
    lo, hi = OPS[op].arity
    if len(types) < lo or (hi is not None and len(types) > hi):
        want = f"{lo}" if lo == hi else f"{lo} or more"
        raise RshopConfigError(f"{where}: expected {want} inputs for op {op!r}, received {len(types)}.")
    return OPS[op].infer(where, list(types), dict(attrs))
