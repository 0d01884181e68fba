"""The base of built-in and user cells: a step function plus state shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

from .. import activations, initializers, regularizers
from .. import constraints as _constraints
from .. import functional as F
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from ..errors import RshopConfigError, RshopShapeError
from ..keywords import checked_init
from ..layers.base import Layer
from ..symbolic import Input, Tensor
from ..types import Shape

if TYPE_CHECKING:
    from ..model import RecurrentModel


def split_list_form(where: str, inputs: object, n_states: int) -> tuple[Tensor, list[Tensor]]:
    """``(x, states)`` of a cell called in RecurrentShop's list form ``cell([x, *states])``."""
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 1 + n_states:
        got = f"a list of {len(inputs)}" if isinstance(inputs, (list, tuple)) else type(inputs).__name__
        raise RshopConfigError(
            f"{where}: expected cell(x, states) or the list form cell([x, *states]) with {1 + n_states} "
            f"Tensors (x and {n_states} state(s)), received {got}."
        )
    return inputs[0], list(inputs[1:])


class Cell(Layer):
    """A reusable step: ``cell(x_t, states) -> (output_t, new_states)``.

    Subclasses set ``state_names`` and implement :meth:`step` and :meth:`state_shapes`.
    ``input_dim`` may be None: the model from :meth:`get_layer` is then built on first use.
    """

    state_names: tuple[str, ...] = ()
    units: int | None  # None for a ModelCell, whose sizes are its model's; an int for every other cell
    input_dim: int | None
    # set by _resolve_kernels, for the cells that have kernels
    use_bias: bool
    kernel_initializer: initializers.Initializer
    recurrent_initializer: initializers.Initializer
    bias_initializer: initializers.Initializer
    kernel_regularizer: dict | None
    recurrent_regularizer: dict | None
    bias_regularizer: dict | None
    # set by _resolve_constraints; None for a cell that takes no constraints
    kernel_constraint: dict | None = None
    recurrent_constraint: dict | None = None
    bias_constraint: dict | None = None
    dropout: float
    recurrent_dropout: float

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "__init__" in cls.__dict__:  # a misspelled keyword names the closest valid one
            # the wrapper keeps the signature; mypy refuses any assignment to a method
            cls.__init__ = checked_init(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __init__(self, units: int | None, input_dim: int | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.units, self.input_dim = self._checked_sizes(units, input_dim)

    def _checked_sizes(self, units: int | None, input_dim: int | None) -> tuple[int | None, int | None]:
        """``(units, input_dim)``, refused unless units is an int > 0 and input_dim one or None."""
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise RshopConfigError(f"{type(self).__name__} {self.name!r}: expected units > 0, received {units!r}.")
        if input_dim is not None and (not isinstance(input_dim, int) or input_dim <= 0):
            raise RshopConfigError(
                f"{type(self).__name__} {self.name!r}: expected input_dim > 0 or None, received {input_dim!r}."
            )
        return units, input_dim

    def _resolve_activations(self, **named: object) -> None:
        """Set each keyword as an attribute: an activation, by name or callable, checked now."""
        where = f"{type(self).__name__} {self.name!r}"
        for key, value in named.items():
            setattr(self, key, activations.get(value, f"{where} {key}"))

    def _resolve_kernels(
        self,
        use_bias: bool,
        kernel_initializer: initializers.InitializerLike,
        recurrent_initializer: initializers.InitializerLike,
        bias_initializer: initializers.InitializerLike,
        kernel_regularizer: regularizers.RegularizerLike,
        recurrent_regularizer: regularizers.RegularizerLike,
        bias_regularizer: regularizers.RegularizerLike,
        dropout: float,
        recurrent_dropout: float,
    ) -> None:
        """Set and check the options :meth:`_kernels` and :meth:`_bias` read: initializers and
        regularizers by name, dropout rates in [0, 1)."""
        self.use_bias = bool(use_bias)
        self._resolve_weight_options(
            initializers={
                "kernel_initializer": kernel_initializer,
                "recurrent_initializer": recurrent_initializer,
                "bias_initializer": bias_initializer,
            },
            regularizers={
                "kernel_regularizer": kernel_regularizer,
                "recurrent_regularizer": recurrent_regularizer,
                "bias_regularizer": bias_regularizer,
            },
            rates={"dropout": dropout, "recurrent_dropout": recurrent_dropout},
        )

    def _resolve_weight_options(self, initializers: dict, regularizers: dict, rates: dict) -> None:
        """Set each keyword as an attribute, checked now: initializers and regularizers by name or
        object, dropout rates as floats in [0, 1)."""
        where = f"{type(self).__name__} {self.name!r}"
        for key, value in initializers.items():
            setattr(self, key, _initializers.get(value, f"{where} {key}"))
        for key, value in regularizers.items():
            setattr(self, key, _regularizers.get(value, f"{where} {key}"))
        for key, value in rates.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise RshopConfigError(f"{where} {key}: expected a rate in [0, 1), received {value!r}.")
            setattr(self, key, float(value))

    def _resolve_constraints(self, **named: object) -> None:
        """Set each keyword (``kernel_constraint``, ...) as an attribute: a constraint's JSON form or None,
        checked now (by name, object or keras object; see :mod:`rshop_core.constraints`)."""
        where = f"{type(self).__name__} {self.name!r}"
        for key, value in named.items():
            setattr(self, key, _constraints.get(value, f"{where} {key}"))

    def _kernels(self, x: Tensor, h: Tensor, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``kernel`` (in, width), ``recurrent_kernel`` (units, width), and x and h after the
        cell's dropout (``dropout`` on x, ``recurrent_dropout`` on h: one mask per sequence)."""
        dt = x.dtype
        k = self.add_weight(
            "kernel",
            (x.shape[-1], width),
            self.kernel_initializer,
            dt,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        r = self.add_weight(
            "recurrent_kernel",
            (self.units, width),
            self.recurrent_initializer,
            dt,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.dropout:
            x = F.dropout(x, self.dropout, name=f"{self.name}/dropout")
        if self.recurrent_dropout:
            h = F.dropout(h, self.recurrent_dropout, name=f"{self.name}/recurrent_dropout")
        return k, r, x, h

    def _bias(self, shape: Shape, initializer: initializers.InitializerLike, dtype: str) -> Tensor:
        return self.add_weight(
            "bias", shape, initializer, dtype, regularizer=self.bias_regularizer, constraint=self.bias_constraint
        )

    def state_shapes(self) -> list[Shape]:
        return [(self.units,)] * len(self.state_names)

    def step(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        raise NotImplementedError

    @property
    def num_states(self) -> int:
        """How many states the cell carries (``len(self.state_shapes())``; RecurrentShop's ``num_states``)."""
        return len(self.state_shapes())

    @overload
    def __call__(self, x: Tensor, states: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]: ...

    @overload
    def __call__(self, x: Sequence[Tensor], states: None = None) -> list[Tensor]: ...

    def __call__(
        self, x: Tensor | Sequence[Tensor], states: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]] | list[Tensor]:
        """``cell(x, states) -> (y, new_states)``, or RecurrentShop's list form
        ``cell([x, *states]) -> [y, *new_states]``."""
        where = f"{type(self).__name__} {self.name!r}"
        if states is None:
            x_t, listed = split_list_form(where, x, self.num_states)
            y, new = self._checked_call(where, x_t, listed)
            return [y, *new]
        return self._checked_call(where, x, states)

    def _checked_call(self, where: str, x: object, states: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        if not isinstance(x, Tensor):
            raise RshopConfigError(f"{where}: expected an rshop Tensor as x, received {type(x).__name__}.")
        if x.type.rank != 1 or x.shape[0] is None:
            raise RshopShapeError(f"{where}: expected x of shape (batch, features), received {x.type.describe()}.")
        states = list(states)
        want = self.state_shapes()
        if len(states) != len(want):
            raise RshopConfigError(
                f"{where}: expected {len(want)} states {list(self.state_names)}, received {len(states)}."
            )
        for i, (s, w) in enumerate(zip(states, want)):
            if not isinstance(s, Tensor) or s.shape != w:
                got = s.type.describe() if isinstance(s, Tensor) else type(s).__name__
                raise RshopShapeError(
                    f"{where}, state #{i} {self.state_names[i]!r}: expected shape "
                    f"(batch, {', '.join(map(str, w))}), received {got}."
                )
        return self.step(x, states)

    def get_layer(self, **options: Any) -> RecurrentModel:
        """A :class:`~rshop_core.model.RecurrentModel` running this cell over time.

        ``options`` are the model's: ``return_sequences``, ``return_states``, ``go_backwards``,
        ``unroll``, ``remat``, ``time_parallel``, ``state_initializer``, ``name``, ``seed``.
        """
        from ..model import RecurrentModel

        def builder(input_dim: int) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor], None]:
            x = Input((input_dim,), name="x")
            states = [Input(s, name=n) for s, n in zip(self.state_shapes(), self.state_names)]
            y, new = self(x, states)
            return x, y, states, new, None

        options.setdefault("name", self.name.replace("_cell", "") or "rnn")
        model = RecurrentModel.deferred(builder, **options)
        if self.input_dim is not None:
            model.build(self.input_dim)
        return model
