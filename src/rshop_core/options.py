"""Loop and wiring options of a recurrent model, validated once."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import RshopConfigError
from .limits import MAX_OUTPUT_LENGTH, MAX_UNROLL


def _flag(name: str, v: object) -> None:
    if not isinstance(v, bool):
        raise RshopConfigError(f"option {name}: expected True or False, received {v!r}.")


def _positive(name: str, v: object, allow_none: bool = True) -> None:
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise RshopConfigError(
            f"option {name}: expected an int >= 1{' or None' if allow_none else ''}, received {v!r}."
        )


TIME_PARALLEL = ("auto", "scan", "newton")  # the values of option time_parallel besides False


@dataclass(frozen=True)
class LoopOptions:
    """How the step is run over time.

    - ``return_sequences``: return every step's output (batch, T, ...) instead of the last.
      ``None`` (the default) means ``decode``: a decoder returns the whole decoded sequence, as
      in RecurrentShop, and any other model its last output, as in Keras. The stored value is
      always the resolved bool.
    - ``return_states``: also return the final states.
    - ``go_backwards``: process t = T-1 ... 0; the returned sequence is in processing
      order (reversed), as in Keras.
    - ``unroll``: ``False`` (a loop), ``True`` (fully unrolled; T known at trace time),
      or an int 1 <= k <= ``MAX_UNROLL`` (128) (k steps per loop iteration,
      ``jax.lax.scan(unroll=k)``; engines use min(k, T)). Unrolling never changes results.
    - ``teacher_force``: with ``ground_truth=`` at a training call, step t reads
      ground_truth[t-1] (step 0 the initial readout) in place of its own previous output.
    - ``decode`` / ``output_length``: x is one tensor (batch, *input_shape) seen at each of
      ``output_length`` steps (also given at call time; the model's default is at most
      ``MAX_OUTPUT_LENGTH``).
    - ``stateful`` / ``batch_size``: the lowered layer keeps its final states as the next
      call's initial states; the batch size is fixed: ``batch_size``, or, when it is None, the
      batch of the layer's first call (as in Keras 3); ``reset_states()`` keeps it.
    - ``zero_output_for_mask``: masked steps output zeros instead of holding the last output.
    - ``remat``: gradient checkpointing of the loop, for long sequences. ``False``: off;
      ``True``: segments of ceil(sqrt(T)) steps; an int k >= 1: segments of k steps. The
      backward pass keeps only the states at segment boundaries and recomputes each
      segment's steps from them, so training memory grows with T / k + k steps instead of
      T, for about one more forward pass of compute. Never changes results; the numpy
      engine (no gradients) accepts and ignores it.
    - ``time_parallel``: how the loop runs over time (docs/time-parallel.md). ``"auto"`` (the
      default): an exact associative scan when the step's new states are affine in its
      states and the engine's measured policy says it is faster at the call's size, else
      step by step. ``"scan"``: always the associative scan (refused, naming the node, when
      the step is not affine). ``"newton"``: parallel Newton iterations for a nonlinear step
      whose Jacobian is diagonal or block-diagonal, falling back to the sequential loop
      (with a warning) when they do not converge. ``False``: step by step.
    - ``newton_tol`` / ``newton_max_iter``: Newton stops when no state moves by more than
      ``newton_tol * (1 + max |state|)`` (None: 1e-5 in float32, 1e-10 in float64) or after
      ``newton_max_iter`` iterations.
    """

    return_sequences: bool | None = None
    return_states: bool = False
    go_backwards: bool = False
    unroll: bool | int = False
    teacher_force: bool = False
    decode: bool = False
    output_length: int | None = None
    stateful: bool = False
    batch_size: int | None = None
    zero_output_for_mask: bool = False
    remat: bool | int = False
    time_parallel: bool | str = "auto"
    newton_tol: float | None = None
    newton_max_iter: int = 50

    def __post_init__(self) -> None:
        if self.return_sequences is None:  # resolved once, so every reader (and every file) sees a bool
            object.__setattr__(self, "return_sequences", self.decode is True)
        for k in (
            "return_sequences",
            "return_states",
            "go_backwards",
            "teacher_force",
            "decode",
            "stateful",
            "zero_output_for_mask",
        ):
            _flag(k, getattr(self, k))
        u = self.unroll
        if not (isinstance(u, bool) or (isinstance(u, int) and 1 <= u <= MAX_UNROLL)):
            raise RshopConfigError(
                f"option unroll: expected True, False or an int in [1, {MAX_UNROLL}], received "
                f"{u!r}. Each unrolled step is traced and compiled; beyond a few dozen "
                "steps unrolling only costs compile time."
            )
        r = self.remat
        if not (isinstance(r, bool) or (isinstance(r, int) and r >= 1)):
            raise RshopConfigError(
                f"option remat: expected True, False or an int >= 1 (steps per checkpointed segment), received {r!r}."
            )
        tp = self.time_parallel
        if tp is not False and tp not in TIME_PARALLEL:
            raise RshopConfigError(
                f"option time_parallel: expected False, 'auto', 'scan' or 'newton', received {tp!r}. "
                "'auto' picks the parallel scan where it is exact and faster; 'scan' and 'newton' force one."
            )
        tol = self.newton_tol
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1):
            raise RshopConfigError(f"option newton_tol: expected None or a number in (0, 1), received {tol!r}.")
        _positive("newton_max_iter", self.newton_max_iter, allow_none=False)
        _positive("output_length", self.output_length)
        _positive("batch_size", self.batch_size)
        if self.output_length is not None and self.output_length > MAX_OUTPUT_LENGTH:
            raise RshopConfigError(
                f"option output_length: expected at most {MAX_OUTPUT_LENGTH} decode steps as "
                f"the model's default, received {self.output_length}. Give a longer length "
                "at call time."
            )
        if self.output_length is not None and not self.decode:
            raise RshopConfigError("option output_length: expected decode=True with it, received decode=False.")

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def remat_segment(self, steps: int) -> int | None:
        """Steps per checkpointed segment of a ``steps``-step loop: None (remat off),
        ceil(sqrt(steps)) (at least 1) for ``remat=True``, else ``remat``."""
        if self.remat is False:
            return None
        if self.remat is True:
            root = math.isqrt(max(int(steps), 1))
            return root if root * root >= steps else root + 1
        return int(self.remat)

    def tolerance(self, dtype: str) -> float:
        """Newton's stopping tolerance in ``dtype``: ``newton_tol``, or the dtype's default."""
        if self.newton_tol is not None:
            return float(self.newton_tol)
        return 1e-10 if dtype == "float64" else 1e-5
