"""torch's fused path on CUDA hands cuDNN its weights as views of one flat buffer (rshop_backends.torch.fused:
``packed`` at ``cudnn_layout``'s offsets). cuDNN only runs on CUDA, so here the packing itself is checked on
the CPU: forced onto the CPU kernels with a layout that has gaps, a layer gives the outputs and the gradients
on its own parameters it gives without it (up to the reordering of a different memory layout); unforced,
the CPU path is untouched. The last test runs only where CUDA is (``bench/gpu.py`` runs this file there):
no "weights are not part of single contiguous chunk" warning, and the numbers of the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell

from .conftest import as_tuple, assert_close, only_engine, reference
from .test_fast_path import FUSED
from .tolerances import FORWARD_ATOL, GRAD_RTOL, SAME_ENGINE_ATOL

B, T, D = 3, 6, 4
CASES = ("lstm", "lstm_no_bias", "gru", "gru_no_bias", "rnn_relu", "mixed_stack", "bidirectional_lstm")


@pytest.fixture
def fused(request):
    only_engine(request, "torch", "packing weights for cuDNN")
    from rshop_backends.torch import fused

    return fused


@pytest.fixture
def on_cpu(request):
    """The CPU as torch's default device during the test (``--rshop-device=cuda`` makes it CUDA): the tests
    that force the packed path run it on the CPU kernels, on any machine."""
    only_engine(request, "torch", "packing weights for cuDNN")  # before torch is imported: it may be absent
    import torch

    with torch.device("cpu"):
        yield


def gapped_layout(kernel, shapes, dtype, device):
    """A stand-in for cuDNN's answer: the weights in order, 3 elements apart, 5 spare at the end."""
    offsets, at = [], 0
    for s in shapes:
        offsets.append(at)
        at += int(np.prod(s)) + 3
    return tuple(offsets), at + 5


@pytest.mark.usefixtures("on_cpu")
def test_packed_views_one_buffer(fused):
    import torch

    rng = np.random.default_rng(0)
    k = torch.from_numpy(rng.standard_normal((D, 8))).requires_grad_()
    b = torch.from_numpy(rng.standard_normal(8)).requires_grad_()
    weights = [k.t(), b]  # a transposed view, as torch_weights hands over
    views = fused.packed(weights, (12, 1), 60)  # out of order, with gaps
    flat = views[0]._base
    assert flat is not None and views[1]._base is flat and flat.shape == (60,)
    assert [v.storage_offset() for v in views] == [12, 1]
    assert all(torch.equal(v, w) for v, w in zip(views, weights))
    gaps = torch.cat([flat[:1], flat[9:12], flat[12 + k.numel() :]])
    assert torch.equal(gaps, torch.zeros_like(gaps))
    w = [torch.from_numpy(rng.standard_normal(tuple(v.shape))) for v in views]
    sum(((v * c).sum() for v, c in zip(views, w)), torch.zeros(())).backward()
    assert torch.equal(k.grad, w[0].t()) and torch.equal(b.grad, w[1])


@pytest.mark.usefixtures("on_cpu")
def test_packed_refuses_overlap(fused):
    import torch

    with pytest.raises(AssertionError, match="overlap"):
        fused.packed([torch.zeros(4), torch.zeros(4)], (0, 2), 8)


def _outputs_and_grads(layer, x, s0, w):
    layer.zero_grad(set_to_none=True)
    y = as_tuple(layer(x, initial_state=s0, training=False))[0]
    (y * w).sum().backward()
    return y.detach(), {k: p.grad.clone() for k, p in layer.named_parameters()}


@pytest.mark.usefixtures("on_cpu")
@pytest.mark.parametrize("case", CASES)
def test_packed_path_same_numbers(fused, monkeypatch, case):
    import torch

    model = FUSED[case](return_sequences=True)
    layer = model.lower("torch")
    assert layer.explain().path.startswith("fused kernel: torch."), str(layer.explain())
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((B, T, D)).astype(np.float32))
    s0 = [torch.from_numpy(rng.standard_normal((B,) + s.shape).astype(np.float32)) for s in model.state_specs]
    w = None
    results, seen = [], []
    for force in (False, True):
        with monkeypatch.context() as m:
            if force:
                m.setattr(fused, "uses_cudnn", lambda x: True)
                m.setattr(fused, "cudnn_layout", lambda *a: seen.append(a) or gapped_layout(*a))
            if w is None:
                y = as_tuple(layer(x, initial_state=s0, training=False))[0]
                w = torch.from_numpy(rng.standard_normal(tuple(y.shape)).astype(np.float32))
            results.append(_outputs_and_grads(layer, x, s0, w))
    assert seen and all(a[0] in fused.KERNELS for a in seen), "the packed path was not taken"
    # the same weights' bits feed the same kernel; only their memory layout differs (a contiguous weight can
    # take another BLAS path than a transposed view): the same engine's numbers up to reordering
    (y0, g0), (y1, g1) = results
    err = float((y0 - y1).abs().max())
    assert err <= SAME_ENGINE_ATOL["float32"], f"{case}: outputs differ by {err:.3g}"
    assert g0.keys() == g1.keys() and all(g.abs().max() > 0 for g in g1.values())
    for k in g0:  # gradients land on the layer's own parameters
        scale = max(1.0, float(g0[k].abs().max()))
        err = float((g0[k] - g1[k]).abs().max())
        assert err <= SAME_ENGINE_ATOL["float32"] * scale, f"{case}: d/d {k} differs by {err:.3g}"


@pytest.mark.usefixtures("on_cpu")
def test_cpu_path_untouched(fused):
    import torch

    x = torch.zeros((B, T, D))
    weights = [torch.zeros(8, D), torch.zeros(8, 2)]
    assert not fused.uses_cudnn(x)
    assert fused.for_kernel("lstm", weights, x) is weights


@pytest.mark.parametrize(
    "model",
    [
        LSTMCell(16, input_dim=D).get_layer(seed=1, return_sequences=True),
        GRUCell(16, input_dim=D).get_layer(seed=2, return_sequences=True),
        SimpleRNNCell(16, input_dim=D).get_layer(seed=3, return_sequences=True),
    ],
    ids=["lstm", "gru", "rnn"],
)
def test_cuda_runs_cudnn_with_flat_weights(fused, monkeypatch, model):
    """On CUDA: no warning from cuDNN about the weights' memory (pytest turns it into an error), the outputs of
    the float64 reference and the gradients the same layer computes on the CPU."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (torch.cuda.is_available() is False); bench/gpu.py runs it on one")
    x = np.random.default_rng(2).standard_normal((B, T, D))
    grads, outputs, packs, pack = [], [], [], fused.packed
    monkeypatch.setattr(fused, "packed", lambda w, *a: packs.append(w[0].device.type) or pack(w, *a))
    for device in ("cuda", "cpu"):
        with torch.device(device):  # the layer is built on torch's default device
            layer = model.lower("torch").eval()
        assert {p.device.type for p in layer.parameters()} == {device}
        y = layer(torch.from_numpy(x.astype(np.float32)).to(device))
        y.sum().backward()
        outputs.append(y.detach().cpu().numpy())
        grads.append({k: p.grad.cpu() for k, p in layer.named_parameters()})
    assert packs == ["cuda"], f"weights packed on {packs}: expected on CUDA (cuDNN) only"
    assert_close((outputs[0],), reference(model, x), FORWARD_ATOL["float32"], "on CUDA")
    for k in grads[1]:
        scale = max(1.0, float(grads[1][k].abs().max()))
        err = float((grads[0][k] - grads[1][k]).abs().max())
        assert err <= GRAD_RTOL["float32"] * scale, f"d/d {k}: CUDA and CPU differ by {err:.3g}"
