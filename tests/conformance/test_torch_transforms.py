"""torch transforms on a fused LSTM layer and on a custom cell (the generic loop): what runs
(``explain(transform=...)``), and numbers equal to the eager layer's (≤ 1e-6) under torch.func.vmap,
grad and jvp, torch.export (static, and with a dynamic batch and T checked at two shapes),
torch.jit.trace and torch.compile; dropout masks drawn in the graph under those transforms
(fresh on every call, one per sequence, seeded by ``torch.manual_seed``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import LSTMCell
from rshop_core.errors import RshopConfigError, RshopNotImplementedError
from rshop_core.layers import Dense

from .conftest import only_engine

# torch's own warnings, raised by its transforms on their own code, not by rshop's
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning"),
]

B, T, D, H = 2, 4, 3, 4
TOL = 1e-6


@pytest.fixture(scope="module")
def torch_engine(request):
    only_engine(request, "torch", "running under torch transforms")
    import torch

    return torch


def custom_model(**opts):
    """A cell no fused kernel runs: h' = tanh(Dense([x, h])) * sigmoid(h)."""
    x, h = Input((D,), name="x"), Input((H,), name="h")
    z = Dense(H, name="core")(F.concat([x, h]))
    h_new = F.multiply(F.tanh(z), F.sigmoid(h))
    return RecurrentModel(input=x, initial_states=[h], output=h_new, final_states=[h_new], seed=4, **opts)


def lstm_model(**opts):
    return LSTMCell(H, input_dim=D).get_layer(seed=1, **opts)


MODELS = {"fused_lstm": lstm_model, "custom": custom_model}


@pytest.fixture(scope="module")
def layers(torch_engine):
    """Per model: an eval-mode float32 layer (return_sequences) and a float64 one."""
    out = {}
    for name, build in MODELS.items():
        model = build(return_sequences=True)
        out[name] = (model.lower("torch").eval(), model.lower("torch", "float64").eval())
    assert out["fused_lstm"][0].explain().path.startswith("fused kernel: torch.lstm")
    assert out["custom"][0].explain().path.startswith("generic loop")
    return out


def _x(torch, *shape, dtype="float32", seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def _close(got, want, what):
    err = float((got.detach() - want.detach()).abs().max())
    assert err <= TOL, f"{what}: max abs error {err:.3g} > {TOL}"


# -- what runs -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "transform,fused",
    [
        ("eager", True),
        ("torch.export", True),
        ("torch.func.grad", True),
        ("torch.jit.trace", True),
        ("torch.compile", False),
        ("torch.func.vmap", False),
        ("torch.func.jvp", False),
        ("torch.export (dynamic T)", False),
    ],
)
def test_explain_names_the_path_of_each_transform(layers, transform, fused):
    e = layers["fused_lstm"][0].explain(transform=transform)
    assert e.path.startswith("fused kernel: torch.lstm") == fused, str(e)
    if not fused:
        assert transform.split(" ")[0] in e.why and "fused recurrent kernels" in e.why, e.why
        assert e.ops_per_step is not None  # the generic step it runs instead
    if transform != "eager":
        assert e.call.endswith(f"under {transform}")


def test_explain_generic_loop_under_export_and_trace(layers):
    layer = layers["custom"][0]
    assert "torch scan higher-order op" in layer.explain(transform="torch.export (dynamic T)").path
    assert "valid for that T only" in layer.explain(transform="torch.jit.trace").path
    with pytest.raises(RshopConfigError, match=r"explain argument transform: expected one of \['eager', "):
        layer.explain(transform="jit")


def test_fx_symbolic_trace_refused(layers, torch_engine):
    from rshop_core.errors import RshopEngineError

    with pytest.raises(
        RshopEngineError,
        match=r"argument x: expected a tensor, received a torch\.fx Proxy\. "
        r".*use torch\.export",
    ):
        torch_engine.fx.symbolic_trace(layers["custom"][0])


def test_require_refuses_a_transform_without_fused_kernels(torch_engine):
    torch = torch_engine
    layer = lstm_model().lower("torch", fast_path="require").eval()
    x = _x(torch, B, T, D)
    layer(x)  # eager: fused
    with pytest.raises(RshopNotImplementedError, match=r"fast_path='require'.*torch\.func\.vmap has no batching rule"):
        torch.func.vmap(layer)(x[None])
    with pytest.raises(RshopNotImplementedError, match="fast_path='require'"):
        layer.explain(transform="torch.compile")


# -- numbers under each transform ----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_vmap_matches_eager(layers, torch_engine, name):
    torch = torch_engine
    layer = layers[name][0]
    xs = _x(torch, 3, B, T, D)  # a vmapped axis in front of (batch, T, D)
    got = torch.func.vmap(layer)(xs)
    for i in range(3):
        _close(got[i], layer(xs[i]), f"{name} vmap #{i}")


@pytest.mark.parametrize("name", list(MODELS))
def test_func_grad_matches_autograd(layers, torch_engine, name):
    torch = torch_engine
    layer = layers[name][0]
    x = _x(torch, B, T, D)
    params = {k: p.detach() for k, p in layer.named_parameters()}
    got = torch.func.grad(lambda p: torch.func.functional_call(layer, p, (x,)).square().sum())(params)
    layer.zero_grad(set_to_none=True)
    layer(x).square().sum().backward()
    for k, p in layer.named_parameters():
        _close(got[k], p.grad, f"{name} d/d {k}")
    # vmap of grad (per-example gradients): the fused layer falls back to the generic loop
    xs = _x(torch, 2, B, T, D, seed=1)
    per = torch.func.vmap(
        torch.func.grad(lambda p, xi: torch.func.functional_call(layer, p, (xi,)).sum()), in_dims=(None, 0)
    )(params, xs)
    for i in range(2):
        layer.zero_grad(set_to_none=True)
        layer(xs[i]).sum().backward()
        for k, p in layer.named_parameters():
            _close(per[k][i], p.grad, f"{name} per-example #{i} d/d {k}")


@pytest.mark.parametrize("name", list(MODELS))
def test_jvp_matches_central_differences(layers, torch_engine, name):
    torch = torch_engine
    layer = layers[name][1]  # float64
    x, v = _x(torch, B, T, D, dtype="float64"), _x(torch, B, T, D, dtype="float64", seed=1)
    _, tangent = torch.func.jvp(layer, (x,), (v,))
    eps = 1e-6
    with torch.no_grad():
        fd = (layer(x + eps * v) - layer(x - eps * v)) / (2 * eps)
    _close(tangent, fd, f"{name} jvp")


@pytest.mark.parametrize("name", list(MODELS))
def test_export_static_and_dynamic(layers, torch_engine, name):
    torch = torch_engine
    layer = layers[name][0]
    x = _x(torch, B, T, D)
    static = torch.export.export(layer, (x,)).module()
    _close(static(x), layer(x), f"{name} export static")
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("time")}
    dynamic = torch.export.export(layer, (x,), dynamic_shapes=(dims,)).module()
    for shape in [(3, 7, D), (5, 2, D)]:
        x2 = _x(torch, *shape, seed=shape[0])
        _close(dynamic(x2), layer(x2), f"{name} export dynamic {shape}")
    batch_only = torch.export.export(layer, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    x3 = _x(torch, 5, T, D, seed=3)
    _close(batch_only(x3), layer(x3), f"{name} export dynamic batch")


def test_jit_trace(layers, torch_engine):
    torch = torch_engine
    x, longer = _x(torch, B, T, D), _x(torch, B, T + 3, D, seed=2)
    fused = layers["fused_lstm"][0]
    with warnings.catch_warnings():  # the argument checks read shapes as Python numbers: not in the trace
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(fused, (x,))
    _close(traced(x), fused(x), "fused trace")
    _close(traced(longer), fused(longer), "fused trace at another T")  # one torch.lstm op: T is not baked
    generic = layers["custom"][0]
    with warnings.catch_warnings(record=True) as caught:  # torch's own TracerWarnings come too
        warnings.simplefilter("always")
        traced = torch.jit.trace(generic, (x,), check_trace=False)
    ours = [
        str(w.message)
        for w in caught
        if issubclass(w.category, torch.jit.TracerWarning) and "RecurrentModel 'recurrent_model'" in str(w.message)
    ]
    assert ours and "unrolled over this call's 4 time steps; the traced function is only valid for that T" in ours[0]
    _close(traced(x), generic(x), "generic trace")


def test_compile_fused_layer_and_gradients(torch_engine):
    """torch.compile of a fused layer (backend aot_eager: dynamo and AOT autograd, where the fused kernel
    cannot be traced, without inductor's code generation time) runs the generic loop; tiny sizes."""
    torch = torch_engine
    layer = LSTMCell(2, input_dim=2).get_layer(seed=1, return_sequences=True).lower("torch").eval()
    x = _x(torch, 2, 3, 2)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    y = compiled(x)
    _close(y, layer(x), "compile")
    y.sum().backward()
    got = {k: p.grad.clone() for k, p in layer.named_parameters()}
    layer.zero_grad(set_to_none=True)
    layer(x).sum().backward()
    for k, p in layer.named_parameters():
        _close(got[k], p.grad, f"compile d/d {k}")


def test_compile_masked_and_teacher_forced_calls_of_a_fresh_layer(torch_engine):
    """Every kind of call is built at lowering, so a fresh layer's first masked or teacher-forced call can be
    made inside torch.compile (fullgraph: no graph break into the code generator)."""
    torch = torch_engine
    from .composition_cases import readout_model

    layer = readout_model(return_sequences=True).lower("torch")
    x, gt = _x(torch, 2, 4, 3), _x(torch, 2, 4, 2, seed=1)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, 2:] = False
    compiled = torch.compile(
        lambda x, gt, m: layer(x, ground_truth=gt, mask=m, training=True), backend="aot_eager", fullgraph=True
    )
    got = compiled(x, gt, mask)
    _close(got, layer(x, ground_truth=gt, mask=mask, training=True), "compiled teacher-forced masked call")


# -- dropout under transforms: drawn in the graph --------------------------------------------------------
RATE = 0.5


def dropout_model():
    """The step's output is x times the dropout mask: y[:, t] = x[:, t] * mask."""
    x, h = Input((D,), name="x"), Input((D,), name="h")
    y = F.dropout(x, RATE)
    return RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y], seed=2, return_sequences=True)


def _one_mask_per_sequence(y, what):
    """With x = ones: every step shows the same mask, of zeros and 1 / (1 - rate)."""
    first = y[:, :1]
    assert bool((y == first).all()), f"{what}: the mask changes over time"
    vals = set(np.unique(first.numpy()).tolist())
    assert vals <= {0.0, 1.0 / (1.0 - RATE)} and len(vals) == 2, f"{what}: mask values {vals}"


def test_export_draws_masks_in_the_graph(torch_engine):
    torch = torch_engine
    layer = dropout_model().lower("torch")  # train mode
    ones = torch.ones(4, 3, D)
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("time")}
    exported = torch.export.export(layer, (ones,), dynamic_shapes=(dims,)).module()
    for shape in [(4, 3, D), (6, 5, D)]:
        a, b = exported(torch.ones(shape)), exported(torch.ones(shape))
        _one_mask_per_sequence(a, f"export {shape}")
        _one_mask_per_sequence(b, f"export {shape}")
        assert not torch.equal(a, b), f"export {shape}: the same masks on two calls (frozen)"
    torch.manual_seed(7)
    a = exported(ones)
    torch.manual_seed(7)
    assert torch.equal(a, exported(ones)), "torch.manual_seed does not choose the masks"
    layer.eval()
    assert torch.equal(torch.export.export(layer, (ones,)).module()(ones), ones)  # inference: no dropout


def test_trace_and_vmap_draw_masks_in_the_graph(torch_engine):
    torch = torch_engine
    layer = dropout_model().lower("torch")
    ones = torch.ones(4, 3, D)
    with pytest.warns(torch.jit.TracerWarning):
        traced = torch.jit.trace(layer, (ones,), check_trace=False)
    a, b = traced(ones), traced(ones)
    _one_mask_per_sequence(a, "trace")
    assert not torch.equal(a, b), "jit.trace: the same masks on two calls (frozen)"
    per = torch.func.vmap(layer, randomness="different")(torch.ones(2, 4, 3, D))
    _one_mask_per_sequence(per[0], "vmap")
    assert not torch.equal(per[0], per[1]), "vmap randomness='different': the same masks for every slice"
    with pytest.raises(RuntimeError, match="randomness"):  # torch's own rule: choose 'same' or 'different'
        torch.func.vmap(layer)(torch.ones(2, 4, 3, D))


def test_compile_draws_masks_in_the_graph(torch_engine):
    torch = torch_engine
    layer = dropout_model().lower("torch")
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    ones = torch.ones(4, 3, D)
    a, b = compiled(ones), compiled(ones)
    _one_mask_per_sequence(a, "compile")
    assert not torch.equal(a, b), "torch.compile: the same masks on two calls (frozen)"


@pytest.mark.parametrize("name", ["gru", "readout_stack"])
def test_export_dynamic_time_of_steps_with_literals_and_loop_invariant_values(torch_engine, name):
    """A GRU step holds a literal (``1 - z``) and a readout stack values computed once before the loop (views of
    one split bias): torch's scan op must get neither as a real or aliased closure tensor (decision 109)."""
    torch = torch_engine
    from rshop_core.cells import GRUCell

    from .composition_cases import readout_stack

    model = GRUCell(H, input_dim=D).get_layer(seed=5, return_sequences=True) if name == "gru" else readout_stack("add")
    layer = model.lower("torch").eval()
    width = model.input_shape[-1]
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("time")}
    exported = torch.export.export(layer, (_x(torch, B, T, width),), dynamic_shapes=(dims,)).module()
    x = _x(torch, 3, 7, width, seed=4)
    _close(exported(x), layer(x), f"{name} export dynamic T")
