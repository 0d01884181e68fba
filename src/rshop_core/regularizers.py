"""Weight penalties: ``l1 * sum(|w|) + l2 * sum(w**2)`` per parameter, by name or object.

A parameter's regularizer is stored on its :class:`~rshop_core.specs.ParamSpec` as plain JSON
(``{"l1": 0.0, "l2": 0.01}``); every lowered layer exposes the total as
``layer.regularization_loss()`` for the user's loss.
"""

from __future__ import annotations

import math

from .errors import RshopConfigError


class Regularizer:
    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        for k, v in (("l1", l1), ("l2", l2)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise RshopConfigError(f"regularizer {k}: expected a finite number >= 0, received {v!r}.")
        self.l1, self.l2 = float(l1), float(l2)

    def to_json(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"Regularizer(l1={self.l1}, l2={self.l2})"


RegularizerLike = Regularizer | str | dict[str, float] | None
"""What a ``*_regularizer=`` argument accepts: None, ``'l1'``, ``'l2'``, ``'l1_l2'``, a Regularizer or a dict."""


def L1(l1: float = 0.01) -> Regularizer:
    return Regularizer(l1=l1)


def L2(l2: float = 0.01) -> Regularizer:
    return Regularizer(l2=l2)


def L1L2(l1: float = 0.01, l2: float = 0.01) -> Regularizer:
    return Regularizer(l1, l2)


def get(spec: object, where: str = "regularizer") -> dict | None:
    """The JSON form of a regularizer given as None, 'l1'/'l2'/'l1_l2', a Regularizer or a dict."""
    if spec is None:
        return None
    if isinstance(spec, Regularizer):
        return spec.to_json()
    named = {"l1": L1, "l2": L2, "l1_l2": L1L2}
    if isinstance(spec, str) and spec in named:
        return named[spec]().to_json()
    if isinstance(spec, dict) and set(spec) <= {"l1", "l2"}:
        return Regularizer(**spec).to_json()
    raise RshopConfigError(
        f"{where}: expected None, 'l1', 'l2', 'l1_l2', a Regularizer or {{'l1': a, 'l2': b}}, received {spec!r}."
    )
