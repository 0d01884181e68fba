"""Tensors the torch layer cannot run on (sparse, mkldnn, nested layouts; another device than the
layer's) are refused at the call with an RshopEngineError naming the argument and the fix, on the
fused and the generic path alike; a layer moved to the meta device runs meta tensors (shapes only), and one
built under ``with torch.device(...)`` is built there."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rshop_core.cells import LSTMCell
from rshop_core.errors import RshopEngineError

from .conftest import only_engine

B, T, D, H = 2, 5, 3, 4
WHERE = "torch layer of RecurrentModel 'lstm'"


@pytest.fixture(scope="module")
def layers(request):
    only_engine(request, "torch", "checking torch tensors")
    model = LSTMCell(H, input_dim=D).get_layer(seed=0)
    return {fast: model.lower("torch", fast_path=fast).eval() for fast in (True, False)}


def _x():
    import torch

    return torch.from_numpy(np.random.default_rng(0).standard_normal((B, T, D)).astype(np.float32))


def _unusual(kind):
    import torch

    x = _x()
    if kind == "sparse_coo":
        return x.to_sparse(), "layout torch.sparse_coo", ".to_dense()"
    if kind == "sparse_csr":
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            return x[0].to_sparse_csr(), "layout torch.sparse_csr", ".to_dense()"
    if kind == "mkldnn":
        return x.to_mkldnn(), "layout torch._mkldnn", ".to_dense()"
    if kind == "nested":
        with warnings.catch_warnings():  # "nested tensors are in prototype stage"
            warnings.simplefilter("ignore")
            return torch.nested.nested_tensor([x[0], x[1, :3]]), "a nested one", "to_padded_tensor"
    return x.to("meta"), "on the layer's device cpu, received one on meta", ".to('cpu')"


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("kind", ["sparse_coo", "sparse_csr", "mkldnn", "nested", "meta"])
def test_unusual_x_refused(layers, fast, kind):
    bad, received, fix = _unusual(kind)
    with pytest.raises(RshopEngineError) as info:
        layers[fast](bad)
    msg = str(info.value)
    assert msg.startswith(f"{WHERE}, argument x: expected a ") and received in msg and fix in msg, msg


def test_state_on_another_device_refused(layers):
    import torch

    s = [torch.zeros(B, H), torch.zeros(B, H, device="meta")]
    with pytest.raises(
        RshopEngineError,
        match=r"initial state #1: expected a tensor on the layer's device cpu, "
        r"received one on meta\. Move the tensor with \.to\('cpu'\)",
    ):
        layers[True](_x(), initial_state=s)


def test_sparse_mask_refused(layers):
    mask = np.ones((B, T), bool)
    import torch

    with pytest.raises(
        RshopEngineError,
        match=r"argument mask: expected a dense \(torch\.strided\) tensor, "
        r"received layout torch\.sparse_coo",
    ):
        layers[False](_x(), mask=torch.from_numpy(mask).to_sparse())


@pytest.mark.parametrize("fast", [True, False])
def test_meta_layer_runs_meta_tensors(layers, fast):
    layer = LSTMCell(H, input_dim=D).get_layer(seed=0).lower("torch", fast_path=fast).eval().to("meta")
    y = layer(_x().to("meta"))
    assert y.device.type == "meta" and tuple(y.shape) == (B, H)
    dense = layers[fast](_x())  # the dense result of the same call has that shape
    assert tuple(dense.shape) == (B, H)


@pytest.mark.parametrize("fast", [True, False])
def test_layer_built_on_the_default_device(layers, fast):
    """A layer lowered under ``with torch.device(...)`` (or ``torch.set_default_device``) is built there, parameters
    included, as ``torch.nn.Linear`` is: here the meta device, the one other device every machine has."""
    import torch

    model = LSTMCell(H, input_dim=D).get_layer(seed=0)
    with torch.device("meta"):
        layer = model.lower("torch", fast_path=fast).eval()
    assert {p.device.type for p in layer.parameters()} == {"meta"}
    y = layer(_x().to("meta"))
    assert y.device.type == "meta" and tuple(y.shape) == (B, H)
    on_cpu = model.lower("torch", fast_path=fast)  # outside the block: the CPU, as before
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}
