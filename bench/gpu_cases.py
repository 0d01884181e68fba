"""What bench/gpu.py measures in one engine's process (``python bench/gpu.py --worker ENGINE PART``).

- ``probe``: whether this engine sees a CUDA device, and the versions (nothing measured);
- ``lstm``: W1 and W3 (bench/workloads.py) for the LSTMCell layer, rshop beside torch.nn.LSTM (cuDNN) on torch
  and beside jax's hand ``lax.scan`` on jax: forward and forward + backward of ``sum(y)`` w.r.t. every weight;
  and the parity of the custom cell C1 (peephole LSTM, bench/cells.py) at W1: its float32 output against the
  numpy float64 reference and its gradients against the same engine's float64 gradients on the CPU, judged
  by the float32 rows of the tolerance table (rshop_backends.tolerances);
- ``parallel``: minGRU at the time-parallel target (bench/parallel.py: T 4096, batch 8, hidden 32), rshop's
  ``time_parallel="scan"`` beside its sequential loop (and jax's hand ``lax.associative_scan``), loss ``sum(y * w)``.

Every implementation is checked against the float64 reference before it is timed. On CUDA, TF32 is off
(torch's matmul and cuDNN flags, jax's ``"highest"`` matmul precision) and torch's timings synchronise the
device after each call (jax blocks on its results). ``tiny``: bench/workloads.QUICK sizes, T 64 for minGRU
and two timed calls: the dry run on the CPU.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anchors_jax
import numpy as np
import parallel_cases as pc
import rshop_cases
import workloads as wl
from adapters import Impl, jax_impl

from rshop_backends.tolerances import FORWARD_ATOL, GRAD_RTOL

LSTM_WORKLOADS = ("W1", "W3")
PARITY_WORKLOAD = "W1"
PARALLEL = {"T": 4096, "B": 8, "H": 32, "D": 8}
TINY_PARALLEL = {"T": 64, "B": 2, "H": 16, "D": 8}
CALLS = {False: (2, 10), True: (1, 2)}  # (warm-up calls, timed calls) by tiny
BENCH_TOL = 1e-4  # bench/worker.py's guard on the forward output before timing (W3 is T = 1000)
PARALLEL_TOL = 1e-3  # bench/parallel.py's, relative to max |reference|
NN_LSTM, JAX_SCAN = "torch.nn.LSTM", "jax hand lax.scan"  # torch.nn.LSTM runs cuDNN on CUDA


# -- the device -----------------------------------------------------------------------------------
def probe(engine: str) -> dict:
    """``{"installed": True, "cuda": bool, "why": str, "versions": str}`` for this engine in this environment."""
    try:
        return {"installed": True, **_probe(engine)}
    except ImportError as e:
        return {"installed": False, "cuda": False, "why": f"{engine} is not installed ({e})", "versions": ""}


def _probe(engine: str) -> dict:
    if engine == "torch":
        import torch

        versions = f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
        if not torch.cuda.is_available():
            return {"cuda": False, "why": f"torch.cuda.is_available() is False ({versions})", "versions": versions}
        return {"cuda": True, "why": torch.cuda.get_device_name(0), "versions": versions}
    if engine == "jax":
        import jax

        versions = f"jax {jax.__version__}, default backend {jax.default_backend()}"
        if jax.default_backend() != "gpu":
            return {"cuda": False, "why": f"jax's default backend is {jax.default_backend()!r}", "versions": versions}
        return {"cuda": True, "why": jax.devices()[0].device_kind, "versions": versions}
    import tensorflow as tf

    versions = f"tensorflow {tf.__version__}, built with CUDA: {tf.test.is_built_with_cuda()}"
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return {"cuda": False, "why": f"tensorflow sees no GPU ({versions})", "versions": versions}
    return {"cuda": True, "why": gpus[0].name, "versions": versions}


def strict(engine: str) -> None:
    """Full float32 matmuls on a GPU (no TF32), as in the conformance suite."""
    if engine == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif engine == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")


def measure(fn: Any, tiny: bool) -> dict:
    """ms: the median of the timed calls after the warm-up ones (which trace, compile, warm the allocator)."""
    warm, calls = CALLS[tiny]
    for _ in range(warm):
        fn()
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return {"ms": statistics.median(samples), "min": min(samples), "runs": calls}


def torch_impl(forward: Any, params: list, device: Any, w: Any = None) -> Impl:
    """bench/adapters.torch_impl on ``device``: each call waits for the device; loss ``sum(y)`` or ``sum(y * w)``."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def fwd() -> Any:
        with torch.no_grad():
            y = forward()
        sync()
        return y

    def fb() -> Any:
        for p in params:
            p.grad = None
        y = forward()
        (y if w is None else y * w).sum().backward()
        sync()
        return [p.grad for p in params]

    return Impl(fwd, fb, lambda: fwd().cpu().numpy())


# -- lstm -----------------------------------------------------------------------------------------
def _torch_lstm(kind: str, w: dict, x_np: np.ndarray, device: Any) -> dict[str, tuple[Impl, str]]:
    import torch

    with torch.device(device):  # an rshop torch layer is built on torch's default device
        layer = rshop_cases.model_with(kind, w, x_np).lower("torch")
    x = torch.from_numpy(x_np).to(device)
    out = {"rshop torch": (torch_impl(lambda: layer(x), list(layer.parameters()), device), layer.explain().path)}
    if kind == "lstm":
        lstm = torch.nn.LSTM(x_np.shape[-1], w["recurrent_kernel"].shape[0], batch_first=True).to(device)
        with torch.no_grad():  # torch holds the transposes, rows [i|f|g|o]; bias_ih + bias_hh = bias
            lstm.weight_ih_l0.copy_(torch.from_numpy(w["kernel"].T.copy()))
            lstm.weight_hh_l0.copy_(torch.from_numpy(w["recurrent_kernel"].T.copy()))
            lstm.bias_ih_l0.copy_(torch.from_numpy(w["bias"]))
            lstm.bias_hh_l0.zero_()
        out[NN_LSTM] = (torch_impl(lambda: lstm(x)[0], list(lstm.parameters()), device), "")
    return out


def _jax_lstm(kind: str, w: dict, x_np: np.ndarray) -> dict[str, tuple[Impl, str]]:
    import jax.numpy as jnp

    layer = rshop_cases.model_with(kind, w, x_np).lower("jax")
    rshop = jax_impl(layer.apply, layer.params, jnp.asarray(x_np))
    return {"rshop jax": (rshop, layer.explain().path), JAX_SCAN: (anchors_jax.plain_scan(kind, w, x_np), "")}


def lstm(engine: str, device: str, tiny: bool) -> list[dict]:
    rows = []
    dev = _torch_device(engine, device)
    for workload in LSTM_WORKLOADS:
        x = wl.inputs(workload, tiny)
        _, _, d_in, hidden = wl.sizes(workload, tiny)
        for kind in wl.MODELS:
            w = wl.short_weights(wl.rshop_model(kind, d_in, hidden))
            ref = rshop_cases.reference(kind, w, x)
            try:
                impls = _torch_lstm(kind, w, x, dev) if engine == "torch" else _jax_lstm(kind, w, x)
            except Exception as e:  # building failed: say so in a row, and go on with the next case
                error = f"building: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
                rows.append(
                    {"part": "lstm", "engine": engine, "workload": workload, "kind": kind, "impl": "?", "error": error}
                )
                print(_line(rows[-1]), flush=True)
                continue
            for name, (impl, path) in impls.items():
                row = {"part": "lstm", "engine": engine, "workload": workload, "kind": kind, "impl": name}
                row["path"] = path
                _timed(row, impl, ref, BENCH_TOL, tiny)
                rows.append(row)
            if kind == "c1" and workload == PARITY_WORKLOAD:
                rows.append(_parity(engine, dev, w, x))
    return rows


def _timed(row: dict, impl: Impl, ref: np.ndarray, tol: float, tiny: bool, relative: bool = False) -> None:
    """Check ``impl``'s output against ``ref``, then time it; an error is recorded, not raised."""
    try:
        scale = float(np.max(np.abs(ref))) if relative else 1.0
        row["err"] = float(np.max(np.abs(np.asarray(impl.out(), np.float64) - ref))) / scale
        if not row["err"] <= tol:
            raise AssertionError(f"forward differs from the reference by {row['err']:.2e} (allowed {tol:g})")
        row["fwd"], row["fb"] = measure(impl.fwd, tiny), measure(impl.fb, tiny)
    except Exception as e:  # one failing case must not lose the others
        row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
    print(_line(row), flush=True)


def _line(row: dict) -> str:
    what = f"{row['engine']:6} {row['part']:8} {row.get('workload', '')} {row.get('kind', '')} {row['impl']:<34}"
    if "error" in row:
        return f"{what} ERROR {row['error']}"
    return f"{what} fwd {row['fwd']['ms']:9.2f} ms  fb {row['fb']['ms']:9.2f} ms  err {row['err']:.1e}"


def _parity(engine: str, dev: Any, w: dict, x_np: np.ndarray) -> dict:
    """C1 at float32 on the device against float64: outputs (numpy reference), gradients (this engine on the CPU)."""
    model = rshop_cases.model_with("c1", w, x_np)
    x64 = x_np.astype(np.float64)
    ref = np.asarray(model.lower("numpy", "float64")(x64))
    wout = np.random.default_rng(3).standard_normal(ref.shape)
    row: dict = {
        "part": "parity",
        "engine": engine,
        "workload": PARITY_WORKLOAD,
        "kind": "c1",
        "impl": f"rshop {engine}",
    }
    try:
        if engine == "torch":
            import torch

            with torch.device(dev):
                layer = model.lower("torch")
            y, grads = _torch_grads(layer, torch.from_numpy(x_np).to(dev), wout)
            y64, grads64 = _torch_grads(model.lower("torch", "float64"), torch.from_numpy(x64), wout)
        else:
            y, grads = _jax_grads(model, x_np, wout, "float32", None)
            y64, grads64 = _jax_grads(model, x64, wout, "float64", "cpu")
        row["forward_err"] = float(np.max(np.abs(y - ref)))
        row["forward_vs_engine64"] = float(np.max(np.abs(y - y64)))
        scale = max(float(np.max(np.abs(g))) for g in grads64.values())
        row["grad_rel_err"] = max(float(np.max(np.abs(grads[k] - grads64[k]))) for k in grads64) / scale
        row["forward_atol"], row["grad_rtol"] = FORWARD_ATOL["float32"], GRAD_RTOL["float32"]
        row["met"] = row["forward_err"] <= row["forward_atol"] and row["grad_rel_err"] <= row["grad_rtol"]
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
    print(
        f"{engine:6} parity   C1 {PARITY_WORKLOAD}: { ({k: v for k, v in row.items() if k not in ('part', 'engine')}) }"
    )
    return row


def _torch_grads(layer: Any, x: Any, wout: np.ndarray) -> tuple[np.ndarray, dict]:
    import torch

    y = layer(x, training=False)
    (y * torch.as_tensor(wout, dtype=y.dtype, device=y.device)).sum().backward()
    grads = {k: p.grad.double().cpu().numpy() for k, p in layer.named_parameters()}
    return y.detach().double().cpu().numpy(), grads


def _jax_grads(
    model: Any, x: np.ndarray, wout: np.ndarray, dtype: str, platform: str | None
) -> tuple[np.ndarray, dict]:
    import contextlib

    import jax
    import jax.numpy as jnp

    on = jax.default_device(jax.devices(platform)[0]) if platform else contextlib.nullcontext()
    wide = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
    with on, wide:
        layer = model.lower("jax", dtype)
        xs, ws = jnp.asarray(x), jnp.asarray(wout, dtype=dtype)
        y = layer.apply(layer.params, xs)
        grads = jax.grad(lambda p: jnp.sum(layer.apply(p, xs) * ws))(layer.params)
        return np.asarray(y, np.float64), {k: np.asarray(v, np.float64) for k, v in grads.items()}


# -- parallel -------------------------------------------------------------------------------------
def parallel(engine: str, device: str, tiny: bool) -> list[dict]:
    size = TINY_PARALLEL if tiny else PARALLEL
    rng = np.random.default_rng(0)
    x = rng.standard_normal((size["B"], size["T"], size["D"])).astype(np.float32)
    w = rng.standard_normal((size["B"], size["T"], size["H"])).astype(np.float32)
    ref = pc.reference("mingru", size["H"], x)
    dev = _torch_device(engine, device)
    rows = []
    for name, mode in (("rshop sequential", False), ("rshop parallel (scan)", "scan"), (pc.JAX_ASSOC, None)):
        if mode is None and engine != "jax":
            continue
        row = {"part": "parallel", "engine": engine, "kind": "mingru", "impl": name, **size}
        try:
            impl = _parallel_impl(engine, name, mode, x, w, dev, row)
        except Exception as e:  # building failed: say so in the row, and go on
            row["error"] = f"building: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            rows.append(row)
            print(_line(row), flush=True)
            continue
        _timed(row, impl, ref, PARALLEL_TOL, tiny, relative=True)
        rows.append(row)
    return rows


def _parallel_impl(engine: str, name: str, mode: Any, x: np.ndarray, w: np.ndarray, dev: Any, row: dict) -> Impl:
    """The minGRU implementation ``name`` (rshop in ``mode``, or the hand-written anchor when ``mode`` is None);
    ``row["path"]``: what rshop's ``explain()`` says runs over time."""
    hidden, d_in = w.shape[-1], x.shape[-1]
    if mode is None:
        return pc.anchor(name, pc.weights("mingru", hidden, d_in), x, w)
    if engine == "jax":
        r = pc.rshop("jax", "mingru", mode, x, w)
        row["path"] = r.over_time()
        return r.impl
    import torch

    with torch.device(dev):
        layer = pc.model_of("mingru", hidden, d_in, mode).lower("torch")
    xt, wt = (torch.from_numpy(a).to(dev) for a in (x, w))
    impl = torch_impl(lambda: layer(xt), list(layer.parameters()), dev, wt)
    row["path"] = pc.Rshop(layer, impl).over_time()
    return impl


def _torch_device(engine: str, device: str) -> Any:
    if engine != "torch":
        return None
    import torch

    if device == "cpu":  # the CPU dry run shares a small machine
        torch.set_num_threads(2)
    return torch.device(device)


PARTS = {"lstm": lstm, "parallel": parallel}
