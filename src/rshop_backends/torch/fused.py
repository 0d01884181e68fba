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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from rshop_core.options import LoopOptions
    from rshop_core.patterns import CellMatch, StackMatch


KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}


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


def run(
    match: StackMatch, P: dict[str, Any], x: Any, states: Sequence[Any], options: LoopOptions
) -> tuple[list[Any], list[Any]]:
    """``(outputs, final states)`` like :func:`rshop_backends.torch.loop.scan` for a plan that is ``match``."""
    seq = torch.flip(x, dims=(1,)) if options.go_backwards else x
    finals = list(states)
    for m in match.layers:
        hx = [states[i].unsqueeze(0) for i in m.states]
        args = (seq, tuple(hx) if m.kind == "lstm" else hx[0], torch_weights(m, P), m.bias, 1, 0.0, False, False, True)
        kernel = m.kernel
        assert kernel is not None, "patterns.recognize matches only cells that have a torch kernel"
        out = KERNELS[kernel](*args)
        seq, new = out[0], out[1:]
        for i, s in zip(m.states, new):
            finals[i] = s.squeeze(0)
    y = seq if options.return_sequences else seq[:, -1]
    return [y], finals
