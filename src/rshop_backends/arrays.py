"""Public array helpers: numpy arrays to an engine's arrays (:func:`to_native`) and back (:func:`to_numpy`).

Both are built on each engine's ``arrays`` module (``to_native``, ``to_numpy``, ``float64_scope``), the
same conversions the conformance suite uses. A plug-in engine without an ``arrays`` module is served by
its ``testing`` module, which has the same functions.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from rshop_core.errors import RshopConfigError, RshopDTypeError

from . import registry

__all__ = ["engine_arrays", "to_native", "to_numpy"]

# the dtypes an argument of a call can have: floats (x, states, constants), int32 ids and lengths, bool masks
_DTYPES = ("float32", "float64", "int32", "bool")


def engine_arrays(engine: str) -> ModuleType:
    """The array hooks of ``engine`` (its ``arrays`` module, or a plug-in's ``testing`` module)."""
    registry.load(engine)  # clear errors for an unknown or uninstalled engine
    base = registry.info(engine).module
    try:
        return importlib.import_module(base + ".arrays")
    except ModuleNotFoundError as e:
        if e.name != base + ".arrays":
            raise
        return importlib.import_module(base + ".testing")


def to_native(array: Any, engine: str, dtype: str | None = None) -> Any:
    """``array`` (numpy, or anything ``np.asarray`` takes) as ``engine``'s array of ``dtype``.

    ``dtype`` None keeps the array's own dtype, which must then be one a call takes (float32,
    float64, int32, bool). A float64 array on jax is made inside ``jax.enable_x64`` (rshop never
    turns 64-bit mode on globally), so it stays float64.
    """
    a = np.asarray(array)
    name = str(a.dtype) if dtype is None else getattr(dtype, "name", dtype)
    if not isinstance(name, str) or name not in _DTYPES:
        raise RshopDTypeError(
            f"to_native({engine!r}) dtype: expected one of {list(_DTYPES)}, received {name!r}. Pass dtype= "
            "explicitly (x, states and constants in float32 or float64, ids and lengths int32, masks bool)."
        )
    if a.dtype.kind not in "biuf":
        raise RshopConfigError(
            f"to_native({engine!r}) array: expected numbers or booleans, received an array of {a.dtype}."
        )
    hooks = engine_arrays(engine)
    if name == "float64":
        with hooks.float64_scope():
            return hooks.to_native(a, name)
    return hooks.to_native(a, name)


def to_numpy(x: Any) -> Any:
    """Any engine's array (numpy, jax, torch, tensorflow) as a numpy array; a tuple or list of arrays
    (a call's ``(y, *states)``) as a tuple of numpy arrays. Torch tensors are detached and moved to
    the CPU; no framework is imported here."""
    if isinstance(x, (tuple, list)):
        return tuple(to_numpy(v) for v in x)
    if type(x).__module__.split(".")[0] == "torch":
        return x.detach().cpu().numpy()
    return np.asarray(x)
