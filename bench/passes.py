"""Each engine's default pass pipeline (under the cost rule) against no passes, per benchmark cell.

``python bench/passes.py [--quick]`` runs one subprocess per engine (``--engine E`` prints its
rows as JSON), then writes bench/results/passes.json and the table between the ``passes-table``
markers of docs/performance.md.

Cells: the LSTMCell and GRUCell layers (torch: their generic loop, ``fast_path=False``), C1 (the
peephole LSTM of bench/cells.py), an RHN of depth 3 and an LSTM decoder attending over a constant
encoder sequence (bench/expressive_cells.py). Variants: ``none`` (``passes=()``), ``default``
(the engine's pipelines under the cost rule: what users get) and, on jax, ``split`` (the pipeline
before the cost rule: ``split_gates`` forced when differentiating). Modes: ``fwd`` (forward) and
``fb`` (forward + gradients of sum(outputs) w.r.t. every weight), jitted / in ``tf.function``.

Timing on a shared machine: the variants of one (cell, mode) are timed in interleaved rounds (each
round runs every variant ``runs`` times and keeps its median), so load changes hit them alike; the
report gives each variant's median over rounds and the median over rounds of its ratio to ``none``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

ENGINES = ("jax", "torch", "tensorflow")
CELLS = ("lstm", "gru", "c1", "rhn", "attention")
SIZES = {"batch": 16, "steps": 50, "input": 32, "hidden": 128, "enc_steps": 16, "enc_dim": 64}
QUICK = {"batch": 4, "steps": 8, "input": 8, "hidden": 16, "enc_steps": 5, "enc_dim": 8}
BEGIN, END = "<!-- passes-table:begin (bench/passes.py writes it) -->", "<!-- passes-table:end -->"


def model(cell, s):
    import expressive_cells
    from workloads import rshop_model

    if cell == "rhn":
        return expressive_cells.rhn(s["input"], s["hidden"], depth=3)
    if cell == "attention":
        return expressive_cells.attention_decoder(s["input"], s["hidden"], s["enc_steps"], s["enc_dim"])
    if cell == "gru":
        from rshop_core.cells import GRUCell

        return GRUCell(s["hidden"], input_dim=s["input"]).get_layer(return_sequences=True, seed=0)
    return rshop_model(cell, s["input"], s["hidden"])


def data(s):
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.standard_normal((s["batch"], s["steps"], s["input"])).astype(np.float32)
    enc = rng.standard_normal((s["batch"], s["enc_steps"], s["enc_dim"])).astype(np.float32)
    return x, enc


def variants(engine, mode):
    """name -> lower() keywords for the forward and the differentiated call."""
    out = {"none": {"passes": ()}, "default": {}}
    if engine == "jax":
        from rshop_backends.jax import GRAD_PASSES, PASSES

        out["split"] = {"passes": GRAD_PASSES if mode == "fb" else PASSES}
    return out


def build(engine, cell, mode, lower, s):
    """A function running one call of ``mode`` and waiting for its result."""
    x_np, enc_np = data(s)
    m = model(cell, s)
    if engine == "torch":
        import torch

        # one thread: on this shared 2-core machine, two threads made torch's loop up to 60x slower and
        # its timings meaningless (bench/small_models.py measures both settings)
        torch.set_num_threads(int(os.environ.get("RSHOP_BENCH_THREADS", "1")))
        layer = m.lower("torch", fast_path=False, **lower)
        x, c = torch.from_numpy(x_np), [torch.from_numpy(enc_np)] if cell == "attention" else None
        if mode == "fwd":

            def fwd():
                with torch.no_grad():
                    layer(x, constants=c)

            return fwd
        params = list(layer.parameters())

        def fb():
            for p in params:
                p.grad = None
            layer(x, constants=c).sum().backward()

        return fb
    if engine == "jax":
        import jax
        import jax.numpy as jnp

        layer = m.lower("jax", **lower)
        x, c = jnp.asarray(x_np), [jnp.asarray(enc_np)] if cell == "attention" else None

        def apply(p, x):
            return layer.apply(p, x, constants=c)

        if mode == "fwd":
            f = jax.jit(apply)
            return lambda: f(layer.params, x).block_until_ready()
        g = jax.jit(jax.grad(lambda p, x: apply(p, x).sum()))
        return lambda: jax.block_until_ready(g(layer.params, x))
    import tensorflow as tf

    layer = m.lower("tensorflow", **lower)
    x, c = tf.constant(x_np), [tf.constant(enc_np)] if cell == "attention" else None
    if mode == "fwd":
        f = tf.function(lambda x: layer(x, constants=c))
        return lambda: f(x).numpy()
    variables = list(layer.trainable_variables)

    @tf.function
    def g(x):
        with tf.GradientTape() as tape:
            s = tf.reduce_sum(layer(x, constants=c))
        return tape.gradient(s, variables)

    return lambda: [t.numpy() for t in g(x)]


def same_plans(engine, cell, mode, s):
    """The variants whose plan for this call is the no-pass plan itself (their ratio is pure noise)."""
    from rshop_backends import registry
    from rshop_core.execution import plan_for
    from rshop_core.passes import optimize

    spec = registry.load(engine).ENGINE
    raw = plan_for(model(cell, s), False, False, False)
    pipelines = {"default": (spec.grad_passes or spec.passes) if mode == "fb" else spec.passes}
    if engine == "jax":
        pipelines["split"] = variants(engine, mode)["split"]["passes"]
    out = set()
    for name, passes in pipelines.items():
        plan = optimize(raw, tuple(passes), cost_rule=name == "default", per_op=spec.per_op_loop)
        if plan.graph == raw.graph and plan.prologue is None and plan.hoisted is None:
            out.add(name)
    return out


def interleaved(fns, rounds, runs):
    """name -> (round medians of wall ms, round medians of process CPU ms)."""
    for fn in fns.values():  # trace, compile, warm up
        fn()
        fn()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            w, c = [], []
            for _ in range(runs):
                t, p = time.perf_counter(), time.process_time()
                fn()
                w.append((time.perf_counter() - t) * 1e3)
                c.append((time.process_time() - p) * 1e3)
            wall[k].append(statistics.median(w))
            cpu[k].append(statistics.median(c))
    return {k: (wall[k], cpu[k]) for k in fns}


def run_engine(engine, quick):
    s = QUICK if quick else SIZES
    rounds, runs = (2, 2) if quick else (5, 3)
    rows = []
    for cell in CELLS:
        for mode in ("fwd", "fb"):
            fns = {name: build(engine, cell, mode, kw, s) for name, kw in variants(engine, mode).items()}
            res = interleaved(fns, rounds, runs)
            same = same_plans(engine, cell, mode, s)
            base_w, base_c = res["none"]
            for name, (w, c) in res.items():
                rows.append(
                    {
                        "engine": engine,
                        "cell": cell,
                        "mode": mode,
                        "variant": name,
                        "ms": statistics.median(w),
                        "cpu_ms": statistics.median(c),
                        "ratio": statistics.median(a / b for a, b in zip(w, base_w)),
                        "cpu_ratio": statistics.median(a / b for a, b in zip(c, base_c)),
                        "same_plan": name in same,
                    }
                )
                print(
                    f"{engine:10} {cell:9} {mode:3} {name:8} {rows[-1]['ms']:8.2f} ms "
                    f"x{rows[-1]['ratio']:.2f} (cpu x{rows[-1]['cpu_ratio']:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
    return rows


def table(results):
    meta = results["meta"]
    s = meta["sizes"]
    rounds = ", ".join(f"{e}: {n}" for e, n in meta["rounds"].items())
    lines = [
        f"Measured by `python bench/passes.py` on {meta['machine']}, load average {meta['load_start']:.1f} at the "
        f"start and {meta['load_end']:.1f} at the end (a machine shared with other jobs: each number is the median "
        f"over interleaved rounds, {rounds}). Batch {s['batch']}, T {s['steps']}, input {s['input']}, "
        f"hidden {s['hidden']} (attention: encoder {s['enc_steps']} x {s['enc_dim']}), float32. "
        "Cells: see bench/passes.py. ms: median wall time; × wall / × CPU: the median over rounds of the "
        "variant's wall (process CPU) time over that of no passes (below 1: faster than no passes). Where the "
        "default plan is the no-pass plan itself (a `=` in the table), its × is the noise of the measurement.",
        "",
        "| engine | cell | fwd none ms | fwd default ms (× wall / × CPU) | fb none ms | fb default ms (× wall / × CPU) "
        "| jax, before the rule: fb split ms (× wall / × CPU) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    by = {(r["engine"], r["cell"], r["mode"], r["variant"]): r for r in results["rows"]}
    for engine in ENGINES:
        for cell in CELLS:
            if (engine, cell, "fwd", "none") not in by:
                continue

            def cellv(mode, var, engine=engine, cell=cell):
                r = by.get((engine, cell, mode, var))
                if r is None:
                    return ""
                same = " =" if r.get("same_plan") else ""
                return f"{r['ms']:.1f} (×{r['ratio']:.2f} / ×{r['cpu_ratio']:.2f}){same}"

            lines.append(
                f"| {engine} | {cell} | {by[(engine, cell, 'fwd', 'none')]['ms']:.1f} | {cellv('fwd', 'default')} | "
                f"{by[(engine, cell, 'fb', 'none')]['ms']:.1f} | {cellv('fb', 'default')} | {cellv('fb', 'split')} |"
            )
    return "\n".join(lines)


def write_table(results, path):
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    path.write_text(f"{head}{BEGIN}\n{table(results)}\n{END}{tail}", encoding="utf-8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", help="run one engine here and print its rows as JSON")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test; writes bench/results/ only")
    ap.add_argument("--report-only", action="store_true", help="re-render the table from bench/results/passes.json")
    args = ap.parse_args(argv)
    out = BENCH / "results" / ("passes-quick.json" if args.quick else "passes.json")
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.quick)))
        return
    if not args.report_only:
        load_start = os.getloadavg()[0]
        engines = args.engines.split(",")
        # engines not measured now keep their rows of the last run
        old = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"rows": [], "meta": {}}
        rows = [r for r in old["rows"] if r["engine"] not in engines]
        for engine in engines:
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
            cmd = [sys.executable, __file__, "--engine", engine] + (["--quick"] if args.quick else [])
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, timeout=3600)
            rows += json.loads(proc.stdout.strip().splitlines()[-1])
        meta = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "load_start": min(load_start, old["meta"].get("load_start", load_start)),
            "load_end": max(os.getloadavg()[0], old["meta"].get("load_end", 0.0)),
            "sizes": QUICK if args.quick else SIZES,
            "rounds": {
                **(old["meta"].get("rounds") if isinstance(old["meta"].get("rounds"), dict) else {}),
                **{e: 2 if args.quick else 5 for e in engines},
            },
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1), encoding="utf-8")
    results = json.loads(out.read_text(encoding="utf-8"))
    for r in results["rows"]:  # from the plans of the code as it is now
        r["same_plan"] = r["variant"] in same_plans(r["engine"], r["cell"], r["mode"], results["meta"]["sizes"])
    if not args.quick:
        write_table(results, ROOT / "docs" / "performance.md")
    print(table(results))


if __name__ == "__main__":
    main()
