"""Weight interop with torch.nn and Keras 3 recurrent layers (see docs/converting.md).

- :func:`from_torch` / :func:`to_torch`: ``torch.nn.RNN``, ``GRU``, ``LSTM`` (any ``num_layers``,
  ``bidirectional``, ``bias``) <-> rshop models, weights copied.
- :func:`from_keras` / :func:`to_keras`: ``keras.layers.SimpleRNN``, ``GRU``, ``LSTM``,
  ``Bidirectional`` and stacks (``keras.Sequential`` or a list) <-> rshop models.
- :class:`SequenceStack` (alias ``TorchStack``): layers run one after another over whole
  sequences, what stacked bidirectional layers are.

Importing this package imports neither torch nor keras: each function imports its framework.
"""

from ..stack import SequenceStack
from .common import CellSpec
from .keras import from_keras, to_keras
from .torch import TorchStack, from_torch, rshop_states, to_torch, torch_states

__all__ = [
    "from_torch",
    "to_torch",
    "torch_states",
    "rshop_states",
    "from_keras",
    "to_keras",
    "SequenceStack",
    "TorchStack",
    "CellSpec",
]
