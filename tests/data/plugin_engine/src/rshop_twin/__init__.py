"""The "twin" engine: rshop's numpy engine under another name, computing in float32 only.

What a plug-in engine provides: an ``ENGINE`` (an ``EngineSpec``) and ``lower``, and a ``testing``
module for the conformance suite (with its ``XFAILS`` list and ``GRADIENTS`` flag).
"""

from __future__ import annotations

from typing import Any

from rshop_backends.engine import EngineSpec
from rshop_backends.numpy import ops
from rshop_backends.numpy.layer import NumpyLayer
from rshop_core.errors import RshopNotImplementedError

NAME = "twin"


class TwinLayer(NumpyLayer):
    """The numpy reference loop, refusing float64 (the gap its xfail list declares)."""

    engine = NAME  # errors name the engine they come from ("twin layer of ..."): the suite checks it

    def __init__(self, model: Any, dtype: str, engine: EngineSpec, *args: Any, **kwargs: Any) -> None:
        if dtype != "float32":
            raise RshopNotImplementedError(
                f"engine 'twin': expected dtype float32, received {dtype}. Lower with dtype='float32'."
            )
        super().__init__(model, dtype, engine, *args, **kwargs)


ENGINE = EngineSpec(NAME, TwinLayer, ops, (), dtypes=("float32",))
lower = ENGINE.lower
