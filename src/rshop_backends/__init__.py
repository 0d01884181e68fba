"""rshop_backends: one adapter per engine, chosen at import time.

Only the selected engine's framework is imported. ``lower(model, engine, dtype)``
returns that engine's native layer object (``torch.nn.Module``, ``tf.Module``, a JAX
object with a pure ``apply``, or the numpy reference loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import registry
from .arrays import to_native, to_numpy
from .selection import backend, set_backend

if TYPE_CHECKING:
    from rshop_core.lowerable import Lowerable

__all__ = ["backend", "set_backend", "lower", "engines", "registry", "to_native", "to_numpy"]


def engines() -> dict[str, bool]:
    """Known engines by name, with whether each is installed."""
    return {name: e.installed() for name, e in registry.engines().items()}


def lower(
    model: Lowerable,
    engine: str | None = None,
    dtype: str | None = None,
    *,
    passes: Sequence[str] | None = None,
    fast_path: bool | str = True,
    **hooks: Any,
) -> Any:
    """Lower ``model`` for ``engine`` (the active one when None) computing in ``dtype``.

    ``passes``: the optimisation pipeline (pass names of :mod:`rshop_core.passes`; None: the
    engine's default, ``()``: none). ``fast_path``: run a recognised standard cell (stack) on
    the engine's fused kernel (True), never (False), or fail unless it can ('require').
    ``hooks``: construction hooks of the engine contract (``dropout_masks``, ``codegen_context``:
    :class:`~rshop_backends.lowered.Lowered`), for hosts such as the Keras layer.
    """
    from rshop_core.dtypes import check_float_dtype

    from . import selection

    name = selection.freeze() if engine is None else engine
    mod = registry.load(name)
    dtype = check_float_dtype(dtype or model.dtype, f"lower({name!r}) dtype")
    spec = getattr(mod, "ENGINE", None)  # an EngineSpec (rshop_backends.engine): every built-in engine has one
    if spec is not None:
        return spec.lower(model, dtype, passes=passes, fast_path=fast_path, **hooks)
    if passes is None and fast_path is True and not hooks:  # plug-in engines may take (model, dtype) only
        return mod.lower(model, dtype)
    return mod.lower(model, dtype, passes=passes, fast_path=fast_path, **hooks)
