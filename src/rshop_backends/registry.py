"""Which engines exist, whether they are installed, and how to import one.

Built-in engines are listed here; third parties add theirs through the
``rshop.engines`` entry-point group (name -> module exposing ``lower(model, dtype)``).
Nothing here imports a framework: installation is checked with ``find_spec``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from rshop_core.errors import RshopConfigError, RshopEngineError


@dataclass(frozen=True)
class EngineInfo:
    name: str
    module: str  # the rshop module that lowers to this engine
    requires: tuple  # top-level framework modules that must be importable
    distributions: tuple  # distributions whose versions `rshop info` prints
    extra: str | None  # the pip extra that installs it

    def installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def versions(self) -> dict:
        out = {}
        for d in self.distributions:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                out[d] = importlib.metadata.version(d)
        return out


BUILTIN = {
    "numpy": EngineInfo("numpy", "rshop_backends.numpy", ("numpy",), ("numpy",), None),
    "jax": EngineInfo("jax", "rshop_backends.jax", ("jax", "jaxlib"), ("jax", "jaxlib"), "jax"),
    "torch": EngineInfo("torch", "rshop_backends.torch", ("torch",), ("torch",), "torch"),
    "tensorflow": EngineInfo(
        "tensorflow", "rshop_backends.tensorflow", ("tensorflow",), ("tensorflow", "tensorflow-cpu"), "tensorflow"
    ),
}

# Order of the automatic choice: trainable, quick to import and fast first.
AUTO_ORDER = ("jax", "torch", "tensorflow", "numpy")


def _plugins() -> dict:
    out = {}
    for ep in importlib.metadata.entry_points(group="rshop.engines"):
        if ep.name not in BUILTIN:
            out[ep.name] = EngineInfo(ep.name, ep.value, (), (ep.dist.name,) if ep.dist else (), None)
    return out


def engines() -> dict:
    """Every known engine (built-in and plug-in) by name."""
    return {**BUILTIN, **_plugins()}


def info(name: str) -> EngineInfo:
    """The :class:`EngineInfo` of ``name``, or an error listing the known engines."""
    known = engines()
    if not isinstance(name, str) or name not in known:
        raise RshopConfigError(f"engine: expected one of {sorted(known)}, received {name!r}.")
    return known[name]


def load(name: str) -> ModuleType:
    """Import and return the engine module for ``name``; clear errors when not installed."""
    e = info(name)
    if not e.installed():
        hint = f'pip install "rshop[{e.extra}]"' if e.extra else f"install {', '.join(e.requires)}"
        raise RshopEngineError(
            f"engine {name!r}: expected {', '.join(e.requires)} to be installed, received an "
            f"environment without it. Install it with: {hint}"
        )
    return importlib.import_module(e.module)
