"""Time-parallel loops against sequential ones: ``python bench/parallel.py [--quick]`` (``nox -s bench_parallel``).

For minGRU, an RG-LRU, a tanh IndRNN (Newton) and an LSTM (which ``"auto"`` must keep sequential),
on jax, torch and tensorflow in float32, times rshop's parallel loop (``time_parallel="scan"`` or
``"newton"``) beside its sequential loop (``time_parallel=False``) and hand-written minGRU anchors
(bench/parallel_cases.py): forward, and forward + backward of ``sum(y * w)`` w.r.t. every parameter.
Three parts per engine, each in a fresh subprocess (``--worker ENGINE PART``) so that frameworks do
not share a process and one process at a time uses the two cores:

- ``targets``: the issue's target configurations, measured carefully (median of >= 5 calls);
- ``crossover``: minGRU at short T, to set each engine's ``AUTO_MIN_STEPS``;
- one part per cell: the grid T x batch x hidden.

Writes bench/results/parallel.json, docs/benchmarks-parallel.md and docs/benchmarks-parallel.png
(``--quick``: tiny sizes, bench/results/parallel-quick.*, so a smoke run never overwrites the report).
``--report-only`` re-renders the report from the JSON; ``--update --parts targets`` measures the named
parts again (a quieter moment on a shared machine) and keeps the other rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import parallel_cases as pc  # noqa: E402

ENGINES = ("jax", "torch", "tensorflow")
D_IN = 8
FULL = {
    "lengths": (256, 1024, 4096, 16384),
    "batches": (1, 8),
    "hiddens": (32, 256),
    "cross": (4, 8, 16, 32, 64, 128, 256),
}
QUICK = {"lengths": (64,), "batches": (2,), "hiddens": (16,), "cross": (8, 64)}
# the whole grid for minGRU and the Newton cell; the largest batch only for the RG-LRU and the LSTM, and for the
# LSTM (sequential under "auto": both columns time the same loop) every other length: ~25 minutes in all
FULL_GRID = ("mingru", "indrnn")
TARGET = {"T": 4096, "B": 8, "H": 32}
QUICK_TARGET = {"T": 64, "B": 2, "H": 16}
TOL = 1e-3  # max |y - reference| / max |reference| an implementation must meet to be timed
SKIP_SEQUENTIAL = {"T": 16384, "H": 256}  # sequential loops skipped here (minutes per configuration)
PART_TIMEOUT_S = 1800
SEQ, PAR, AUTO, SCAN_ALONE = "rshop sequential", "rshop parallel", "rshop auto", pc.SCAN_ALONE


# -- timing ---------------------------------------------------------------------------------------
# (warm-up calls, least calls, most calls, seconds of samples wanted)
POLICY = {"careful": (2, 5, 30, 3.0), "grid": (1, 2, 10, 0.5), "cross": (1, 3, 30, 0.3), "quick": (1, 2, 2, 0.0)}
SLOW_S = 6.0  # a warm-up call slower than this: the least number of calls only


def measure(fn, policy):
    """The median of calls after warm-up: at least ``least``, more until ``budget`` seconds of samples."""
    warm, least, most, budget = POLICY[policy]
    last = 0.0
    for _ in range(warm):  # traces, compiles, warms the allocator
        t = time.perf_counter()
        fn()
        last = time.perf_counter() - t
    if last > SLOW_S:
        most = least
    samples: list[float] = []
    while len(samples) < least or (sum(samples) < budget * 1e3 and len(samples) < most):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return {"ms": statistics.median(samples), "min": min(samples), "runs": len(samples)}


# -- one part, in this process --------------------------------------------------------------------
def _configs(part, quick):
    s = QUICK if quick else FULL
    target = QUICK_TARGET if quick else TARGET
    if part == "targets":
        return [("mingru", target["B"], target["H"], target["T"]), ("indrnn", target["B"], target["H"], target["T"])]
    if part == "crossover":
        return [("mingru", b, h, t) for b in s["batches"] for h in s["hiddens"] for t in s["cross"]]
    batches = s["batches"] if part in FULL_GRID or quick else s["batches"][-1:]
    lengths = s["lengths"] if part != "lstm" or quick else s["lengths"][::2]
    return [(part, b, h, t) for b in batches for h in s["hiddens"] for t in lengths]


def _impls(engine, part, cell, quick):
    """(name, time_parallel mode or anchor) to time in this configuration."""
    out = [(SEQ, False), (PAR, pc.PARALLEL[cell])]
    if part == "crossover":
        return out
    if part == "targets" and cell == "mingru":
        out += [(AUTO, "auto"), (SCAN_ALONE, None)] + ([(pc.TORCH_NO_SCAN, None)] if engine == "torch" else [])
    if cell == "mingru":
        out += [(a, None) for a in pc.ANCHORS[engine]]
    return out


def _skipped(part, name, steps, hidden):
    sequential = name in (SEQ, pc.TORCH_LOOP, pc.JAX_SCAN)
    return sequential and part != "targets" and steps >= SKIP_SEQUENTIAL["T"] and hidden >= SKIP_SEQUENTIAL["H"]


def run_part(engine, part, quick):
    import numpy as np

    if engine == "torch":
        import torch

        torch.set_num_threads(2)
    if engine == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # each implementation traces its own tf.functions: no retracing warnings
    policy = "quick" if quick else {"targets": "careful", "crossover": "cross"}.get(part, "grid")
    rows = []
    for cell, batch, hidden, steps in _configs(part, quick):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, steps, D_IN)).astype(np.float32)
        w = rng.standard_normal((batch, steps, hidden)).astype(np.float32)
        ref = pc.reference(cell, hidden, x)
        p = pc.weights(cell, hidden, D_IN) if cell == "mingru" else None
        seq_out = None
        for name, mode in _impls(engine, part, cell, quick):
            row = {"engine": engine, "part": part, "cell": cell, "impl": name, "B": batch, "H": hidden, "T": steps}
            row["mode"] = mode if isinstance(mode, str) or mode is False else "hand"
            row["load"] = os.getloadavg()[0]
            if _skipped(part, name, steps, hidden):
                row["skipped"] = f"sequential at T {steps}, hidden {hidden} (minutes per call)"
                rows.append(row)
                continue
            try:
                if name == SCAN_ALONE:
                    impl, r = pc.scan_alone(engine, batch, steps, hidden), None
                elif mode is None:
                    impl, r = pc.anchor(name, p, x, w), None
                else:
                    r = pc.rshop(engine, cell, mode, x, w)
                    impl = r.impl
                y = np.asarray(impl.out(), dtype=np.float64) if name not in pc.UNCHECKED else ref
                scale = float(np.max(np.abs(ref)))
                row["err"] = float(np.max(np.abs(y - ref))) / scale
                if name == SEQ:
                    seq_out = y
                elif seq_out is not None and r is not None:
                    row["err_seq"] = float(np.max(np.abs(y - seq_out))) / float(np.max(np.abs(seq_out)))
                if r is not None:
                    row["over_time"] = r.over_time()
                    if getattr(r.layer, "newton_report", None):
                        row["newton"] = dict(r.layer.newton_report)
                if not row["err"] <= TOL:
                    raise AssertionError(f"forward differs from the float64 reference by {row['err']:.2e} (relative)")
                row["fwd"] = measure(impl.fwd, policy)
                row["fb"] = measure(impl.fb, policy)
                if r is not None and getattr(r.layer, "newton_report", None):
                    row["newton_fb"] = dict(r.layer.newton_report)
                print(
                    f"{engine:10} {cell:6} B{batch:<2} H{hidden:<3} T{steps:<5} {name:<32} "
                    f"fwd {row['fwd']['ms']:9.2f}  fb {row['fb']['ms']:9.2f} ms  err {row['err']:.1e}"
                    + (f"  newton {row['newton']['iterations']} it" if "newton" in row else ""),
                    file=sys.stderr,
                    flush=True,
                )
            except Exception as e:  # one failing case must not lose the others
                row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
                traceback.print_exc()
            rows.append(row)
    return rows


# -- the parent: one subprocess per part ----------------------------------------------------------
# torch's CPU tensors come from glibc malloc, which maps every allocation above its (adaptive) threshold
# afresh and unmaps it on free: a call making large temporaries then pays page faults on each, and the
# threshold's drift made the same call 2-40x slower early in a process than late (decision 73). Fixed,
# high thresholds keep large blocks in the heap, as a caching allocator would.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**32)}


def _python(args, timeout, engine=None):
    env = {
        **os.environ,
        **(MALLOC if engine == "torch" else {}),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(BENCH), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env, timeout=timeout, check=False)


def run_in_subprocess(engine, part, quick):
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        args = [Path(__file__), "--worker", engine, part, "--out", out] + (["--quick"] if quick else [])
        try:
            proc = _python(args, PART_TIMEOUT_S, engine)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {PART_TIMEOUT_S} s"
        print(f"{engine} {part}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        if code != 0 or not out.exists():
            return [{"engine": engine, "part": part, "error": f"worker exit {code}"}]
        return json.loads(out.read_text(encoding="utf-8"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, two calls each: a smoke test (seconds)")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--parts", default=",".join(("targets", "crossover", *pc.CELLS)))
    ap.add_argument("--update", action="store_true", help="measure --parts again, keep the other rows of --json")
    ap.add_argument("--report-only", action="store_true", help="re-render the report from --json, measure nothing")
    ap.add_argument("--json", help="default bench/results/parallel.json (--quick: parallel-quick.json)")
    ap.add_argument("--out", help="default docs/benchmarks-parallel.md (--quick: bench/results/parallel-quick.md)")
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "PART"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        engine, parts = args.worker
        rows = [row for part in parts.split(",") for row in run_part(engine, part, args.quick)]
        Path(args.out).write_text(json.dumps(rows), encoding="utf-8")
        return
    import parallel_report

    results = BENCH / "results"
    args.json = args.json or str(results / ("parallel-quick.json" if args.quick else "parallel.json"))
    args.out = args.out or str(
        results / "parallel-quick.md" if args.quick else ROOT / "docs" / "benchmarks-parallel.md"
    )
    if args.report_only:
        parallel_report.write(json.loads(Path(args.json).read_text(encoding="utf-8")), Path(args.out))
        return
    start, load_start = time.time(), os.getloadavg()
    rows = []
    parts = args.parts.split(",")
    # a full run gives every part a fresh process; a quick smoke run one process per engine
    for group in [parts] if args.quick else [[p] for p in parts]:
        for engine in args.engines.split(","):
            rows += run_in_subprocess(engine, ",".join(group), args.quick)
    meta = parallel_report.machine(args.quick, start, load_start)
    if args.update:  # these parts' rows replace theirs in the existing results; the rest is kept
        out = json.loads(Path(args.json).read_text(encoding="utf-8"))
        again = {(r["engine"], r["part"]) for r in rows}
        out["rows"] = [r for r in out["rows"] if (r["engine"], r["part"]) not in again] + rows
        out["meta"].setdefault("updates", []).append({**meta, "parts": parts, "engines": args.engines.split(",")})
    else:
        meta["sizes"] = {k: list(v) for k, v in (QUICK if args.quick else FULL).items()}
        meta["target"] = QUICK_TARGET if args.quick else TARGET
        meta["skip_sequential"] = SKIP_SEQUENTIAL
        out = {"meta": meta, "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    parallel_report.write(out, Path(args.out))
    print(f"wrote {args.out}, its .png and {args.json} in {meta['seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
