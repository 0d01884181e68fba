"""Weight constraints: a projection applied to a parameter after each optimizer step, as in Keras.

``max_norm``, ``unit_norm``, ``non_neg`` and ``min_max_norm`` compute what ``keras.constraints``
computes, with Keras 3's defaults and its ``epsilon`` (1e-7). With ``norms = sqrt(sum(w**2, axis,
keepdims=True))``::

    max_norm(max_value=2, axis=0)        w * clip(norms, 0, max_value) / (eps + norms)
    unit_norm(axis=0)                    w / (eps + norms)
    non_neg()                            maximum(w, 0)
    min_max_norm(min_value=0, max_value=1, rate=1, axis=0)
                                         w * (rate * clip(norms, min_value, max_value) + (1 - rate) * norms)
                                           / (eps + norms)

A parameter's constraint is stored on its :class:`~rshop_core.specs.ParamSpec` as plain JSON
(``{"name": "max_norm", "max_value": 2.0, "axis": 0}``): data, never code. Lowered layers apply it
with ``layer.apply_constraints()``; the Keras layer hands it to Keras as a variable constraint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np

from .errors import RshopConfigError

EPSILON = 1e-7
"""Added to the norms before dividing, as Keras' ``backend.epsilon()`` (its default)."""

Axis = int | list[int]


class Constraint:
    """The base of the built-in constraints: ``to_json()`` is all that is stored, ``__call__`` projects
    a numpy array (the reference the engines are checked against)."""

    name: ClassVar[str] = ""

    def get_config(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.get_config()}

    def __call__(self, w: np.ndarray) -> np.ndarray:
        out: np.ndarray = project(self.to_json(), np.asarray(w), NUMPY_MATH)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Constraint) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self.to_json()))


def _number(v: object, what: str, lo: float = 0.0) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
        raise RshopConfigError(f"{what}: expected a finite number >= {lo:g}, received {v!r}.")
    return float(v)


def _axis(v: object, what: str) -> Axis:
    """An int, or a non-empty list of distinct ints (a tuple is listed)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    ints = isinstance(v, (list, tuple)) and all(isinstance(a, int) and not isinstance(a, bool) for a in v)
    if ints and isinstance(v, (list, tuple)) and v and len(set(v)) == len(v):
        return list(v)
    raise RshopConfigError(f"{what}: expected an int or a list of distinct ints, received {v!r}.")


class MaxNorm(Constraint):
    """Scale each slice along ``axis`` down to a norm of at most ``max_value`` (Keras ``MaxNorm``)."""

    name = "max_norm"

    def __init__(self, max_value: float = 2, axis: Axis = 0) -> None:
        self.max_value = _number(max_value, "max_norm max_value")
        self.axis = _axis(axis, "max_norm axis")

    def get_config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis}


class UnitNorm(Constraint):
    """Scale each slice along ``axis`` to norm 1 (Keras ``UnitNorm``)."""

    name = "unit_norm"

    def __init__(self, axis: Axis = 0) -> None:
        self.axis = _axis(axis, "unit_norm axis")

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class NonNeg(Constraint):
    """Negative entries become 0 (Keras ``NonNeg``)."""

    name = "non_neg"


class MinMaxNorm(Constraint):
    """Move each slice's norm along ``axis`` into [min_value, max_value], ``rate`` of the way (Keras ``MinMaxNorm``)."""

    name = "min_max_norm"

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: Axis = 0) -> None:
        self.min_value = _number(min_value, "min_max_norm min_value")
        self.max_value = _number(max_value, "min_max_norm max_value")
        if self.max_value < self.min_value:
            raise RshopConfigError(
                f"min_max_norm: expected min_value <= max_value, received min_value={min_value!r}, "
                f"max_value={max_value!r}."
            )
        self.rate = _number(rate, "min_max_norm rate")
        if self.rate > 1.0:
            raise RshopConfigError(f"min_max_norm rate: expected a number in [0, 1], received {rate!r}.")
        self.axis = _axis(axis, "min_max_norm axis")

    def get_config(self) -> dict[str, Any]:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


def max_norm(max_value: float = 2, axis: Axis = 0) -> MaxNorm:
    return MaxNorm(max_value, axis)


def unit_norm(axis: Axis = 0) -> UnitNorm:
    return UnitNorm(axis)


def non_neg() -> NonNeg:
    return NonNeg()


def min_max_norm(min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: Axis = 0) -> MinMaxNorm:
    return MinMaxNorm(min_value, max_value, rate, axis)


CONSTRAINTS: dict[str, Callable[..., Constraint]] = {
    "max_norm": MaxNorm,
    "unit_norm": UnitNorm,
    "non_neg": NonNeg,
    "min_max_norm": MinMaxNorm,
}
"""The closed set of constraints: the name stored in a file -> its class."""

# Keras' class names (and camel-case aliases) accepted for its constraint objects
_KERAS_CLASSES = {"MaxNorm": "max_norm", "UnitNorm": "unit_norm", "NonNeg": "non_neg", "MinMaxNorm": "min_max_norm"}

ConstraintLike = Constraint | str | dict[str, Any] | None
"""What a ``*_constraint=`` / ``constraint=`` argument accepts: None, a name (``'max_norm'``, ``'unit_norm'``,
``'non_neg'``, ``'min_max_norm'``) with Keras' defaults, a Constraint, its JSON form, or a
``keras.constraints`` object of one of those four classes (read through its ``get_config()``)."""


def from_json(spec: dict[str, Any], where: str, error: type[Exception] = RshopConfigError) -> Constraint:
    """The constraint described by ``{"name": ..., **config}``; an unknown name or key is ``error``."""
    name = spec.get("name")
    cls = CONSTRAINTS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise error(
            f"{where}: expected a constraint named one of {sorted(CONSTRAINTS)}, received {name!r:.80}. "
            "Constraints are a closed set; project other weights yourself after the optimizer step."
        )
    config = {k: v for k, v in spec.items() if k != "name"}
    try:
        return cls(**config)
    except TypeError:
        raise error(
            f"{where}: expected the {name} options {sorted(cls().get_config())}, received {sorted(map(str, config))}."
        ) from None
    except RshopConfigError as e:
        raise error(f"{where}: {e}") from None


def get(spec: object, where: str = "constraint") -> dict[str, Any] | None:
    """The JSON form of a constraint given as None, a name, a Constraint, a dict or a keras constraint object."""
    if spec is None:
        return None
    if isinstance(spec, Constraint):
        return spec.to_json()
    if isinstance(spec, str) and spec in CONSTRAINTS:
        return CONSTRAINTS[spec]().to_json()
    if isinstance(spec, dict) and spec.get("name") in CONSTRAINTS:
        return from_json(spec, where).to_json()
    cls = type(spec)
    if cls.__module__.split(".")[0] == "keras" and cls.__name__ in _KERAS_CLASSES:
        config: dict[str, Any] = getattr(spec, "get_config", dict)()
        return from_json({"name": _KERAS_CLASSES[cls.__name__], **config}, where).to_json()
    raise RshopConfigError(
        f"{where}: expected None, 'max_norm', 'unit_norm', 'non_neg', 'min_max_norm', an "
        f"rshop_core.constraints object or its keras.constraints counterpart, received {spec!r:.100}. "
        "Write other projections as a step after the optimizer's."
    )


def axes(spec: dict[str, Any], rank: int) -> tuple[int, ...]:
    """The non-negative axes a constraint reduces over, for a parameter of ``rank``."""
    a = spec.get("axis", 0)
    return tuple(sorted(i % rank for i in ([a] if isinstance(a, int) else a)))


def check_rank(spec: dict[str, Any] | None, shape: tuple[int, ...], where: str) -> None:
    """Refuse a constraint whose axes a parameter of ``shape`` does not have."""
    if spec is None or "axis" not in spec:
        return
    a = spec["axis"]
    listed = [a] if isinstance(a, int) else a
    rank = len(shape)
    bad = [i for i in listed if not -rank <= i < rank]
    if bad or len({i % rank for i in listed} if rank else listed) != len(listed):
        raise RshopConfigError(
            f"{where}: expected constraint axes within a parameter of rank {rank} (shape {shape}), received "
            f"axis={a!r}. Choose axes of the weight (0 is each output unit's incoming weights of a kernel)."
        )


class ArrayMath(Protocol):
    """The two engine operations a projection needs (the rest is ``*``, ``/``, ``+`` on engine arrays)."""

    def _norm(self, v: Any, axes: tuple[int, ...]) -> Any:
        """``sqrt(sum(v**2, axes, keepdims=True))``."""
        ...

    def _clip(self, v: Any, lo: float, hi: float) -> Any:
        """``v`` clipped to [lo, hi] (hi may be inf)."""
        ...


def project(spec: dict[str, Any], w: Any, math_: ArrayMath) -> Any:
    """``w`` after the constraint ``spec`` (JSON form), computed with ``math_``'s engine operations."""
    name = spec["name"]
    if name == "non_neg":
        return math_._clip(w, 0.0, math.inf)
    norms = math_._norm(w, axes(spec, len(getattr(w, "shape", ()))))
    if name == "unit_norm":
        return w / (EPSILON + norms)
    if name == "max_norm":
        desired = math_._clip(norms, 0.0, spec["max_value"])
    else:
        assert name == "min_max_norm", f"a checked constraint name, received {name!r}"
        rate = spec["rate"]
        desired = rate * math_._clip(norms, spec["min_value"], spec["max_value"]) + (1.0 - rate) * norms
    return w * (desired / (EPSILON + norms))


class _NumpyMath:
    def _norm(self, v: Any, axes: tuple[int, ...]) -> Any:
        return np.sqrt(np.sum(np.square(v), axis=axes, keepdims=True))

    def _clip(self, v: Any, lo: float, hi: float) -> Any:
        return np.clip(v, lo, hi)


NUMPY_MATH = _NumpyMath()
