"""torch.nn.RNN / GRU / LSTM <-> rshop models, weights copied.

Layouts (torch keeps transposes, rows in gate order; rshop keeps Keras' columns):

- RNN / LSTM: ``kernel = weight_ih.T``, ``recurrent_kernel = weight_hh.T``, ``bias = bias_ih + bias_hh``
  (LSTM gates ``[i|f|g|o]`` in both). Back to torch: ``bias_ih = bias``, ``bias_hh = 0``.
- GRU: torch rows ``[r|z|n]`` become rshop columns ``[z|r|h]`` of a ``GRUCell(reset_after=True)``;
  ``bias`` (2, 3 units) is ``[bias_ih; bias_hh]`` reordered the same way (both kept, exactly).

torch is imported only inside these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike

from ..errors import RshopConfigError
from ..model import RecurrentModel
from ..sequential import RecurrentSequential
from ..stack import SequenceStack
from .common import (
    CellSpec,
    build_bidirectional,
    build_model,
    build_stack,
    check_plain_loop,
    describe,
    describe_stack,
)

if TYPE_CHECKING:
    from ..bidirectional import Bidirectional
    from ..lowerable import Lowerable

__all__ = ["from_torch", "to_torch", "torch_states", "rshop_states", "TorchStack"]

TorchStack = SequenceStack  # what from_torch returns for num_layers > 1 with bidirectional=True
_MODES = {"RNN_TANH": ("rnn", "tanh"), "RNN_RELU": ("rnn", "relu"), "GRU": ("gru", "tanh"), "LSTM": ("lstm", "tanh")}


def _zrn(a: np.ndarray) -> np.ndarray:
    """torch's GRU gate blocks ``[r|z|n]`` (axis 0) -> rshop's ``[z|r|h]``."""
    r, z, n = np.split(a, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def _rzn(a: np.ndarray) -> np.ndarray:
    """rshop's ``[z|r|h]`` (axis 0) -> torch's ``[r|z|n]``."""
    z, r, n = np.split(a, 3, axis=0)
    return np.concatenate([r, z, n], axis=0)


def _spec(module: Any, kind: str, activation: str, layer: int, suffix: str) -> CellSpec:
    p = {name: t.detach().cpu().numpy() for name, t in module.named_parameters()}
    w_ih, w_hh = p[f"weight_ih_l{layer}{suffix}"], p[f"weight_hh_l{layer}{suffix}"]
    spec = CellSpec(kind, module.hidden_size, w_ih.shape[1], activation=activation, use_bias=module.bias)
    if kind == "gru":
        spec.weights = {"kernel": _zrn(w_ih).T.copy(), "recurrent_kernel": _zrn(w_hh).T.copy()}
        if module.bias:
            b_ih, b_hh = p[f"bias_ih_l{layer}{suffix}"], p[f"bias_hh_l{layer}{suffix}"]
            spec.weights["bias"] = np.stack([_zrn(b_ih), _zrn(b_hh)])
    else:
        spec.weights = {"kernel": w_ih.T.copy(), "recurrent_kernel": w_hh.T.copy()}
        if module.bias:
            spec.weights["bias"] = p[f"bias_ih_l{layer}{suffix}"] + p[f"bias_hh_l{layer}{suffix}"]
    return spec


def from_torch(module: Any) -> Lowerable:
    """An rshop model computing what ``module`` (``torch.nn.RNN``, ``GRU`` or ``LSTM``) computes.

    The result returns ``(y, *states)`` (``return_sequences=True, return_states=True``) on
    batch-major input (batch, T, features) whatever ``module.batch_first`` says: with
    ``batch_first=False`` swap axes 0 and 1 of x (and of y). States are per layer and direction,
    each (batch, hidden): ``torch_states`` stacks them into torch's ``h_n`` (and ``c_n``).

    - one layer, one direction: a :class:`RecurrentModel` of one cell;
    - ``num_layers > 1``: a :class:`RecurrentSequential` of cells;
    - ``bidirectional=True``: a :class:`Bidirectional` (``merge_mode="concat"``);
    - both: a :class:`TorchStack` of Bidirectional layers (each layer's concatenated output
      sequence feeds the next; one recurrent step cannot express that).

    Raises RshopConfigError for ``proj_size > 0``, ``dropout > 0`` between layers and dtypes
    other than float32.
    """
    import torch

    where = f"from_torch({type(module).__name__})"
    if not isinstance(module, torch.nn.RNNBase) or getattr(module, "mode", None) not in _MODES:
        raise RshopConfigError(f"{where}: expected a torch.nn.RNN, GRU or LSTM, received {type(module).__name__}.")
    if getattr(module, "proj_size", 0):
        raise RshopConfigError(
            f"{where}: proj_size={module.proj_size} is not supported (rshop's LSTMCell has no "
            "projection); expected proj_size=0."
        )
    if module.dropout and module.num_layers > 1:
        raise RshopConfigError(
            f"{where}: dropout={module.dropout} between layers is not supported; expected "
            "dropout=0 (set module.dropout = 0.0 to convert for inference)."
        )
    dtypes = {str(t.dtype).replace("torch.", "") for t in module.parameters()}
    if dtypes != {"float32"}:
        raise RshopConfigError(f"{where}: expected float32 parameters, received dtype {sorted(dtypes)}.")
    kind, activation = _MODES[module.mode]
    layers = module.num_layers
    opts = {"return_sequences": True, "return_states": True}
    name = f"torch_{kind}"
    if not module.bidirectional:
        specs = [_spec(module, kind, activation, i, "") for i in range(layers)]
        return build_model(specs[0], name, **opts) if layers == 1 else build_stack(specs, name, **opts)
    bis = [
        build_bidirectional(
            _spec(module, kind, activation, i, ""),
            _spec(module, kind, activation, i, "_reverse"),
            "concat",
            f"{name}_{i}" if layers > 1 else name,
            **opts,
        )
        for i in range(layers)
    ]
    return bis[0] if layers == 1 else TorchStack(bis, name=name)


# -- back to torch ---------------------------------------------------------------------------
def _units(model: Lowerable, where: str) -> list[list[CellSpec]]:
    """[(layer index, [spec per direction])] of a convertible rshop model."""
    kind = getattr(model, "KIND", None)  # the model kind (rshop_core.lowerable), as its .rshop document names it
    if kind == "SequenceStack":
        out = []
        for i, layer in enumerate(cast(SequenceStack, model).layers):  # what its KIND says it is
            if layer.KIND == "SequenceStack":
                raise RshopConfigError(f"{where}: expected a flat TorchStack, received a nested one.")
            sub = _units(layer, where)
            if len(sub) != 1:
                raise RshopConfigError(
                    f"{where}: expected single-layer items in a TorchStack, item {i} has {len(sub)}."
                )
            out.append(sub[0])
        if len({len(d) for d in out}) != 1:
            raise RshopConfigError(f"{where}: expected every layer of the stack to have the same directions.")
        return out
    if kind == "Bidirectional":
        bi = cast("Bidirectional", model)  # what its KIND says it is
        if bi.merge_mode != "concat":
            raise RshopConfigError(
                f"{where}: merge_mode={bi.merge_mode!r} is not supported; torch concatenates "
                "the two directions (expected merge_mode='concat')."
            )
        check_plain_loop(bi.forward, where)
        return [[describe(bi.forward, where), describe(bi.backward, where)]]
    if isinstance(model, RecurrentSequential):
        check_plain_loop(model, where)
        return [[s] for s in describe_stack(model, where)]
    if isinstance(model, RecurrentModel):
        check_plain_loop(model, where)
        return [[describe(model, where)]]
    raise RshopConfigError(
        f"{where}: expected a RecurrentModel, RecurrentSequential, Bidirectional or TorchStack, "
        f"received {type(model).__name__}."
    )


def to_torch(model: Lowerable, batch_first: bool = True) -> Any:
    """The ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` computing ``model`` (the inverse of :func:`from_torch`).

    ``batch_first`` sets the module's layout (rshop itself is batch-major). The module always
    returns ``(output, h_n)`` / ``(output, (h_n, c_n))``: all time steps and all final states,
    whatever ``return_sequences`` / ``return_states`` the rshop model has. LSTM and SimpleRNN
    biases go to ``bias_ih`` with ``bias_hh = 0`` (their sum is what both compute); GRU biases
    map exactly. Raises RshopConfigError for what torch cannot express: GRU ``reset_after=False``,
    activations other than torch's, cell dropout, regularizers, constraints, ``go_backwards``, masks' options,
    non-zero initial states, merge modes other than ``concat``, layers of different kinds or sizes.
    """
    import torch

    where = "to_torch"
    units = _units(model, where)
    _check_torch_expressible(units, where)
    first, dirs = units[0][0], len(units[0])
    args = dict(
        input_size=first.input_dim,
        hidden_size=first.units,
        num_layers=len(units),
        bias=first.use_bias,
        batch_first=batch_first,
        bidirectional=dirs == 2,
    )
    if first.kind == "rnn":
        module = torch.nn.RNN(nonlinearity=first.activation, **args)
    else:
        module = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[first.kind](**args)
    params = dict(module.named_parameters())
    with torch.no_grad():
        for i, layer in enumerate(units):
            for spec, suffix in zip(layer, ("", "_reverse")):
                for name, v in _torch_values(spec).items():
                    params[f"{name}_l{i}{suffix}"].copy_(torch.from_numpy(np.ascontiguousarray(v, np.float32)))
    return module


def _check_torch_expressible(units: list[list[CellSpec]], where: str) -> None:
    """Refuse what one torch.nn.RNN/GRU/LSTM cannot hold: layers that differ in kind, size, activation or
    bias, a layer reading the wrong width, cell dropout, regularizers, constraints, other activations, GRU
    reset_after=False."""
    first = units[0][0]
    dirs = len(units[0])
    for i, layer in enumerate(units):
        for spec in layer:
            for k, v in (
                ("kind", first.kind),
                ("units", first.units),
                ("activation", first.activation),
                ("use_bias", first.use_bias),
            ):
                if getattr(spec, k) != v:
                    raise RshopConfigError(
                        f"{where}: expected every layer with {k}={v!r} (torch layers share it), "
                        f"received {getattr(spec, k)!r} in layer {i}."
                    )
            want_in = first.input_dim if i == 0 else first.units * dirs
            if spec.input_dim != want_in:
                raise RshopConfigError(
                    f"{where}: expected layer {i} to read {want_in} features, received {spec.input_dim}."
                )
            if spec.dropout or spec.recurrent_dropout:
                raise RshopConfigError(
                    f"{where}: cell dropout/recurrent_dropout is not supported by torch.nn "
                    "recurrent layers; expected 0."
                )
            if spec.regularizers:
                raise RshopConfigError(
                    f"{where}: regularizers {sorted(spec.regularizers)} are not supported; a "
                    "torch module has none (expected none)."
                )
            if spec.constraints:
                raise RshopConfigError(
                    f"{where}: constraints {sorted(spec.constraints)} are not supported; a torch module has "
                    "none (expected none: convert a copy without them and project after optimizer.step())."
                )
    kind = first.kind
    if kind == "rnn" and first.activation not in ("tanh", "relu"):
        raise RshopConfigError(
            f"{where}: activation {first.activation!r} is not supported by torch.nn.RNN (expected 'tanh' or 'relu')."
        )
    if kind != "rnn" and (first.activation, first.recurrent_activation) != ("tanh", "sigmoid"):
        raise RshopConfigError(
            f"{where}: activation {first.activation!r} / recurrent_activation "
            f"{first.recurrent_activation!r} are not supported by torch (expected tanh / sigmoid)."
        )
    if kind == "gru" and not all(s.reset_after for layer in units for s in layer):
        raise RshopConfigError(
            f"{where}: GRUCell reset_after=False is not supported; torch.nn.GRU applies the "
            "reset gate after the matmul (expected reset_after=True)."
        )


def _torch_values(spec: CellSpec) -> dict[str, np.ndarray]:
    """One direction of one layer in torch's layout: ``weight_ih``, ``weight_hh`` and, with a bias,
    ``bias_ih``, ``bias_hh`` (GRU gates reordered to [r|z|n]; other cells' bias in ``bias_ih``)."""
    w = spec.weights
    k, r = w["kernel"].T, w["recurrent_kernel"].T
    if spec.kind == "gru":
        k, r = _rzn(k), _rzn(r)
    values = {"weight_ih": k, "weight_hh": r}
    if spec.use_bias:
        if spec.kind == "gru":
            values["bias_ih"], values["bias_hh"] = _rzn(w["bias"][0]), _rzn(w["bias"][1])
        else:
            values["bias_ih"], values["bias_hh"] = w["bias"], np.zeros_like(w["bias"])
    return values


# -- state layouts ---------------------------------------------------------------------------
def torch_states(states: Iterable[ArrayLike], lstm: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """rshop's final states (numpy, each (batch, hidden), layer by layer, forward before backward,
    ``h`` before ``c``) as torch's ``h_n`` — or ``(h_n, c_n)`` with ``lstm=True`` —
    each (num_layers * directions, batch, hidden)."""
    arrays = [np.asarray(s) for s in states]
    if lstm:
        return np.stack(arrays[0::2]), np.stack(arrays[1::2])
    return np.stack(arrays)


def rshop_states(h_n: ArrayLike, c_n: ArrayLike | None = None) -> list[np.ndarray]:
    """The inverse of :func:`torch_states`: a list for ``initial_state=`` of the rshop model."""
    h = np.asarray(h_n)
    if c_n is None:
        return list(h)
    return [s for pair in zip(h, np.asarray(c_n)) for s in pair]
