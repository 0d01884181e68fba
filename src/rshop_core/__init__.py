"""rshop_core: the backend-neutral half of rshop.

Write one time step with :func:`Input`, layers and cells; :class:`RecurrentModel` turns
it into a recurrent layer; ``model.lower(engine)`` runs it natively on numpy, jax,
torch or tensorflow. Importing this package imports no framework.
"""

from . import activations, cells, constraints, custom_ops, functional, initializers, layers, regularizers
from .bidirectional import Bidirectional
from .custom_ops import register_op
from .errors import (
    RshopConfigError,
    RshopDTypeError,
    RshopEngineError,
    RshopError,
    RshopFormatError,
    RshopNotImplementedError,
    RshopNumericsError,
    RshopParallelWarning,
    RshopParityError,
    RshopShapeError,
    RshopWarning,
)
from .graph import Node, StepGraph, verify
from .lowerable import Composition, Lowerable
from .model import RecurrentModel
from .options import LoopOptions
from .sequential import RecurrentSequential
from .serialization import load
from .specs import ParamSpec, StateSpec
from .stack import SequenceStack
from .symbolic import Input, Tensor
from .types import TensorType

__version__ = "0.1.0"

__all__ = [
    "Input",
    "Tensor",
    "RecurrentModel",
    "RecurrentSequential",
    "Bidirectional",
    "SequenceStack",
    "Lowerable",
    "Composition",
    "LoopOptions",
    "ParamSpec",
    "StateSpec",
    "TensorType",
    "StepGraph",
    "Node",
    "verify",
    "load",
    "register_op",
    "custom_ops",
    "activations",
    "cells",
    "constraints",
    "functional",
    "initializers",
    "layers",
    "regularizers",
    "RshopError",
    "RshopShapeError",
    "RshopDTypeError",
    "RshopConfigError",
    "RshopFormatError",
    "RshopEngineError",
    "RshopNotImplementedError",
    "RshopNumericsError",
    "RshopParityError",
    "RshopParallelWarning",
    "RshopWarning",
]
