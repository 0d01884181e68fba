"""Every implementation the harness times, named once: (kind, name) -> family, engine, factory.

A factory is ``factory(weights, x_numpy) -> adapters.Impl``; it imports its framework lazily, so
this module imports none.  A *family* is what one subprocess runs: one engine, with rshop, the
hand-written anchors and Keras on that backend together (KERAS_BACKEND is read when keras is
imported, so one process per backend), so that rshop and the anchors it is compared with share one
process's state: TensorFlow's speed differs by up to 1.5x from one process to the next.
"""

from __future__ import annotations

from functools import partial

import anchors_jax
import anchors_keras
import anchors_tf
import anchors_torch
import rshop_cases

ENGINES = ("torch", "jax", "tensorflow")
FAMILIES = ENGINES
KERAS_LSTM = "Keras LSTM [{}]"
KERAS_RNN = "Keras RNN(custom cell) [{}]"
TORCH_LOOP, JAX_SCAN, JAX_SPLIT, TF_SCAN = (
    "torch hand loop (unbind)",
    "jax hand lax.scan",
    "jax hand lax.scan, split gates",
    "tf.scan hand (tf.function)",
)


# rshop variants beside the default lowering: what the fast path and the passes are worth
GENERIC, NO_PASSES = "rshop torch, generic loop (fast_path=False)", "rshop {}, no passes"


def _entries():
    for kind in ("lstm", "c1"):
        for engine in ENGINES:
            yield kind, f"rshop {engine}", engine, partial(getattr(rshop_cases, f"on_{engine}"), kind)
        if kind == "lstm":
            yield kind, GENERIC, "torch", partial(rshop_cases.on_torch, kind, fast_path=False)
        yield kind, NO_PASSES.format("torch"), "torch", partial(rshop_cases.on_torch, kind, fast_path=False, passes=())
        yield kind, NO_PASSES.format("jax"), "jax", partial(rshop_cases.on_jax, kind, passes=())
        if kind == "lstm":
            yield kind, "torch.nn.LSTM", "torch", anchors_torch.nn_lstm
        yield kind, TORCH_LOOP, "torch", anchors_torch.lstm_loop if kind == "lstm" else anchors_torch.c1_loop
        yield kind, JAX_SCAN, "jax", partial(anchors_jax.plain_scan, kind)
        yield kind, JAX_SPLIT, "jax", partial(anchors_jax.split_scan, kind)
        yield kind, TF_SCAN, "tensorflow", partial(anchors_tf.scan, kind)
        for backend in ENGINES:
            if kind == "lstm":
                yield kind, KERAS_LSTM.format(backend), backend, anchors_keras.lstm
            yield kind, KERAS_RNN.format(backend), backend, partial(anchors_keras.rnn_cell, kind)


IMPLS = {(kind, name): (family, factory) for kind, name, family, factory in _entries()}


def engine_of(family):
    return family


def in_family(family):
    return [(kind, name) for (kind, name), (fam, _) in IMPLS.items() if fam == family]


def prepare(family):
    """Process setup of ``family``: Keras' backend must be chosen before keras is imported."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = engine_of(family)
