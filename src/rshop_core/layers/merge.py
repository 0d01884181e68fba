"""Merging a list of tensors, Keras style: ``add([a, b])``."""

from __future__ import annotations

from functools import reduce

from .. import functional as F
from ..errors import RshopConfigError


def _listed(name, tensors, least=2):
    if not isinstance(tensors, (list, tuple)) or len(tensors) < least:
        raise RshopConfigError(f"{name}: expected a list of at least {least} tensors, received {tensors!r}.")
    return list(tensors)


def add(tensors):
    return reduce(F.add, _listed("add", tensors))


def subtract(tensors):
    ts = _listed("subtract", tensors)
    if len(ts) != 2:
        raise RshopConfigError(f"subtract: expected a list of exactly 2 tensors, received {len(ts)}.")
    a, b = ts
    return F.subtract(a, b)


def multiply(tensors):
    return reduce(F.multiply, _listed("multiply", tensors))


def average(tensors):
    ts = _listed("average", tensors)
    return F.divide(reduce(F.add, ts), float(len(ts)))


def maximum(tensors):
    return reduce(F.maximum, _listed("maximum", tensors))


def concatenate(tensors, axis=-1):
    return F.concat(_listed("concatenate", tensors, least=1), axis=axis)
