"""Checks a user runs in their own tests: :func:`check_custom_op` on what they registered, and
:func:`assert_parity` on their models.

The conformance suite (``tests/conformance/test_custom_ops.py``) runs it for every op registered in
the test process, on every engine of the run; a library that registers ops can run it in its own tests.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rshop_core import custom_ops
from rshop_core.errors import RshopConfigError, RshopNotImplementedError, RshopNumericsError
from rshop_core.symbolic import Input
from rshop_core.tracing import trace
from rshop_core.types import TensorType

from . import codegen

__all__ = ["CustomOpReport", "check_custom_op", "assert_parity"]


@dataclass(frozen=True)
class CustomOpReport:
    """What :func:`check_custom_op` measured on one engine: the largest absolute errors of the output
    (against the float64 reference) and of the gradients (against its finite differences; None when
    the engine has no gradients or the op has no float input)."""

    engine: str
    forward_error: float
    gradient_error: float | None


def _random(t: TensorType, batch: int, rng: np.random.Generator) -> np.ndarray:
    shape = (batch, *t.shape)
    if t.dtype == "bool":
        return rng.random(shape) < 0.5
    if t.dtype.startswith(("int", "uint")):
        return rng.integers(0, 4, shape).astype(t.dtype)
    return rng.standard_normal(shape)


def _finite_differences(
    ref: Any, arrays: list[np.ndarray], attrs: dict[str, Any], w: np.ndarray, i: int, eps: float
) -> np.ndarray:
    """d sum(ref(*arrays) * w) / d arrays[i] by central differences, in float64."""
    x = arrays[i]
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        old = x[k]
        x[k] = old + eps
        up = float(np.sum(np.asarray(ref(*arrays, **attrs)) * w))
        x[k] = old - eps
        down = float(np.sum(np.asarray(ref(*arrays, **attrs)) * w))
        x[k] = old
        g[k] = (up - down) / (2 * eps)
    return g


def check_custom_op(
    name: str,
    engines: Sequence[str] | None = None,
    *,
    inputs: Sequence[TensorType | Sequence[int]] | None = None,
    attrs: Mapping[str, Any] | None = None,
    batch: int = 2,
    seed: int = 0,
    atol: float = 1e-6,
    grad_atol: float = 1e-5,
) -> list[CustomOpReport]:
    """Check the registered op ``name`` on ``engines`` against its numpy reference, in float64.

    Builds a one-node step (``y = op(*inputs, **attrs)``; a composition is expanded as in a model),
    lowers it for each engine as a model would be (``rshop_backends.codegen``) and feeds it random
    inputs of ``inputs`` (per-example shapes or batched TensorTypes; default: the op's
    ``example_inputs``) with a batch of ``batch``. Checks, per engine: the output's shape and dtype
    (those of the type rule) and values (within ``atol`` of the reference); then, where the engine has
    gradients (not numpy), the gradient of ``sum(y * w)`` (random ``w``) w.r.t. each float input
    against central finite differences of the reference (within ``grad_atol``); zero for an op
    registered ``differentiable=False``. ``engines`` defaults to those the op has an implementation
    for (every engine for a composition). Returns one :class:`CustomOpReport` per engine; a failure
    raises :class:`~rshop_core.errors.RshopNumericsError` naming the op, the engine and the error.
    """
    op = custom_ops.registered().get(name)
    where = f"check_custom_op({name!r:.80})"
    if op is None:
        raise RshopConfigError(
            f"{where}: expected a registered op, received {name!r:.80}. Registered: {sorted(custom_ops.registered())}."
        )
    given = inputs if inputs is not None else op.example_inputs
    if not given:
        raise RshopConfigError(
            f"{where}: expected example inputs, received none. Pass inputs=[shape, ...] or register the op "
            "with example_inputs=[...]."
        )
    types = [t if isinstance(t, TensorType) else TensorType(tuple(t)) for t in given]
    if not all(t.batched and None not in t.shape for t in types):
        raise RshopConfigError(
            f"{where}: expected batched example inputs of known shapes, received "
            f"{', '.join(t.describe() for t in types)}."
        )
    attrs = dict(op.example_attrs if attrs is None else attrs)
    names = engines if engines is not None else (custom_ops.ENGINES if op.composition else tuple(op.implementations))
    rng = np.random.default_rng(seed)
    arrays = [_random(t, batch, rng) for t in types]
    wide = [TensorType(t.shape, "float64", True) if t.dtype.startswith("float") else t for t in types]
    xs = [Input(t.shape, t.dtype, name=f"input_{i}") for i, t in enumerate(wide)]
    y = op(*xs, **attrs)
    graph = trace(xs, [], [], [y], [], where)
    want = (batch, *y.type.shape)
    reference = np.asarray(op.reference(*[a.copy() for a in arrays], **attrs))
    if reference.shape != want or reference.dtype != np.dtype(y.type.dtype):
        raise RshopNumericsError(
            f"{where}, numpy reference: expected an array of {y.type.describe()} (batch {batch}), received "
            f"{reference.dtype}{reference.shape}. The reference and the type rule disagree."
        )
    w = rng.standard_normal(want)
    floats = [i for i, t in enumerate(wide) if t.dtype == "float64"]
    expected_grads = (
        [_finite_differences(op.reference, [a.copy() for a in arrays], attrs, w, i, 1e-6) for i in floats]
        if y.type.dtype == "float64"
        else []
    )
    return [
        _check_engine(op, e, graph, arrays, wide, reference, w, floats, expected_grads, atol, grad_atol) for e in names
    ]


def _check_engine(
    op: custom_ops.CustomOp,
    engine: str,
    graph: Any,
    arrays: list[np.ndarray],
    types: list[TensorType],
    reference: np.ndarray,
    w: np.ndarray,
    floats: list[int],
    expected_grads: list[np.ndarray],
    atol: float,
    grad_atol: float,
) -> CustomOpReport:
    where = f"check_custom_op({op.name!r}), engine {engine!r}"
    ops: Any = importlib.import_module(f"rshop_backends.{engine}.ops")
    hooks: Any = importlib.import_module(f"rshop_backends.{engine}.testing")
    with hooks.float64_scope():
        step = codegen.generate(graph, ops.EMITTERS, ops.NAMESPACE, ops.constant, "float64", engine)

        def fn(*args: Any) -> Any:
            outs, _ = step({}, *args, (), ())
            return outs[0]

        native = [hooks.to_native(a, t.dtype) for a, t in zip(arrays, types)]
        got = hooks.to_numpy(fn(*native))
        if got.shape != reference.shape or got.dtype != reference.dtype:
            raise RshopNumericsError(
                f"{where}: expected an output of {reference.dtype}{reference.shape} (the reference's), received "
                f"{got.dtype}{got.shape}."
            )
        forward = float(np.max(np.abs(got.astype(np.float64) - reference.astype(np.float64)), initial=0.0))
        if not forward <= atol:
            raise RshopNumericsError(
                f"{where}: expected the output within {atol} of the numpy reference, received a largest "
                f"difference of {forward:.3g}."
            )
        if not expected_grads:
            return CustomOpReport(engine, forward, None)
        try:
            grads = hooks.input_grads(fn, native, w, floats)
        except RshopNotImplementedError:
            return CustomOpReport(engine, forward, None)
    worst = 0.0
    for i, g, fd in zip(floats, grads, expected_grads):
        want = fd if op.differentiable else np.zeros_like(fd)
        err = float(np.max(np.abs(np.asarray(g, dtype=np.float64) - want), initial=0.0))
        if not err <= grad_atol:
            what = "finite differences of the numpy reference" if op.differentiable else "zero (differentiable=False)"
            raise RshopNumericsError(
                f"{where}: expected the gradient w.r.t. input {i} within {grad_atol} of {what}, received a "
                f"largest difference of {err:.3g}."
            )
        worst = max(worst, err)
    return CustomOpReport(engine, forward, worst)


def assert_parity(
    model: Any,
    inputs: Any,
    *,
    engines: Sequence[str] | None = None,
    dtype: str = "float32",
    grads: bool = False,
    **call: Any,
) -> Any:
    """Assert that ``model`` computes the same on every engine as on the numpy float64 reference.

    ``inputs``: the call's numpy input ``x``; ``call``: the call's other keywords (``initial_state``,
    ``constants``, ``mask``, ...), as numpy. ``engines``: the engines to compare; None means the engines
    selected for the pytest run in progress (``--rshop-engines`` of the rshop pytest plugin), outside a
    pytest run every installed engine. ``grads``: compare the parameter gradients too. Runs
    :func:`rshop_backends.parity.compare` and returns its report; raises
    :class:`~rshop_core.errors.RshopParityError` with the report's table when a tolerance is exceeded.
    """
    parity: Any = importlib.import_module(f"{__package__}.parity")  # imported when used: it lowers for engines
    plugin: Any = sys.modules.get(f"{__package__}.pytest_plugin")  # loaded by pytest only; never imported here
    if engines is None and plugin is not None:
        engines = plugin.selected()
    report = parity.compare(model, inputs, engines=engines, dtype=dtype, grads=grads, **call)
    report.assert_close()
    return report
