"""The engine spec: what one engine is, in one object (:class:`EngineSpec`).

Every built-in engine package defines ``ENGINE = EngineSpec(...)``, and its module-level
``lower(model, dtype, ...)`` is ``ENGINE.lower``: the glue the four engines used to repeat.
A plug-in engine may do the same (``rshop_backends.lower`` uses a module's ``ENGINE`` when it has
one, else its ``lower(model, dtype)``). Nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rshop_core.lowerable import Lowerable

    from .lowered import Lowered


@dataclass(frozen=True)
class EngineSpec:
    """One engine.

    ``name``: as the registry knows it; ``layer``: its :class:`~rshop_backends.lowered.Lowered`
    subclass; ``ops``: its ops module (``EMITTERS``, ``NAMESPACE``, ``constant``, optional
    ``FUSIONS``: what :mod:`rshop_backends.codegen` emits); ``passes``: the default optimisation
    pipeline; ``grad_passes``: the pipeline of calls being differentiated, where the engine can
    tell (None: ``passes``); ``dtypes``: the float dtypes it computes in; ``parallel``: its
    time-parallel module (``linear_scan`` and the array functions of
    :class:`rshop_backends.parallel.ArrayOps`), None when it has none (loops then run step by step);
    ``per_op_loop``: its loop pays for every operation of the step (eager: a dispatch each), so the
    cost rule of :mod:`rshop_core.passes.cost` refuses default passes that add operations.
    """

    name: str
    layer: type[Lowered]
    ops: ModuleType
    passes: tuple
    grad_passes: tuple | None = None
    dtypes: tuple = ("float32", "float64")
    parallel: ModuleType | None = None
    per_op_loop: bool = False

    def lower(
        self,
        model: Lowerable,
        dtype: str,
        passes: Sequence[str] | None = None,
        fast_path: bool | str = True,
        **hooks: Any,
    ) -> Lowered:
        """``model`` lowered to this engine computing in ``dtype``: a new ``self.layer``.

        ``hooks``: the optional construction hooks of :class:`~rshop_backends.lowered.Lowered`
        (``dropout_masks``, ``codegen_context``) and the engine's own keywords."""
        return self.layer(model, dtype, self, passes=passes, fast_path=fast_path, **hooks)
