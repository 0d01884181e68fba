"""Which torch transform is running a call, and what it can run.

``current(x)`` names the transform a call runs under: ``"torch.export"``, ``"torch.compile"``,
``"torch.jit.trace"``, ``"torch.func.vmap"``, ``"torch.func.jvp"``, ``"torch.func.grad"`` or
``None`` (eager). ``BLOCKED[name]`` says why torch's fused recurrent kernels cannot run
under it (absent: they can); the layer then runs the generic loop and ``explain(transform=...)``
reports it. ``symbolic_time(x)``: T is a symbol of a ``torch.export`` with a dynamic T, where the
Python loop would specialise T, so the loop becomes one ``scan`` higher-order op. ``in_graph_rng()``:
numbers drawn by numpy would be frozen into the traced graph, so dropout masks come from torch's
generator instead.
"""

from __future__ import annotations

from typing import Any

import torch

NAMES = (
    "eager",
    "torch.compile",
    "torch.export",
    "torch.export (dynamic T)",
    "torch.func.vmap",
    "torch.func.jvp",
    "torch.func.grad",
    "torch.jit.trace",
)

BLOCKED: dict[str | None, str] = {  # transform -> why torch's fused kernels cannot run under it
    "torch.compile": "torch.compile cannot trace torch's fused recurrent kernels (mkldnn_rnn_layer has no "
    "fake-tensor implementation)",
    "torch.export (dynamic T)": "torch.export of torch's fused recurrent kernels specialises T (the kernel "
    "decomposes into one step per time step)",
    "torch.func.vmap": "torch.func.vmap has no batching rule for torch's fused recurrent kernels",
    "torch.func.jvp": "forward-mode AD (torch.func.jvp, jacfwd) is not implemented for torch's fused recurrent kernels",
}


def _functorch() -> list[Any]:
    """The functorch transforms active around this call, innermost last."""
    from torch._functorch import pyfunctorch

    return [i.key() for i in pyfunctorch.retrieve_all_functorch_interpreters()]


def current(x: Any = None) -> str | None:
    """The transform running this call (see the module docstring), or None."""
    if torch.compiler.is_exporting():
        return "torch.export (dynamic T)" if x is not None and symbolic_time(x) else "torch.export"
    if torch.compiler.is_compiling():
        return "torch.compile"
    if torch.jit.is_tracing():
        return "torch.jit.trace"
    if torch._C._functorch.maybe_current_level() is None:
        return None
    kinds = _functorch()
    T = torch._C._functorch.TransformType
    if T.Vmap in kinds:
        return "torch.func.vmap"
    if T.Jvp in kinds:
        return "torch.func.jvp"
    return "torch.func.grad" if kinds else None


def symbolic_time(x: Any) -> bool:
    """Whether x's time axis (dim 1) is a symbol rather than a number."""
    return x.dim() > 1 and isinstance(x.shape[1], torch.SymInt)


def in_graph_rng(name: str | None) -> bool:
    """Whether random numbers must be drawn in the graph (numpy draws would be frozen constants)."""
    return name is not None and name != "torch.func.grad"
