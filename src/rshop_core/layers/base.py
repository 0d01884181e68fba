"""The base of every layer and cell: a name and parameters declared on first call."""

from __future__ import annotations

import re
from typing import Any

from .. import constraints, initializers, regularizers
from ..constraints import ConstraintLike
from ..dtypes import check_float_dtype
from ..errors import RshopConfigError, RshopShapeError
from ..initializers import InitializerLike
from ..limits import check_name
from ..regularizers import RegularizerLike
from ..symbolic import Tensor
from ..types import TensorType, check_shape


def _snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s).lower()


class Layer:
    """A callable that adds nodes to a step graph.

    Parameters are declared with :meth:`add_weight` while the layer is first called and
    are shared by every later call. Their qualified names (``dense/kernel``) are fixed
    when a model is traced: the layer's ``name``, made unique within that model.
    """

    def __init__(self, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", name)):
            raise RshopConfigError(
                f"{type(self).__name__}: expected a name of letters, digits, '_', '-', received {name!r}."
            )
        self.name = check_name(name or _snake(type(self).__name__), type(self).__name__, "layer name")
        self._weights: dict[str, Tensor] = {}

    def add_weight(
        self,
        local: str,
        shape: object,
        initializer: InitializerLike = "zeros",
        dtype: str = "float32",
        trainable: bool = True,
        regularizer: RegularizerLike = None,
        constraint: ConstraintLike = None,
    ) -> Tensor:
        """Declare (or fetch) the parameter ``local`` of this layer as a symbolic Tensor.

        ``constraint`` (None, ``'max_norm'``, ``'unit_norm'``, ``'non_neg'``, ``'min_max_norm'`` or a
        :mod:`rshop_core.constraints` object) is the projection ``layer.apply_constraints()`` applies
        after an optimizer step (Keras applies it itself in ``fit``)."""
        where = f"layer {self.name!r} weight {local!r}"
        if not isinstance(local, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", local):
            raise RshopConfigError(f"{where}: expected a name of letters, digits, '_', '-', received {local!r}.")
        dims = check_shape(shape, where, allow_none=False)
        name = check_float_dtype(dtype, where)
        if local in self._weights:
            t = self._weights[local]
            if t.type.shape != dims:
                raise RshopShapeError(
                    f"{where}: expected shape {t.type.shape} (built by an earlier call), received {dims}. "
                    "A layer called twice must see inputs of the same feature size."
                )
            return t
        spec: dict[str, Any] = {
            "shape": dims,
            "dtype": name,
            "initializer": initializers.get(initializer, where),
            "trainable": bool(trainable),
            "regularizer": regularizers.get(regularizer, where),
            "constraint": constraints.get(constraint, f"{where} constraint"),
        }
        constraints.check_rank(spec["constraint"], dims, f"{where} constraint")
        t = Tensor("param", (), {}, TensorType(dims, name, False), f"{self.name}/{local}", param=(self, local, spec))
        self._weights[local] = t
        return t

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
