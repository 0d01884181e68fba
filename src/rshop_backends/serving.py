"""Serving formats: a lowered layer exported to its ecosystem's deployment artefact, and read back.

:func:`export` is the one entry: ``export(model_or_layer, path, format=...)`` with ``format`` one of

======================  ==============  ============================================================
format                  engine          artefact
======================  ==============  ============================================================
``"savedmodel"``        tensorflow      a ``tf.saved_model`` directory; signature ``serving_default``
``"torch"``             torch           a ``torch.export`` ``ExportedProgram`` (``torch.export.save``)
``"jax"``               jax             ``jax.export`` serialized StableHLO with symbolic shapes
``"onnx"``              torch           an ONNX model from ``torch.onnx.export`` (dynamo exporter)
======================  ==============  ============================================================

Every artefact holds the weights and the inference call (``training=False``: no dropout, no
teacher forcing) with a dynamic batch and a dynamic number of time steps (and any constant
dimension the model leaves unknown). Its inputs, in this order and with these names:
``x`` (batch, T, *input_shape) — (batch, *input_shape) for a decoder —, ``constant_0``, ... (the
model's constants, when it has any), ``initial_state_0``, ... (only with ``initial_state=True``:
then the artefact takes every state), ``mask`` (batch, T) bool (only with ``mask=True``). Its
outputs are ``output_0``, ``output_1``, ... in the order a call returns them (outputs, then the
final states with ``return_states``). :func:`signature` says exactly what one will hold; what
cannot be exported is refused there, the same way for every format (:class:`RshopConfigError`).

Each engine's ``export`` module (``rshop_backends.<engine>.export``) has ``export(layer, path,
sig)`` and ``load(path)``; :func:`load` reads an artefact back as a function of numpy arrays,
and :func:`verify` compares an artefact with the numpy float64 reference (what ``rshop export``
prints). Only the engine a format needs is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rshop_core.checks import call_dtype
from rshop_core.errors import RshopConfigError, RshopEngineError
from rshop_core.lowerable import Lowerable

from .tolerances import FORWARD_ATOL

if TYPE_CHECKING:
    from .lowered import Lowered

__all__ = [
    "FORMATS",
    "Signature",
    "TensorSpec",
    "Verification",
    "export",
    "load",
    "signature",
    "verify",
    "check_sizes",
]

# format -> (the engine that writes it, the function of its export module, the one that reads it back)
FORMATS: dict[str, tuple[str, str, str]] = {
    "savedmodel": ("tensorflow", "export", "load"),
    "torch": ("torch", "export", "load"),
    "jax": ("jax", "export", "load"),
    "onnx": ("torch", "export_onnx", "load_onnx"),
}
BATCH, TIME = "batch", "time"  # the names of the dynamic dimensions every artefact shares
# the sizes the exporters trace with: distinct, and above 1 (torch.export specialises a dimension of size 0 or 1)
TRACE_BATCH, TRACE_TIME = 2, 3


@dataclass(frozen=True)
class TensorSpec:
    """One input of an artefact: its name, shape (an int, or the name of a dynamic dimension:
    ``"batch"``, ``"time"``, ``"constant_0_dim_1"``...) and dtype name."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def sample(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """The concrete shape with each dynamic dimension's size taken from ``sizes``."""
        return tuple(sizes[d] if isinstance(d, str) else d for d in self.shape)


@dataclass(frozen=True)
class Signature:
    """What an exported artefact takes and returns (see the module docstring)."""

    model: str
    dtype: str  # what the artefact computes in
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    n_constants: int
    n_states: int  # initial states taken as inputs (0 without initial_state=True)
    mask: bool
    output_length: int | None  # decoders: the steps decoded

    @property
    def dynamic(self) -> tuple[str, ...]:
        """The names of the dynamic dimensions, each once, in order of appearance."""
        seen: dict[str, None] = {}
        for spec in self.inputs:
            seen.update((d, None) for d in spec.shape if isinstance(d, str))
        return tuple(seen)

    def samples(self, sizes: dict[str, int] | None = None, seed: int = 0) -> list[np.ndarray]:
        """Random numpy inputs in order (``sizes``: dynamic dimension -> size; default the tracing sizes,
        2 and 3 for batch and time and 4, 5, ... for the others). Floats standard normal, masks with the
        first step kept, int ids 0 or 1."""
        rng = np.random.default_rng(seed)
        known = dict(self.trace_sizes())
        known.update(sizes or {})
        out = []
        for spec in self.inputs:
            shape = spec.sample(known)
            if spec.dtype == "bool":
                a = rng.random(shape) < 0.7
                if spec.name == "mask":
                    a[:, 0] = True
            elif spec.dtype.startswith("int"):
                a = rng.integers(0, 2, shape).astype(spec.dtype)
            else:
                a = rng.standard_normal(shape).astype(spec.dtype)
            out.append(a)
        return out

    def trace_sizes(self) -> dict[str, int]:
        """The size each dynamic dimension has while exporting: distinct numbers above 1."""
        sizes = {BATCH: TRACE_BATCH, TIME: TRACE_TIME}
        for i, d in enumerate(d for d in self.dynamic if d not in sizes):
            sizes[d] = TRACE_TIME + 1 + i
        return sizes

    def split(self, args: Sequence[Any]) -> tuple[Any, list[Any] | None, list[Any] | None, Any]:
        """``(x, constants or None, initial states or None, mask or None)`` from the inputs in order."""
        x, rest = args[0], list(args[1:])
        consts, rest = rest[: self.n_constants], rest[self.n_constants :]
        states, rest = rest[: self.n_states], rest[self.n_states :]
        return x, consts or None, states or None, rest[0] if self.mask else None

    def call_kwargs(self) -> dict[str, Any]:
        """The fixed keywords of the exported call."""
        return {"training": False, "output_length": self.output_length}


def require_packages(fmt: str, packages: tuple[str, ...], why: str, extra: str) -> None:
    """Raise ``RshopEngineError`` naming the extra to install unless every package is importable (a
    format's writer or reader needs packages its engine does not install itself)."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise RshopEngineError(
            f"serving format {fmt!r}: expected {', '.join(packages)} installed ({why}), received "
            f'{", ".join(missing)} missing. Install them: pip install "rshop[{extra}]".'
        )


def _refuse(where: str, expected: str, received: str, fix: str) -> RshopConfigError:
    return RshopConfigError(f"{where}: expected {expected}, received {received}. {fix}")


def signature(
    layer: Lowered, *, initial_state: bool = False, mask: bool = False, output_length: int | None = None
) -> Signature:
    """What exporting ``layer`` with these options gives (see the module docstring), or an
    :class:`~rshop_core.errors.RshopConfigError` saying why it cannot be exported and what to do:

    - a ``stateful`` layer (its carried states live in Python between calls);
    - a random state initializer without ``initial_state=True`` (drawn by numpy for a known batch);
    - ``unroll=True`` (it needs a static T);
    - a decoder without an ``output_length`` (option or argument), and ``mask=True`` on a decoder;
    - a torch layer in train mode whose model has dropout (training-mode dropout is not served:
      ``layer.eval()``).
    """
    model: Lowerable = layer.model
    where = f"export of {type(model).__name__} {model.name!r}"
    opts = model.options
    if opts.stateful:
        raise _refuse(
            where,
            "a model with stateful=False",
            "stateful=True",
            "A stateful layer keeps its states in Python between calls, which no artefact can hold. Export "
            "the model with stateful=False, return_states=True and initial_state=True, and carry the states "
            "yourself.",
        )
    if opts.unroll is True:
        raise _refuse(
            where,
            "unroll=False or an int",
            "unroll=True",
            "A fully unrolled loop needs a static number of time steps; artefacts take any T.",
        )
    random_states = [s.name for s in model.state_specs if getattr(s.initializer, "random", False)]
    if random_states and not initial_state:
        raise _refuse(
            where,
            "states with constant or learned initializers, or initial_state=True",
            f"random initializers for states {random_states}",
            "Random initial states are drawn by numpy for a known batch and would be frozen into the "
            "artefact. Export with initial_state=True and pass the states in.",
        )
    if getattr(layer, "training", False) and _has_dropout(model):
        raise _refuse(
            where,
            "a torch layer in eval mode (artefacts serve the inference call)",
            "a layer in train mode whose model has dropout",
            "Call layer.eval() before exporting; training-mode dropout is not exported.",
        )
    decode = bool(opts.decode)
    if decode:
        steps = output_length if output_length is not None else opts.output_length
        if steps is None:
            raise _refuse(
                where + ", argument output_length",
                "the number of steps to decode (decode=True and no output_length option)",
                "None",
                "Pass output_length=N.",
            )
        if mask:
            raise _refuse(where + ", argument mask", "mask=False for a decoder", "mask=True", "A decoder scans no x.")
        output_length = steps
    part = layer._parts[0]
    g = part.graph
    assert g is not None, "a lowered model is built"
    lead: tuple[int | str, ...] = (BATCH,) if decode else (BATCH, TIME)
    x_type = g.nodes[g.x[0]].type
    inputs = [TensorSpec("x", lead + tuple(x_type.shape), call_dtype(x_type.dtype, layer.dtype))]
    for i, c in enumerate(g.constants):
        t = g.nodes[c].type
        shape = tuple(f"constant_{i}_dim_{j}" if d is None else d for j, d in enumerate(t.shape))
        inputs.append(TensorSpec(f"constant_{i}", (BATCH, *shape), call_dtype(t.dtype, layer.dtype)))
    states = list(model.state_specs) if initial_state else []
    inputs += [TensorSpec(f"initial_state_{i}", (BATCH, *s.shape), layer.dtype) for i, s in enumerate(states)]
    if mask:
        inputs.append(TensorSpec("mask", (BATCH, TIME), "bool"))
    n_out = len(model.output_shapes()) + len(model.returned_state_specs)
    return Signature(
        model.name,
        layer.dtype,
        tuple(inputs),
        tuple(f"output_{i}" for i in range(n_out)),
        len(g.constants),
        len(states),
        bool(mask),
        output_length,
    )


def _has_dropout(model: Lowerable) -> bool:
    return any(n.op == "dropout" for leaf in model.leaves for n in leaf._require_built().nodes)


def _check_format(fmt: str, where: str) -> None:
    if fmt not in FORMATS:
        raise RshopConfigError(f"{where}, argument format: expected one of {sorted(FORMATS)}, received {fmt!r}.")


def check_sizes(batch: Any, steps: Any, where: str) -> None:
    """Raise unless ``batch`` and ``steps`` are ints >= 1 (the sizes :func:`verify` runs at)."""
    for what, v in (("batch", batch), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise RshopConfigError(f"{where}, argument {what}: expected an int >= 1, received {v!r}.")


def _module(fmt: str, where: str) -> Any:
    _check_format(fmt, where)
    return importlib.import_module(f"rshop_backends.{FORMATS[fmt][0]}.export")


def export(
    model_or_layer: Any,
    path: str | os.PathLike[str],
    format: str,
    *,
    dtype: str | None = None,
    initial_state: bool = False,
    mask: bool = False,
    output_length: int | None = None,
) -> Path:
    """Write ``model_or_layer`` (a model, lowered here with the format's engine in ``dtype``, or a
    layer already lowered with that engine, exported with its current weights) to ``path`` in
    ``format`` (see :data:`FORMATS`). ``initial_state=True``: the artefact takes every initial state
    as an input; ``mask=True``: it takes a (batch, T) bool mask; ``output_length``: the steps a
    decoder runs. Returns the path written."""
    where = "serving.export"
    _check_format(format, where)
    engine = FORMATS[format][0]
    out = Path(path)
    if not out.parent.is_dir():
        raise RshopConfigError(
            f"{where}, argument path: expected a path in an existing directory, received {str(out)!r}, whose "
            "directory does not exist. Create it first."
        )
    options: dict[str, Any] = {"initial_state": initial_state, "mask": mask, "output_length": output_length}
    if isinstance(model_or_layer, Lowerable):
        signature(model_or_layer.lower("numpy", dtype), **options)  # refused before the framework is imported
        layer = model_or_layer.lower(engine, dtype)
        if engine == "torch":
            layer.eval()
    else:
        layer = model_or_layer
        got = getattr(layer, "engine", None)
        if got != engine:
            raise RshopConfigError(
                f"{where}, argument model_or_layer: expected a model or a {engine} layer for format {format!r}, "
                f"received {type(layer).__name__} (engine {got!r}). Lower the model with {engine!r}, or pass "
                "the model."
            )
        if dtype is not None and dtype != layer.dtype:
            raise RshopConfigError(
                f"{where}, argument dtype: expected None or the layer's dtype {layer.dtype!r}, received {dtype!r}. "
                "Lower the model in that dtype, or pass the model."
            )
    mod = _module(format, where)
    sig = signature(layer, **options)
    getattr(mod, FORMATS[format][1])(layer, out, sig)
    return out


def load(path: str | os.PathLike[str], format: str) -> Callable[..., tuple[np.ndarray, ...]]:
    """The artefact at ``path`` as a function of numpy arrays (the inputs in order: x, constants,
    initial states, mask) returning its outputs as numpy arrays, in order."""
    mod = _module(format, "serving.load")
    fn: Callable[..., tuple[np.ndarray, ...]] = getattr(mod, FORMATS[format][2])(Path(path))
    return fn


@dataclass(frozen=True)
class Verification:
    """An artefact against the numpy float64 reference: :func:`verify`."""

    format: str
    batch: int
    steps: int
    errors: tuple[float, ...]  # max abs error per output
    limits: tuple[float, ...]  # the float tolerance scaled by max(1, max |reference|), per output

    @property
    def max_error(self) -> float:
        return max(self.errors, default=0.0)

    @property
    def ok(self) -> bool:
        return all(e <= lim for e, lim in zip(self.errors, self.limits))

    def __str__(self) -> str:
        worst = max(range(len(self.errors)), key=lambda i: self.errors[i] / self.limits[i]) if self.errors else 0
        verdict = "within tolerance" if self.ok else "EXCEEDS the tolerance"
        return (
            f"{self.format} artefact vs the numpy float64 reference at batch {self.batch}, T {self.steps}: "
            f"max abs error {self.max_error:.3g} (limit {self.limits[worst]:.3g}): {verdict}"
        )


def verify(
    model: Lowerable,
    path: str | os.PathLike[str],
    format: str,
    *,
    initial_state: bool = False,
    mask: bool = False,
    output_length: int | None = None,
    dtype: str | None = None,
    batch: int = 3,
    steps: int = 7,
    seed: int = 0,
) -> Verification:
    """Load the artefact at ``path`` (written by :func:`export` of ``model`` with these options),
    run it on random inputs of ``batch`` examples and ``steps`` time steps (choose them unlike the
    tracing sizes, 2 and 3, to see the dimensions are dynamic), and compare every output with
    ``model`` on the numpy engine in float64 (``dtype``: the artefact's, default the model's). The
    limit is the float tolerance of the conformance table (:data:`rshop_backends.tolerances.FORWARD_ATOL`
    of the artefact's dtype) scaled by ``max(1, max |reference|)``."""
    check_sizes(batch, steps, f"verify {format} artefact")
    ref_layer = model.lower("numpy", "float64")
    sig = signature(model.lower("numpy", dtype), initial_state=initial_state, mask=mask, output_length=output_length)
    sizes = {BATCH: batch, TIME: steps, **{d: steps + 1 for d in sig.dynamic if d not in (BATCH, TIME)}}
    args = sig.samples(sizes, seed)
    got = load(path, format)(*args)
    x, consts, states, m = sig.split([a.astype("float64") if a.dtype.kind == "f" else a for a in args])
    want = ref_layer(x, initial_state=states, constants=consts, mask=m, **sig.call_kwargs())
    want = want if isinstance(want, tuple) else (want,)
    if len(got) != len(want):
        raise RshopConfigError(
            f"verify {format} artefact {str(path)!r}: expected {len(want)} outputs, received {len(got)}. "
            "Export and verify with the same options."
        )
    tol = FORWARD_ATOL.get(str(got[0].dtype) if got else "float32", FORWARD_ATOL["float32"])
    errors, limits = [], []
    for g, w in zip(got, want):
        if g.shape != w.shape:
            raise RshopConfigError(
                f"verify {format} artefact {str(path)!r}: expected an output of shape {w.shape}, received {g.shape}."
            )
        errors.append(float(np.max(np.abs(g.astype(np.float64) - w))) if g.size else 0.0)
        limits.append(tol * max(1.0, float(np.max(np.abs(w))) if w.size else 1.0))
    return Verification(format, batch, steps, tuple(errors), tuple(limits))
