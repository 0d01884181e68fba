"""Built-in cells with the standard equations and Keras' arguments, defaults and weight layouts."""

from .base import Cell
from .gru import GRUCell
from .lstm import LSTMCell
from .nested import ModelCell
from .simple_rnn import SimpleRNNCell

__all__ = ["Cell", "SimpleRNNCell", "GRUCell", "LSTMCell", "ModelCell"]
