"""The limits of a model and the one rule for names, checked when a model is built and when it is loaded.

A model file is data from anyone, so everything in it that makes an engine allocate or trace
without weights behind it is bounded here; the same bounds apply to a model built in Python,
so a model that builds always saves and loads. docs/format.md lists every limit and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

from .errors import RshopConfigError

MAX_NAME = 256  # characters of one name
MAX_UNROLL = 128  # time steps per loop iteration of unroll=k: each is traced and compiled
MAX_STATE_ELEMENTS = 2**24  # per-example elements of all states together (64 MiB of float32)
MAX_STATEFUL_ELEMENTS = 2**28  # batch_size x state elements a stateful layer keeps (1 GiB of float32)
MAX_OUTPUT_LENGTH = 2**20  # decode steps a model may declare as its default output_length
MAX_NODES = 10_000  # nodes of one step graph (a 16-layer LSTM stack has 353)
MAX_PARAM_ELEMENTS = 2**28  # all parameters of one model together (1 GiB of float32)
MAX_CONSTANT_ELEMENTS = 65_536  # elements of one constant node (larger arrays: parameters or call-time constants)

NAME_RULE = (
    f"1 to {MAX_NAME} printable characters without '.' (letters, digits, '_', '-', '/' and the like; "
    "no control characters, no lone surrogates)"
)


def check_name(name: object, where: str, what: str = "name", cls: type[Exception] = RshopConfigError) -> str:
    """Return ``name`` if it follows the name rule, else raise ``cls`` naming ``where``.

    One rule for every name an engine uses as a key (model, node, state, parameter, Input):
    torch forbids '.' in parameter names, a lone surrogate cannot be encoded, and control
    characters make messages unreadable."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or "." in name or not name.isprintable():
        raise cls(f"{where}: expected a {what} of {NAME_RULE}, received {name!r:.80}. Rename it.")
    return name


def check_param_name(name: object, where: str, cls: type[Exception] = RshopConfigError) -> str:
    """A parameter's qualified name: the name rule, and ``<owner>/<weight>`` (so it can never
    clash with an attribute of an engine's module object, such as torch's ``training``)."""
    name = check_name(name, where, "parameter name", cls)
    if "/" not in name.strip("/"):
        raise cls(f"{where}: expected a qualified parameter name '<layer>/<weight>', received {name!r:.80}.")
    return name


class Sized(Protocol):
    """What the checks below read of a :class:`~rshop_core.specs.ParamSpec` or ``StateSpec`` (specs
    imports this module, so it is described here rather than imported)."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple: ...


class StatefulOptions(Protocol):
    """What :func:`check_states` reads of a model's :class:`~rshop_core.options.LoopOptions` (which
    guarantees ``batch_size`` with ``stateful``); the options module is not part of the IR."""

    @property
    def stateful(self) -> bool: ...

    @property
    def batch_size(self) -> int | None: ...


def check_states(
    specs: Sequence[Sized], options: StatefulOptions, where: str, cls: type[Exception] = RshopConfigError
) -> None:
    """Bound what the states make an engine allocate with no weights behind it."""
    total = sum(math.prod(s.shape) for s in specs)
    if total > MAX_STATE_ELEMENTS:
        raise cls(
            f"{where}: expected states of at most {MAX_STATE_ELEMENTS} elements per example together, "
            f"received {total} ({', '.join(f'{s.name} {s.shape}' for s in specs[:8])}). "
            "Keep large tensors in parameters or constants passed at call time."
        )
    if options.stateful and options.batch_size is not None and options.batch_size * total > MAX_STATEFUL_ELEMENTS:
        raise cls(
            f"{where}: expected batch_size x state elements of at most {MAX_STATEFUL_ELEMENTS} for a "
            f"stateful layer, received {options.batch_size} x {total}."
        )


def check_param_count(where: str, specs: Iterable[Sized]) -> None:
    """Refuse models with more parameter entries than a ``.rshop`` file may hold."""
    specs = list(specs)
    total = sum(math.prod(p.shape) for p in specs)
    if total > MAX_PARAM_ELEMENTS:
        big = max(specs, key=lambda p: math.prod(p.shape))
        raise RshopConfigError(
            f"{where}: expected at most {MAX_PARAM_ELEMENTS} parameter entries in all (the .rshop format's "
            f"limit), received {total} (the largest, {big.name!r}, has shape {big.shape}). "
            "Use fewer units or a smaller input."
        )
