"""Loop options of a recurrent model, validated once."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import RshopConfigError


@dataclass(frozen=True)
class LoopOptions:
    """How the step is run over time.

    - ``return_sequences``: return every step's output (batch, T, ...) instead of the last.
    - ``return_states``: also return the final states.
    - ``go_backwards``: process t = T-1 ... 0; the returned sequence is in processing
      order (reversed), as in Keras.
    - ``unroll``: ``False`` (a loop), ``True`` (fully unrolled; T known at trace time),
      or an int k >= 1 (k steps per loop iteration, ``jax.lax.scan(unroll=k)``).
      Unrolling never changes results.
    """

    return_sequences: bool = False
    return_states: bool = False
    go_backwards: bool = False
    unroll: bool | int = False

    def __post_init__(self):
        for k in ("return_sequences", "return_states", "go_backwards"):
            if not isinstance(getattr(self, k), bool):
                raise RshopConfigError(f"option {k}: expected True or False, received {getattr(self, k)!r}.")
        u = self.unroll
        if not (isinstance(u, bool) or (isinstance(u, int) and u >= 1)):
            raise RshopConfigError(f"option unroll: expected True, False or an int >= 1, received {u!r}.")

    def to_json(self) -> dict:
        return {"return_sequences": self.return_sequences, "return_states": self.return_states,
                "go_backwards": self.go_backwards, "unroll": self.unroll}
