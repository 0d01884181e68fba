"""Workload sizes, input data, reference weights and the FLOP floor of the benchmark."""

from __future__ import annotations

import numpy as np

# name: (batch, steps, input_dim, hidden)
WORKLOADS = {"W1": (32, 100, 64, 128), "W2": (8, 500, 64, 128), "W3": (64, 1000, 128, 256)}
# --quick: the same shapes' character at a fraction of the cost
QUICK = {"W1": (8, 20, 16, 32), "W2": (4, 60, 16, 32), "W3": (8, 40, 32, 64)}
MODELS = ("lstm", "c1")
MODEL_TITLES = {"lstm": "LSTMCell layer", "c1": "C1: peephole LSTM"}
PEAK_GFLOPS = 450.0  # this CPU's best sgemm rate through oneDNN, measured once on the benchmark machine
SEED = 0


def sizes(name, quick=False):
    return (QUICK if quick else WORKLOADS)[name]


def flops(name, quick=False):
    """Matmul FLOPs of (forward, forward + backward); elementwise work is ignored.

    Forward, per step: z = x W + h U is 2 B (d + h) 4h.  Backward w.r.t. the weights only
    (x needs no gradient): dW and dU cost the same again, and dh = dz U^T adds 2 B h 4h.
    So fwd = 8 B T h (d + h) and fwd+bwd = 8 B T h (2d + 3h): W1 gives 0.63 and 1.68 GFLOP.
    The peephole terms of C1 are elementwise, so C1 has the same floor.
    """
    b, t, d, h = sizes(name, quick)
    return 8 * b * t * h * (d + h), 8 * b * t * h * (2 * d + 3 * h)


def floor_ms(name, quick=False):
    return tuple(f / (PEAK_GFLOPS * 1e9) * 1e3 for f in flops(name, quick))


def inputs(name, quick=False):
    b, t, d, _ = sizes(name, quick)
    return np.random.default_rng(1).standard_normal((b, t, d)).astype(np.float32)


def rshop_model(kind, d_in, hidden):
    """The rshop model of ``kind`` ('lstm' or 'c1'), weights drawn from SEED."""
    if kind == "lstm":
        from rshop_core.cells import LSTMCell

        cell = LSTMCell(hidden, input_dim=d_in)
    else:
        from cells import PeepholeLSTMCell

        cell = PeepholeLSTMCell(hidden, input_dim=d_in)
    return cell.get_layer(return_sequences=True, seed=SEED)


def short_weights(model):
    """The model's weights keyed by local name: kernel, recurrent_kernel, bias (+ peephole_i/f/o)."""
    return {k.rsplit("/", 1)[1]: v for k, v in model.get_weights().items()}
