"""docs/benchmarks.md from the harness's results (and the plot beside it)."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import platform
import time

import targets
import timing
import workloads as wl
from registry import ENGINES, JAX_SCAN, JAX_SPLIT, KERAS_LSTM, KERAS_RNN, TF_SCAN, TORCH_LOOP

BEST = "best hand-written C1 on {}"
HAND_C1 = {
    "torch": [TORCH_LOOP, KERAS_RNN.format("torch")],
    "jax": [JAX_SCAN, JAX_SPLIT, KERAS_RNN.format("jax")],
    "tensorflow": [TF_SCAN, KERAS_RNN.format("tensorflow")],
}
PAIRS = [
    ("lstm", "rshop torch", "torch.nn.LSTM"),
    ("lstm", "rshop torch", TORCH_LOOP),
    ("lstm", "rshop torch", KERAS_LSTM.format("torch")),
    ("lstm", "rshop torch", KERAS_RNN.format("torch")),
    ("lstm", "rshop jax", JAX_SCAN),
    ("lstm", "rshop jax", JAX_SPLIT),
    ("lstm", "rshop jax", KERAS_LSTM.format("jax")),
    ("lstm", "rshop tensorflow", TF_SCAN),
    ("lstm", "rshop tensorflow", KERAS_LSTM.format("tensorflow")),
]
PAIRS += [("c1", f"rshop {e}", BEST.format(e)) for e in ENGINES] + [("c1", "rshop torch", KERAS_RNN.format("torch"))]
MODES = ("fwd", "fb")


def machine(quick, workloads, start, load_start):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = []
    for dist in ("numpy", "torch", "jax", "jaxlib", "tensorflow-cpu", "keras", "rshop"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions.append(f"{dist} {md.version(dist)}")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "quick": quick,
        "workloads": workloads,
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(start)),
        "seconds": time.time() - start,
        "load_start": load_start,
        "load_end": os.getloadavg(),
    }


def _fmt(v, digits=2):
    if v is None:
        return "—"
    return f"{v:.{digits}f}" if v < 100 else f"{v:.0f}"


def medians(results):
    """(workload, kind, name) -> {'fwd': ms, 'fb': ms}; failed cases are left out."""
    return {
        (r["workload"], r["kind"], r["name"]): {m: r[m]["ms"] for m in MODES}
        for r in results["timings"]
        if "fwd" in r and "fb" in r
    }


def best_hand(ms, workload, engine, mode):
    """(ms, name) of the fastest hand-written C1 on ``engine``, or (None, None)."""
    got = [(ms[(workload, "c1", n)][mode], n) for n in HAND_C1[engine] if (workload, "c1", n) in ms]
    return min(got) if got else (None, None)


def anchor_ms(ms, workload, kind, anchor, mode):
    for e in ENGINES:
        if anchor == BEST.format(e):
            return best_hand(ms, workload, e, mode)
    return ms.get((workload, kind, anchor), {}).get(mode), anchor


def _impl_tables(results, ms, wls, quick):
    head = "| implementation | " + " | ".join(f"{w} {m}" for w in wls for m in MODES) + " |"
    rule = "|---|" + "---:|" * (2 * len(wls))
    out = []
    for kind in wl.MODELS:
        names = list(dict.fromkeys(r["name"] for r in results["timings"] if r.get("kind") == kind))
        if not names:
            continue
        rows = {"ms": [], "floor": []}
        for name in names:
            cells = {"ms": [], "floor": []}
            for w in wls:
                floor = wl.floor_ms(w, quick)
                for i, m in enumerate(MODES):
                    v = ms.get((w, kind, name), {}).get(m)
                    cells["ms"].append(_fmt(v))
                    cells["floor"].append(_fmt(v / floor[i], 1) if v is not None else "—")
            label = f"**{name}**" if name.startswith("rshop") else name
            for key in rows:
                rows[key].append(f"| {label} | " + " | ".join(cells[key]) + " |")
        title = wl.MODEL_TITLES[kind]
        out += [
            f"### {title}: median ms",
            "",
            head,
            rule,
            *rows["ms"],
            "",
            f"### {title}: × the FLOP floor",
            "",
            head,
            rule,
            *rows["floor"],
            "",
        ]
    return out


def _ratio_table(ms, wls):
    out = [
        "| model | rshop | anchor | " + " | ".join(f"{w} {m}" for w in wls for m in MODES) + " |",
        "|---|---|---|" + "---:|" * (2 * len(wls)),
    ]
    notes = []
    for kind, mine, anchor in PAIRS:
        cells, winners = [], []
        for w in wls:
            for m in MODES:
                a, who = anchor_ms(ms, w, kind, anchor, m)
                r = ms.get((w, kind, mine), {}).get(m)
                cells.append(_fmt(r / a) if r is not None and a else "—")
                if who and who != anchor:
                    winners.append(f"{w} {m}: {who}")
        if any(c != "—" for c in cells):
            out.append(f"| {wl.MODEL_TITLES[kind].split(':')[0]} | {mine} | {anchor} | " + " | ".join(cells) + " |")
        if winners:
            notes.append(f"- {anchor}: " + "; ".join(winners))
    if notes:
        out += ["", "Which implementation was the best hand-written C1 in each column:", "", *notes]
    return out


def _probe_table(results):
    keys = list(dict.fromkeys((p["workload"], p["mode"]) for p in results["probes"]))
    if not keys:
        return []
    impls = list(dict.fromkeys((p["kind"], p["name"]) for p in results["probes"]))
    by = {(p["kind"], p["name"], p["workload"], p["mode"]): p for p in results["probes"]}
    cols = " | ".join(f"{w} {m} first call ms | {w} {m} peak MB" for w, m in keys)
    out = [f"| model | implementation | {cols} |", "|---|---|" + "---:|---:|" * len(keys)]
    for kind, name in impls:
        cells = []
        for w, m in keys:
            p = by.get((kind, name, w, m), {})
            cells += [_fmt(p.get("first_ms"), 0), _fmt(p.get("peak_mb"), 0)]
        out.append(f"| {wl.MODEL_TITLES[kind].split(':')[0]} | {name} | " + " | ".join(cells) + " |")
    return out


def _loads(results):
    """The 1-minute load average seen by each family's measurements (min–max)."""
    by = {}
    for r in results["timings"]:
        if "load" in r:
            by.setdefault(r["family"], []).append(r["load"])
    parts = [f"{f} {min(v):.1f}–{max(v):.1f}" for f, v in by.items()]
    return f"Load while each family ran: {', '.join(parts)}." if parts else ""


def write(results, path):
    import plot

    meta, quick = results["meta"], results["meta"]["quick"]
    wls = meta["workloads"]
    ms = medians(results)
    pol = "; ".join(
        f"{w}: {a} warm-up, best of {b} medians of {c[0]}–{c[1]} calls"
        for w, (a, b, c, _) in ((w, timing.policy(w, quick)) for w in wls)
    )
    once = [
        f"{r['workload']} {r['name']} {m}"
        for r in results["timings"]
        for m in MODES
        if r.get(m, {}).get("runs") == 0 and not quick
    ]
    pol += (
        f" (runs per case in bench/results/latest.json); a case whose warm-up call took over "
        f"{timing.SLOW_S:.0f} s is timed by that call alone: {', '.join(once) or 'none in this run'}"
    )
    lines = [
        "# Benchmarks",
        "",
        "Generated by `nox -s bench` (`python bench/run.py`; `bench/lstm_anchors.py` is the same); "
        "do not edit by hand.",
        "",
    ]
    if quick:
        lines += ["**Quick run (`--quick`): tiny sizes, few calls — a smoke test, not a measurement.**", ""]
    lines += [
        f"Machine: {meta['cpu']}, {meta['cores']} CPUs, Python {meta['python']}; {', '.join(meta['versions'])}. "
        f"float32, CPU. Run {meta['date']}, {meta['seconds']:.0f} s; load average (1, 5, 15 min) "
        f"{'/'.join(f'{v:.1f}' for v in meta['load_start'])} at the start, "
        f"{'/'.join(f'{v:.1f}' for v in meta['load_end'])} at the end (the machine is shared: "
        "a load above ~0.5 inflates the eager torch loops most). " + _loads(results),
        "",
        "Method: each engine runs in its own process, together with the hand-written anchors and Keras on "
        "that backend (so that rshop and what it is compared with share one process's state). "
        "fwd = the forward pass (torch under `no_grad`); fb = forward + gradients of sum(outputs) w.r.t. all "
        "weights. jax is jitted and waited on with `block_until_ready`; TensorFlow runs in `tf.function` and "
        "is waited on by `.numpy()`; torch uses 2 threads. Every implementation gets the rshop model's weights "
        "and must match the rshop numpy engine's forward output to 1e-4 before it is timed. "
        f"Timing: {pol}; ms.",
        "",
        "## Workloads and the FLOP floor",
        "",
        "FLOPs count the matmuls: forward 8·B·T·h·(d+h); forward + backward (weight gradients and dh, no dx) "
        f"8·B·T·h·(2d+3h). Floor = FLOPs / {wl.PEAK_GFLOPS:.0f} GFLOP/s (this CPU's best sgemm rate, "
        "measured once through oneDNN). C1's peepholes are elementwise: the same floor.",
        "",
        "| workload | batch | T | input | hidden | fwd GFLOP | fb GFLOP | floor fwd ms | floor fb ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in wls:
        f, fl = wl.flops(w, quick), wl.floor_ms(w, quick)
        lines.append(
            f"| {w} | "
            + " | ".join(map(str, wl.sizes(w, quick)))
            + f" | {f[0] / 1e9:.3g} | {f[1] / 1e9:.3g} | {fl[0]:.2f} | {fl[1]:.2f} |"
        )
    lines += [
        "",
        *targets.section(ms, results["probes"], quick),
        "## Ratios rshop / anchor (lower is better; < 1: rshop is faster)",
        "",
        *_ratio_table(ms, wls),
        "",
        "## Timings",
        "",
        "![rshop vs anchors](benchmarks.png)",
        "",
        *_impl_tables(results, ms, wls, quick),
    ]
    failed = [r for r in results["timings"] if "error" in r]
    if failed:
        lines += ["## Failed or rejected cases", ""] + [
            f"- {r.get('workload', '')} {r.get('kind', '')} {r.get('name', r['family'])}: {r['error']}" for r in failed
        ]
        lines.append("")
    errs = [r["max_err"] for r in results["timings"] if "max_err" in r]
    if errs:
        lines += [f"Correctness guard: {len(errs)} checks, largest |forward − numpy engine| {max(errs):.1e}.", ""]
    probes = _probe_table(results)
    if probes:
        lines += [
            "## First call and peak memory",
            "",
            "Each number comes from a fresh process (nothing cached). First call = building the implementation "
            "(rshop: lowering) + trace/compile + the first call, with the framework already imported. Peak = "
            "the process's RSS high-water mark (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) after that call "
            "minus its RSS once the framework was imported and the data made: what building and one call "
            "cost in memory, compile included.",
            "",
            *probes,
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    plot.draw(ms, wls, quick, path.with_suffix(".png"))
