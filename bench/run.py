"""The benchmark harness: ``python bench/run.py [--quick]`` (``nox -s bench`` runs it).

Times rshop's LSTMCell layer and the custom cell C1 on torch, jax and tensorflow beside native
anchors (each family in its own subprocess, Keras once per backend), probes first-call time and
peak memory in a fresh process per measurement, then writes docs/benchmarks.md,
docs/benchmarks.png and bench/results/latest.json (``--quick``: bench/results/quick.*, so a smoke
run never overwrites the measured report).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import registry  # noqa: E402
import report  # noqa: E402
from registry import JAX_SCAN, TF_SCAN, TORCH_LOOP  # noqa: E402

# cold-start probes: (workload, mode) -> the implementations probed, each in a fresh process
_RSHOP = [(k, f"rshop {e}") for k in ("lstm", "c1") for e in registry.ENGINES]
_HAND = [(k, n) for k in ("lstm", "c1") for n in (TORCH_LOOP, JAX_SCAN, TF_SCAN)]
PROBES = {
    ("W1", "fwd"): _RSHOP
    + [("lstm", "torch.nn.LSTM"), ("lstm", JAX_SCAN), ("lstm", TF_SCAN), ("lstm", "Keras LSTM [tensorflow]")],
    ("W3", "fb"): _RSHOP + _HAND + [("lstm", "torch.nn.LSTM"), ("lstm", "Keras LSTM [tensorflow]")],
}
QUICK_PROBES = {("W1", "fwd"): _RSHOP[:3]}


def _python(args, timeout):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=ROOT, env=env, timeout=timeout, stdout=subprocess.PIPE, text=True
    )


def run_family(family, workloads, quick):
    start = time.time()
    rows = _family_rows(family, workloads, quick)
    print(f"{family}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    return rows


def _family_rows(family, workloads, quick):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        args = [BENCH / "worker.py", family, "--workloads", ",".join(workloads), "--out", out]
        proc = _python(args + (["--quick"] if quick else []), timeout=1800)
        if proc.returncode != 0 or not out.exists():
            print(f"{family}: worker failed (exit {proc.returncode})", file=sys.stderr)
            return [{"family": family, "error": f"worker exit {proc.returncode}"}]
        return json.loads(out.read_text(encoding="utf-8"))


def run_probe(kind, name, workload, mode, quick):
    args = [BENCH / "probe.py", kind, name, workload, mode] + (["--quick"] if quick else [])
    try:
        proc = _python(args, timeout=600)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError) as e:
        row = {"kind": kind, "name": name, "workload": workload, "mode": mode, "error": type(e).__name__}
    print(
        f"probe {workload} {mode} {kind:4} {name:<32} first {row.get('first_ms', float('nan')):9.0f} ms"
        f"  peak {row.get('peak_mb', float('nan')):7.1f} MB",
        file=sys.stderr,
        flush=True,
    )
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, few runs: a smoke test of the harness")
    ap.add_argument("--workloads", default=None, help="default W1,W2,W3 (--quick: W1)")
    ap.add_argument("--families", default=",".join(registry.FAMILIES))
    ap.add_argument("--no-probes", action="store_true", help="skip the first-call and memory probes")
    ap.add_argument("--out", help="default docs/benchmarks.md (--quick: bench/results/quick.md)")
    ap.add_argument("--json", help="default bench/results/latest.json (--quick: bench/results/quick.json)")
    ap.add_argument("--report-only", action="store_true", help="re-render the report from --json, measure nothing")
    args = ap.parse_args(argv)
    # a smoke run must not overwrite the measured report
    args.out = args.out or str(BENCH / "results" / "quick.md" if args.quick else ROOT / "docs" / "benchmarks.md")
    args.json = args.json or str(BENCH / "results" / ("quick.json" if args.quick else "latest.json"))
    if args.report_only:
        report.write(json.loads(Path(args.json).read_text(encoding="utf-8")), Path(args.out))
        return
    workloads = (args.workloads or ("W1" if args.quick else "W1,W2,W3")).split(",")
    families = args.families.split(",")
    start, load_start = time.time(), os.getloadavg()
    # a full run measures one process at a time; a quick smoke run may use both cores
    with ThreadPoolExecutor(2 if args.quick else 1) as pool:
        timings = [r for rows in pool.map(lambda f: run_family(f, workloads, args.quick), families) for r in rows]
        cases = (
            []
            if args.no_probes
            else [
                (kind, name, w, m)
                for (w, m), impls in (QUICK_PROBES if args.quick else PROBES).items()
                for kind, name in impls
                if w in workloads and registry.IMPLS[(kind, name)][0] in families
            ]
        )
        probes = list(pool.map(lambda c: run_probe(*c, args.quick), cases))
    results = {"meta": report.machine(args.quick, workloads, start, load_start), "timings": timings, "probes": probes}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    report.write(results, Path(args.out))
    print(f"wrote {args.out}, its .png and {args.json} in {results['meta']['seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
