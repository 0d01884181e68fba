"""Long sequences with and without ``remat``: peak memory and time per step of forward+backward.

``python bench/remat.py`` runs every case in a fresh subprocess (``python bench/remat.py --case
ENGINE REMAT T``, which prints one JSON line), then writes bench/results/remat.json and the
generated docs/benchmarks-long.md. The model: ``LSTMCell(256, input_dim=64)`` as a layer with
``return_sequences=True``, batch 8, float32; the loss is ``sum(y * w)`` and its gradient is taken
w.r.t. every parameter. The generic loop is measured (``fast_path=False`` where ``lower`` has
it): a fused kernel does not checkpoint.

- ``first_mb`` (the peak reported): the first forward+backward's RSS high-water mark minus the RSS
  just before it, once the framework was imported, the data made, the layer lowered and (jax) the
  gradient compiled ahead of time: what one call holds at its peak, compiler memory excluded
  (TensorFlow traces and optimises its graph inside the first call: included there).
- ``call_mb``: one steady-state forward+backward: the kernel's high-water mark is reset
  (``/proc/self/clear_refs``, as in bench/probe.py), one more call runs, VmHWM minus the RSS
  before it.
- ``ms_per_step``: the best of the timed calls divided by T.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from probe import _status_kb

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("jax", "torch", "tensorflow")
LENGTHS = (100, 1_000, 10_000)
BATCH, INPUT, HIDDEN = 8, 64, 256
MEMORY_T = 10_000
TARGET = 0.25
CASE_TIMEOUT_S = 600  # peak with remat / peak without, at MEMORY_T


def _fb(engine, layer, x, w):
    """A function running one forward+backward and waiting for its result (jax: compiled ahead of time,
    so that what the call needs is measured apart from what XLA's compiler needs)."""
    if engine == "jax":
        import jax
        import jax.numpy as jnp

        grad = jax.jit(jax.grad(lambda p, x, w: jnp.sum(layer.apply(p, x) * w)))
        compiled = grad.lower(layer.params, x, w).compile()
        return lambda: jax.block_until_ready(compiled(layer.params, x, w))
    if engine == "torch":

        def fb():
            layer.zero_grad(set_to_none=True)
            (layer(x) * w).sum().backward()

        return fb
    import tensorflow as tf

    variables = list(layer.trainable_variables)

    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) * w)
        return [g.numpy() for g in tape.gradient(loss, variables)]

    return step


def _arrays(engine, x, w):
    if engine == "jax":
        import jax.numpy as jnp

        return jnp.asarray(x), jnp.asarray(w)
    if engine == "torch":
        import torch

        torch.set_num_threads(2)
        return torch.from_numpy(x), torch.from_numpy(w)
    import tensorflow as tf

    return tf.constant(x), tf.constant(w)


def case(engine, remat, steps, reps):
    """One measurement, in this (fresh) process."""
    import numpy as np

    from rshop_core.cells import LSTMCell

    rng = np.random.default_rng(0)
    x, w = _arrays(
        engine,
        rng.standard_normal((BATCH, steps, INPUT)).astype(np.float32),
        rng.standard_normal((BATCH, steps, HIDDEN)).astype(np.float32),
    )
    model = LSTMCell(HIDDEN, input_dim=INPUT).get_layer(return_sequences=True, remat=remat, seed=0)
    kw = {"fast_path": False} if "fast_path" in inspect.signature(model.lower).parameters else {}
    layer = model.lower(engine, **kw)
    fb = _fb(engine, layer, x, w)
    _reset_peak()
    base_kb = _status_kb("VmRSS")
    t = time.perf_counter()
    fb()
    first_s = time.perf_counter() - t
    first_mb = (_status_kb("VmHWM") - base_kb) / 1024
    _reset_peak()
    before = _status_kb("VmRSS")
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fb()
        times.append(time.perf_counter() - t)
    call_mb = (_status_kb("VmHWM") - before) / 1024
    return {
        "engine": engine,
        "remat": remat,
        "T": steps,
        "first_s": first_s,
        "first_mb": first_mb,
        "call_mb": call_mb,
        "ms_per_step": min(times) / steps * 1e3,
        "reps": reps,
    }


def _reset_peak():
    """Restart the kernel's RSS high-water mark (VmHWM) from the current RSS (Linux)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def _subprocess(engine, remat, steps, reps):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'bench'}"}
    try:
        out = subprocess.run(
            [sys.executable, str(Path(__file__)), "--case", engine, json.dumps(remat), str(steps), "--reps", str(reps)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=CASE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"engine": engine, "remat": remat, "T": steps, "error": [f"timed out after {CASE_TIMEOUT_S} s"]}
    if out.returncode:
        return {"engine": engine, "remat": remat, "T": steps, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _markdown(rows) -> str:
    by = {(r["engine"], r["remat"], r["T"]): r for r in rows}
    lines = [
        "<!-- Generated by bench/remat.py (nox -s bench_long); do not edit by hand. -->",
        "# Benchmarks: long sequences and remat",
        "",
        f"`LSTMCell({HIDDEN}, input_dim={INPUT})` as a layer with `return_sequences=True`, batch {BATCH}, "
        "float32, forward + backward of `sum(y * w)` w.r.t. every parameter, the generic loop "
        f"(`fast_path=False`), on {platform.machine()} CPU ({os.cpu_count()} cores). Each number comes "
        "from a fresh process. `remat=True` checkpoints segments of ceil(sqrt(T)) steps.",
        "",
        f"## Peak memory at T = {MEMORY_T:,}",
        "",
        "Peak: the RSS high-water mark during the first forward+backward minus the RSS just before it, "
        "once the framework was imported, the data made, the layer lowered and (jax) the gradient compiled "
        "ahead of time (MB): what one call holds at its peak. TensorFlow traces and optimises its graph "
        "inside that first call, so its peak includes that. Steady: the same for one more call; allocators "
        "reuse the first call's freed memory, so it mostly shows what the second call needed beyond that.",
        "",
        "| engine | peak, no remat | peak, remat | ratio | target (<= 0.25) | steady, no remat | steady, remat |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in ENGINES:
        off, on = by.get((e, False, MEMORY_T), {}), by.get((e, True, MEMORY_T), {})
        if "first_mb" not in off or "first_mb" not in on:
            lines.append(f"| {e} | {off.get('error', '-')} | {on.get('error', '-')} | | not measured | | |")
            continue
        ratio = on["first_mb"] / off["first_mb"] if off["first_mb"] > 0 else float("nan")
        met = "met" if ratio <= TARGET else f"missed: {ratio / TARGET:.2f}x the target"
        lines.append(
            f"| {e} | {off['first_mb']:.0f} | {on['first_mb']:.0f} | {ratio:.2f} | {met} | "
            f"{off['call_mb']:.0f} | {on['call_mb']:.0f} |"
        )
    lines += [
        "",
        "## Time per step (ms), forward + backward",
        "",
        "The best of the timed calls divided by T; flat means within ±20% of T = 100.",
        "",
        "| engine | remat | " + " | ".join(f"T = {t:,}" for t in LENGTHS) + " | T=10,000 / T=100 |",
        "|---|---|" + "---|" * len(LENGTHS) + "---|",
    ]
    for e in ENGINES:
        for remat in (False, True):
            cells = [by.get((e, remat, t), {}) for t in LENGTHS]
            shown = [f"{c['ms_per_step']:.3f}" if "ms_per_step" in c else "error" for c in cells]
            drift = ""
            if "ms_per_step" in cells[0] and "ms_per_step" in cells[-1]:
                q = cells[-1]["ms_per_step"] / cells[0]["ms_per_step"]
                drift = f"{q:.2f}" + ("" if abs(q - 1) <= 0.2 else " (not flat)")
            lines.append(f"| {e} | {remat} | " + " | ".join(shown) + f" | {drift} |")
    lines += [
        "",
        "## Where the target is missed, and why",
        "",
        "Any implementation keeps the outputs (T x batch x 256 floats: 82 MB at T = 10,000), the product "
        "with the loss weights and the output gradient (82 MB each): about 250 MB that remat cannot "
        "remove, against ~1 GB of per-step intermediates it does remove. jax gets closest to that floor.",
        "",
        "- torch: the checkpointed segments' outputs are concatenated (a second 82 MB copy while the "
        "forward ends), and every step allocates a few 8 KB tensors; glibc serves those from its heap, "
        "whose high-water mark the interleaving of kept outputs and freed temporaries drives up. Run with "
        "`MALLOC_MMAP_THRESHOLD_=4096` (large allocations returned to the OS at once) the same case "
        "peaks at 403 MB against 1218 MB: 0.33. What would close the rest: writing each segment's "
        "outputs into one preallocated output and a caching allocator for the small per-step tensors.",
        "- tensorflow: the first call also traces and optimises the graph (tens of MB), and the "
        "custom-gradient loop keeps the states at each segment start and the forward's output "
        "TensorArray; not broken down further.",
        "- (`hoist_inputs`, torch's pass that computes x @ kernel for all T before the loop, would keep a "
        "328 MB projection and its gradient: it skips plans with remat.)",
        "",
        "Time per step: remat costs about one more forward pass (torch about 2x per step: its eager "
        "recompute has the same per-op overhead as the forward). Without remat, tensorflow's step "
        "time grows 2.6x from T = 1,000 to 10,000 while its first call holds 1.7 GB of per-step "
        "accumulators for the gradient; with remat (no such accumulators) it is flat. Not analysed "
        "further; the remedy today is `remat=True` for sequences that long. The machine (2 shared "
        "cores) makes single runs noisy.",
        "",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", nargs=3, metavar=("ENGINE", "REMAT", "T"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--report", action="store_true", help="only rewrite the doc from bench/results/remat.json")
    args = ap.parse_args()
    results = ROOT / "bench" / "results"
    if args.report:
        rows = json.loads((results / "remat.json").read_text(encoding="utf-8"))
        (ROOT / "docs" / "benchmarks-long.md").write_text(_markdown(rows), encoding="utf-8")
        return
    if args.case:
        engine, remat, steps = args.case
        print(json.dumps(case(engine, json.loads(remat), int(steps), args.reps)))
        return
    rows = []
    for engine in args.engines.split(","):
        for steps in LENGTHS:
            for remat in (False, True):
                row = _subprocess(engine, remat, steps, args.reps if steps < MEMORY_T else 2)
                print(json.dumps(row), flush=True)
                rows.append(row)
    results.mkdir(parents=True, exist_ok=True)
    (results / "remat.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    (ROOT / "docs" / "benchmarks-long.md").write_text(_markdown(rows), encoding="utf-8")


if __name__ == "__main__":
    main()
