"""The time-parallel loop, written once for every engine.

A plan with a :class:`~rshop_core.parallel.loop_plan.ParallelPlan` runs here instead of the
engine's sequential ``loop.scan``. Every time step's work is done at once by folding time into
the batch ((batch, T, ...) -> (batch * T, ...)) and calling the plan's generated code:

1. the **coefficients** graph at (x_t, s_{t-1}) gives f_t = the new states and the Jacobian's
   entries J_t (forward derivatives in a few seed directions, gathered into coupled groups);
2. a **linear scan** solves h_t = A_t h_{t-1} + b_t for every t in O(log T) depth (the engine's
   ``linear_scan``): for an affine step A_t = J_t and b_t = f_t at s = 0, exactly; for a
   nonlinear one, **Newton** (DEER) repeats it with A_t = J_t(s^k_{t-1}) and
   b_t = f_t(s^k_{t-1}) - A_t s^k_{t-1} until the states stop moving (eagerly: until the next step is
   expected to leave them within tolerance), then takes one more, differentiable step with A and s^k
   held constant, whose change is the convergence check: its backward is the implicit adjoint (one
   reverse linear scan and the step's own backward), not a backward through the iterations;
3. the plan's **step** at (x_t, h_{t-1}) gives every output.

The engine's ``parallel`` module (``EngineSpec.parallel``) supplies ``linear_scan`` and the few
array and control-flow functions used here (:class:`ArrayOps`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from rshop_core.errors import RshopParallelWarning

if TYPE_CHECKING:
    from rshop_core.execution import Plan
    from rshop_core.parallel.loop_plan import Level

    from .codegen import GeneratedStep
    from .lowered import Lowered

# what a loop over time returns: (outputs, final states), engine arrays
Result = tuple[Sequence[Any], Sequence[Any]]


class ArrayOps(Protocol):
    """What an engine's ``parallel`` module provides to this driver (over its own arrays)."""

    EAGER: bool  # control flow runs in Python (numpy, torch): a branch costs nothing, differentiated or not
    AUTO_MIN_STEPS: int | None  # "auto" runs a scan from this many steps (None: never)
    AUTO_MAX_STEP_ELEMENTS: int | None  # ... and up to this many state elements per step, batch x N (None: any)

    def linear_scan(self, a: Any, b: Any, h0: Any) -> Any: ...
    def reshape(self, a: Any, shape: Sequence[int]) -> Any: ...
    def concat(self, arrays: Sequence[Any], axis: int) -> Any: ...
    def stack(self, arrays: Sequence[Any], axis: int) -> Any: ...
    def take(self, a: Any, index: np.ndarray) -> Any: ...
    def zeros_like(self, a: Any) -> Any: ...
    def repeat_time(self, a: Any, steps: int) -> Any: ...
    def stop_gradient(self, a: Any) -> Any: ...
    def sum_last(self, a: Any) -> Any: ...
    def minus_product(self, f: Any, a: Any, v: Any) -> Any: ...  # f - a * v (elementwise)
    def max_change(self, new: Any, old: Any) -> Any: ...  # max|new - old| / (1 + max|new|); NaN if any is
    def while_loop(self, cond: Callable, body: Callable, init: tuple) -> tuple: ...
    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable) -> Any: ...
    def report(self, callback: Callable, *values: Any) -> None: ...


def wanted(layer: Lowered, plan: Plan, steps: int | None, batch: int | None = None) -> bool:
    """Whether this call of ``plan`` runs the parallel loop: always when asked for by name, under
    ``"auto"`` when the engine's measured policy says it is faster: at least ``AUTO_MIN_STEPS`` steps
    and at most ``AUTO_MAX_STEP_ELEMENTS`` state elements per step (batch x N; the batch counts as 1
    when unknown while tracing)."""
    pp = plan.parallel
    xp = layer._engine_module.parallel
    if pp is None or xp is None:
        return False
    if pp.forced:
        return True
    least, most = xp.AUTO_MIN_STEPS, xp.AUTO_MAX_STEP_ELEMENTS
    if least is None or steps is None or steps < least:
        return False
    return most is None or (batch or 1) * pp.width <= most


def run(
    layer: Lowered,
    plan: Plan,
    P: dict[str, Any],
    xs: list[Any],
    states: list[Any],
    consts: list[Any],
    steps: Any,
    sequential: Callable[[], Result],
) -> Result:
    """``(outputs, final states)`` of ``plan`` over ``steps`` time steps, in parallel over time
    (``steps``: an int, or a scalar tensor when T is unknown while tracing: tensorflow).
    ``xs``: the scanned sequences after the prelude; ``sequential()`` runs the engine's own loop
    (Newton's fallback)."""
    xp: ArrayOps | None = layer._engine_module.parallel  # a module: ArrayOps
    pp = plan.parallel
    assert xp is not None and pp is not None, "wanted() runs the parallel loop only for such plans and engines"
    if plan.options.go_backwards:
        xs = [layer._flip_time(x) for x in xs]
    fx = [_fold(xp, x) for x in xs]
    fk = [_fold(xp, xp.repeat_time(k, steps)) for k in consts]
    tol = plan.options.tolerance(layer.dtype)
    prev = _Previous(xp)  # state index -> its values at t - 1, (batch, T, N_i) flat per example
    new: dict[int, Any] = {}  # state index -> its values at t, (batch, T, N_i)
    shapes = [tuple(plan.graph.nodes[sid].type.shape) for sid in plan.graph.states]
    converged: Any = None  # an engine bool scalar once a Newton level ran
    for i, level in enumerate(pp.levels):
        solver = _Level(xp, level, functools.partial(_part, layer, plan, i), steps)
        h0 = solver.pack([states[j] for j in level.states])
        ups = [xp.reshape(_fold(xp, prev[j]), (-1, *shapes[j])) for j in level.upstream]
        if level.kind == "scan":
            H = solver.scan(P, fx + ups, fk, h0)
        else:
            H, ok = solver.newton(P, fx + ups, fk, h0, tol, plan.options.newton_max_iter, layer)
            converged = ok if converged is None else converged & ok
        at = 0
        for j, n in zip(level.states, solver.sizes):
            prev.add(j, i, H, h0, at, n)
            new[j] = H[..., at : at + n]
            at += n

    def result() -> Result:
        return _outputs(layer, plan, xp, P, xs, consts, fx, fk, prev, new, steps)

    if converged is None:
        return result()
    out: Result = xp.cond(converged, result, sequential)
    return out


def _outputs(
    layer: Lowered,
    plan: Plan,
    xp: ArrayOps,
    P: dict[str, Any],
    xs: list[Any],
    consts: list[Any],
    fx: list[Any],
    fk: list[Any],
    prev: _Previous,
    new: dict[int, Any],
    steps: int,
) -> Result:
    """``(outputs, final states)`` from every step's previous and new states: an output that is a new
    state is read off; any other comes from the step evaluated at (x_t, s_{t-1}) — for every t at
    once with ``return_sequences``, else at the last step only."""
    g = plan.graph
    shapes = [tuple(g.nodes[sid].type.shape) for sid in g.states]
    finals = [xp.reshape(new[j][:, -1], (-1, *shapes[j])) for j in range(len(shapes))]
    every = plan.options.return_sequences
    read = [g.final_states.index(o) if o in g.final_states else None for o in g.outputs]
    ys: list[Any] = [None] * len(read)
    for k, j in enumerate(read):
        if j is not None:
            v = new[j] if every else new[j][:, -1]
            ys[k] = xp.reshape(v, (-1, steps, *shapes[j]) if every else (-1, *shapes[j]))
    if any(j is None for j in read):
        if every:
            previous = [xp.reshape(_fold(xp, prev[j]), (-1, *shapes[j])) for j in range(len(shapes))]
            outs, _ = layer._step(plan)(P, *fx, previous, fk)
            outs = [xp.reshape(y, (-1, steps, *tuple(y.shape[1:]))) for y in outs]
        else:
            previous = [xp.reshape(prev[j][:, -1], (-1, *shapes[j])) for j in range(len(shapes))]
            outs, _ = layer._step(plan)(P, *[x[:, -1] for x in xs], previous, consts)
        ys = [outs[k] if y is None else y for k, y in enumerate(ys)]
    return ys, finals


def _part(layer: Lowered, plan: Plan, level: int, part: str) -> GeneratedStep:
    """The generated code of a level's ``part`` (``"coefficients"``, ``"zero"``, ``"prefix"``, ``"remainder"``)."""
    return layer._compiled(plan, (part, level))


class _Previous:
    """Every state's values at t - 1 (batch, T, N_i), made from a level's states when first read (by a
    later level or an output that is not a state): one copy per level, none when nothing reads them."""

    def __init__(self, xp: ArrayOps) -> None:
        self.xp = xp
        self.where: dict[int, tuple[int, int, int]] = {}  # state -> (level, offset, size)
        self.levels: dict[int, tuple[Any, Any]] = {}  # level -> (H, h0)
        self.shifted: dict[int, Any] = {}

    def add(self, j: int, level: int, H: Any, h0: Any, at: int, n: int) -> None:
        self.where[j] = (level, at, n)
        self.levels[level] = (H, h0)

    def __getitem__(self, j: int) -> Any:
        level, at, n = self.where[j]
        if level not in self.shifted:
            self.shifted[level] = _shift(self.xp, *self.levels[level])
        return self.shifted[level][..., at : at + n]


def _fold(xp: ArrayOps, a: Any) -> Any:
    """(batch, T, ...) -> (batch * T, ...)."""
    return xp.reshape(a, (-1, *tuple(a.shape[2:])))


def _shift(xp: ArrayOps, H: Any, h0: Any) -> Any:
    """The previous states of every step: h0, h_1, ..., h_{T-1} (batch, T, N)."""
    return xp.concat([h0[:, None], H[:, :-1]], axis=1)


class _Level:
    """One level's solve, over flat state vectors (..., N) and their coupled-group layout (..., G, k)
    (the identity when the Jacobian is diagonal: everything stays (..., N))."""

    def __init__(self, xp: ArrayOps, level: Level, compiled: Callable[[str], GeneratedStep], steps: int) -> None:
        self.xp, self.level, self.compiled, self.steps = xp, level, compiled, steps
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in level.shapes]
        self.colors = level.block
        if level.layout is not None:
            self.index = np.where(level.layout < 0, level.width, level.layout)  # -1 padding reads an appended zero

    # -- shapes ---------------------------------------------------------------------------
    def pack(self, states: Sequence[Any]) -> Any:
        """Per-state arrays (M, *shape_i) -> the flat vector (M, N)."""
        flat = [self.xp.reshape(s, (-1, n)) for s, n in zip(states, self.sizes)]
        return flat[0] if len(flat) == 1 else self.xp.concat(flat, axis=-1)

    def unpack(self, v: Any) -> list[Any]:
        """The flat vector (M, N) -> per-state arrays (M, *shape_i)."""
        out, at = [], 0
        for shape, n in zip(self.level.shapes, self.sizes):
            out.append(self.xp.reshape(v[:, at : at + n], (-1, *shape)))
            at += n
        return out

    def grouped(self, v: Any) -> Any:
        """(..., N) -> (..., G, k)."""
        if self.level.layout is None:
            return v
        return self.xp.take(self.xp.concat([v, self.xp.zeros_like(v[..., :1])], axis=-1), self.index)

    def flat(self, v: Any) -> Any:
        """(..., G, k) -> (..., N)."""
        inverse = self.level.inverse  # set with the layout
        if inverse is None:
            return v
        return self.xp.take(self.xp.reshape(v, (*tuple(v.shape[:-2]), -1)), inverse)

    def apply(self, A: Any, v: Any) -> Any:
        """A v per group (elementwise for a diagonal A)."""
        return A * v if self.level.layout is None else self.xp.sum_last(A * v[..., None, :])

    # -- solves ---------------------------------------------------------------------------
    def hoisted(self, P: dict[str, Any], fx: list[Any], fk: list[Any]) -> list[Any]:
        """The scanned inputs of the graph each Newton iteration evaluates: the coefficients' own
        (``fx``), or, when they have a state-free prefix, the inputs the remainder keeps and the
        prefix's values, computed here once for every iteration (:mod:`rshop_core.parallel.hoist`)."""
        cut = self.level.split
        if cut is None:
            return fx
        pre, _ = self.compiled("prefix")(P, *fx, [], fk)
        return [fx[k] for k in cut.keep] + list(pre)

    def linearise(self, P: dict[str, Any], xs: list[Any], fk: list[Any], prev: Any) -> tuple[Any, Any]:
        """``(A, f)`` at the previous states ``prev`` (batch, T, N): the Jacobian in group layout
        ((..., G, k, k), or its diagonal (..., N)) and the new states (..., G, k). ``xs``: what
        :meth:`hoisted` returned."""
        part = "coefficients" if self.level.split is None else "remainder"
        outs, _ = self.compiled(part)(P, *xs, self.unpack(_fold(self.xp, prev)), fk)
        return self.coefficients(outs)

    def coefficients(self, outs: Sequence[Any]) -> tuple[Any, Any]:
        """``(A, f)`` from the coefficient graph's outputs (new states, then one per seed and state)."""
        xp, n = self.xp, len(self.sizes)

        def seq(arrays: Sequence[Any]) -> Any:
            v = self.pack(arrays)
            return xp.reshape(v, (-1, self.steps, v.shape[-1]))

        cols = [self.grouped(seq(outs[n * (c + 1) : n * (c + 2)])) for c in range(self.colors)]
        A = cols[0] if self.level.layout is None else xp.stack(cols, axis=-1)
        return A, self.grouped(seq(outs[:n]))

    def scan(self, P: dict[str, Any], fx: list[Any], fk: list[Any], h0: Any) -> Any:
        """The exact solve of an affine level: A and b = f at zero states, one linear scan. The
        coefficients come from their zero-state form when every zero folds (no zero state is made
        or multiplied), else from the whole graph at zero states."""
        if self.level.zero is not None:
            outs, _ = self.compiled("zero")(P, *fx, [], fk)
            A, b = self.coefficients(outs)
        else:
            A, b = self.linearise(P, fx, fk, self.xp.zeros_like(self.xp.repeat_time(h0, self.steps)))
        return self.flat(self.xp.linear_scan(A, b, self.grouped(h0)))

    def newton(
        self, P: dict[str, Any], fx: list[Any], fk: list[Any], h0: Any, tol: float, max_iter: int, layer: Lowered
    ) -> tuple[Any, Any]:
        """Newton's iterations with every input held constant, then one differentiable step with A
        and the previous states held constant (the implicit adjoint): ``(states, converged)``, converged
        when that last step moved no state by more than ``tol`` (relative, :func:`max_change`). The
        state-free prefix of the coefficients runs once, before the iterations, and serves them
        all (held constant) and the differentiable step. Every step counts towards ``max_iter`` and the
        reported iterations, the last one included."""
        xp = self.xp
        sg = xp.stop_gradient
        xs = self.hoisted(P, fx, fk)
        Ps = {k: sg(v) for k, v in P.items()}
        xss, fks, h0s = [sg(v) for v in xs], [sg(v) for v in fk], sg(h0)
        h0g = self.grouped(h0s)

        def body(carry: tuple[Any, Any, Any, Any]) -> tuple[Any, Any, Any, Any]:
            it, S, change, _ = carry
            new = self.update(Ps, xss, fks, _shift(xp, S, h0s), h0g, hold=False)
            return it + 1, new, xp.max_change(new, S), change

        # Eagerly (numpy, torch) the loop stops when the last, differentiable step is expected to settle it,
        # and that step's change is the check: one linear solve fewer. Compiled (jax, tensorflow), the loop
        # runs until a change is within tol and the last step follows: a cond around that step would cost
        # both branches (jax's autodiff keeps both branches' residuals: forward + backward 25 -> 57 ms at
        # the IndRNN target; tensorflow compiles twice as long for no gain).
        def unsettled(carry: tuple[Any, Any, Any, Any]) -> Any:
            it, _, change, before = carry
            return newton_goes_on(change, before, tol) & (it + 1 < max_iter)

        def plain(carry: tuple[Any, Any, Any, Any]) -> Any:
            it, _, change, _ = carry
            return (change > tol) & (it + 1 < max_iter)

        def last(carry: tuple[Any, Any, Any, Any]) -> tuple[Any, Any, Any]:
            """The differentiable step from the carry's states: (states, how far they moved, steps taken)."""
            it, S, _, _ = carry
            H = self.update(P, xs, fk, sg(_shift(xp, S, h0s)), self.grouped(h0), hold=True)
            return H, xp.max_change(sg(H), S), it + 1

        carry: tuple[Any, Any, Any, Any] = (0, xp.repeat_time(h0s, self.steps), None, None)
        if max_iter > 1:
            it, S, change, _ = body(carry)
            carry = xp.while_loop(unsettled if xp.EAGER else plain, body, (it, S, change, change))
        H, change, steps = last(carry)
        if xp.EAGER and bool(change > tol) and int(steps) < max_iter:  # it was expected to settle it, but did not
            H, change, steps = last(xp.while_loop(plain, body, (steps, sg(H), change, change)))
        converged = change <= tol
        xp.report(layer._newton_report, steps, change, converged)
        return H, converged

    def update(self, P: dict[str, Any], xs: list[Any], fk: list[Any], prev: Any, h0g: Any, hold: bool) -> Any:
        """One Newton step from the previous states ``prev`` (batch, T, N): the states solving
        ``h_t = A_t h_{t-1} + f_t - A_t prev_t`` with A, f linearised at ``prev``. ``hold``: A is held
        constant (the differentiable last step: its backward is the implicit adjoint)."""
        A, f = self.linearise(P, xs, fk, prev)
        if hold:
            A = self.xp.stop_gradient(A)
        v = self.grouped(prev)
        b = self.xp.minus_product(f, A, v) if self.level.layout is None else f - self.apply(A, v)
        return self.flat(self.xp.linear_scan(A, b, h0g))


def newton_goes_on(change: Any, before: Any, tol: float) -> Any:
    """Whether Newton iterates again before its last, differentiable step (an engine bool): not when the
    last change was within ``tol``, nor when the next is expected to be. Near the solution Newton's error
    squares from one step to the next (e_{k+1} = C e_k^2) and a change measures the error before it, so
    the next change is about ``change^3 / before^2`` while the changes shrink. The last step then serves
    as the final check; when it moves the states by more than ``tol`` after all, the iterations go on.
    A NaN change stops (NaN > tol is False)."""
    ratio = change / before
    return (change > tol) & (change * ratio * ratio > tol)


def eager_while_loop(cond: Callable[[Any], Any], body: Callable[[Any], Any], init: tuple[Any, ...]) -> Any:
    """``while_loop`` of the ArrayOps for engines that run eagerly (numpy, torch): a Python loop."""
    carry = init
    while bool(cond(carry)):
        carry = body(carry)
    return carry


def eager_cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    """``cond`` of the ArrayOps for engines that run eagerly: a Python ``if``."""
    return true_fn() if bool(pred) else false_fn()


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
