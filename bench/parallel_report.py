"""docs/benchmarks-parallel.md and its plot from bench/parallel.py's results."""

from __future__ import annotations

import sys
from pathlib import Path

import parallel_cases as pc
from report import machine as _machine

ENGINES = ("jax", "torch", "tensorflow")
SEQ, PAR, AUTO = "rshop sequential", "rshop parallel", "rshop auto"
MODES = ("fwd", "fb")
MODE_TITLES = {"fwd": "forward", "fb": "forward + backward"}


def machine(quick, start, load_start):
    return _machine(quick, [], start, load_start)


def _index(rows):
    """(part, engine, cell, impl, B, H, T) -> row, for the rows that were measured."""
    return {(r["part"], r["engine"], r["cell"], r["impl"], r["B"], r["H"], r["T"]): r for r in rows if "cell" in r}


def _ms(row, mode):
    return row[mode]["ms"] if row and mode in row else None


def _fmt(ms):
    if ms is None:
        return "-"
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _x(seq, par):
    return "-" if seq is None or par is None else f"{seq / par:.2f}"


# -- targets --------------------------------------------------------------------------------------
def targets(rows, target):
    """[(engine, what, measured, ratio, needed, met)] for the issue's target table."""
    ix = _index(rows)
    b, h, t = target["B"], target["H"], target["T"]

    def get(engine, cell, impl):
        return ix.get(("targets", engine, cell, impl, b, h, t))

    out = []
    for engine in ("torch", "tensorflow"):
        seq, par = _ms(get(engine, "mingru", SEQ), "fb"), _ms(get(engine, "mingru", PAR), "fb")
        ratio = seq / par if seq and par else None
        out.append(
            (
                engine,
                "minGRU scan vs rshop's sequential loop",
                f"{_fmt(par)} ms vs {_fmt(seq)} ms",
                "-" if ratio is None else f"{ratio:.1f}x faster",
                ">= 20x",
                ratio is not None and ratio >= 20,
            )
        )
    auto, seq = _ms(get("jax", "mingru", AUTO), "fb"), _ms(get("jax", "mingru", SEQ), "fb")
    assoc = _ms(get("jax", "mingru", pc.JAX_ASSOC), "fb")
    best = min((v for v in (seq, assoc) if v is not None), default=None)
    ratio = auto / best if auto and best else None
    out.append(
        (
            "jax",
            "minGRU `auto` vs the faster of rshop's `lax.scan` and a hand `lax.associative_scan`",
            f"{_fmt(auto)} ms vs min({_fmt(seq)}, {_fmt(assoc)}) ms",
            "-" if ratio is None else f"{ratio:.2f}x the time",
            "<= 1.05x",
            ratio is not None and ratio <= 1.05,
        )
    )
    nrow, nseq = get("torch", "indrnn", PAR), get("torch", "indrnn", SEQ)
    its = (nrow or {}).get("newton", {}).get("iterations")
    out.append(
        (
            "torch",
            "IndRNN Newton: iterations",
            "-" if its is None else str(its),
            "",
            "<= 10",
            its is not None and its <= 10,
        )
    )
    seq, par = _ms(nseq, "fb"), _ms(nrow, "fb")
    ratio = seq / par if seq and par else None
    out.append(
        (
            "torch",
            "IndRNN Newton vs rshop's sequential loop",
            f"{_fmt(par)} ms vs {_fmt(seq)} ms",
            "-" if ratio is None else f"{ratio:.1f}x faster",
            ">= 5x",
            ratio is not None and ratio >= 5,
        )
    )
    err = (nrow or {}).get("err_seq")
    out.append(
        (
            "torch",
            "IndRNN Newton vs sequential, max relative difference",
            "-" if err is None else f"{err:.1e}",
            "",
            "<= 1e-4",
            err is not None and err <= 1e-4,
        )
    )
    return out


# -- crossover ------------------------------------------------------------------------------------
def crossover(rows, lengths):
    """engine -> [(B, H, mode, {T: seq/scan}, first T from which the scan stays faster or None)]."""
    ix = _index(rows)
    out = {}
    for engine in ENGINES:
        lines = []
        for b, h in sorted({(r["B"], r["H"]) for r in rows if r.get("part") == "crossover" and "cell" in r}):
            for mode in MODES:
                ratios = {}
                for t in lengths:
                    seq = _ms(ix.get(("crossover", engine, "mingru", SEQ, b, h, t)), mode)
                    par = _ms(ix.get(("crossover", engine, "mingru", PAR, b, h, t)), mode)
                    if seq and par:
                        ratios[t] = seq / par
                first = None
                for t in sorted(ratios, reverse=True):
                    if ratios[t] < 1:
                        break
                    first = t
                lines.append((b, h, mode, ratios, first))
        out[engine] = lines
    return out


def recommend(lines):
    """The least T from which the scan was at least as fast as the sequential loop in every measured
    configuration (None: some configuration never crossed)."""
    firsts = [first for *_, ratios, first in lines if ratios]
    if not firsts:
        return None
    return None if any(f is None for f in firsts) else max(firsts)


# -- the document ---------------------------------------------------------------------------------
def write(results, path: Path):
    meta, rows = results["meta"], results["rows"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(meta, rows, path.with_suffix(".png").name), encoding="utf-8")
    draw(meta, rows, path.with_suffix(".png"))


def markdown(meta, rows, png) -> str:
    s, target = meta["sizes"], meta["target"]
    load = meta["load_start"][0], meta["load_end"][0]
    quick = " QUICK smoke run: tiny sizes, two calls each, numbers mean nothing." if meta["quick"] else ""
    lines = [
        "<!-- Generated by bench/parallel.py (nox -s bench_parallel); do not edit by hand. -->",
        "# Benchmarks: time-parallel loops",
        "",
        f'rshop\'s parallel loops over time (`time_parallel="scan"` / `"newton"`) beside its sequential loop '
        f"(`time_parallel=False`) and hand-written minGRU anchors, float32, input width {8}, on {meta['cpu']} "
        f"({meta['cores']} cores), {meta['date']}, {meta['seconds'] / 60:.0f} minutes, load average "
        f"{load[0]:.1f} at the start and {load[1]:.1f} at the end (the machine is shared: load adds noise)." + quick,
        "",
        "Every time is the median of the calls after warm-up, in ms: at least 5 calls for the targets, else "
        "at least 2 and more until 0.5 s of samples (a configuration whose warm-up call took over 6 s: 2 calls). "
        "forward: one call; forward + backward: the gradient of `sum(y * w)` (`return_sequences=True`, `w` "
        "fixed, random) w.r.t. every parameter. jax: both jitted; tensorflow: both inside `tf.function`; torch: "
        "eager, the forward under `no_grad`. Each engine's measurements run in their own process, one process "
        "at a time. Every implementation's output is first checked against the numpy engine's sequential loop "
        "in float64 (max |difference| / max |reference| <= 1e-3, else not timed). The grid is whole for minGRU "
        'and the IndRNN (Newton); the RG-LRU is measured at the larger batch only, the LSTM (whose "auto" '
        "loop is the sequential one) at the larger batch and every other length.",
        "",
        f"Versions: {', '.join(meta['versions'])}. Raw numbers: bench/results/parallel.json.",
        "",
        f"![time against T]({png})",
        "",
        f"## Targets: minGRU, batch {target['B']}, T {target['T']}, hidden {target['H']}, forward + backward",
        "",
        "| engine | what | measured | ratio | needed | result |",
        "|---|---|---|---|---|---|",
    ]
    for engine, what, measured, ratio, needed, met in targets(rows, target):
        lines.append(f"| {engine} | {what} | {measured} | {ratio} | {needed} | {'met' if met else '**missed**'} |")
    lines += [
        "",
        "*engine linear_scan alone*: the engine's `rshop_backends.<engine>.parallel.linear_scan` by itself on "
        "arrays of the target's size (a in (0, 1), forward + backward of `sum(h * w)` w.r.t. a, b and h0): "
        "what the scan costs without the step's coefficients and outputs around it. "
        "*torch hand, all but the recurrence*: the torch anchor's minGRU with `(1 - z) + z * h~` in place of the "
        "scan (the projection, the gate and their backward, written by hand): a floor for any eager torch "
        "minGRU at this size, so rshop's sequential loop divided by it bounds the ratio an eager scan can reach. "
        "The Newton rows use the IndRNN-like cell (`IndRNNCell(activation='tanh')`) at the same sizes; the "
        "relative difference is max |y_newton - y_sequential| / max |y_sequential|, both float32 on the same engine.",
        "",
        "Every implementation at the target sizes (ms):",
        "",
        "| engine | cell | implementation | forward | forward + backward | Newton iterations | vs float64 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("part") == "targets" and "cell" in r:
            its = r.get("newton", {}).get("iterations", "")
            err = f"{r['err']:.1e}" if "err" in r and r["impl"] not in pc.UNCHECKED else r.get("error", "-")
            name = r["impl"] + (f" (`{r['mode']}`)" if r["impl"] != SEQ and r["mode"] != "hand" else "")
            fwd, fb = _fmt(_ms(r, "fwd")), _fmt(_ms(r, "fb"))
            lines.append(f"| {r['engine']} | {r['cell']} | {name} | {fwd} | {fb} | {its} | {err} |")
    lines += _crossover_section(rows, s["cross"])
    for cell in pc.CELLS:
        lines += _grid_section(rows, cell, s)
    lines += _anchor_section(rows, s)
    lines += _lstm_section(rows)
    lines += _notes(rows, meta)
    return "\n".join(lines) + "\n"


def _crossover_section(rows, lengths):
    cross = crossover(rows, lengths)
    lines = [
        "",
        "## Where the scan overtakes the sequential loop (`AUTO_MIN_STEPS`)",
        "",
        "minGRU, `time_parallel=\"scan\"` against `False`: the sequential loop's time divided by the scan's "
        "(above 1: the scan is faster). *from*: the least T from which the scan stays at least as fast up to T = "
        f"{lengths[-1]}. Recommended `AUTO_MIN_STEPS`: the least T from which it is at least as fast in every "
        'row (batch, hidden, forward or forward + backward), so that `"auto"` never picks a slower scan at the '
        "sizes measured; at larger sizes the grid below shows whether it stays so.",
        "",
        "| engine | recommended `AUTO_MIN_STEPS` | rows that cross last |",
        "|---|---|---|",
    ]
    for engine, rws in cross.items():
        if not any(r[3] for r in rws):
            continue
        rec = recommend(rws)
        last = [f"B{b} H{h} {m}" for b, h, m, ratios, first in rws if ratios and (first is None or first == rec)]
        lines.append(
            f"| {engine} | {rec if rec is not None else f'none within T <= {lengths[-1]}'} | {', '.join(last)} |"
        )
    lines += [
        "",
        "| engine | batch | hidden | mode | " + " | ".join(f"T {t}" for t in lengths) + " | from |",
        "|---|---|---|---|" + "---|" * len(lengths) + "---|",
    ]
    for engine, rws in cross.items():
        for b, h, mode, ratios, first in rws:
            if not ratios:
                continue
            cells = [f"{ratios[t]:.2f}" if t in ratios else "-" for t in lengths]
            lines.append(f"| {engine} | {b} | {h} | {mode} | " + " | ".join(cells) + f" | {first or 'never'} |")
    return lines


def _grid_section(rows, cell, s):
    ix = _index(rows)
    have = [r for r in rows if r.get("part") == cell]
    if not have:
        return []
    newton = pc.PARALLEL[cell] == "newton"
    mode = pc.PARALLEL[cell]
    lines = [
        "",
        f"## {pc.CELL_TITLES[cell]}: `time_parallel={mode!r}` against `False`",
        "",
        "ms; x: the sequential time divided by the parallel one."
        + (" iterations: Newton's, in the last forward; rel. diff.: against the sequential loop." if newton else ""),
        "",
        "| engine | batch | hidden | T | parallel fwd | sequential fwd | x fwd | parallel fwd+bwd | sequential fwd+bwd "
        "| x fwd+bwd |" + (" iterations | rel. diff. |" if newton else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if newton else ""),
    ]
    for engine in ENGINES:
        for b in s["batches"]:
            for h in s["hiddens"]:
                for t in s["lengths"]:
                    par, seq = ix.get((cell, engine, cell, PAR, b, h, t)), ix.get((cell, engine, cell, SEQ, b, h, t))
                    if par is None and seq is None:
                        continue
                    pf, sf, pb, sb = _ms(par, "fwd"), _ms(seq, "fwd"), _ms(par, "fb"), _ms(seq, "fb")
                    extra = ""
                    if newton:
                        its = (par or {}).get("newton", {}).get("iterations", "-")
                        err = (par or {}).get("err_seq")
                        extra = f" {its} | {'-' if err is None else f'{err:.1e}'} |"
                    if par is not None and "error" in par:
                        extra += f" error: {par['error'][:80]} |"
                    skipped = seq is not None and "skipped" in seq
                    sf_, sb_ = ("skipped", "skipped") if skipped else (_fmt(sf), _fmt(sb))
                    lines.append(
                        f"| {engine} | {b} | {h} | {t} | {_fmt(pf)} | {sf_} | {_x(sf, pf)} | {_fmt(pb)} | {sb_} "
                        f"| {_x(sb, pb)} |" + extra
                    )
    return lines


def _anchor_section(rows, s):
    ix = _index(rows)
    if not any(r.get("part") == "mingru" for r in rows):
        return []
    cols = [
        ("jax", PAR),
        ("jax", pc.JAX_ASSOC),
        ("jax", SEQ),
        ("jax", pc.JAX_SCAN),
        ("torch", PAR),
        ("torch", SEQ),
        ("torch", pc.TORCH_LOOP),
    ]
    names = {
        ("jax", PAR): "rshop jax scan",
        ("jax", pc.JAX_ASSOC): "hand associative_scan",
        ("jax", SEQ): "rshop jax sequential",
        ("jax", pc.JAX_SCAN): "hand lax.scan",
        ("torch", PAR): "rshop torch scan",
        ("torch", SEQ): "rshop torch sequential",
        ("torch", pc.TORCH_LOOP): "hand torch loop",
    }
    lines = [
        "",
        "## minGRU beside hand-written anchors",
        "",
        "forward / forward + backward, ms. The anchors (bench/parallel_cases.py) compute the input projection "
        "of all steps in one matmul, then the recurrence: jax `lax.associative_scan` over (a, b) pairs, a jax "
        "`lax.scan` and a torch Python loop, step by step.",
        "",
        "| batch | hidden | T | " + " | ".join(names[c] for c in cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for b in s["batches"]:
        for h in s["hiddens"]:
            for t in s["lengths"]:
                cells = []
                for engine, impl in cols:
                    r = ix.get(("mingru", engine, "mingru", impl, b, h, t))
                    if r is None or "fwd" not in r:
                        cells.append("skipped" if r and "skipped" in r else "-")
                    else:
                        cells.append(f"{_fmt(_ms(r, 'fwd'))} / {_fmt(_ms(r, 'fb'))}")
                lines.append(f"| {b} | {h} | {t} | " + " | ".join(cells) + " |")
    return lines


def _lstm_section(rows):
    seen = {}
    for r in rows:
        if r.get("cell") == "lstm" and r.get("impl") == PAR and "over_time" in r:
            seen.setdefault(r["engine"], r["over_time"])
    if not seen:
        return []
    lines = [
        "",
        '## What `"auto"` chose for the LSTM',
        "",
        '`layer.explain()`\'s "over time:" line, the LSTM layer lowered with `time_parallel="auto"` (its '
        '"parallel" column above):',
        "",
    ]
    note = " (a fused kernel: the loop runs step by step inside it, no parallel loop)"
    lines += [f"- {engine}: {line}" + (note if line.startswith("path:") else "") for engine, line in seen.items()]
    return lines


def _notes(rows, meta):
    skip = meta.get("skip_sequential", {})
    lines = ["", "## Notes", ""]
    if skip:
        lines.append(
            f"- Sequential loops (rshop's and the hand-written ones) are not timed at T {skip['T']} with hidden "
            f"{skip['H']} outside the targets: minutes per configuration."
        )
    lines.append(
        "- torch's processes run with `MALLOC_MMAP_THRESHOLD_=2**30` and `MALLOC_TRIM_THRESHOLD_=2**32` "
        "(bench/parallel.py, decision 73). Without them glibc maps and unmaps every large temporary, and at "
        "the minGRU target the same process measured the scan at 812 ms early and 25 ms a few calls later, "
        "the sequential loop at 248 ms against 100 ms: page faults, not arithmetic. What torch users see "
        "depends on that allocator state; a preallocated or cached workspace in the torch scan would remove "
        "the dependence."
    )
    for u in meta.get("updates", []):
        lines.append(
            f"- Measured again on {u['date']} (load average {u['load_start'][0]:.1f} to {u['load_end'][0]:.1f}): "
            f"{', '.join(u['parts'])} on {', '.join(u['engines'])}; the other rows are from the first run."
        )
    failed = [r for r in rows if "error" in r]
    for r in failed:
        where = " ".join(str(r.get(k, "")) for k in ("engine", "part", "cell", "impl", "B", "H", "T"))
        lines.append(f"- failed: {where}: {r['error'][:200]}")
    slow = (
        []
        if meta["quick"]
        else [r for r in rows if any(m in r and r[m]["runs"] < 5 and r.get("part") == "targets" for m in MODES)]
    )
    for r in slow:
        lines.append(f"- fewer than 5 calls at a target: {r['engine']} {r['cell']} {r['impl']}")
    return lines


# -- the plot -------------------------------------------------------------------------------------
def draw(meta, rows, path):
    try:
        import matplotlib
    except ImportError:  # nox -s bench_parallel installs it; a bare smoke run may not have it
        print(f"matplotlib is not installed: {path} not drawn", file=sys.stderr)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ix = _index(rows)
    s = meta["sizes"]
    b, h = max(s["batches"]), min(s["hiddens"])
    colors = {"jax": "#4c72b0", "torch": "#dd8452", "tensorflow": "#55a868"}
    fig, axes = plt.subplots(2, 3, figsize=(15, 9), squeeze=False)
    for n, cell in enumerate(pc.CELLS):
        ax = axes[n // 3][n % 3]
        for engine in ENGINES:
            for impl, style in ((PAR, "-"), (SEQ, "--")):
                pts = [(t, _ms(ix.get((cell, engine, cell, impl, b, h, t)), "fb")) for t in s["lengths"]]
                pts = [(t, v) for t, v in pts if v is not None]
                if pts:
                    label = f"{engine} {'parallel' if impl == PAR else 'sequential'}"
                    ax.plot(*zip(*pts), style, marker="o", color=colors[engine], label=label)
        if cell == "mingru":
            for name, engine, style in ((pc.JAX_ASSOC, "jax", ":"), (pc.TORCH_LOOP, "torch", "-.")):
                pts = [(t, _ms(ix.get((cell, engine, cell, name, b, h, t)), "fb")) for t in s["lengths"]]
                pts = [(t, v) for t, v in pts if v is not None]
                if pts:
                    ax.plot(*zip(*pts), style, marker="x", color="k" if engine == "jax" else "grey", label=name)
        mode = pc.PARALLEL[cell]
        ax.set_title(f"{pc.CELL_TITLES[cell]}, parallel = {mode!r}", fontsize=10)
        _axes(ax, "T", "ms, forward + backward")
    for col, mode in ((1, "fb"), (2, "fwd")):
        ax = axes[1][col]
        for engine in ENGINES:
            for (bb, hh, _m, ratios, _), style in zip(
                [r for r in crossover(rows, s["cross"])[engine] if r[2] == mode], ("-", "--", ":", "-.")
            ):
                if ratios:
                    ax.plot(
                        list(ratios),
                        list(ratios.values()),
                        style,
                        marker="o",
                        color=colors[engine],
                        label=f"{engine} B{bb} H{hh}",
                    )
        ax.axhline(1, color="k", lw=0.8)
        ax.set_title(f"minGRU, sequential time / scan time, {MODE_TITLES[mode]}", fontsize=10)
        _axes(ax, "T", "speed-up of the scan")
    fig.suptitle(
        f"Time-parallel loops (batch {b}, hidden {h}, float32, CPU)" + (" — QUICK smoke run" if meta["quick"] else "")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _axes(ax, xlabel, ylabel):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.grid(which="both", alpha=0.3)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
