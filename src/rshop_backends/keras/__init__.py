"""Keras 3 integration: an rshop model as a Keras layer, and Keras step models as rshop models.

- :class:`RecurrentLayer` wraps a ``RecurrentModel`` (or ``Bidirectional`` / ``RecurrentSequential``)
  as a ``keras.layers.Layer`` that runs natively on the active Keras backend (jax, torch or
  tensorflow: the rshop engine of the same name) and trains with Keras' optimizers.
- :func:`from_keras_step` turns a Keras functional model of ONE time step (RecurrentShop's way
  of writing cells) into a ``RecurrentModel``, weights included.

Importing this package imports ``keras`` (and, through it, the Keras backend's framework). The
importer itself lives in :mod:`rshop_core.convert.keras_step`, which imports keras only when called;
it is re-exported here. See ``docs/keras.md``.
"""

from __future__ import annotations

from rshop_core.convert.keras_step import from_keras_step

from .layer import RecurrentLayer, keras_weight_name, rshop_weight_name

__all__ = ["RecurrentLayer", "from_keras_step", "keras_weight_name", "rshop_weight_name"]
