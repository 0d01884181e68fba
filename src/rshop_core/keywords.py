"""Keyword checking for constructors: a misspelled keyword is an RshopConfigError naming the
closest valid one, not Python's bare TypeError."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from .errors import RshopConfigError

F = TypeVar("F", bound=Callable[..., Any])


def _keywords(fn: Callable[..., Any]) -> tuple[list[str], bool]:
    """(the keyword names ``fn`` accepts, whether it also takes ``**kwargs``)."""
    params = list(inspect.signature(fn).parameters.values())[1:]  # without self
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def unknown_keyword(where: str, key: str, valid: Iterable[str]) -> RshopConfigError:
    """The error for keyword ``key`` that is not in ``valid``."""
    names = sorted(valid)
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"Did you mean {close[0]!r}?" if close else f"Valid keywords: {', '.join(names)}."
    return RshopConfigError(
        f"{where}, keyword {key!r}: expected one of the keywords of {where}, received {key!r}. {hint}"
    )


def checked_init(init: F, extra: Callable[..., Any] | None = None) -> F:
    """Wrap a constructor so unknown keywords raise :func:`unknown_keyword`. ``extra``: a function
    whose keywords are also accepted (the constructor passes ``**kwargs`` on to it)."""
    names, var = _keywords(init)
    if getattr(init, "__rshop_checked__", False):
        return init
    if var:  # keywords passed on: accepted if the receiver takes them
        if not extra:
            return init
        more, _ = _keywords(extra)
        names = names + more

    @functools.wraps(init)
    def wrapper(self: object, *args: Any, **kwargs: Any) -> Any:
        for k in kwargs:
            if k not in names:
                raise unknown_keyword(type(self).__name__, k, names)
        return init(self, *args, **kwargs)

    wrapper.__rshop_checked__ = True  # type: ignore[attr-defined]  # a marker attribute on the function object
    return cast(F, wrapper)
