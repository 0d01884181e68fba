"""Call-time checks, shared by every engine.

Engines describe their arrays as ``(shape, dtype name)`` and hand them here, so a
wrong call gets the same :class:`RshopError` message on numpy, jax, torch and
tensorflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .errors import RshopConfigError, RshopDTypeError, RshopShapeError
from .types import dims_compatible

if TYPE_CHECKING:
    from .model import RecurrentModel

Dims = Sequence[int | None]
"""A shape whose dimensions may be unknown (None) while a framework traces."""
ArrayInfo = tuple[Dims | None, str]
"""What an engine says of one array argument: ``(shape, dtype name)``; shape None: unknown rank."""


def _dims(shape: Dims) -> str:
    return ", ".join("?" if d is None else str(d) for d in shape)


def _shown(shape: Dims | None) -> str:
    return "an array of unknown rank" if shape is None else f"shape {tuple(shape)}"


def shape_message(where: str, per_example: Dims, shape: Dims | None, time: bool = False) -> str:
    """The message of an argument whose shape is not ``(batch, [time,] *per_example)``; ``shape``
    None: an array of unknown rank (a symbolic tensor traced without a shape)."""
    lead = ("batch", "time") if time else ("batch",)
    want = f"({', '.join(lead)}{', ' if per_example else ''}{_dims(per_example)})"
    rank = len(lead) + len(per_example)
    if shape is None:
        return (
            f"{where}: expected an array of shape {want} (rank {rank}), received an array of unknown rank. "
            "Give it a known rank (in a tf.function, an input_signature TensorSpec with a shape)."
        )
    return (
        f"{where}: expected an array of shape {want} (rank {rank}), received shape {tuple(shape)} (rank {len(shape)})."
    )


def empty_time_message(name: str, shape: Dims) -> str:
    """The message of an x with no time step (``shape``: x's shape, the time dimension 0)."""
    return (
        f"{name}, argument x: expected at least one time step, received shape {tuple(shape)}. "
        "An empty sequence has no output."
    )


def empty_batch_message(name: str, shape: Dims) -> str:
    """The message of an x with an empty batch (``shape``: x's shape, the batch dimension 0)."""
    return f"{name}, argument x: expected a batch of at least one, received shape {tuple(shape)}."


def check_array(
    where: str, info: ArrayInfo, per_example: Dims, dtype: str, batch: int | None = None, time: bool = False
) -> tuple[int | None, ...]:
    """Check one argument: ``info`` is ``(shape, dtype)`` (shape None: unknown rank); returns its shape.

    The expected shape is ``(batch, [time,] *per_example)``; ``batch`` (if given) must be
    compatible (equal, or one of them unknown while tracing).
    """
    shape, got_dtype = info
    rank = (2 if time else 1) + len(per_example)
    if (
        shape is None
        or len(shape) != rank
        or not all(dims_compatible(w, d) for w, d in zip(per_example, shape[rank - len(per_example) :]))
    ):
        raise RshopShapeError(shape_message(where, per_example, shape, time))
    lead = rank - len(per_example)
    for k, d in enumerate(shape[lead:], start=lead):
        if d == 0:
            raise RshopShapeError(
                f"{where}: expected every per-example dimension to be at least 1, received shape {tuple(shape)} "
                f"(dimension {k} is 0). An empty axis has nothing to compute with (reductions over it differ "
                "between frameworks): give it at least one entry."
            )
    if not dims_compatible(batch, shape[0]):
        raise RshopShapeError(f"{where}: expected batch size {batch} (the batch of x), received shape {tuple(shape)}.")
    if got_dtype != dtype:
        floats = ("float32", "float64")
        fix = (
            f"cast the array, or lower the model with dtype={got_dtype!r} if that is what you want."
            if dtype in floats and got_dtype in floats
            else f"pass a {dtype} array (its Input declares dtype={dtype!r}), e.g. arr.astype({dtype!r})."
            if dtype not in floats
            else f"pass a {dtype} array (floats compute in the lowering's dtype); a {got_dtype} value must be "
            f"declared so: Input(..., dtype={got_dtype!r})."
        )
        raise RshopDTypeError(
            f"{where}: expected dtype {dtype}, received {got_dtype}. rshop never casts silently: {fix}"
        )
    return tuple(shape)


def call_dtype(declared: str, dtype: str) -> str:
    """The dtype a call passes for an Input declared ``declared`` in a layer lowered with ``dtype``:
    floats compute in the lowering's dtype; bool and int32 values are passed as declared."""
    return dtype if declared in ("float32", "float64") else declared


def check_call(
    model: RecurrentModel,
    dtype: str,
    x: ArrayInfo,
    initial_state: Sequence[ArrayInfo] | None,
    constants: Sequence[ArrayInfo] | None,
    mask: ArrayInfo | None = None,
    lengths: ArrayInfo | None = None,
    ground_truth: ArrayInfo | None = None,
    initial_readout: ArrayInfo | None = None,
    training: bool = False,
    output_length: int | None = None,
    stateful_batch: int | None = None,
) -> tuple[int | None, int | None]:
    """Validate a call of a lowered ``model``; arguments are ``(shape, dtype)`` descriptions.

    Returns ``(batch, time)``. ``initial_state`` and ``constants`` are lists or None; the
    others are single descriptions or None. The arguments are checked in this order, so the
    first wrong one is the one reported. ``stateful_batch``: the batch size a stateful layer
    has fixed (its ``batch_size``, else its first call's; None before that first call).
    """
    name = f"RecurrentModel {model.name!r}"
    batch, steps = _check_x(model, name, dtype, x, output_length, stateful_batch)
    _check_initial_state(model, name, dtype, initial_state, batch)
    _check_constants(model, name, dtype, constants, batch)
    _check_ground_truth(model, name, dtype, ground_truth, training, batch, steps)
    _check_initial_readout(model, name, dtype, initial_readout, batch)
    if mask is not None and lengths is not None:
        raise RshopConfigError(f"{name}: expected mask or sequence_lengths, received both.")
    if mask is not None:
        _check_mask(name, mask, batch, steps)
    if lengths is not None:
        _check_lengths_array(name, lengths, batch)
    return batch, steps


def _check_x(
    model: RecurrentModel,
    name: str,
    dtype: str,
    x: ArrayInfo,
    output_length: int | None,
    stateful_batch: int | None = None,
) -> tuple[int | None, int | None]:
    """x (and, when decoding, the number of steps): returns ``(batch, steps)``."""
    g, opts = model._require_built(), model.options
    x_node = g.nodes[g.x[0]]
    x_type = x_node.type
    where = f"{name}, argument x" if x_type.dtype in ("float32", "float64") else f"{name}, argument x {x_node.name!r}"
    dtype = call_dtype(x_type.dtype, dtype)  # ids and masks are passed as declared: int32 / bool
    if opts.decode:
        shape = check_array(where, x, x_type.shape, dtype)
        batch, steps = shape[0], (opts.output_length if output_length is None else output_length)
        if steps is None:
            raise RshopConfigError(
                f"{name}, argument output_length: expected the number of steps to decode (decode=True and no "
                "output_length option), received None."
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise RshopConfigError(f"{name}, argument output_length: expected an int >= 1, received {steps!r}.")
    else:
        if output_length is not None:
            raise RshopConfigError(
                f"{name}, argument output_length: expected None (the length is x's unless decode=True), "
                f"received {output_length!r}."
            )
        shape = check_array(where, x, x_type.shape, dtype, time=True)
        batch, steps = shape[0], shape[1]
    if steps == 0:
        raise RshopShapeError(empty_time_message(name, shape))
    fixed = opts.batch_size if opts.batch_size is not None else stateful_batch
    if opts.stateful and batch is not None and fixed is not None and batch != fixed:
        why = f"batch_size={fixed}" if opts.batch_size is not None else "the batch size of its first call"
        raise RshopShapeError(
            f"{name}, argument x: expected batch size {fixed} (stateful, {why}), received batch size {batch} "
            f"(shape {shape}). A stateful layer never broadcasts its states: call it with batches of {fixed}, "
            "or lower the model again for another batch size."
        )
    if batch == 0:
        raise RshopShapeError(empty_batch_message(name, shape))
    return batch, steps


def _check_initial_state(
    model: RecurrentModel, name: str, dtype: str, initial_state: Sequence[ArrayInfo] | None, batch: int | None
) -> None:
    if initial_state is None:
        return
    specs = model.state_specs
    if len(initial_state) != len(specs):
        raise RshopConfigError(
            f"{name}, argument initial_state: expected {len(specs)} states "
            f"{[s.name for s in specs]}, received {len(initial_state)}."
        )
    for i, (spec, info) in enumerate(zip(specs, initial_state)):
        check_array(f"{name}, initial state #{i} {spec.name!r}", info, spec.shape, dtype, batch)


def _check_constants(
    model: RecurrentModel, name: str, dtype: str, constants: Sequence[ArrayInfo] | None, batch: int | None
) -> None:
    g = model._require_built()
    n_const = len(g.constants)
    given = 0 if constants is None else len(constants)
    if given != n_const:
        raise RshopConfigError(f"{name}, argument constants: expected {n_const} constant(s), received {given}.")
    for i, info in enumerate(constants or ()):
        node = g.nodes[g.constants[i]]
        t = node.type
        label = f"constant #{i}" if t.dtype in ("float32", "float64") else f"constant #{i} {node.name!r}"
        check_array(f"{name}, {label}", info, t.shape, call_dtype(t.dtype, dtype), batch)


def _check_ground_truth(
    model: RecurrentModel,
    name: str,
    dtype: str,
    ground_truth: ArrayInfo | None,
    training: bool,
    batch: int | None,
    steps: int | None,
) -> None:
    """ground_truth: given exactly when a teacher-forced model is called in training."""
    g, opts = model._require_built(), model.options
    if ground_truth is None:
        if opts.teacher_force and training:
            raise RshopConfigError(
                f"{name}, argument ground_truth: expected the targets (batch, time, ...) for a training call of a "
                "teacher-forced model, received None. Pass ground_truth=, or training=False to feed back the "
                "model's own outputs."
            )
        return
    if not opts.teacher_force:
        raise RshopConfigError(
            f"{name}, argument ground_truth: expected none (the model has teacher_force=False), received one."
        )
    if not training:
        raise RshopConfigError(
            f"{name}, argument ground_truth: expected none for a call with training=False (teacher forcing "
            "happens only in training calls), received one. Pass training=True to teacher-force, or drop "
            "ground_truth."
        )
    out_shape = g.nodes[g.outputs[0]].type.shape
    gt = check_array(f"{name}, argument ground_truth", ground_truth, out_shape, dtype, batch, time=True)
    if gt[1] is not None and steps is not None and gt[1] != steps:
        raise RshopShapeError(
            f"{name}, argument ground_truth: expected {steps} time steps (one target per step), received shape {gt}."
        )


def _check_initial_readout(
    model: RecurrentModel, name: str, dtype: str, initial_readout: ArrayInfo | None, batch: int | None
) -> None:
    if initial_readout is None:
        return
    readout = model.readout_spec
    if readout is None:
        raise RshopConfigError(
            f"{name}, argument initial_readout: expected none (the model has no readout_input), received one."
        )
    check_array(f"{name}, argument initial_readout", initial_readout, readout.shape, dtype, batch)


def _check_mask(name: str, mask: ArrayInfo, batch: int | None, steps: int | None) -> None:
    m_shape, m_dtype = mask
    if (
        m_shape is None
        or len(m_shape) != 2
        or not dims_compatible(m_shape[0], batch)
        or not dims_compatible(m_shape[1], steps)
    ):
        raise RshopShapeError(
            f"{name}, argument mask: expected a bool array of shape ({batch}, {steps}), received {_shown(m_shape)}."
        )
    if m_dtype != "bool":
        raise RshopDTypeError(
            f"{name}, argument mask: expected dtype bool, received {m_dtype}. rshop never casts silently: "
            "pass a bool mask (True where a step is real)."
        )


def _check_lengths_array(name: str, lengths: ArrayInfo, batch: int | None) -> None:
    l_shape, l_dtype = lengths
    if l_shape is None or len(l_shape) != 1 or not dims_compatible(l_shape[0], batch):
        raise RshopShapeError(
            f"{name}, argument sequence_lengths: expected an array of shape ({batch},), received {_shown(l_shape)}."
        )
    if l_dtype not in ("int32", "int64"):
        raise RshopDTypeError(
            f"{name}, argument sequence_lengths: expected dtype int32 or int64, received {l_dtype}. rshop "
            "never casts silently: pass integer lengths."
        )


def lengths_message(model: RecurrentModel, index: int | str, value: object, steps: int | str | None) -> str:
    """The message for ``sequence_lengths[index] = value`` outside [0, steps] (``value`` may be a
    placeholder where a runtime check formats it)."""
    return (
        f"RecurrentModel {model.name!r}, argument sequence_lengths: expected every length in [0, {steps}] "
        f"(the time steps of x), received {value} at batch index {index}. Lengths are never clamped: "
        "fix the lengths or pad x to the longest sequence."
    )


def check_lengths_values(model: RecurrentModel, values: np.ndarray, steps: int) -> None:
    """Refuse concrete ``sequence_lengths`` ``values`` (a numpy array) outside [0, steps]."""
    bad = np.flatnonzero((values < 0) | (values > steps))
    if bad.size:
        i = int(bad[0])
        raise RshopShapeError(lengths_message(model, i, int(values[i]), steps))


def check_indices(idx: np.ndarray, n: int, axis: int, where: str) -> None:
    """Refuse ``gather`` indices outside [0, n) where their values are known (the numpy and torch engines);
    jax and tensorflow clamp them inside their compiled loops (docs/decisions.md)."""
    bad = (idx < 0) | (idx >= n)
    if np.any(bad):
        raise RshopShapeError(
            f"{where}: expected indices in [0, {n}) along axis {axis}, received {int(idx[bad].flat[0])}. Indices "
            "are never wrapped (negative ones included): fix them, or clip them in the step."
        )
