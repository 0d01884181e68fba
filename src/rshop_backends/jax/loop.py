"""The jax loop: ``jax.lax.scan`` over the time-major sequences.

``scan(step, P, xs, states, consts, options, length) -> (outputs, final_states)``, the same
contract as :func:`rshop_backends.numpy.loop.scan`: ``xs`` is a list of scanned sequences
(batch, T, ...) — x, a shifted ground truth, a bool mask — all reversed together with
``go_backwards``; it may be empty (decode), then the scan runs ``length`` steps. The step is
called as ``step(P, *x_slices, states, consts)``. Outputs are (batch, T, ...) in processing
order with ``return_sequences``, else the last step's (batch, ...). Pure and traceable: the
caller jits it (T and ``length`` are static under jit).

``remat`` (k steps per segment, :meth:`LoopOptions.remat_segment`): an outer scan over the
T // k segments whose body, wrapped in ``jax.checkpoint``, is an inner scan of k steps; the
backward pass keeps the carry at each segment boundary and recomputes a segment's steps
while differentiating it. The T % k steps left run in a plain scan after them (fewer than
k steps: no more memory than one segment). ``unroll`` applies to the inner scans.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from jax import export as jax_export

if TYPE_CHECKING:
    from rshop_backends.codegen import GeneratedStep
    from rshop_core.options import LoopOptions


def symbolic(steps: Any) -> bool:
    """Whether ``steps`` is a symbolic dimension (``jax.export`` with a dynamic T), not a number."""
    return bool(jax_export.is_symbolic_dim(steps))


def _unroll(option: Any, steps: Any) -> int:
    """``unroll`` as scan's: False -> 1, True -> T (fully unrolled), k -> min(k, T): never more
    steps traced than the loop runs. A symbolic T (``jax.export``): 1, since ``lax.scan`` cannot
    split a symbolic length into unrolled blocks (unrolling never changes the numbers)."""
    if option is False or symbolic(steps):
        return 1
    if option is True:
        return max(int(steps), 1)
    return max(min(int(option), int(steps)), 1)


def scan(
    step: GeneratedStep,
    P: dict[str, Any],
    xs: Sequence[Any],
    states: Sequence[Any],
    consts: Sequence[Any],
    options: LoopOptions,
    length: int,
) -> tuple[list[Any], list[Any]]:
    """The loop over time: ``(outputs, final states)`` (see the module's docstring)."""
    seqs = tuple(jnp.swapaxes(x, 0, 1) for x in xs)  # each (T, batch, ...)
    if options.go_backwards:
        seqs = tuple(jnp.flip(s, axis=0) for s in seqs)  # processed forward: outputs in processing order
    steps = seqs[0].shape[0] if seqs else int(length)
    unroll = _unroll(options.unroll, steps)
    states = tuple(states)
    consts = tuple(consts)
    scanned = seqs if seqs else None  # decode: nothing scanned, ``length`` steps
    known = None if scanned is not None and symbolic(steps) else steps  # scan reads a symbolic T from xs
    # remat only changes what a backward pass keeps: a symbolic T (an exported inference function) runs the plain loop
    segment = None if symbolic(steps) else options.remat_segment(steps)
    if segment is not None:
        return _remat_scan(step, P, seqs, states, consts, options.return_sequences, steps, segment, unroll)

    if options.return_sequences:

        def body(carry: Any, x_t: Any) -> Any:
            ys, new = step(P, *(x_t or ()), carry, consts)
            return tuple(new), tuple(ys)

        states, seq = jax.lax.scan(body, states, scanned, length=known, unroll=unroll)
        ys = [jnp.swapaxes(y, 0, 1) for y in seq]  # (T, batch, ...) -> (batch, T, ...)
        return ys, list(states)

    # Only the last output is wanted: carry it instead of stacking every step's.
    last = _zeros_like_output(step, P, seqs, states, consts)

    def body_last(carry: Any, x_t: Any) -> Any:
        s, _ = carry
        ys, new = step(P, *(x_t or ()), s, consts)
        return (tuple(new), tuple(ys)), None

    (states, ys), _ = jax.lax.scan(body_last, (states, last), scanned, length=known, unroll=unroll)
    return list(ys), list(states)


def _zeros_like_output(step: Any, P: Any, seqs: Any, states: Any, consts: Any) -> Any:
    """Zeros shaped like one step's outputs (the carried "last output" before step 0)."""
    first = tuple(s[0] for s in seqs)
    shapes = jax.eval_shape(lambda p, x_t, s, k: step(p, *x_t, s, k)[0], P, first, states, consts)
    return tuple(jnp.zeros(s.shape, s.dtype) for s in shapes)


def _remat_scan(
    step: Any, P: Any, seqs: Any, states: Any, consts: Any, keep: Any, steps: Any, k: Any, unroll: Any
) -> Any:
    """The loop in checkpointed segments of ``k`` steps; ``seqs`` time-major, in processing order."""

    def one(carry: Any, x_t: Any) -> Any:
        s, _ = carry
        ys, new = step(P, *(x_t or ()), s, consts)
        return (tuple(new), tuple(ys)), (tuple(ys) if keep else None)

    @functools.partial(jax.checkpoint, prevent_cse=False)  # inside a scan CSE cannot defeat the recompute
    def segment(carry: Any, seg: Any) -> Any:
        return jax.lax.scan(one, carry, seg, length=k, unroll=min(unroll, k))

    n_seg, rest = divmod(steps, k)
    carry = (states, _zeros_like_output(step, P, seqs, states, consts))
    pieces = []  # (T_i, batch, ...) output columns of the segments, then of the rest
    if n_seg:
        head = tuple(s[: n_seg * k].reshape((n_seg, k) + s.shape[1:]) for s in seqs) if seqs else None
        carry, out = jax.lax.scan(segment, carry, head, length=n_seg)
        if keep:
            pieces.append(tuple(o.reshape((n_seg * k,) + o.shape[2:]) for o in out))
    if rest:
        tail = tuple(s[n_seg * k :] for s in seqs) if seqs else None
        carry, out = jax.lax.scan(one, carry, tail, length=rest, unroll=min(unroll, rest))
        if keep:
            pieces.append(out)
    states, last = carry
    if not keep:
        return list(last), list(states)
    seq = [cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=0) for cols in zip(*pieces, strict=True)]
    return [jnp.swapaxes(y, 0, 1) for y in seq], list(states)
