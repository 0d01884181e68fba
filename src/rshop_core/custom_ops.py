"""Custom ops: the escape hatch (Keras' ``Lambda``) that keeps files safe and engines honest.

An op outside the closed set is *registered in code* with :func:`register_op`: a namespaced name
(``"mylib.swiglu"``), a numpy reference (the oracle of the conformance suite, and what the numpy
engine runs), and either

- one implementation per engine (``jax=``, ``torch=``, ``tensorflow=``: callables on that engine's
  arrays, differentiated by the framework's own autograd) and a type rule (``infer=``). The step
  graph holds one ``custom`` node, ``attrs = {"op": <name>, **attrs}``; a file records that name
  and those JSON attributes, and loading it in a process where the name is not registered is
  refused (:class:`~rshop_core.errors.RshopFormatError`): nothing in a file is imported or run; or
- a ``composition=``: a function over :mod:`rshop_core.functional` tensors. Calling the op inlines
  it, so the graph (and any file) holds only built-in ops: it runs on every engine and loads
  anywhere, registered or not.

Every implementation sees arrays with the batch axis first (batched values) and must treat the
examples along it independently (passes may fold time into it, see ``hoist_inputs``) and be pure.
Attributes are passed as keyword arguments. :func:`rshop_backends.testing.check_custom_op` checks
every engine against the reference (values, dtypes, shapes, gradients against finite differences).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .custom_registry import _REGISTRY, NAME, _checked_infer, canonical_attrs, get, infer_custom
from .errors import RshopConfigError, RshopNotImplementedError, RshopShapeError
from .graph import Node, StepGraph
from .ops import OPS, Op
from .symbolic import Tensor, apply
from .types import TensorType

__all__ = ["CustomOp", "register_op", "registered", "get", "unregister", "ENGINES", "infer_custom"]

ENGINES = ("numpy", "jax", "torch", "tensorflow")
"""The engines an op can name an implementation for; numpy's is the reference."""


InferRule = Callable[[Sequence[TensorType], Mapping[str, Any]], TensorType]
"""``infer(input_types, attrs) -> output type``: per-example types (the batch axis is implicit)."""


@dataclass(frozen=True, eq=False)
class CustomOp:
    """A registered op. Call it inside a step like a :mod:`rshop_core.functional` op:
    ``y = swiglu(x, name="ffn")``, keyword arguments other than ``name`` being its attributes."""

    name: str
    reference: Callable[..., Any]
    infer: InferRule | None
    implementations: Mapping[str, Callable[..., Any]]  # engine name -> callable (numpy: the reference)
    composition: Callable[..., Tensor] | None
    differentiable: bool
    example_inputs: tuple[TensorType, ...] | None
    example_attrs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, *inputs: Tensor, name: str | None = None, **attrs: Any) -> Tensor:
        where = f"custom op {self.name!r}"
        attrs = canonical_attrs(attrs, where, RshopConfigError)
        if self.composition is not None:
            return self._compose(list(inputs), name, attrs)
        return apply(Op.CUSTOM, inputs, {"op": self.name, **attrs}, name=name or self.name.rsplit(".", 1)[-1])

    def _compose(self, inputs: list[Tensor], name: str | None, attrs: dict[str, Any]) -> Tensor:
        where = f"custom op {self.name!r} (a composition)"
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise RshopConfigError(
                    f"{where}: expected rshop Tensors as inputs, received {type(t).__name__} at position {i}."
                )
        assert self.composition is not None
        out = self.composition(*inputs, **attrs)
        if not isinstance(out, Tensor):
            raise RshopConfigError(
                f"{where}: expected the composition to return one rshop Tensor, received {type(out).__name__}. "
                "Build it from rshop_core.functional ops."
            )
        if self.infer is not None:
            want = _checked_infer(self, [t.type for t in inputs], attrs, where)
            if want != out.type:
                raise RshopShapeError(
                    f"{where}: expected the composition to return {want.describe()} (its type rule), received "
                    f"{out.type.describe()}. Make the rule and the composition agree."
                )
        if name is not None:
            from .limits import check_name

            out.name = check_name(name, where, "name")
        return out

    def implementation(self, engine: str, where: str = "") -> Callable[..., Any]:
        """The callable that runs this op on ``engine``, or RshopNotImplementedError naming both."""
        fn = self.implementations.get(engine)
        if fn is None:
            have = sorted(self.implementations)
            at = f"{where}: " if where else ""
            raise RshopNotImplementedError(
                f"{at}engine {engine!r}: expected an implementation of custom op {self.name!r}, received none "
                f"(it has {have}). Register one with rshop_core.register_op({self.name!r}, ..., {engine}=fn) "
                f"or lower the model for one of {have}."
            )
        return fn


def _same_fn(a: object, b: object) -> bool:
    """The same definition: one object, or functions with equal code (a re-run notebook cell)."""
    if a is b:
        return True
    ca, cb = getattr(a, "__code__", None), getattr(b, "__code__", None)
    return ca is not None and ca == cb and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)


def _same(a: CustomOp, b: CustomOp) -> bool:
    fns = ("reference", "infer", "composition")
    if any(not _same_fn(getattr(a, f), getattr(b, f)) for f in fns):
        return False
    if set(a.implementations) != set(b.implementations):
        return False
    if any(not _same_fn(a.implementations[k], b.implementations[k]) for k in a.implementations):
        return False
    return (a.differentiable, a.example_inputs, dict(a.example_attrs)) == (
        b.differentiable,
        b.example_inputs,
        dict(b.example_attrs),
    )


def _example_types(example: Sequence[object] | None, where: str) -> tuple[TensorType, ...] | None:
    if example is None:
        return None
    if isinstance(example, (str, bytes)) or not isinstance(example, Sequence) or not example:
        raise RshopConfigError(
            f"{where}, argument example_inputs: expected a non-empty list of per-example shapes or TensorTypes, "
            f"received {example!r:.80}."
        )
    return tuple(t if isinstance(t, TensorType) else TensorType(tuple(t)) for t in example)  # type: ignore[arg-type]


def register_op(
    name: str,
    *,
    reference: Callable[..., Any],
    infer: InferRule | None = None,
    jax: Callable[..., Any] | None = None,
    torch: Callable[..., Any] | None = None,
    tensorflow: Callable[..., Any] | None = None,
    composition: Callable[..., Tensor] | None = None,
    differentiable: bool = True,
    example_inputs: Sequence[TensorType | Sequence[int]] | None = None,
    example_attrs: Mapping[str, Any] | None = None,
) -> CustomOp:
    """Register the op ``name`` in this process and return it (call it inside a step).

    ``name``: namespaced, ``"<library>.<op>"`` (letters, digits, ``_``; the ``rshop.`` namespace is
    reserved). ``reference(*arrays, **attrs) -> array``: numpy, with the batch axis first, keeping the
    float dtype it is given (float64 in the conformance check). ``infer(types, attrs) -> TensorType``:
    the per-example output type (batched when any input is); raise
    :class:`~rshop_core.errors.RshopShapeError` ("expected ..., received ...") for inputs it refuses:
    rshop prefixes the node. ``jax=``, ``torch=``, ``tensorflow=``: the same function on that engine's
    arrays; an engine without one refuses to lower a model using the op. ``composition=``: instead of
    engine callables, a function over :mod:`rshop_core.functional` tensors inlined where the op is
    called (``infer`` then optional; when given it is checked against the composition).
    ``differentiable=False``: gradients stop at the op's output on every engine.
    ``example_inputs`` (per-example shapes or TensorTypes) and ``example_attrs``: what
    :func:`rshop_backends.testing.check_custom_op` feeds the op by default.

    Registering the same definition again is a no-op (re-running a cell); a different one under a
    registered name raises :class:`~rshop_core.errors.RshopConfigError` (see :func:`unregister`).
    """
    where = f"register_op({name!r:.80})"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        builtin = isinstance(name, str) and name in OPS
        raise RshopConfigError(
            f"{where}: expected a namespaced op name '<library>.<op>' of letters, digits and '_', received "
            f"{name!r:.80}{' (a built-in op)' if builtin else ''}. Name it after your package, e.g. 'mylib.swiglu'."
        )
    if name.split(".", 1)[0] == "rshop" or name in OPS:
        raise RshopConfigError(
            f"{where}: expected a name outside the 'rshop.' namespace and the built-in ops, received {name!r}. "
            "Name it after your package, e.g. 'mylib.swiglu'."
        )
    if not callable(reference):
        raise RshopConfigError(f"{where}: expected a numpy reference function, received {reference!r:.80}.")
    engines = {"jax": jax, "torch": torch, "tensorflow": tensorflow}
    for key, fn in [("infer", infer), ("composition", composition), *engines.items()]:
        if fn is not None and not callable(fn):
            raise RshopConfigError(f"{where}, argument {key}: expected a callable or None, received {fn!r:.80}.")
    if composition is not None and any(fn is not None for fn in engines.values()):
        raise RshopConfigError(
            f"{where}: expected either a composition or engine implementations, received both. A composition "
            "runs on every engine as built-in ops; drop the engine callables or the composition."
        )
    if composition is None and infer is None:
        raise RshopConfigError(
            f"{where}: expected a type rule infer(types, attrs) -> TensorType, received none. Every op is "
            "type-checked when the graph is built."
        )
    if not isinstance(differentiable, bool):
        raise RshopConfigError(
            f"{where}, argument differentiable: expected True or False, received {differentiable!r}."
        )
    impls = {"numpy": reference, **{k: v for k, v in engines.items() if v is not None}}
    op = CustomOp(
        name,
        reference,
        infer,
        impls if composition is None else {},
        composition,
        differentiable,
        _example_types(example_inputs, where),
        canonical_attrs(dict(example_attrs or {}), f"{where}, argument example_attrs", RshopConfigError),
    )
    old = _REGISTRY.get(name)
    if old is not None:
        if _same(old, op):
            return old
        raise RshopConfigError(
            f"{where}: expected a name not yet registered, received {name!r}, registered with another "
            "definition. Pick another name, or call rshop_core.custom_ops.unregister(name) first."
        )
    _REGISTRY[name] = op
    return op


def registered() -> dict[str, CustomOp]:
    """Every op registered in this process, by name (a copy)."""
    return dict(_REGISTRY)


def unregister(name: str) -> None:
    """Forget ``name`` (tests, notebooks). Models already lowered keep the implementation they bound."""
    if _REGISTRY.pop(name, None) is None:
        raise RshopConfigError(f"unregister: expected a registered op name, received {name!r:.80}.")


def attrs_of(node_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A ``custom`` node's own attributes (its ``op`` name removed): the keyword arguments of its implementations."""
    return {k: v for k, v in node_attrs.items() if k != "op"}


def describe(node_attrs: Mapping[str, Any]) -> str:
    """``custom 'mylib.swiglu'`` for messages."""
    return f"custom op {json.dumps(node_attrs.get('op'))}"


def state_reader(graph: StepGraph) -> Node | None:
    """The first ``custom`` node that reads a state and feeds a final state, or None: the time-parallel
    loops need a derivative of the step in the IR, and a custom op has none (its graph runs sequentially)."""
    reads = [False] * len(graph.nodes)
    for sid in graph.states:
        reads[sid] = True
    for n in graph.nodes:
        if n.inputs and any(reads[i] for i in n.inputs):
            reads[n.id] = True
    feeds: set[int] = set()
    stack = list(graph.final_states)
    while stack:
        i = stack.pop()
        if i not in feeds:
            feeds.add(i)
            stack.extend(graph.nodes[i].inputs)
    for n in graph.nodes:
        if n.op == Op.CUSTOM and reads[n.id] and n.id in feeds:
            return n
    return None
