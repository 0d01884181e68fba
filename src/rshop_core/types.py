"""Static types of IR values.

A value's type is its *per-example* shape, its dtype, and whether it carries the
batch dimension. Inputs, states and everything computed from them are *batched*
(the engine's array has one more leading axis, the batch); parameters and
constants are *unbatched*. A per-example dimension may be ``None`` (unknown until
call time), e.g. the time axis of a constant sequence an attention step reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from .dtypes import check_dtype
from .errors import RshopShapeError

Shape = tuple  # tuple[int | None, ...]


def check_shape(shape: object, where: str, allow_none: bool = True) -> Shape:
    """Return ``shape`` as a tuple of non-negative ints (or None), or raise naming ``where``."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise RshopShapeError(f"{where}: expected a shape (tuple of ints), received {shape!r}.")
    out: list[int | None] = []
    for d in shape:
        if d is None and allow_none:
            out.append(None)
        elif isinstance(d, int) and not isinstance(d, bool) and d > 0:
            out.append(int(d))
        else:
            allowed = "positive ints or None" if allow_none else "positive ints"
            raise RshopShapeError(f"{where}: expected a shape of {allowed}, received {tuple(shape)!r}.")
    return tuple(out)


@dataclass(frozen=True)
class TensorType:
    """Type of one IR value: per-example ``shape``, ``dtype``, and ``batched``."""

    shape: Shape
    dtype: str = "float32"
    batched: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", check_shape(self.shape, "TensorType.shape"))
        object.__setattr__(self, "dtype", check_dtype(self.dtype, "TensorType.dtype"))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def describe(self) -> str:
        b = "(batch, " if self.batched else "("
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        if self.batched and not self.shape:
            return f"{self.dtype}(batch,)"
        return f"{self.dtype}{b}{dims}{',' if len(self.shape) == 1 and not self.batched else ''})"

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype, "batched": self.batched}

    @classmethod
    def from_json(cls, d: dict) -> TensorType:
        return cls(tuple(d["shape"]), d["dtype"], bool(d["batched"]))


def dims_compatible(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b
