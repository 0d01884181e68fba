"""Weight checks: a full weights dict against a model's parameter specs, in one place.

Two callers with two error classes: :func:`check_weights` for weights a caller passes
(``set_weights``, a lowered layer, the Keras layer: config, shape and dtype errors) and
:func:`check_file_weights` for weights read from a ``.rshop`` file (every defect a
:class:`~rshop_core.errors.RshopFormatError`, as loading promises). Both refuse a missing
or an unexpected name and never cast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .dtypes import check_float_dtype
from .errors import RshopConfigError, RshopDTypeError, RshopFormatError, RshopShapeError

__all__ = ["check_file_weights", "check_weights"]


def _name_mismatch(specs: dict, weights: dict) -> tuple:
    """``(missing, unexpected)`` names of ``weights`` against ``specs``, in the dicts' orders."""
    return [k for k in specs if k not in weights], [k for k in weights if k not in specs]


def check_weights(
    where: str,
    specs: dict,
    weights: dict,
    dtype: str | None = None,
    describe: Callable[[Any], tuple[tuple, str]] | None = None,
) -> dict:
    """Validate a full weights dict against ``specs``; return ``weights`` as numpy copies.

    ``dtype`` overrides the specs' dtype (a layer lowered to another dtype). ``describe(w) ->
    (shape, dtype name)`` reads engine arrays (tracers included) without converting them;
    when given, nothing is copied and ``weights`` itself is returned.
    """
    if not isinstance(weights, dict):
        raise RshopConfigError(f"{where}: expected weights as a dict name -> array, received {type(weights).__name__}.")
    missing, extra = _name_mismatch(specs, weights)
    if missing or extra:
        raise RshopConfigError(
            f"{where}: expected weights named exactly {list(specs)}, received missing {missing}, unexpected {extra}."
        )
    out = {}
    for k, spec in specs.items():
        a = weights[k] if describe else np.asarray(weights[k])
        shape, got = describe(a) if describe else (a.shape, a.dtype)
        want = dtype or spec.dtype
        if tuple(shape) != spec.shape:
            raise RshopShapeError(f"{where}, weight {k!r}: expected shape {spec.shape}, received {tuple(shape)}.")
        if check_float_dtype(got, f"{where}, weight {k!r}") != want:
            raise RshopDTypeError(
                f"{where}, weight {k!r}: expected dtype {want}, received {got}. rshop never casts silently."
            )
        out[k] = a if describe else a.copy()
    return out


def check_file_weights(specs: dict, tensors: dict, where: str) -> dict:
    """The weights read from a file (numpy arrays) against the specs the file declares: the
    exact names, each shape and dtype, finite values. Returns them in the specs' order."""
    missing, extra = (sorted(names) for names in _name_mismatch(specs, tensors))
    if missing or extra:
        raise RshopFormatError(
            f"{where}: weights: expected exactly the parameters {sorted(specs)[:20]}, received missing "
            f"{missing[:20]}, unexpected {extra[:20]}."
        )
    for k, spec in specs.items():
        if tensors[k].shape != spec.shape or tensors[k].dtype.name != spec.dtype:
            raise RshopFormatError(
                f"{where}: weight {k!r}: expected {spec.dtype} {spec.shape}, received "
                f"{tensors[k].dtype} {tensors[k].shape}."
            )
        if not np.all(np.isfinite(tensors[k])):
            raise RshopFormatError(f"{where}: weight {k!r}: expected finite numbers, received NaN or infinity.")
    return {k: tensors[k] for k in specs}
