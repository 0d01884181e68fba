"""Embedding: a parameter table read with int32 token ids inside a step (Keras' ``Embedding``)."""

from __future__ import annotations

from .. import constraints, initializers, regularizers
from .. import functional as F
from ..constraints import ConstraintLike
from ..dtypes import check_float_dtype
from ..errors import RshopConfigError, RshopDTypeError
from ..initializers import InitializerLike
from ..regularizers import RegularizerLike
from ..symbolic import Tensor
from .base import Layer


def _positive(where: str, what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RshopConfigError(f"{where}: expected {what} as an int > 0, received {value!r}.")
    return value


class Embedding(Layer):
    """``embeddings[ids]``: ids of any shape (int32, in ``[0, input_dim)``) -> ``ids.shape + (output_dim,)``.

    The table ``<name>/embeddings`` has shape ``(input_dim, output_dim)``; its default initializer is
    Keras' (uniform in [-0.05, 0.05]; ``torch.nn.Embedding`` draws N(0, 1): pass
    ``embeddings_initializer=initializers.RandomNormal(0.0, 1.0)`` for that). A step whose x is a token id
    per time step (``Input((), "int32")``) embeds it with ``Embedding(vocab, dim)(x_t)``; the whole
    sequence's lookup is one gather before the loop on the engines that hoist inputs (torch).
    Ids outside the table: numpy and torch raise an RshopShapeError, jax and tensorflow clamp
    (as ``F.gather``). Keras' ``mask_zero`` is a loop mask in rshop: pass ``mask=ids != 0`` at call.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: InitializerLike | None = None,
        embeddings_regularizer: RegularizerLike = None,
        embeddings_constraint: ConstraintLike = None,
        dtype: str = "float32",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        where = f"Embedding {self.name!r}"
        self.input_dim = _positive(where, "input_dim (the number of ids)", input_dim)
        self.output_dim = _positive(where, "output_dim (the size of one embedding)", output_dim)
        init = initializers.RandomUniform() if embeddings_initializer is None else embeddings_initializer
        self.embeddings_initializer = initializers.get(init, f"{where} embeddings_initializer")
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer, f"{where} embeddings_regularizer")
        self.embeddings_constraint = constraints.get(embeddings_constraint, f"{where} embeddings_constraint")
        self.dtype = check_float_dtype(dtype, f"{where} dtype")

    def __call__(self, ids: Tensor) -> Tensor:
        if not isinstance(ids, Tensor):
            raise RshopConfigError(f"layer {self.name!r}: expected an rshop Tensor, received {type(ids).__name__}.")
        if ids.dtype != "int32":
            raise RshopDTypeError(
                f"layer {self.name!r}: expected int32 ids, received {ids.type.describe()}. Declare token ids "
                "Input(shape, 'int32'), or F.cast(value, 'int32') a computed one."
            )
        table = self.add_weight(
            "embeddings",
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            self.dtype,
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
        )
        return F.gather(table, ids, axis=0, name=f"{self.name}/lookup")
