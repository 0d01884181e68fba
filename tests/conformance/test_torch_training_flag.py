"""The torch layer's ``training`` follows the module's mode (``.train()`` / ``.eval()``) unless the
call gives ``training=``: dropout and teacher forcing act in train mode, as ``nn.Dropout`` does.
References are the numpy float64 engine with the same flags (dropout masks are drawn by numpy
from the layer's seeded generator, so a reseeded numpy layer draws the same masks)."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core.cells import LSTMCell
from rshop_core.errors import RshopConfigError

from .composition_cases import readout_model
from .conftest import assert_close, only_engine
from .tolerances import FORWARD_ATOL

rng = np.random.default_rng(12)
X = rng.standard_normal((3, 5, 3))
GT = rng.standard_normal((3, 5, 2))
ATOL = FORWARD_ATOL["float32"]


@pytest.fixture
def torch_engine(request):
    return only_engine(request, "torch", "the module mode")


def dropout_model():
    return LSTMCell(4, input_dim=3, dropout=0.4, recurrent_dropout=0.3).get_layer(seed=2, return_sequences=True)


def _torch_run(layer, x, **kw):
    import torch

    kw = {k: torch.from_numpy(v.astype(np.float32)) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    return layer(torch.from_numpy(x.astype(np.float32)), **kw).detach().numpy()


def _ref(model, x, seed=0, **kw):
    ref = model.lower("numpy", "float64")
    ref.reseed(seed)
    return ref(x, **kw)


def test_new_layer_is_in_train_mode_and_drops(torch_engine):
    model = dropout_model()
    layer = model.lower("torch")
    assert layer.training  # every new nn.Module is
    layer.reseed(0)
    assert_close((_torch_run(layer, X),), (_ref(model, X, training=True),), ATOL, "train mode")
    inference = _ref(model, X, training=False)
    assert np.abs(_torch_run(layer, X) - inference).max() > 1e-2  # the masks really act


@pytest.mark.parametrize(
    "mode,given,expect", [("eval", None, False), ("train", None, True), ("train", False, False), ("eval", True, True)]
)
def test_explicit_training_wins_over_the_mode(torch_engine, mode, given, expect):
    model = dropout_model()
    layer = model.lower("torch")
    getattr(layer, mode)()
    layer.reseed(0)
    kw = {} if given is None else {"training": given}
    assert_close((_torch_run(layer, X, **kw),), (_ref(model, X, training=expect),), ATOL, f"{mode}/{given}")


def test_train_mode_uses_ground_truth(torch_engine):
    model = readout_model(return_sequences=True)
    layer = model.lower("torch")
    forced = _ref(model, X, ground_truth=GT, training=True)
    free = _ref(model, X, training=False)
    assert np.abs(forced - free).max() > 1e-2  # teacher forcing changes the numbers
    assert_close((_torch_run(layer, X, ground_truth=GT),), (forced,), ATOL, "train mode, ground truth")
    layer.eval()
    assert_close((_torch_run(layer, X),), (free,), ATOL, "eval mode")


def test_train_mode_without_targets_says_eval(torch_engine):
    layer = readout_model().lower("torch")
    with pytest.raises(RshopConfigError) as info:
        _torch_run(layer, X)
    msg = str(info.value)
    assert msg.startswith("RecurrentModel 'recurrent_model', argument ground_truth: expected the targets")
    assert "received None" in msg and "training=False" in msg and "layer.eval()" in msg
    # an explicit training=True is the user's choice: the message every engine gives
    with pytest.raises(RshopConfigError) as info:
        _torch_run(layer, X, training=True)
    assert "layer.eval()" not in str(info.value) and "training=False" in str(info.value)
