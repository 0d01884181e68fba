"""The time-parallel loop, written once for every engine.

A plan with a :class:`~rshop_core.parallel.loop_plan.ParallelPlan` runs here instead of the
engine's sequential ``loop.scan``. Every time step's work is done at once by folding time into
the batch ((batch, T, ...) -> (batch * T, ...)) and calling the plan's generated code:

1. the **coefficients** graph at (x_t, s_{t-1}) gives f_t = the new states and the Jacobian's
   entries J_t (forward derivatives in a few seed directions, gathered into coupled groups);
2. a **linear scan** solves h_t = A_t h_{t-1} + b_t for every t in O(log T) depth (the engine's
   ``linear_scan``): for an affine step A_t = J_t and b_t = f_t at s = 0, exactly; for a
   nonlinear one, **Newton** (DEER) repeats it with A_t = J_t(s^k_{t-1}) and
   b_t = f_t(s^k_{t-1}) - A_t s^k_{t-1} until the states stop moving, then takes one more,
   differentiable step with A and s^k held constant: its backward is the implicit adjoint (one
   reverse linear scan and the step's own backward), not a backward through the iterations;
3. the plan's **step** at (x_t, h_{t-1}) gives every output.

The engine's ``parallel`` module (``EngineSpec.parallel``) supplies ``linear_scan`` and the few
array and control-flow functions used here (:class:`ArrayOps`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from rshop_core.errors import RshopParallelWarning


class ArrayOps(Protocol):
    """What an engine's ``parallel`` module provides to this driver (over its own arrays)."""

    AUTO_MIN_STEPS: int | None  # "auto" runs a scan from this many steps (None: never)

    def linear_scan(self, a: Any, b: Any, h0: Any) -> Any: ...
    def reshape(self, a: Any, shape: Sequence[int]) -> Any: ...
    def concat(self, arrays: Sequence[Any], axis: int) -> Any: ...
    def stack(self, arrays: Sequence[Any], axis: int) -> Any: ...
    def take(self, a: Any, index: np.ndarray) -> Any: ...
    def zeros_like(self, a: Any) -> Any: ...
    def repeat_time(self, a: Any, steps: int) -> Any: ...
    def stop_gradient(self, a: Any) -> Any: ...
    def sum_last(self, a: Any) -> Any: ...
    def max_change(self, new: Any, old: Any) -> Any: ...
    def while_loop(self, cond: Callable, body: Callable, init: tuple) -> tuple: ...
    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable) -> Any: ...
    def report(self, callback: Callable, *values: Any) -> None: ...


def wanted(layer: Any, plan: Any, steps: int | None) -> bool:
    """Whether this call of ``plan`` runs the parallel loop: always when asked for by name,
    under ``"auto"`` when the engine's measured policy says it is faster at ``steps``."""
    pp = plan.parallel
    xp = layer._engine_module.parallel
    if pp is None or xp is None:
        return False
    if pp.forced:
        return True
    least = xp.AUTO_MIN_STEPS
    return least is not None and steps is not None and steps >= least


def run(layer: Any, plan: Any, P: dict, xs: list, states: list, consts: list, steps: int, sequential: Callable):
    """``(outputs, final states)`` of ``plan`` over ``steps`` time steps, in parallel over time.
    ``xs``: the scanned sequences after the prelude; ``sequential()`` runs the engine's own loop
    (Newton's fallback)."""
    xp = layer._engine_module.parallel
    pp = plan.parallel
    if plan.options.go_backwards:
        xs = [layer._flip_time(x) for x in xs]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in pp.shapes]
    fold = _Folding(xp, pp.shapes, sizes, steps)
    fx = [fold.fold(x) for x in xs]
    fk = [fold.fold(xp.repeat_time(k, steps)) for k in consts]
    coefficients = layer._compiled(plan, "coefficients")
    h0 = fold.pack(states)  # (batch, N)
    n_states = len(pp.shapes)
    groups = _Groups(xp, pp)

    def linearise(Pv, fxv, fkv, prev):
        """(A, f) at the previous states ``prev`` (batch, T, N), in group layout."""
        outs, _ = coefficients(Pv, *fxv, fold.unpack(fold.fold(prev)), fkv)
        f = fold.unfold_flat(fold.pack(outs[:n_states]))
        cols = [
            fold.unfold_flat(fold.pack(outs[n_states * (c + 1) : n_states * (c + 2)])) for c in range(groups.colors)
        ]
        return groups.matrix(cols), groups.vector(f)

    if pp.kind == "scan":
        zero = xp.zeros_like(xp.repeat_time(h0, steps))
        A, f = linearise(P, fx, fk, zero)
        H = groups.flat(xp.linear_scan(A, f, groups.vector(h0)))
        return _outputs(layer, plan, xp, fold, P, fx, fk, h0, H)

    tol = plan.options.tolerance(layer.dtype)
    H, converged = _newton(xp, groups, fold, linearise, P, fx, fk, h0, steps, tol, plan.options.newton_max_iter, layer)

    def parallel_result():
        # one more Newton step, differentiable: A and the previous states held constant
        prev = xp.stop_gradient(_shift(xp, H, h0))
        A, f = linearise(P, fx, fk, prev)
        A = xp.stop_gradient(A)
        b = f - groups.apply(A, groups.vector(prev))
        Hd = groups.flat(xp.linear_scan(A, b, groups.vector(h0)))
        return _outputs(layer, plan, xp, fold, P, fx, fk, h0, Hd)

    return xp.cond(converged, parallel_result, sequential)


def _newton(xp, groups, fold, linearise, P, fx, fk, h0, steps, tol, max_iter, layer):
    """The Newton iterations with every input held constant: ``(states (batch, T, N), converged)``."""
    sg = xp.stop_gradient
    Ps = {k: sg(v) for k, v in P.items()}
    fxs, fks, h0s = [sg(v) for v in fx], [sg(v) for v in fk], sg(h0)
    h0g = groups.vector(h0s)

    def body(carry):
        it, S, _ = carry
        prev = _shift(xp, S, h0s)
        A, f = linearise(Ps, fxs, fks, prev)
        new = groups.flat(xp.linear_scan(A, f - groups.apply(A, groups.vector(prev)), h0g))
        return it + 1, new, xp.max_change(new, S)

    def keep_going(carry):
        it, _, change = carry
        return (change > tol) & (it < max_iter)  # a NaN change stops (NaN > tol is False)

    start = xp.repeat_time(h0s, steps)
    init = body((0, start, None))
    it, S, change = xp.while_loop(keep_going, body, init)
    converged = change <= tol
    xp.report(layer._newton_report, it, change, converged)
    return S, converged


def _outputs(layer, plan, xp, fold, P, fx, fk, h0, H):
    """Every step's outputs from the states: the step at (x_t, h_{t-1}) for all t at once."""
    prev = _shift(xp, H, h0)
    ys, _ = layer._step(plan)(P, *fx, fold.unpack(fold.fold(prev)), fk)
    ys = [fold.unfold(y) for y in ys]
    if not plan.options.return_sequences:
        ys = [y[:, -1] for y in ys]
    last = H[:, -1]
    finals = fold.unpack(last)
    return list(ys), list(finals)


def _shift(xp, H, h0):
    """The previous states of every step: h0, h_1, ..., h_{T-1} (batch, T, N)."""
    return xp.concat([h0[:, None], H[:, :-1]], axis=1)


class _Folding:
    """Reshapes between (batch, T, ...) sequences, (batch * T, ...) folded arrays, per-state arrays
    and the flat state vector (..., N)."""

    def __init__(self, xp, shapes, sizes, steps):
        self.xp, self.shapes, self.sizes, self.steps = xp, shapes, sizes, steps

    def fold(self, a):
        return self.xp.reshape(a, (-1, *tuple(a.shape[2:])))

    def unfold(self, a):
        return self.xp.reshape(a, (-1, self.steps, *tuple(a.shape[1:])))

    def unfold_flat(self, a):
        return self.xp.reshape(a, (-1, self.steps, a.shape[-1]))

    def pack(self, states):
        """Per-state arrays (M, *shape_i) -> the flat vector (M, N)."""
        flat = [self.xp.reshape(s, (-1, n)) for s, n in zip(states, self.sizes)]
        return flat[0] if len(flat) == 1 else self.xp.concat(flat, axis=-1)

    def unpack(self, v):
        """The flat vector (M, N) -> per-state arrays (M, *shape_i)."""
        out, at = [], 0
        for shape, n in zip(self.shapes, self.sizes):
            out.append(self.xp.reshape(v[:, at : at + n], (-1, *shape)))
            at += n
        return out


class _Groups:
    """The flat state vector (..., N) in the layout of its coupled groups (..., G, k), and back;
    the identity when the Jacobian is diagonal (k = 1: everything stays (..., N))."""

    def __init__(self, xp, pp):
        self.xp = xp
        self.layout = pp.layout
        self.colors = 1 if pp.layout is None else int(pp.layout.shape[1])
        if pp.layout is not None:
            n = pp.width
            self.index = np.where(pp.layout < 0, n, pp.layout)  # -1 padding reads an appended zero
            self.inverse = pp.inverse

    def _padded(self, v):
        return self.xp.concat([v, self.xp.zeros_like(v[..., :1])], axis=-1)

    def vector(self, v):
        """(..., N) -> (..., G, k)."""
        return v if self.layout is None else self.xp.take(self._padded(v), self.index)

    def flat(self, v):
        """(..., G, k) -> (..., N)."""
        if self.layout is None:
            return v
        lead = tuple(v.shape[:-2])
        return self.xp.take(self.xp.reshape(v, (*lead, -1)), self.inverse)

    def matrix(self, cols):
        """The Jacobian in group layout from its seed columns: (..., N) each -> (..., G, k, k), or
        (..., N) (its diagonal) when k = 1."""
        if self.layout is None:
            return cols[0]
        return self.xp.stack([self.vector(c) for c in cols], axis=-1)

    def apply(self, A, v):
        """A v per group: elementwise for a diagonal A."""
        if self.layout is None:
            return A * v
        return self.xp.sum_last(A * v[..., None, :])


def warn_fallback(where: str, iterations: int, change: float, converged: bool) -> None:
    """The report of a Newton loop that fell back to the sequential loop."""
    if converged:
        return
    what = "went non-finite" if not np.isfinite(change) else f"did not converge (largest change {change:.3g})"
    warnings.warn(
        f"{where}: parallel Newton {what} after {iterations} iterations; the sequential loop ran instead. "
        "Raise newton_max_iter or newton_tol, or use time_parallel=False for this model.",
        RshopParallelWarning,
        stacklevel=3,
    )
