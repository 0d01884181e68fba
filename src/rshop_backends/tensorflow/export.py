"""The tensorflow engine's serving format: a ``tf.saved_model`` directory with a serving signature.

``export(layer, path, sig)`` saves the layer (a ``tf.Module``: its ``tf.Variable`` s) with one
signature, ``serving_default``: a ``tf.function`` of the inference call whose ``input_signature``
is :func:`rshop_backends.serving.signature`'s, ``None`` for every dynamic dimension, inputs named
``x``, ``constant_<i>``, ``initial_state_<i>``, ``mask`` and outputs a dict ``output_<i>``
(what TF Serving and ``loaded.signatures["serving_default"](x=...)`` return). The loop is a
``tf.while_loop``, so the graph runs any batch and T. ``load(path)`` reads it back with
``tf.saved_model.load``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
    from rshop_backends.serving import Signature

    from .layer import TensorFlowLayer

__all__ = ["export", "load"]


def export(layer: TensorFlowLayer, path: Path, sig: Signature) -> None:
    """``tf.saved_model.save(layer, path, signatures=...)`` with the inference call as ``serving_default``."""
    specs = [
        tf.TensorSpec([None if isinstance(d, str) else d for d in s.shape], s.dtype, name=s.name) for s in sig.inputs
    ]

    def serve(*args: Any) -> dict[str, Any]:
        x, consts, states, mask = sig.split(args)
        out = layer(x, initial_state=states, constants=consts, mask=mask, **sig.call_kwargs())
        out = out if isinstance(out, tuple) else (out,)
        return dict(zip(sig.outputs, out))

    fn = tf.function(serve, input_signature=specs, autograph=False)
    # the signature serves inference: remat's tf.custom_gradient (loop state it cannot reach) is not saved
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(layer, str(path), signatures={"serving_default": fn.get_concrete_function()}, options=options)


def load(path: Path) -> Callable[..., tuple[np.ndarray, ...]]:
    """The SavedModel at ``path``'s ``serving_default`` signature as a function of numpy arrays
    (positional, in the signature's order; outputs ``output_0``, ``output_1``, ... in order)."""
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    _, named = serve.structured_input_signature
    order = {"x": (0, 0), "constant": (1, 0), "initial_state": (2, 0), "mask": (3, 0)}

    def rank(name: str) -> tuple[int, int]:
        base, _, index = name.rpartition("_")
        return (order[base][0], int(index)) if base in order and index.isdigit() else order[name]

    names = sorted(named, key=rank)

    def run(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        res = serve(**{n: tf.constant(a) for n, a in zip(names, arrays)})
        keys = sorted(res, key=lambda k: int(k.rpartition("_")[2]))
        _ = loaded  # the signature's variables belong to the loaded object: keep it alive
        return tuple(res[k].numpy() for k in keys)

    return run
