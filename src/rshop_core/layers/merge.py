"""Merging a list of tensors, Keras style: ``add([a, b])``."""

from __future__ import annotations

from functools import reduce

from .. import functional as F
from ..errors import RshopConfigError
from ..symbolic import Tensor


def _listed(name: str, tensors: object, least: int = 2) -> list[Tensor]:
    if not isinstance(tensors, (list, tuple)) or len(tensors) < least:
        raise RshopConfigError(f"{name}: expected a list of at least {least} tensors, received {tensors!r}.")
    return list(tensors)


def add(tensors: list[Tensor]) -> Tensor:
    return reduce(F.add, _listed("add", tensors))


def subtract(tensors: list[Tensor]) -> Tensor:
    ts = _listed("subtract", tensors)
    if len(ts) != 2:
        raise RshopConfigError(f"subtract: expected a list of exactly 2 tensors, received {len(ts)}.")
    a, b = ts
    return F.subtract(a, b)


def multiply(tensors: list[Tensor]) -> Tensor:
    return reduce(F.multiply, _listed("multiply", tensors))


def average(tensors: list[Tensor]) -> Tensor:
    ts = _listed("average", tensors)
    return F.divide(reduce(F.add, ts), float(len(ts)))


def maximum(tensors: list[Tensor]) -> Tensor:
    return reduce(F.maximum, _listed("maximum", tensors))


def concatenate(tensors: list[Tensor], axis: int = -1) -> Tensor:
    return F.concat(_listed("concatenate", tensors, least=1), axis=axis)
