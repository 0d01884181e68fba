"""A user-defined cell: a GRU whose recurrent weights are vectors, so its Jacobian is diagonal.

In a standard GRU every gate reads ``h_{t-1} @ U``: each unit's new value depends on every unit's
old one. Apple's ParaRNN (Danieli et al., 2025) makes the recurrent weights elementwise instead, so
unit ``j`` of ``h_t`` reads only unit ``j`` of ``h_{t-1}``::

    z_t = sigmoid(x_t W_z + a_z * h_{t-1} + b_z)            # update gate
    r_t = sigmoid(x_t W_r + a_r * h_{t-1} + b_r)            # reset gate
    n_t = tanh(x_t W_n + b_n + r_t * (a_n * h_{t-1}))       # candidate
    h_t = z_t * h_{t-1} + (1 - z_t) * n_t

The step is nonlinear in ``h_{t-1}`` but ``d h_t / d h_{t-1}`` is diagonal, the structure that
parallel Newton over time needs. The cell below is written with the public API only: a ``Cell``
subclass, ``self.add_weight`` and ``rshop_core.functional``. The script runs it on the numpy
float64 reference and on the default engine and prints the largest difference.

    python examples/diagonal_gru.py [--engine torch]
"""

from __future__ import annotations

import argparse

import numpy as np

import rshop_backends
from rshop_core import functional as F
from rshop_core.cells import Cell
from rshop_core.initializers import RandomUniform


class DiagonalGRUCell(Cell):
    """The GRU above. Weights: ``kernel`` (input_dim, 3 units) with columns ``[z | r | n]``,
    ``recurrent_diag`` (3, units) with rows ``a_z, a_r, a_n``, ``bias`` (3 units,)."""

    state_names = ("h",)

    def step(self, x, states):
        (h,) = states
        u = self.units
        kernel = self.add_weight("kernel", (x.shape[-1], 3 * u), "glorot_uniform", x.dtype)
        diag = self.add_weight("recurrent_diag", (3, u), RandomUniform(-1.0, 1.0), x.dtype)
        bias = self.add_weight("bias", (3 * u,), "zeros", x.dtype)
        x_z, x_r, x_n = F.split(F.add(F.matmul(x, kernel), bias), 3)
        a_z, a_r, a_n = (F.reshape(row, [u]) for row in F.split(diag, 3, axis=0))
        z = F.sigmoid(F.add(x_z, F.multiply(a_z, h)))
        r = F.sigmoid(F.add(x_r, F.multiply(a_r, h)))
        n = F.tanh(F.add(x_n, F.multiply(r, F.multiply(a_n, h))))
        h_new = F.add(F.multiply(z, h), F.multiply(F.subtract(1.0, z), n))
        return h_new, [h_new]


def to_numpy(y) -> np.ndarray:
    """A result of any engine as a numpy array."""
    if hasattr(y, "detach"):  # torch
        y = y.detach()
    if hasattr(y, "numpy") and not isinstance(y, np.ndarray):  # torch, tensorflow
        return np.asarray(y.numpy())
    return np.asarray(y)  # numpy, jax


def to_engine(engine: str, x: np.ndarray):
    """A float32 numpy array as the engine's own array type."""
    x = x.astype(np.float32)
    if engine == "torch":
        import torch

        return torch.from_numpy(x)
    if engine == "jax":
        import jax.numpy as jnp

        return jnp.asarray(x)
    if engine == "tensorflow":
        import tensorflow as tf

        return tf.constant(x)
    return x


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default=None, help="an installed engine (default: rshop's choice)")
    args = parser.parse_args(argv)
    engine = args.engine or rshop_backends.backend()

    model = DiagonalGRUCell(16, input_dim=3).get_layer(seed=0, return_sequences=True, name="diag_gru")
    x = np.random.default_rng(0).standard_normal((4, 50, 3))
    reference = model.lower("numpy", "float64")(x)
    got = to_numpy(model.lower(engine)(to_engine(engine, x)))
    diff = float(np.max(np.abs(got - reference)))
    print(f"diagonal GRU, 16 units, batch 4, 50 steps: {engine} float32 vs numpy float64, max |diff| = {diff:.2e}")
    return diff


if __name__ == "__main__":
    raise SystemExit(0 if main() < 1e-4 else 1)
