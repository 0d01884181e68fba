"""The jax engine's serving format: ``jax.export`` — serialized StableHLO with symbolic shapes.

``export(layer, path, sig)`` exports ``jax.jit`` of the inference call with every dynamic
dimension of :func:`rshop_backends.serving.signature` a symbol (``jax.export.symbolic_shape``:
``batch``, ``time``, ...), the layer's current parameters folded in as constants, for the
platform jax runs on; the bytes of ``Exported.serialize()`` go to ``path``. The loop is one
``lax.scan`` whose length is the symbol ``time`` (a ``while`` in StableHLO), so one artefact runs
any T. ``load(path)`` reads it back with ``jax.export.deserialize`` and calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from jax import export as jax_export

from ..serving import require_packages

if TYPE_CHECKING:
    from rshop_backends.serving import Signature

    from .layer import JaxLayer

__all__ = ["export", "load"]


def export(layer: JaxLayer, path: Path, sig: Signature) -> None:
    """Export the inference call (parameters folded in) and write its serialized bytes to ``path``."""
    params = dict(layer.params)  # the weights now: later changes to the layer do not reach the artefact

    def serve(*args: Any) -> tuple[Any, ...]:
        x, consts, states, mask = sig.split(args)
        out = layer.apply(params, x, initial_state=states, constants=consts, mask=mask, **sig.call_kwargs())
        return out if isinstance(out, tuple) else (out,)

    scope = jax_export.SymbolicScope()  # one scope: "batch" is the same symbol in every input
    specs = [
        jax.ShapeDtypeStruct(
            jax_export.symbolic_shape(", ".join(str(d) for d in s.shape), scope=scope) if s.shape else (),
            np.dtype(s.dtype),
        )
        for s in sig.inputs
    ]
    _require_flatbuffers()
    exported = jax_export.export(jax.jit(serve))(*specs)
    path.write_bytes(exported.serialize())


def load(path: Path) -> Callable[..., tuple[np.ndarray, ...]]:
    """The artefact at ``path`` (``jax.export.deserialize``) as a function of numpy arrays."""
    _require_flatbuffers()
    exported = jax_export.deserialize(bytearray(path.read_bytes()))

    def run(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(o) for o in exported.call(*arrays))

    return run


def _require_flatbuffers() -> None:
    require_packages("jax", ("flatbuffers",), "jax.export serializes with it; jax does not require it", "jax-serving")
