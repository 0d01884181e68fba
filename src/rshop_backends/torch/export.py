"""The torch engine's serving formats: ``torch.export`` (an ``ExportedProgram`` written by
``torch.export.save``) and ONNX (``torch.onnx.export``'s dynamo exporter, read by onnxruntime).

``export(layer, path, sig)`` / ``export_onnx(layer, path, sig)`` write the inference call of a
:class:`~rshop_backends.torch.layer.TorchLayer` as :func:`rshop_backends.serving.signature`
describes it (positional inputs x, constants, initial states, mask; a tuple of outputs), with
every dynamic dimension a ``torch.export.Dim``. Under ``torch.export`` with a symbolic T the
layer runs its loop as one ``scan`` higher-order op (:func:`.loop.scan_op`): the program holds
one step, not T copies, and the ONNX exporter turns that op into an ONNX ``Scan``.
``load(path)`` / ``load_onnx(path)`` read them back as functions of numpy arrays.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..serving import require_packages

if TYPE_CHECKING:
    from rshop_backends.serving import Signature

    from .layer import TorchLayer

__all__ = ["export", "export_onnx", "load", "load_onnx"]


class _Serving(nn.Module):
    """The exported call: arrays in the signature's order -> a tuple of outputs. ``forward`` declares
    one parameter per input, named as the signature names them (``x``, ``initial_state_0``, ...), so
    the program's inputs carry those names."""

    def __init__(self, layer: TorchLayer, sig: Signature) -> None:
        super().__init__()
        self.layer = layer
        self.sig = sig

    def run(self, *args: Any) -> tuple[Any, ...]:
        x, consts, states, mask = self.sig.split(args)
        out = self.layer(x, initial_state=states, constants=consts, mask=mask, **self.sig.call_kwargs())
        return out if isinstance(out, tuple) else (out,)


def _forward(names: list[str]) -> Any:
    """A ``forward(self, <names>)`` calling ``self.run`` with its arguments in order."""

    def forward(self: _Serving, *args: Any) -> tuple[Any, ...]:
        return self.run(*args)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(n, kind) for n in ["self", *names]]
    forward.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # what torch.export reads
    return forward


def _inputs(layer: TorchLayer, sig: Signature) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Sample tensors at the tracing sizes, on the layer's device, and their ``dynamic_shapes`` by input
    name (one ``Dim`` per dynamic dimension's name, shared by every input that has it)."""
    dims = {d: torch.export.Dim(d, min=1) for d in sig.dynamic}
    device = layer._anchor.device
    args = tuple(torch.from_numpy(a).to(device) for a in sig.samples())
    shapes = {s.name: {i: dims[d] for i, d in enumerate(s.shape) if isinstance(d, str)} for s in sig.inputs}
    return args, shapes


@contextmanager
def _quiet() -> Iterator[None]:
    """torch's own chatter while exporting or reading: not the user's concern (and errors under pytest)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No complete tensor found", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        # the ONNX exporter names a shared Dim once ("batch" in every input) and says so
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        warnings.filterwarnings("ignore", message="`torch.jit.", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not", category=UserWarning)
        yield


def _serving(layer: TorchLayer, sig: Signature) -> _Serving:
    cls = type("Serving", (_Serving,), {"forward": _forward([s.name for s in sig.inputs])})
    module: _Serving = cls(layer, sig)
    module.training = False  # the wrapper only: the call says training=False, the layer keeps its mode
    return module


@contextmanager
def _inference(layer: TorchLayer) -> Iterator[None]:
    """The layer's parameters with ``requires_grad=False`` while exporting (restored after). An inference
    program needs no autograd, and with it the ONNX exporter's decompositions trace torch's ``scan``
    through its autograd path, which fails for a step reading a symbolic size (a reshape over the batch,
    an einsum): "'SymInt' object has no attribute 'unsqueeze'" (torch 2.13)."""
    wanted = {k: p.requires_grad for k, p in layer.named_parameters()}
    try:
        for p in layer.parameters():
            p.requires_grad_(False)
        yield
    finally:
        for k, p in layer.named_parameters():
            p.requires_grad_(wanted[k])


def _program(layer: TorchLayer, sig: Signature) -> Any:
    args, shapes = _inputs(layer, sig)
    with _quiet(), _inference(layer):
        return torch.export.export(_serving(layer, sig), args, dynamic_shapes=shapes)


def export(layer: TorchLayer, path: Path, sig: Signature) -> None:
    """``torch.export.export`` of the inference call, written with ``torch.export.save`` (a .pt2 file)."""
    program = _program(layer, sig)
    with _quiet():
        torch.export.save(program, str(path))


def export_onnx(layer: TorchLayer, path: Path, sig: Signature) -> None:
    """``torch.onnx.export(..., dynamo=True)`` of the inference call: one .onnx file (weights inside),
    inputs and outputs named as the signature names them, every dynamic dimension symbolic.

    The ONNX exporter is handed the ``ExportedProgram`` of :func:`export`, not the module: given a module
    it retries with other capture strategies when ``torch.export`` fails, and one of them fixes the
    shapes it traced, which would give an artefact with a static batch and T."""
    require_packages("onnx", ("onnx", "onnxscript"), "to write ONNX", "onnx")
    exported = _program(layer, sig)
    with _quiet(), _inference(layer):
        program = torch.onnx.export(
            exported,
            input_names=[s.name for s in sig.inputs],
            output_names=list(sig.outputs),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        program.save(str(path), external_data=False)


def _numpy(out: Any) -> tuple[np.ndarray, ...]:
    return tuple(o.detach().cpu().numpy() for o in out)


def load(path: Path) -> Callable[..., tuple[np.ndarray, ...]]:
    """The ExportedProgram at ``path`` (``torch.export.load``) as a function of numpy arrays."""
    with _quiet():
        module = torch.export.load(str(path)).module()
    device = next(iter(module.parameters()), torch.empty(0)).device  # where it was exported

    def run(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.no_grad():
            return _numpy(module(*(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays)))

    return run


def load_onnx(path: Path) -> Callable[..., tuple[np.ndarray, ...]]:
    """The ONNX model at ``path`` in an onnxruntime ``InferenceSession`` (CPU), as a function of numpy arrays."""
    require_packages("onnx", ("onnxruntime",), "to read ONNX", "onnx")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(o) for o in session.run(None, dict(zip(names, arrays))))

    return run
