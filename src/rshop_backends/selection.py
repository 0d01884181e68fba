"""The import-time engine choice.

Precedence: the ``RSHOP_BACKEND`` environment variable, then :func:`set_backend`
(before the first lowering), then the config file (``$RSHOP_CONFIG`` or
``~/.rshop/config.json``: ``{"backend": "torch"}``), then the first installed engine of
:data:`~rshop_backends.registry.AUTO_ORDER`. Once a model has been lowered with the
default engine the choice is frozen; ``model.lower("jax")`` still picks any engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rshop_core.errors import RshopConfigError

from . import registry

_chosen: dict = {"name": None, "reason": None, "frozen": False, "requested": None}


def config_path() -> Path:
    return Path(os.environ.get("RSHOP_CONFIG") or Path.home() / ".rshop" / "config.json")


def _from_config() -> str | None:
    path = config_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RshopConfigError(
            f'config file {path}: expected JSON like {{"backend": "jax"}}, received unreadable content ({e}).'
        ) from None
    name = data.get("backend") if isinstance(data, dict) else None
    if name is None:
        return None
    registry.info(name)
    return name


def _resolve() -> tuple[str, str]:
    env = os.environ.get("RSHOP_BACKEND")
    if env:
        registry.info(env)  # fails at once for an unknown name, listing the known ones
        return env, "RSHOP_BACKEND environment variable"
    if _chosen["requested"]:
        return _chosen["requested"], "rshop_backends.set_backend()"
    cfg = _from_config()
    if cfg:
        return cfg, f"config file {config_path()}"
    for name in registry.AUTO_ORDER:
        if registry.BUILTIN[name].installed():
            return name, f"automatic: first installed of {list(registry.AUTO_ORDER)}"
    raise RshopConfigError("engine: expected at least numpy to be installed, received none.")


def backend() -> str:
    """The name of the active engine (resolved on first use)."""
    if _chosen["name"] is None:
        _chosen["name"], _chosen["reason"] = _resolve()
    return _chosen["name"]


def reason() -> str:
    backend()
    return _chosen["reason"]


def set_backend(name: str) -> None:
    """Choose the engine used when ``lower()`` gets no engine; before the first such lowering."""
    registry.info(name)
    env = os.environ.get("RSHOP_BACKEND")
    if env and env != name:
        raise RshopConfigError(
            f"set_backend: expected no conflict with RSHOP_BACKEND={env!r}, which takes precedence, "
            f"received {name!r}. Unset RSHOP_BACKEND to choose in code."
        )
    if _chosen["frozen"] and name != _chosen["name"]:
        raise RshopConfigError(
            f"set_backend: expected to be called before the first lowering, received {name!r} after "
            f"models were lowered with {_chosen['name']!r}. Use model.lower({name!r}) for one model."
        )
    _chosen["requested"] = name
    _chosen["name"], _chosen["reason"] = _resolve()


def freeze() -> str:
    name = backend()
    _chosen["frozen"] = True
    return name


def _reset_for_tests() -> None:
    _chosen.update(name=None, reason=None, frozen=False, requested=None)
