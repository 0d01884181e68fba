"""Call-time checks, shared by every engine.

Engines describe their arrays as ``(shape, dtype name)`` and hand them here, so a
wrong call gets the same :class:`RshopError` message on numpy, jax, torch and
tensorflow.
"""

from __future__ import annotations

from .errors import RshopConfigError, RshopDTypeError, RshopShapeError
from .types import dims_compatible


def _dims(shape):
    return ", ".join("?" if d is None else str(d) for d in shape)


def check_array(where: str, info, per_example, dtype: str, batch=None, time=False):
    """Check one argument: ``info`` is ``(shape, dtype)``; returns its shape.

    The expected shape is ``(batch, [time,] *per_example)``; ``batch`` (if given) must match.
    """
    shape, got_dtype = info
    lead = ("batch", "time") if time else ("batch",)
    want = f"({', '.join(lead)}{', ' if per_example else ''}{_dims(per_example)})"
    rank = len(lead) + len(per_example)
    if len(shape) != rank or not all(dims_compatible(w, d) for w, d in zip(per_example, shape[len(lead):])):
        raise RshopShapeError(
            f"{where}: expected an array of shape {want} (rank {rank}), received shape {tuple(shape)} "
            f"(rank {len(shape)}).")
    if batch is not None and shape[0] != batch:
        raise RshopShapeError(
            f"{where}: expected batch size {batch} (the batch of x), received shape {tuple(shape)}.")
    if got_dtype != dtype:
        raise RshopDTypeError(
            f"{where}: expected dtype {dtype}, received {got_dtype}. rshop never casts silently: "
            f"cast the array, or lower the model with dtype={got_dtype!r} if that is what you want.")
    return tuple(shape)


def check_call(model, dtype: str, x, initial_state, constants):
    """Validate a call of a lowered ``model``; arguments are ``(shape, dtype)`` descriptions.

    Returns ``(batch, time)``. ``initial_state`` and ``constants`` are lists or None.
    """
    name = f"RecurrentModel {model.name!r}"
    g = model.graph
    x_type = g.nodes[g.x[0]].type
    shape = check_array(f"{name}, argument x", x, x_type.shape, dtype, time=True)
    batch, steps = shape[0], shape[1]
    if steps == 0:
        raise RshopShapeError(
            f"{name}, argument x: expected at least one time step, received shape {shape}. "
            "An empty sequence has no output.")
    if batch == 0:
        raise RshopShapeError(f"{name}, argument x: expected a batch of at least one, received shape {shape}.")
    specs = model.state_specs
    if initial_state is not None:
        if len(initial_state) != len(specs):
            raise RshopConfigError(
                f"{name}, argument initial_state: expected {len(specs)} states "
                f"{[s.name for s in specs]}, received {len(initial_state)}.")
        for i, (spec, info) in enumerate(zip(specs, initial_state)):
            check_array(f"{name}, initial state #{i} {spec.name!r}", info, spec.shape, dtype, batch)
    n_const = len(g.constants)
    given = 0 if constants is None else len(constants)
    if given != n_const:
        raise RshopConfigError(
            f"{name}, argument constants: expected {n_const} constant(s), received {given}.")
    for i, info in enumerate(constants or ()):
        t = g.nodes[g.constants[i]].type
        check_array(f"{name}, constant #{i}", info, t.shape, dtype, batch)
    return batch, steps
