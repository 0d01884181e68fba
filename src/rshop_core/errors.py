"""The one exception tree of rshop.

Every error rshop raises on purpose is an :class:`RshopError`. Messages follow one
pattern on every engine: *where* (node, state, argument, time step), *expected*,
*received*, and, where there is one, *how to fix it*. Validation happens in
``rshop_core`` before any engine runs, so the same mistake gives the same message
whichever engine is active.
"""

from __future__ import annotations

__all__ = [
    "RshopError",
    "RshopShapeError",
    "RshopDTypeError",
    "RshopConfigError",
    "RshopFormatError",
    "RshopEngineError",
    "RshopNotImplementedError",
    "RshopNumericsError",
    "RshopParityError",
    "format_message",
]


def format_message(where: str, expected: str, received: str, fix: str | None = None) -> str:
    """Build the standard ``where: expected ..., received ... . fix`` message."""
    msg = f"{where}: expected {expected}, received {received}."
    if fix:
        msg += f" {fix}"
    return msg


class RshopError(Exception):
    """Root of every error rshop raises on purpose."""

    # TensorFlow's autograph re-raises any exception that crosses a converted function (the
    # user's ``tf.function``) as a ``StagingError``, unless the exception carries this marker
    # (autograph's own convention: ``_attach_error_metadata`` leaves such errors alone). With
    # it, an RshopError raised while tracing reaches the caller with its type and message.
    # A plain class attribute: nothing here imports tensorflow.
    ag_pass_through = True


class RshopShapeError(RshopError, ValueError):
    """A value has the wrong rank or dimension (at build time or at call time)."""


class RshopDTypeError(RshopError, TypeError):
    """A value has the wrong dtype; rshop never casts silently."""


class RshopConfigError(RshopError, ValueError):
    """A wrong argument, option, name or wiring: unknown activation, state count mismatch, ..."""


class RshopFormatError(RshopError, ValueError):
    """A serialized model or IR document is malformed, hostile or of an unknown version."""


class RshopEngineError(RshopError, RuntimeError):
    """The engine cannot be chosen, imported, or was handed another engine's arrays."""


class RshopNotImplementedError(RshopEngineError, NotImplementedError):
    """An engine does not implement an op or option; it names the engine and the op."""


class RshopNumericsError(RshopError, FloatingPointError):
    """A call with ``check_numerics=True`` met a NaN or an Inf; it names the time step and the node,
    state or argument where the first one appears."""


class RshopParityError(RshopError, AssertionError):
    """An engine's results (or gradients) differ from the numpy float64 reference by more than the
    tolerance: raised by ``ParityReport.assert_close()``; the message holds the whole parity table."""


class RshopWarning(UserWarning):
    """Something rshop did differently from what was asked, and says so."""


class RshopParallelWarning(RshopWarning):
    """A parallel Newton loop over time did not converge (or went non-finite): the sequential loop ran instead."""
