"""The GPU check in one go: ``python bench/gpu.py`` (``nox -s gpu``; ``bench/gpu.sh`` in the current environment).

On a CUDA machine, each engine in its own subprocess (frameworks never share a process or a GPU memory pool):

1. ``lstm``: the LSTMCell layer at W1 and W3 beside torch.nn.LSTM (cuDNN) on torch and jax's hand ``lax.scan``,
   and the custom cell C1's float32 parity against float64 (bench/gpu_cases.py), on torch and jax;
2. ``parallel``: minGRU at the time-parallel target, rshop's scan beside its sequential loop, on torch and jax;
3. ``conformance``: the conformance suite against the numpy float64 reference, TF32 off (``pytest
   --rshop-device=cuda``), for torch, jax, and tensorflow where its CUDA build is installed.

It writes docs/benchmarks-gpu.md (every number, the targets and whether each is met) and bench/results/gpu.json.
Each part has a time limit, cut to what is left of ``--budget-s`` (default 540 s, at least 30 s a part), and no
part starts once the budget is spent, so the whole stays under ten minutes of GPU time.

Without a CUDA device for any engine, or with ``--dry-run``: it says what is skipped and why, runs the same
parts on the CPU at tiny sizes (the conformance suite: its custom-cell and cuDNN-weight tests,
``--rshop-device=cpu``) and writes bench/results/gpu-dry.md and .json (never the docs page): the proof, on any
machine, that the script runs. An engine without CUDA where another has it is skipped with its reason.
Exit status 1 when a part that ran failed (a worker error, a failed test, a timeout), or with ``--require-cuda``
(which ``nox -s gpu`` and bench/gpu.sh pass where ``nvidia-smi`` finds a GPU) when no engine saw CUDA; else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import gpu_report  # noqa: E402

ENGINES = ("torch", "jax", "tensorflow")
BENCH_ENGINES = ("torch", "jax")  # the anchors of the targets are torch's and jax's
PARTS = ("lstm", "parallel", "conformance")
CONFORMANCE = tuple(
    f"tests/conformance/test_{name}.py"
    for name in ("forward", "gradients", "composition", "errors", "weights", "save_load", "time_parallel")
)
ENGINE_CONFORMANCE = {"torch": ("tests/conformance/test_torch_cudnn_weights.py",)}
DRY_SELECT = "two_state_custom or cudnn"  # the dry run's tests: the custom cell's forward and gradients, cuDNN weights
LIMIT_S = {"probe": 120, "lstm": 150, "parallel": 90, "conformance": 240}
MIN_LIMIT_S = 30  # a part started near the end of the budget gets this long at least
ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # jax and tensorflow share the GPU with nothing, but take no more
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # than they use, so the pytest workers fit side by side
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(BENCH), os.environ.get("PYTHONPATH", "")]),
}


def _python(args: list, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, **ENV}
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=ROOT, env=env, timeout=timeout, check=False, stdout=subprocess.PIPE
    )


def worker(engine: str, part: str, device: str, tiny: bool, limit: float) -> dict:
    """One engine's part in a subprocess: ``{"rows": [...]}`` or ``{"error": ...}``; its progress lines echoed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        args = [Path(__file__), "--worker", engine, part, "--device", device, "--out", out] + (["--tiny"] * tiny)
        try:
            proc = _python(args, limit)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {limit:.0f} s"}
        sys.stdout.write(proc.stdout.decode(errors="replace"))
        if proc.returncode != 0 or not out.exists():
            return {"error": f"worker exit {proc.returncode}"}
        return json.loads(out.read_text(encoding="utf-8"))


def conformance(engine: str, device: str, dry: bool, limit: float, workers: int) -> dict:
    """The conformance suite for ``engine`` on ``device`` in one pytest: counts from its JUnit XML."""
    files = [*CONFORMANCE, *ENGINE_CONFORMANCE.get(engine, ())]
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        args = ["-m", "pytest", *files, f"--rshop-engines={engine}", f"--rshop-device={device}", "-q"]
        args += ["-p", "no:cacheprovider", f"--junitxml={xml}", "-n", str(workers)]
        args += ["--dist", "load", "-k", DRY_SELECT] if dry else ["--dist", "load"]
        start = time.time()
        try:
            proc = _python(args, limit)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {limit:.0f} s", "command": _command(args)}
        text = proc.stdout.decode(errors="replace")
        print("\n".join(text.strip().splitlines()[-3:]))
        result = {"seconds": time.time() - start, "exit": proc.returncode, "command": _command(args)}
        if not xml.exists():
            return {**result, "error": f"pytest exit {proc.returncode}: {text.strip().splitlines()[-1:]}"}
        suites = ET.parse(xml).getroot()
        counts = {k: sum(int(s.get(k, 0)) for s in suites.iter("testsuite")) for k in ("tests", "failures", "errors")}
        counts["not_run"] = sum(int(s.get("skipped", 0)) for s in suites.iter("testsuite"))  # skips and xfails
        failed = [
            f"{case.get('classname')}::{case.get('name')}"
            for case in suites.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None
        ]
        result.update(counts, failed=failed[:20])
        if proc.returncode != 0:
            result["error"] = f"pytest exit {proc.returncode}: {counts['failures']} failed, {counts['errors']} errors"
        return result


def _command(args: list) -> str:
    return "python " + " ".join(str(a) for a in args if not str(a).startswith("--junitxml"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="the CPU at tiny sizes, even where CUDA is")
    ap.add_argument("--engines", default=",".join(ENGINES), help="a comma list among torch, jax, tensorflow")
    ap.add_argument("--parts", default=",".join(PARTS), help="a comma list among lstm, parallel, conformance")
    ap.add_argument(
        "--require-cuda",
        action="store_true",
        help="exit 1 when no engine sees CUDA (nox -s gpu and gpu.sh pass it where nvidia-smi finds a GPU)",
    )
    ap.add_argument("--budget-s", type=float, default=540.0, help="start no part after this many seconds")
    ap.add_argument("--workers", type=int, default=None, help="pytest-xdist workers (default: 8 on CUDA, 0 dry)")
    ap.add_argument("--out", help="default docs/benchmarks-gpu.md (dry run: bench/results/gpu-dry.md)")
    ap.add_argument("--json", help="default bench/results/gpu.json (dry run: bench/results/gpu-dry.json)")
    ap.add_argument("--report-only", action="store_true", help="re-render the report from --json, measure nothing")
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "PART"), help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return _worker_main(args)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [e for e in engines if e not in ENGINES] + [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"expected engines among {ENGINES} and parts among {PARTS}, received {bad}")
    if args.report_only:
        results = json.loads(Path(args.json or BENCH / "results" / "gpu.json").read_text(encoding="utf-8"))
        gpu_report.write(results, Path(args.out or ROOT / "docs" / "benchmarks-gpu.md"))
        return 0

    start = time.time()
    probes = {e: worker(e, "probe", "cpu", True, LIMIT_S["probe"]).get("probe", {"cuda": False}) for e in engines}
    probes = {e: {"installed": False, "why": f"{e}: the probe failed", **p} for e, p in probes.items()}
    for e, p in probes.items():
        print(f"probe {e}: {'CUDA, ' if p['cuda'] else 'no CUDA: '}{p['why']}", flush=True)
    cuda = [e for e in engines if probes[e]["cuda"]]
    dry = args.dry_run or not cuda
    if not cuda:
        print(
            "gpu.py: no CUDA device for any engine: every CUDA part is skipped (reasons above). Running the same "
            "parts on the CPU at tiny sizes instead (a dry run: nothing here is a GPU number).",
            flush=True,
        )
    device = "cpu" if dry else "cuda"
    workers = args.workers if args.workers is not None else (0 if dry else min(8, os.cpu_count() or 1))
    runs = []
    for part in parts:
        for engine in engines:
            if part != "conformance" and engine not in BENCH_ENGINES:
                continue
            run = {"part": part, "engine": engine, "device": device}
            probe = probes[engine]
            if not probe.get("installed"):
                run["skipped"] = probe.get("why", f"{engine}: no probe result")
            elif not dry and not probe["cuda"]:
                run["skipped"] = f"no CUDA for {engine}: {probe['why']}"
            elif time.time() - start > args.budget_s:
                run["skipped"] = f"the budget of {args.budget_s:.0f} s was spent before this part"
            if "skipped" in run:
                print(f"{part} {engine}: skipped ({run['skipped']})", flush=True)
            else:
                limit = min(LIMIT_S[part], max(MIN_LIMIT_S, args.budget_s - (time.time() - start)))
                print(f"{part} {engine} on {device}: (at most {limit:.0f} s)", flush=True)
                began = time.time()
                if part == "conformance":
                    run.update(conformance(engine, device, dry, limit, workers))
                else:
                    run.update(worker(engine, part, device, dry, limit))
                run["seconds"] = time.time() - began
                print(f"{part} {engine}: {run['seconds']:.0f} s", flush=True)
            runs.append(run)
    results = {
        "dry_run": dry,
        "device": device,
        "probes": probes,
        "runs": runs,
        "seconds": time.time() - start,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    stem = "gpu-dry" if dry else "gpu"
    json_path = Path(args.json or BENCH / "results" / f"{stem}.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    out = Path(args.out or (BENCH / "results" / "gpu-dry.md" if dry else ROOT / "docs" / "benchmarks-gpu.md"))
    gpu_report.write(results, out)
    failed = [f"{r['part']} {r['engine']}: {r['error']}" for r in runs if "error" in r]
    failed += [
        f"{row['part']} {row['engine']} {row['impl']}: {row['error']}"
        for r in runs
        for row in r.get("rows", ())
        if "error" in row
    ]
    print(f"wrote {out} and {json_path} in {results['seconds']:.0f} s" + (" (dry run, CPU)" if dry else ""))
    if args.require_cuda and not cuda:
        failed.append(
            "--require-cuda: expected an engine that sees a CUDA device, received none (see the probes above): "
            "install the CUDA builds of torch and jax (nox -s gpu does where it can download them)"
        )
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


def _worker_main(args: argparse.Namespace) -> int:
    import gpu_cases

    engine, part = args.worker
    if part == "probe":
        result: dict = {"probe": gpu_cases.probe(engine)}
    else:
        gpu_cases.strict(engine)
        result = {"rows": gpu_cases.PARTS[part](engine, args.device, args.tiny)}
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
