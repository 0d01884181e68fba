"""The torch fast path: a recognised stack of standard cells runs on torch's fused kernels.

:func:`rshop_core.patterns.recognize` says which cells a plan is; here each layer becomes
one call of ``torch.lstm`` / ``torch.gru`` / ``torch.rnn_tanh`` / ``torch.rnn_relu`` (the
kernels behind ``torch.nn.LSTM`` etc.: oneDNN on CPU, cuDNN on CUDA), fed the rshop
parameters converted on the fly — differentiably, so gradients land on the rshop
parameters:

- LSTM: ``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T`` (gate rows ``[i|f|g|o]``
  in both layouts), ``bias_ih = bias``, ``bias_hh = 0``.
- GRU (reset_after): Keras columns ``[z|r|h]`` reordered to torch's rows ``[r|z|n]``;
  ``bias`` row 0 is ``bias_ih``, row 1 ``bias_hh``.
- Elman RNN: ``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``, ``bias_hh = 0``.

``go_backwards`` flips the sequence before the first layer (outputs stay in processing
order, as in the generic loop).

On CUDA, cuDNN wants a layer's weights as views of ONE buffer laid out its way (what
``torch.nn.LSTM.flatten_parameters`` arranges); given separate tensors it warns ("RNN module
weights are not part of single contiguous chunk of memory") and compacts them itself at
every call. So there the converted weights are :func:`packed` once per call, differentiably, at
the offsets cuDNN reports for that shape (:func:`cudnn_layout`, asked once per shape, dtype and
device): the gradients still flow back to the rshop parameters. On the CPU nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from rshop_core.options import LoopOptions
    from rshop_core.patterns import CellMatch, StackMatch


KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}
# cuDNN's names of the kernels' RNN modes (torch.backends.cudnn.rnn.get_cudnn_mode)
CUDNN_MODES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU"}


def _gru_order(w: Any, u: Any) -> Any:
    """Keras' gate blocks ``[z|r|h]`` on ``w``'s last axis, in torch's order ``[r|z|n]``."""
    return torch.cat([w[..., u : 2 * u], w[..., :u], w[..., 2 * u :]], dim=-1)


def torch_weights(m: CellMatch, P: dict[str, Any]) -> list[Any]:
    """The flat weight list torch's kernel takes for one recognised cell ``m``."""
    k, r = P[m.params["kernel"]], P[m.params["recurrent_kernel"]]
    if m.kind == "gru":
        ws = [_gru_order(k, m.units).t(), _gru_order(r, m.units).t()]
        if m.bias:
            b = P[m.params["bias"]]
            ws += [_gru_order(b[0], m.units), _gru_order(b[1], m.units)]
        return ws
    ws = [k.t(), r.t()]
    if m.bias:
        b = P[m.params["bias"]]
        ws += [b, torch.zeros_like(b)]
    return ws


def uses_cudnn(x: Any) -> bool:
    """Whether torch's RNN kernels run ``x`` on cuDNN, which wants its weights in one flat buffer."""
    return bool(x.is_cuda and torch.backends.cudnn.is_acceptable(x) and torch._use_cudnn_rnn_flatten_weight())


@cache
def cudnn_layout(
    kernel: str, shapes: tuple[tuple[int, ...], ...], dtype: Any, device: Any
) -> tuple[tuple[int, ...], int]:
    """``(offsets, size)``: where cuDNN wants each weight of one layer (``shapes``: weight_ih,
    weight_hh[, bias_ih, bias_hh]) in its flat buffer of ``size`` elements. Asked of cuDNN itself:
    ``torch._cudnn_rnn_flatten_weight`` moves stand-in tensors into such a buffer (in place, as
    ``flatten_parameters`` uses it), and their storage offsets are the layout. CUDA only."""
    from torch.backends.cudnn import rnn

    hidden, input_size = shapes[1][1], shapes[0][1]
    with torch.no_grad(), torch.cuda.device_of(torch.empty(0, device=device)):
        stand_ins = [torch.empty(s, dtype=dtype, device=device) for s in shapes]
        buf = torch._cudnn_rnn_flatten_weight(
            stand_ins, len(shapes), input_size, rnn.get_cudnn_mode(CUDNN_MODES[kernel]), hidden, 0, 1, True, False
        )
        home = buf.untyped_storage().data_ptr()
        if any(w.untyped_storage().data_ptr() != home for w in stand_ins):  # not moved: assume back to back
            starts = [0]
            for s in shapes[:-1]:
                starts.append(starts[-1] + int(torch.Size(s).numel()))
            return tuple(starts), starts[-1] + int(torch.Size(shapes[-1]).numel())
        offsets = tuple(int(w.storage_offset()) for w in stand_ins)
    return offsets, int(buf.numel())


def packed(weights: Sequence[Any], offsets: Sequence[int], size: int) -> list[Any]:
    """``weights`` copied into one new flat buffer of ``size`` elements, each at its offset (zeros in any
    gap), and returned as views of it with their own shapes. Differentiable: a gradient reaching a
    view flows back to the weight it was copied from."""
    order = sorted(range(len(weights)), key=lambda i: offsets[i])
    pieces, at = [], 0
    for i in order:
        w = weights[i]
        assert offsets[i] >= at, f"weights overlap in the flat layout {tuple(offsets)}"
        if offsets[i] > at:
            pieces.append(w.new_zeros(offsets[i] - at))
        pieces.append(w.reshape(-1))
        at = offsets[i] + w.numel()
    assert size >= at, f"a flat buffer of {size} elements cannot hold weights up to element {at}"
    if size > at:
        pieces.append(weights[0].new_zeros(size - at))
    flat = torch.cat(pieces)
    return [flat[o : o + w.numel()].view(w.shape) for w, o in zip(weights, offsets)]


def for_kernel(kernel: str, weights: list[Any], x: Any) -> list[Any]:
    """The weights as ``kernel`` wants them for input ``x``: packed for cuDNN, else as they are."""
    if not uses_cudnn(x):
        return weights
    offsets, size = cudnn_layout(kernel, tuple(tuple(w.shape) for w in weights), x.dtype, x.device)
    return packed(weights, offsets, size)


def run(
    match: StackMatch, P: dict[str, Any], x: Any, states: Sequence[Any], options: LoopOptions
) -> tuple[list[Any], list[Any]]:
    """``(outputs, final states)`` like :func:`rshop_backends.torch.loop.scan` for a plan that is ``match``."""
    seq = torch.flip(x, dims=(1,)) if options.go_backwards else x
    finals = list(states)
    for m in match.layers:
        hx = [states[i].unsqueeze(0) for i in m.states]
        kernel = m.kernel
        assert kernel is not None, "patterns.recognize matches only cells that have a torch kernel"
        weights = for_kernel(kernel, torch_weights(m, P), seq)
        args = (seq, tuple(hx) if m.kind == "lstm" else hx[0], weights, m.bias, 1, 0.0, False, False, True)
        out = KERNELS[kernel](*args)
        seq, new = out[0], out[1:]
        for i, s in zip(m.states, new):
            finals[i] = s.squeeze(0)
    y = seq if options.return_sequences else seq[:, -1]
    return [y], finals
