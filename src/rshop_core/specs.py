"""Parameter and state specifications: names, shapes, dtypes and initializers."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import constraints, initializers, regularizers
from .dtypes import check_float_dtype
from .limits import check_name, check_param_name
from .types import check_shape


@dataclass(frozen=True)
class ParamSpec:
    """A parameter: qualified ``name`` (``lstm_cell/kernel``), ``shape``, ``dtype``,
    ``initializer`` and ``trainable`` flag. Its value is not part of the spec."""

    name: str
    shape: tuple
    dtype: str = "float32"
    initializer: initializers.Initializer = field(default_factory=initializers.Zeros)
    trainable: bool = True
    regularizer: dict | None = None  # {"l1": a, "l2": b}: see rshop_core.regularizers
    constraint: dict | None = None  # {"name": "max_norm", ...}: see rshop_core.constraints

    def __post_init__(self) -> None:
        check_param_name(self.name, f"parameter {self.name!r:.80}")
        object.__setattr__(self, "shape", check_shape(self.shape, f"parameter {self.name!r}", False))
        object.__setattr__(self, "dtype", check_float_dtype(self.dtype, f"parameter {self.name!r}"))
        object.__setattr__(self, "initializer", initializers.get(self.initializer))
        object.__setattr__(self, "regularizer", regularizers.get(self.regularizer, f"parameter {self.name!r}"))
        object.__setattr__(self, "constraint", constraints.get(self.constraint, f"parameter {self.name!r} constraint"))
        constraints.check_rank(self.constraint, self.shape, f"parameter {self.name!r} constraint")

    def to_json(self) -> dict:
        out = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "initializer": self.initializer.to_json(),
            "trainable": self.trainable,
            "regularizer": self.regularizer,
        }
        if self.constraint is not None:  # added after format version 1: written only when set
            out["constraint"] = self.constraint
        return out


@dataclass(frozen=True)
class StateSpec:
    """A recurrent state: ``name``, per-example ``shape``, ``dtype`` and ``initializer``
    (used when the caller passes no initial state)."""

    name: str
    shape: tuple
    dtype: str = "float32"
    initializer: initializers.Initializer = field(default_factory=initializers.Zeros)

    def __post_init__(self) -> None:
        check_name(self.name, f"state {self.name!r:.80}", "state name")
        object.__setattr__(self, "shape", check_shape(self.shape, f"state {self.name!r}", False))
        object.__setattr__(self, "dtype", check_float_dtype(self.dtype, f"state {self.name!r}"))
        object.__setattr__(self, "initializer", initializers.get(self.initializer))

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "initializer": self.initializer.to_json(),
        }
