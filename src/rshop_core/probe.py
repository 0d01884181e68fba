"""Finding the first non-finite value of a call: the probe plan and the search, engine-free.

``layer(x, ..., check_numerics=True)`` runs, besides the call itself, a *probe*: the model's
raw execution plan (no passes, no fused kernel) whose outputs also include every float value
the step computes, one per node of ``model.graph``, returned for every step. The engine runs it
with its own generated loop, so the numbers are the engine's; :mod:`rshop_backends.numerics`
brings them to numpy and this module finds the first (step, node) holding a NaN or an Inf and
words the :class:`~rshop_core.errors.RshopNumericsError`.

"First" is the earliest step in processing order, and at that step the first node in the
graph's topological order. Every value that node reads at that step is then finite (earlier
nodes of the step, the states carried from the step before, the checked arguments), so the
node's op itself produced the bad value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import functional as F
from .errors import format_message
from .graph import StepGraph
from .ops import LEAVES
from .options import LoopOptions
from .symbolic import Tensor

if TYPE_CHECKING:
    from .execution import Plan
    from .lowerable import Lowerable
    from .model import RecurrentModel

__all__ = [
    "probe_plan",
    "probe_outputs",
    "first_bad",
    "first_bad_in",
    "kind_of",
    "node_message",
    "argument_message",
    "result_message",
]


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


def probe_outputs(graph: StepGraph, env: dict[int, Tensor], anchor: Tensor) -> tuple[tuple[Any, ...], list[Tensor]]:
    """``(node ids, tensors)``: every float value ``graph``'s step computes, as batched outputs.

    The ids are ints (``tuple[Any, ...]`` only while ``execution._build`` starts its ``probed`` as ``()``).
    ``env`` maps node ids of ``graph`` to their replayed tensors; ``anchor`` is a batched tensor
    of every step (the input x). A loop-invariant value (computed from parameters and unbatched
    constants only) is made batched by ``where(c, v, v)``, which copies ``v`` whatever ``c`` holds.
    """
    ids: list[int] = []
    extra: list[Tensor] = []
    cond: Tensor | None = None
    for n in graph.nodes:
        if n.op in LEAVES or not _is_float(n.type.dtype):
            continue
        t = env[n.id]
        if not t.type.batched:
            if cond is None:
                s = F.sum(anchor)
                cond = F.equal(s, s)
            c = F.reshape(cond, [1] * t.type.rank) if t.type.rank else cond
            t = F.where(c, t, t, name=f"probe_{n.id}")
        ids.append(n.id)
        extra.append(t)
    return tuple(ids), extra


def probe_plan(model: RecurrentModel, training: bool, teacher: bool, masked: bool) -> Plan:
    """The (cached) probe plan of ``model`` for a call with these flags: the raw plan's inputs and
    outputs, then one output per float node (``plan.probed``), every step returned."""
    from .execution import _build

    flags = (bool(training), bool(teacher), bool(masked))
    cache: dict[tuple[bool, bool, bool], Plan] = model.__dict__.setdefault("_probes", {})
    if flags not in cache:
        plan = _build(model, *flags, probe=True)
        opts = replace(plan.options, return_sequences=True, remat=False)
        cache[flags] = replace(plan, key=plan.key + ("probe",), options=opts)
    return cache[flags]


def kind_of(values: np.ndarray) -> str:
    """``"NaN"``, ``"+Inf"`` or ``"-Inf"``: the first non-finite entry of ``values``."""
    flat = np.asarray(values).reshape(-1)
    v = flat[np.flatnonzero(~np.isfinite(flat))[0]]
    return "NaN" if np.isnan(v) else "+Inf" if v > 0 else "-Inf"


def first_bad_in(a: np.ndarray, batch_axis: bool = True) -> tuple[int | None, str] | None:
    """``(first batch element, kind)`` of a non-finite value in ``a``, or None when all are finite.
    Without ``batch_axis`` the element is None."""
    a = np.asarray(a)
    if not _is_float(a.dtype.name) or np.isfinite(a).all():
        return None
    if not batch_axis or a.ndim == 0:
        return None, kind_of(a)
    rows = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    b = int(np.flatnonzero(rows)[0])
    return b, kind_of(a[b])


def first_bad(
    sequences: Iterable[np.ndarray], node_ids: Iterable[int | None]
) -> tuple[int, int | None, int, str] | None:
    """The first ``(step, node id, batch element, kind)`` holding a non-finite value, or None.

    ``sequences``: per node, numpy (batch, steps, ...) in processing order, nodes in
    topological order: the earliest step wins, then the earliest node at that step.
    """
    best: tuple[int, int | None, int, str] | None = None
    for nid, a in zip(node_ids, sequences):
        a = np.asarray(a)
        bad = ~np.isfinite(a.reshape(a.shape[0], a.shape[1], -1)).all(axis=2)  # (batch, steps)
        steps = np.flatnonzero(bad.any(axis=0))
        if steps.size and (best is None or steps[0] < best[0]):
            k = int(steps[0])
            b = int(np.flatnonzero(bad[:, k])[0])
            best = (k, nid, b, kind_of(a[b, k]))
    return best


def _where(layer_model: Lowerable, model: RecurrentModel) -> str:
    where = f"{type(layer_model).__name__} {layer_model.name!r}"
    if model is not layer_model:  # one direction of a Bidirectional
        where += f", {model.name} direction"
    return where + ", check_numerics"


def _step_words(options: LoopOptions, k: int, steps: int | None) -> str:
    if options.decode:
        return f"decode step {k}"
    if options.go_backwards:
        assert steps is not None, "a go_backwards loop runs over x, whose length is known"
        return f"time step {steps - 1 - k} (processing step {k}, go_backwards)"
    return f"time step {k}"


def _time_index(options: LoopOptions, k: int, steps: int | None) -> int:
    if options.go_backwards and not options.decode:
        assert steps is not None, "a go_backwards loop runs over x, whose length is known"
        return steps - 1 - k
    return k


def node_message(
    layer_model: Lowerable,
    model: RecurrentModel,
    k: int,
    nid: int,
    b: int,
    kind: str,
    steps: int | None,
    mask: np.ndarray | None = None,
) -> str:
    """The message for a non-finite value first seen at processing step ``k`` in node ``nid``."""
    g = model._require_built()
    n = g.nodes[nid]
    roles = [
        f"the new state {model.state_specs[i].name!r}" if i < len(model.state_specs) else "the readout"
        for i, f in enumerate(g.final_states)
        if f == nid
    ]
    roles += [f"output #{j}" for j, o in enumerate(g.outputs) if o == nid]
    if not n.type.batched:
        roles.append("loop-invariant")
    role = f"; {', '.join(roles)}" if roles else ""
    t = _time_index(model.options, k, steps)
    masked = ""
    if mask is not None and not bool(mask[b, t]):
        masked = f" (a masked step of batch element {b}: the call discards its values)"
    received = (
        f"{kind} at {_step_words(model.options, k, steps)} in node %{nid} {n.name!r} (op {n.op}{role}), "
        f"first in batch element {b}{masked}"
    )
    fix = (
        f"Every value the node reads at that step is finite, so op {n.op!r} made it (log or sqrt of a "
        "negative number, a division by zero, an overflowing exp, ...): keep its inputs in range. "
        "print(model.graph) lists the nodes by id."
    )
    return format_message(_where(layer_model, model), "finite values", received, fix)


def argument_message(
    layer_model: Lowerable,
    model: RecurrentModel,
    what: str,
    kind: str,
    b: int | None = None,
    k: int | None = None,
    steps: int | None = None,
) -> str:
    """The message for a non-finite value that comes into the call (``what``: "argument x", ...)."""
    at = "" if k is None else f" at {_step_words(model.options, k, steps)}"
    elem = "" if b is None else f", first in batch element {b}"
    return format_message(
        f"{_where(layer_model, model)}, {what}",
        "finite values",
        f"{kind}{at}{elem}",
        "The call computes nothing non-finite itself: fix the value passed in.",
    )


def result_message(layer_model: Lowerable, model: RecurrentModel, what: str, kind: str, b: int | None) -> str:
    """The message for a non-finite result that the unoptimized step does not produce."""
    return format_message(
        f"{_where(layer_model, model)}, {what} of the result",
        "finite values",
        f"{kind}, first in batch element {b}, while the unoptimized step computes only finite values",
        "The optimized path (passes or a fused kernel: layer.explain()) differs here; lower with passes=() "
        "and fast_path=False to run the unoptimized step.",
    )
