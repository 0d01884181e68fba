"""Generate the Python source of one step from a step graph.

Every engine lowers the step the same way: one straight-line Python function whose
lines are the graph's nodes, each an expression in the engine's own API (its
``ops.EMITTERS``: ``emit(node, arg_names, arg_types) -> expression``). No per-op dispatch
happens at run time. The generated function is::

    def step(P, x0, states, consts):
        s0, s1 = states
        v3 = P['lstm_cell/kernel']
        v4 = (x0 @ v3)
        ...
        return (v22,), (v22, v20)

``P`` maps qualified parameter names to engine arrays; there is one ``x<i>`` per scanned
sequence (none when decoding). The ``split`` nodes that cut one
value the same way (one per piece in the IR) become ONE line that unpacks every piece,
``v10, v12, v15, v17 = <split emitter>``: one split op, whose gradient is one concat. The source is kept on the
function (``step.__rshop_source__``) for debugging and for ``rshop info``-style reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from types import CodeType
from typing import Any, Protocol

import numpy as np

from rshop_core.dtypes import FLOAT_DTYPES
from rshop_core.errors import RshopNotImplementedError
from rshop_core.graph import Node, StepGraph
from rshop_core.ops import COMPARE, ELEMENTWISE_BINARY, Op
from rshop_core.types import TensorType

from . import custom_ops

# an emitter: ``emit(node, arg_names, arg_types) -> expression``
Emitter = Callable[[Node, list[str], list[TensorType]], str]


class GeneratedStep(Protocol):
    """A generated step function: ``step(P, x0, ..., states, consts) -> (outputs, new states)``,
    its source kept as ``__rshop_source__`` (a plain Python function: engines may rebind its globals)."""

    __rshop_source__: str
    __name__: str
    __code__: CodeType
    __globals__: dict[str, Any]

    def __call__(self, P: dict[str, Any], *args: Any) -> tuple[Sequence[Any], Sequence[Any]]: ...


def index(arg: str, axis: int, start: int, stop: int) -> str:
    """``arg[..., start:stop, :, ...]`` taking ``start:stop`` on the negative ``axis``."""
    return f"{arg}[..., {start}:{stop}{', :' * (-axis - 1)}]"


def _split_all(node: Node, a: list[str], t: list[TensorType]) -> str:
    """All pieces of a split as a tuple of slices (engines may use one native split op)."""
    sizes, axis = node.attrs["sizes"], node.attrs["axis"]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return "(" + "".join(f"{index(a[0], axis, b, b + n)}, " for b, n in zip(starts, sizes)) + ")"


def split_cuts(node: Node) -> list[int]:
    """The cut positions of a split (numpy / jax ``split`` take these, not sizes)."""
    sizes = node.attrs["sizes"]
    return [sum(sizes[: i + 1]) for i in range(len(sizes) - 1)]


# Ops spelled the same on every engine: Python operators and basic indexing.
COMMON: dict[str, Emitter] = {
    Op.ADD: lambda n, a, t: f"({a[0]} + {a[1]})",
    Op.SUBTRACT: lambda n, a, t: f"({a[0]} - {a[1]})",
    Op.MULTIPLY: lambda n, a, t: f"({a[0]} * {a[1]})",
    Op.DIVIDE: lambda n, a, t: f"({a[0]} / {a[1]})",
    Op.NEGATIVE: lambda n, a, t: f"(-{a[0]})",
    Op.SQUARE: lambda n, a, t: f"({a[0]} * {a[0]})",
    Op.GREATER: lambda n, a, t: f"({a[0]} > {a[1]})",
    Op.GREATER_EQUAL: lambda n, a, t: f"({a[0]} >= {a[1]})",
    Op.LESS: lambda n, a, t: f"({a[0]} < {a[1]})",
    Op.LESS_EQUAL: lambda n, a, t: f"({a[0]} <= {a[1]})",
    Op.EQUAL: lambda n, a, t: f"({a[0]} == {a[1]})",
    Op.MATMUL: lambda n, a, t: f"({a[0]} @ {a[1]})",
    Op.SPLIT: _split_all,
    Op.SLICE: lambda n, a, t: index(a[0], n.attrs["axis"], n.attrs["begin"], n.attrs["end"]),
    Op.CUSTOM: lambda n, a, t: f"_op{n.id}({', '.join(a)})",  # bound by generate (rshop_backends.custom_ops)
}


def batch_einsum(equation: str, batched: list) -> str:
    """Prefix a fresh batch letter to the batched operands (and the output) of ``equation``."""
    lhs, rhs = equation.split("->")
    letter = next(c for c in "zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJIHGFEDCBA" if c not in equation)
    terms = [letter + t if b else t for t, b in zip(lhs.split(","), batched)]
    return ",".join(terms) + "->" + (letter + rhs if any(batched) else rhs)


def reshape_shape(node: Node, t: list[TensorType]) -> tuple[int, ...]:
    """The engine-level target shape of a reshape: the batch axis kept as -1 (see :func:`reshape_target`
    for a target with its own -1)."""
    shape = tuple(node.attrs["shape"])
    return (-1,) + shape if t[0].batched else shape


def reshape_target(node: Node, t: list[TensorType], batch: str) -> str:
    """The engine-level target shape of a reshape as source text: the batch axis is -1, or the expression
    ``batch`` (the argument's batch size) when the per-example shape has its own -1 (an unknown axis)."""
    shape = [str(d) for d in node.attrs["shape"]]
    if t[0].batched:
        shape.insert(0, batch if "-1" in shape else "-1")
    return "(" + "".join(f"{d}, " for d in shape) + ")"


def transpose_perm(node: Node, t: list[TensorType]) -> tuple[int, ...]:
    """The engine-level permutation of a transpose: the batch axis stays first."""
    perm = tuple(node.attrs["perm"])
    return (0,) + tuple(p + 1 for p in perm) if t[0].batched else perm


def einsum_equation(node: Node, t: list[TensorType]) -> str:
    """A batched einsum's equation, a batch letter on the batched operands."""
    return batch_einsum(node.attrs["equation"], [x.batched for x in t])


_COMMUTATIVE = frozenset({"add", "multiply", "maximum", "minimum"})


def _fusions(
    graph: StepGraph, rules: dict[tuple[str, str], Any]
) -> tuple[dict[int, tuple[str, int, tuple[int, ...]]], set[int]]:
    """Where an engine's fused op replaces two nodes: ``(outer id -> expression builder, absorbed ids)``.

    ``rules[(outer op, inner op)](types) -> template or None``, ``types`` being the types of
    the other value, of the inner node's arguments, then of the outer node: the outer node
    (``add``, ``subtract``) reads the inner node (``matmul``, ``multiply``) and one other value; the
    inner node must be read by nothing else, and is the outer node's right operand unless that op
    commutes. The template's ``{o}`` is the other value and ``{a}``,
    ``{b}`` the inner node's arguments.
    """
    reads: dict = {}
    for n in graph.nodes:
        for i in n.inputs:
            reads[i] = reads.get(i, 0) + 1
    for i in list(graph.outputs) + list(graph.final_states):
        reads[i] = reads.get(i, 0) + 2
    out: dict[int, tuple[str, int, tuple[int, ...]]] = {}
    absorbed: set[int] = set()
    for n in graph.nodes:
        if len(n.inputs) != 2 or n.inputs[0] == n.inputs[1]:
            continue
        for pos in (1, 0):  # the inner node on the right first: ``x + h @ U`` -> addmm(x, h, U)
            if pos == 0 and n.op not in _COMMUTATIVE:  # ``a * b - o`` is not ``o - a * b``
                continue
            inner = graph.nodes[n.inputs[pos]]
            rule = rules.get((n.op, inner.op))
            if rule is None or reads.get(inner.id) != 1 or inner.id in absorbed or inner.id in out:
                continue
            other = graph.nodes[n.inputs[1 - pos]]
            types = [other.type] + [graph.nodes[i].type for i in inner.inputs] + [n.type]
            template = rule(types)
            if template is not None:
                out[n.id] = (template, n.inputs[1 - pos], inner.inputs)
                absorbed.add(inner.id)
                break
    return out, absorbed


def generate(
    graph: StepGraph,
    emitters: dict[str, Callable[..., str]],
    namespace: dict[str, Any],
    make_constant: Callable[[np.ndarray], Any],
    dtype: str,
    engine: str,
    fusions: dict | None = None,
) -> GeneratedStep:
    """Compile ``graph``'s step for an engine; returns the function.

    ``emitters[op](node, arg_names, arg_types) -> expression``; ``make_constant(np_array)`` turns a
    literal into an engine array; float values compute in ``dtype``. ``fusions``: the engine's
    two-node fused ops (see :func:`_fusions`), e.g. torch's ``addmm`` and ``addcmul``.
    """
    ns = dict(namespace)
    table = {**COMMON, **emitters}
    fused, absorbed = _fusions(graph, fusions or {})
    pieces = _split_groups(graph)
    names: dict = {}  # node id -> the Python name holding its value
    body = []
    for node in graph.nodes:
        if node.op == Op.INPUT:
            role, i = node.attrs["role"], node.attrs["index"]
            names[node.id] = {"x": f"x{i}", "state": f"s{i}", "constant": f"k{i}"}[role]
            continue
        if node.id in names:  # a split piece already unpacked with its siblings
            continue
        if node.op == Op.SPLIT and pieces[_split_key(node)][node.attrs["index"]] != node.id:
            # the same piece of the same value cut again (e.g. a cell called twice splits its bias twice)
            names[node.id] = names[pieces[_split_key(node)][node.attrs["index"]]]
            continue
        names[node.id] = f"v{node.id}"
        if node.op == Op.SPLIT:
            group = pieces[_split_key(node)]
            names.update({i: f"v{i}" for i in group.values()})
            targets = ", ".join(f"v{group[i]}" if i in group else "_" for i in range(len(node.attrs["sizes"])))
            t = [graph.nodes[node.inputs[0]].type]
            body.append(f"{targets}, = {table[Op.SPLIT](node, [names[node.inputs[0]]], t)}")
        elif node.id in absorbed:  # emitted inside the fused op of its only reader
            continue
        elif node.op == Op.CONSTANT:
            ns[f"_c{node.id}"] = make_constant(_constant_value(node, dtype))
            names[node.id] = f"_c{node.id}"
        else:
            if node.op == Op.CUSTOM:
                ns[f"_op{node.id}"] = custom_ops.bind(node, engine)
            body.append(f"v{node.id} = {_expression(graph, node, names, table, fused, engine, dtype)}")
    src = _source(graph, names, body)
    exec(compile(src, f"<rshop step {engine}>", "exec"), ns)  # our own generated source, never text from a file
    fn: GeneratedStep = ns["step"]
    fn.__rshop_source__ = src
    return fn


def _split_key(node: Node) -> tuple[int, tuple[int, ...], int]:
    return node.inputs[0], tuple(node.attrs["sizes"]), node.attrs["axis"]


def _split_groups(graph: StepGraph) -> dict[tuple[int, tuple[int, ...], int], dict[int, int]]:
    """``(input, sizes, axis) -> {index: node id}``: the split nodes that cut one value the same way,
    unpacked by one statement."""
    pieces: dict[tuple[int, tuple[int, ...], int], dict[int, int]] = {}
    for node in graph.nodes:
        if node.op == Op.SPLIT:
            pieces.setdefault(_split_key(node), {}).setdefault(node.attrs["index"], node.id)  # the first such piece
    return pieces


def _constant_value(node: Node, dtype: str) -> np.ndarray:
    """A constant node's value as numpy, floats in the computing ``dtype``."""
    value = np.asarray(node.attrs["value"], dtype=node.attrs["dtype"])
    return value.astype(dtype) if value.dtype.kind == "f" else value


def _expression(
    graph: StepGraph,
    node: Node,
    names: dict[int, str],
    table: dict[str, Emitter],
    fused: dict[int, tuple[str, int, tuple[int, ...]]],
    engine: str,
    dtype: str,
) -> str:
    """The Python expression of one node (not an input, split or constant)."""
    if node.id in fused:
        template, other, inner = fused[node.id]
        a, b = (names[i] for i in inner)
        return template.format(o=names[other], a=a, b=b)
    if node.op == Op.PARAM:
        return f"P[{node.attrs['name']!r}]"
    if node.op == Op.CAST and node.attrs["dtype"] in FLOAT_DTYPES:
        node = replace(node, attrs={**node.attrs, "dtype": dtype})  # floats compute in the lowering's dtype
    emit = table.get(node.op)
    if emit is None:
        raise RshopNotImplementedError(
            f"engine {engine!r}: expected an implementation of op {node.op!r} (node %{node.id} "
            f"{node.name!r}), received none. Report it, or use another engine."
        )
    args, types = [names[i] for i in node.inputs], [graph.nodes[i].type for i in node.inputs]
    if node.op in BROADCASTING and node.type.batched:  # numpy broadcasting per example, the batch axis apart
        args = [lift(a, x.rank, node.type.rank) if x.batched else a for a, x in zip(args, types)]
    return emit(node, args, types)


BROADCASTING = frozenset((*ELEMENTWISE_BINARY, *COMPARE, Op.WHERE))
"""The ops whose operands broadcast per example (numpy's rules on the per-example shapes)."""


def lift(arg: str, rank: int, to: int) -> str:
    """A batched ``arg`` of per-example ``rank`` given the result's per-example rank ``to``: size-1 axes
    after its batch axis (``a[:, None, None]``, which every engine indexes alike), so that broadcasting
    lines up the per-example axes and not the batch axis with a data axis."""
    return arg if rank >= to else f"{arg}[:{', None' * (to - rank)}]"


def _source(graph: StepGraph, names: dict[int, str], body: list[str]) -> str:
    """The step function's source: ``def step(P, x0, ..., states, consts)`` around ``body``."""
    ns_states = ", ".join(f"s{i}" for i in range(len(graph.states)))
    ns_consts = ", ".join(f"k{i}" for i in range(len(graph.constants)))
    xs = "".join(f"x{i}, " for i in range(len(graph.x)))  # one slice per scanned sequence
    head = [f"def step(P, {xs}states, consts):"]
    if graph.states:
        head.append(f"    {ns_states}, = states")
    if graph.constants:
        head.append(f"    {ns_consts}, = consts")
    outs = "".join(f"{names[i]}, " for i in graph.outputs)
    news = "".join(f"{names[i]}, " for i in graph.final_states)
    return "\n".join(head + [f"    {line}" for line in body] + [f"    return ({outs}), ({news})"]) + "\n"


def operations(source: str) -> int:
    """The engine operations a generated step runs per time step: its lines that compute something
    (parameter lookups, unpacking the arguments and the return are not counted)."""
    body = source.splitlines()[1:]
    return sum(
        1
        for line in body
        if " = " in line and " = P[" not in line and not line.rstrip().endswith(("= states", "= consts"))
    )
