"""Built-in cells with the standard equations and Keras' arguments, defaults and weight layouts."""

from .base import Cell
from .gru import GRUCell
from .indrnn import IndRNNCell
from .lstm import LSTMCell
from .minimal import MinGRUCell, MinLSTMCell
from .nested import ModelCell
from .rglru import RGLRUCell
from .simple_rnn import SimpleRNNCell

__all__ = [
    "Cell",
    "SimpleRNNCell",
    "GRUCell",
    "LSTMCell",
    "ModelCell",
    "MinGRUCell",
    "MinLSTMCell",
    "RGLRUCell",
    "IndRNNCell",
]
