"""What bench/parallel.py times: rshop layers in each ``time_parallel`` mode and hand-written minGRU anchors.

Every implementation is built as ``factory(engine, cell, mode, weights, x, w) -> Impl`` (bench/adapters
style: ``fwd()``, ``fb()``, ``out()``), where the loss of ``fb`` is ``sum(y * w)`` over the whole output
sequence and its gradient is taken w.r.t. every parameter. Frameworks are imported lazily, so importing
this module imports none.

The anchors compute minGRU (``rshop_core.cells.MinGRUCell``: columns ``[z | h~]``) from the rshop
model's own weights:

    z_t = sigmoid(x_t W_z + b_z),  h~_t = x_t W_h + b_h,  h_t = (1 - z_t) h_{t-1} + z_t h~_t,  h_0 = 0

with the input projection of every step done in one matmul before the recurrence, as a careful
engineer would write it:

- jax ``lax.associative_scan``: the pairs (a_t, b_t) = (1 - z_t, z_t h~_t) combined by
  (a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2) along time;
- jax ``lax.scan``: h = a_t h + b_t step by step;
- torch loop: the same, a Python loop over ``unbind(1)``, outputs stacked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters import Impl

CELLS = ("mingru", "rglru", "indrnn", "lstm")
CELL_TITLES = {
    "mingru": "minGRU (MinGRUCell)",
    "rglru": "RG-LRU (RGLRUCell)",
    "indrnn": "IndRNN, tanh (IndRNNCell)",
    "lstm": "LSTM (LSTMCell)",
}
# the parallel mode benchmarked per cell: LSTM has none (its Jacobian is dense), "auto" must keep it sequential
PARALLEL = {"mingru": "scan", "rglru": "scan", "indrnn": "newton", "lstm": "auto"}
JAX_ASSOC, JAX_SCAN, TORCH_LOOP = "jax hand lax.associative_scan", "jax hand lax.scan", "torch hand loop"
SCAN_ALONE = "engine linear_scan alone"
TORCH_NO_SCAN = "torch hand, all but the recurrence"
UNCHECKED = (SCAN_ALONE, TORCH_NO_SCAN)  # they compute something else: timed, not compared with the reference
ANCHORS = {"jax": (JAX_ASSOC, JAX_SCAN), "torch": (TORCH_LOOP,), "tensorflow": ()}


def cell_of(kind: str, hidden: int, d_in: int) -> Any:
    from rshop_core.cells import IndRNNCell, LSTMCell, MinGRUCell, RGLRUCell

    if kind == "mingru":
        return MinGRUCell(hidden, input_dim=d_in)
    if kind == "rglru":
        return RGLRUCell(hidden, input_dim=d_in)
    if kind == "indrnn":
        return IndRNNCell(hidden, input_dim=d_in, activation="tanh")
    if kind == "lstm":
        return LSTMCell(hidden, input_dim=d_in)
    raise ValueError(f"unknown cell {kind!r}")


def model_of(kind: str, hidden: int, d_in: int, mode: Any) -> Any:
    """The rshop layer (return_sequences=True, weights from seed 0: the same for every mode)."""
    return cell_of(kind, hidden, d_in).get_layer(return_sequences=True, time_parallel=mode, seed=0)


def weights(kind: str, hidden: int, d_in: int) -> dict:
    """The seed-0 weights by local name (``kernel``, ``bias``, ...)."""
    w = model_of(kind, hidden, d_in, False).get_weights()
    return {k.rsplit("/", 1)[1]: v for k, v in w.items()}


def reference(kind: str, hidden: int, x: Any) -> Any:
    """The numpy engine's sequential loop in float64: every implementation's forward is checked against it."""
    import numpy as np

    layer = model_of(kind, hidden, x.shape[-1], False).lower("numpy", "float64")
    return np.asarray(layer(x.astype(np.float64)))


@dataclass
class Rshop:
    """An rshop layer lowered to ``engine`` with ``time_parallel=mode``, its Impl, and the layer itself
    (for ``newton_report`` and ``explain()``)."""

    layer: Any
    impl: Impl

    def over_time(self) -> str:
        """explain()'s "over time:" line, or its "path:" line when a fused kernel runs the loop."""
        lines = [line.strip() for line in str(self.layer.explain()).splitlines()]
        for key in ("over time:", "path:"):
            for line in lines:
                if line.startswith(key):
                    return line if key == "path:" else line[len(key) :].strip()
        return "(explain() says nothing of the loop)"


def rshop(engine: str, kind: str, mode: Any, x: Any, w: Any) -> Rshop:
    layer = model_of(kind, w.shape[-1], x.shape[-1], mode).lower(engine)
    if engine == "jax":
        import jax.numpy as jnp

        return Rshop(layer, _jax(layer.apply, layer.params, jnp.asarray(x), jnp.asarray(w)))
    if engine == "torch":
        import torch

        return Rshop(
            layer, _torch(lambda x: layer(x), list(layer.parameters()), torch.from_numpy(x), torch.from_numpy(w))
        )
    import tensorflow as tf

    return Rshop(layer, _tf(layer, list(layer.trainable_variables), tf.constant(x), tf.constant(w)))


def anchor(name: str, p: dict, x: Any, w: Any) -> Impl:
    """A hand-written minGRU (``p``: the rshop weights by local name)."""
    if name == TORCH_LOOP:
        import torch

        tp = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in p.items()}

        def loop(x):
            zp, hp = (x @ tp["kernel"] + tp["bias"]).chunk(2, -1)
            z = torch.sigmoid(zp)
            a, b = 1 - z, z * hp
            h = x.new_zeros(x.shape[0], a.shape[-1])
            ys = []
            for at, bt in zip(a.unbind(1), b.unbind(1)):  # a[:, t] would make the backward O(T^2)
                h = at * h + bt
                ys.append(h)
            return torch.stack(ys, 1)

        return _torch(loop, list(tp.values()), torch.from_numpy(x), torch.from_numpy(w))
    if name == TORCH_NO_SCAN:  # a floor for any eager torch minGRU: its coefficients, a + b in place of the scan
        import torch

        tp = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in p.items()}

        def coefficients_only(x):
            zp, hp = (x @ tp["kernel"] + tp["bias"]).chunk(2, -1)
            z = torch.sigmoid(zp)
            return (1 - z) + z * hp

        return _torch(coefficients_only, list(tp.values()), torch.from_numpy(x), torch.from_numpy(w))
    import jax
    import jax.numpy as jnp

    def coefficients(q, x):
        zp, hp = jnp.split(x @ q["kernel"] + q["bias"], 2, axis=-1)
        z = jax.nn.sigmoid(zp)
        return 1 - z, z * hp

    if name == JAX_ASSOC:

        def apply(q, x):
            def combine(left, right):
                return left[0] * right[0], right[0] * left[1] + right[1]

            return jax.lax.associative_scan(combine, coefficients(q, x), axis=1)[1]

    elif name == JAX_SCAN:

        def apply(q, x):
            a, b = coefficients(q, x)

            def step(h, ab):
                h = ab[0] * h + ab[1]
                return h, h

            h0 = jnp.zeros((x.shape[0], a.shape[-1]), x.dtype)
            _, hs = jax.lax.scan(step, h0, (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)))
            return jnp.swapaxes(hs, 0, 1)

    else:
        raise ValueError(f"unknown anchor {name!r}")
    return _jax(apply, {k: jnp.asarray(v) for k, v in p.items()}, jnp.asarray(x), jnp.asarray(w))


def scan_alone(engine: str, batch: int, steps: int, hidden: int) -> Impl:
    """The engine's ``linear_scan`` by itself on (batch, T, hidden), a in (0, 1), b ~ N(0, 1), h0 = 0
    (forward + backward: the gradient of ``sum(h * w)`` w.r.t. a, b and h0): the floor of the scan loop."""
    import importlib

    import numpy as np

    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, (batch, steps, hidden)).astype(np.float32)
    b, w = rng.standard_normal((2, batch, steps, hidden)).astype(np.float32)
    h0 = np.zeros((batch, hidden), np.float32)
    scan = importlib.import_module(f"rshop_backends.{engine}.parallel").linear_scan
    if engine == "jax":
        import jax.numpy as jnp

        return _jax(lambda p, unused: scan(*p), [jnp.asarray(v) for v in (a, b, h0)], jnp.zeros(()), jnp.asarray(w))
    if engine == "torch":
        import torch

        ts = [torch.nn.Parameter(torch.from_numpy(v)) for v in (a, b, h0)]
        return _torch(lambda unused: scan(*ts), ts, torch.zeros(()), torch.from_numpy(w))
    import tensorflow as tf

    vs = [tf.Variable(v) for v in (a, b, h0)]
    return _tf(lambda unused: scan(*vs), vs, tf.zeros(()), tf.constant(w))


# -- the three engines' timing wrappers (loss sum(y * w)) -----------------------------------------
def _jax(apply, params, x, w) -> Impl:
    import jax
    import jax.numpy as jnp

    f = jax.jit(apply)
    g = jax.jit(jax.grad(lambda p, x, w: jnp.sum(apply(p, x) * w)))
    return Impl(
        lambda: f(params, x).block_until_ready(),
        lambda: jax.block_until_ready(g(params, x, w)),
        lambda: jax.device_get(f(params, x)),
    )


def _torch(forward, params, x, w) -> Impl:
    import torch

    torch.set_num_threads(2)

    def fwd():
        with torch.no_grad():
            return forward(x)

    def fb():
        for p in params:
            p.grad = None
        (forward(x) * w).sum().backward()
        return [p.grad for p in params]

    return Impl(fwd, fb, lambda: fwd().numpy())


def _tf(call, variables, x, w) -> Impl:
    import tensorflow as tf

    f = tf.function(call)

    @tf.function
    def g(x, w):
        with tf.GradientTape() as tape:
            s = tf.reduce_sum(call(x) * w)
        return tape.gradient(s, variables)

    return Impl(lambda: f(x).numpy(), lambda: [t.numpy() for t in g(x, w)], lambda: f(x).numpy())
