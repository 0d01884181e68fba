"""Conformance-suite hooks of the twin engine: the numpy engine's, plus where its known gaps are listed."""

from __future__ import annotations

from pathlib import Path

from rshop_backends.numpy.testing import float64_scope, input_grads, loss_grads, to_native, to_numpy

GRADIENTS = False  # inference only, like numpy
XFAILS = Path(__file__).with_name("xfails.txt")

__all__ = ["GRADIENTS", "XFAILS", "float64_scope", "input_grads", "loss_grads", "to_native", "to_numpy"]
