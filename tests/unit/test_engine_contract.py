"""The engine contract is declared: one EngineSpec per engine, a Lowered subclass with every
abstract hook implemented, and construction hooks (dropout masks, code generation context)
instead of patching a lowered layer's private methods."""

from __future__ import annotations

import contextlib
import importlib
import inspect

import numpy as np
import pytest

import rshop_backends
from rshop_backends import registry
from rshop_backends.engine import EngineSpec
from rshop_backends.lowered import Lowered
from rshop_core.cells import GRUCell


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_every_builtin_engine_declares_a_complete_spec(name):
    if not registry.info(name).installed():
        pytest.skip(f"{name} is not installed here: its spec is checked where it is")
    mod = importlib.import_module(registry.info(name).module)
    spec = mod.ENGINE
    assert isinstance(spec, EngineSpec) and spec.name == name == mod.NAME
    assert issubclass(spec.layer, Lowered) and not inspect.isabstract(spec.layer)
    assert spec.passes == mod.PASSES and mod.lower == spec.lower


def test_a_layer_class_missing_a_hook_cannot_be_built():
    class Partial(Lowered):
        engine = "partial"

    assert {"_describe", "_loop", "_flip_time", "_read_weights", "_write_weights"} <= Partial.__abstractmethods__
    with pytest.raises(TypeError, match="abstract"):
        Partial(None, "float32", None)


MODEL = GRUCell(3, input_dim=2, dropout=0.5).get_layer(name="dropped", seed=0, return_sequences=True)
X = np.random.default_rng(0).standard_normal((2, 4, 2))


def test_dropout_masks_hook_replaces_the_drawn_masks():
    calls = []

    def keep_all(shape, rate, batch, key, index):
        calls.append((tuple(shape), rate, batch))
        return np.ones((batch, *shape), "float64")

    hooked = rshop_backends.lower(MODEL, "numpy", "float64", dropout_masks=keep_all)
    plain = MODEL.lower("numpy", "float64")
    np.testing.assert_allclose(hooked(X, training=True), plain(X), rtol=0, atol=1e-12)
    assert calls == [((2,), 0.5, 2)]
    assert not np.allclose(plain(X, training=True), plain(X))  # without the hook, masks do drop


def test_codegen_context_is_entered_around_code_generation():
    entered = []

    @contextlib.contextmanager
    def noting():
        entered.append(True)
        yield

    layer = rshop_backends.lower(MODEL, "numpy", "float64", codegen_context=noting)
    assert entered  # the inference step is generated when lowering
    layer(X)
