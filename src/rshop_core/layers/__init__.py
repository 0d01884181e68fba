"""Layers for writing step models: Dense, Activation, Embedding and the Keras-style merges."""

from .base import Layer
from .core import Activation, Dense, Dropout
from .embedding import Embedding
from .merge import add, average, concatenate, maximum, multiply, subtract

__all__ = [
    "Layer",
    "Dense",
    "Activation",
    "Dropout",
    "add",
    "subtract",
    "multiply",
    "average",
    "maximum",
    "concatenate",
    "Embedding",
]
