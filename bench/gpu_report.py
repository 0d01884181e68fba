"""docs/benchmarks-gpu.md from bench/gpu.py's results: the targets and whether each is met, then every number."""

from __future__ import annotations

from pathlib import Path

W3_RATIO = 1.2  # the target: the rshop LSTM layer's forward + backward at W3 within 1.2x of torch.nn.LSTM (cuDNN)
HOW = """## How to run it

```
nox -s gpu                 # on a CUDA machine: installs the CUDA builds, then runs bench/gpu.py
bench/gpu.sh               # the same in the current environment (its torch / jax must be CUDA builds)
python bench/gpu.py --dry-run --engines torch   # any machine: the same code on the CPU at tiny sizes
```

Each engine runs in its own process with TF32 off (torch's `allow_tf32` flags, jax's `"highest"` matmul
precision, tensorflow's `enable_tensor_float_32_execution(False)`); the conformance suite runs through the rshop
pytest plugin's `--rshop-device=cuda` ([testing.md](testing.md#running-the-suite-on-a-gpu)). A part's time
limit is cut to what is left of `--budget-s` (default 540 s) and no part starts once it is spent, so a run stays
under ten minutes after the installs.
"""


def write(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results), encoding="utf-8")


def _rows(results: dict, part: str) -> list[dict]:
    return [row for run in results["runs"] for row in run.get("rows", ()) if row["part"] == part]


def _ms(row: dict, key: str) -> str:
    return f"{row[key]['ms']:.2f}" if key in row else "—"


def _find(rows: list[dict], **want: str) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in want.items())), None)


def targets(results: dict) -> list[tuple[str, str, str]]:
    """(target, what was measured, verdict) for each target of the issue."""
    dry = results["dry_run"]
    lstm = _rows(results, "lstm")
    out = []
    ours = _find(lstm, workload="W3", kind="lstm", impl="rshop torch")
    anchor = _find(lstm, workload="W3", kind="lstm", impl="torch.nn.LSTM")
    if ours and anchor and "fb" in ours and "fb" in anchor:
        ratio = ours["fb"]["ms"] / anchor["fb"]["ms"]
        measured = f"{ours['fb']['ms']:.2f} ms / {anchor['fb']['ms']:.2f} ms = {ratio:.2f}×"
        out.append(
            (
                "LSTM layer forward + backward at W3 ≤ 1.2 × torch.nn.LSTM (cuDNN)",
                measured,
                _verdict(ratio <= W3_RATIO, dry),
            )
        )
    else:
        out.append(("LSTM layer forward + backward at W3 ≤ 1.2 × torch.nn.LSTM (cuDNN)", "not measured", "—"))
    for row in _rows(results, "parity"):
        name = f"custom cell C1 parity on {row['engine']}, float32 tolerance table"
        if "error" in row:
            out.append((name, row["error"], _verdict(False, dry)))
            continue
        measured = (
            f"output {row['forward_err']:.1e} (≤ {row['forward_atol']:g}), gradients {row['grad_rel_err']:.1e} "
            f"of max (≤ {row['grad_rtol']:g})"
        )
        out.append((name, measured, _verdict(row["met"], dry)))
    for run in results["runs"]:
        if run["part"] != "conformance" or "skipped" in run:
            continue
        name = f"conformance suite on {run['device']}: {run['engine']}"
        if "tests" not in run:
            out.append((name, run.get("error", "no result"), _verdict(False, dry)))
            continue
        passed = run["tests"] - run["failures"] - run["errors"] - run["not_run"]
        measured = f"{passed} passed, {run['failures'] + run['errors']} failed, {run['not_run']} skipped or xfail"
        out.append((name, measured, _verdict(run["failures"] + run["errors"] == 0 and run["exit"] == 0, dry)))
    return out


def _verdict(ok: bool, dry: bool) -> str:
    if dry:
        return "passes (dry run: not the target's conditions)" if ok else "FAILS (dry run)"
    return "met" if ok else "**not met**"


def render(results: dict) -> str:
    dry = results["dry_run"]
    probes = results["probes"]
    lines = ["# GPU benchmarks" + (" — dry run on the CPU" if dry else ""), ""]
    lines += ["<!-- written by bench/gpu.py (nox -s gpu); edit the script, not this page -->", ""]
    if dry:
        lines += [
            "**A dry run**: the same parts on the CPU at tiny sizes (bench/workloads.py's quick sizes, two timed "
            "calls), proving the script runs. None of these is a GPU number.",
            "",
        ]
    machine = "; ".join(
        f"{e}: {p['why']}" + (f" ({p['versions']})" if p.get("cuda") else "") for e, p in probes.items()
    )
    lines += [f"Run {results['date']} in {results['seconds']:.0f} s on {results['device']}. {machine}.", ""]
    lines += ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in targets(results)]
    lines += ["", *_lstm_table(results), *_parallel_table(results), *_conformance_table(results), *_skipped(results)]
    lines += [HOW]
    return "\n".join(lines)


def _lstm_table(results: dict) -> list[str]:
    rows = _rows(results, "lstm")
    if not rows:
        return []
    out = ["## LSTM layer and C1 at W1 and W3", ""]
    out += [
        "Forward (no gradient) and forward + backward of `sum(y)` w.r.t. every weight, median of the timed calls; "
        "each rshop row beside its engine's anchor (torch.nn.LSTM on torch, the hand `lax.scan` on jax).",
        "",
    ]
    out += ["| workload | model | implementation | path | forward ms | fwd+bwd ms | fwd+bwd vs anchor | max err |"]
    out += ["|---|---|---|---|---:|---:|---:|---:|"]
    for row in rows:
        anchor = next(
            (
                r
                for r in rows
                if (r["engine"], r["workload"], r["kind"]) == (row["engine"], row["workload"], row["kind"])
                and r is not row
                and not r["impl"].startswith("rshop")
                and "fb" in r
            ),
            None,
        )
        ratio = (
            f"{row['fb']['ms'] / anchor['fb']['ms']:.2f}×"
            if anchor and "fb" in row and row["impl"].startswith("rshop")
            else ""
        )
        err = f"{row['err']:.1e}" if "err" in row else row.get("error", "")
        out.append(
            f"| {row['workload']} | {row['kind']} | {row['impl']} | {row.get('path', '')} | {_ms(row, 'fwd')} | "
            f"{_ms(row, 'fb')} | {ratio} | {err} |"
        )
    return [*out, ""]


def _parallel_table(results: dict) -> list[str]:
    rows = _rows(results, "parallel")
    if not rows:
        return []
    size = rows[0]
    out = [f"## Time-parallel: minGRU at T {size['T']}, batch {size['B']}, hidden {size['H']}", ""]
    out += [
        "| engine | implementation | over time | forward ms | fwd+bwd ms | fwd+bwd speed-up vs sequential | rel. err |"
    ]
    out += ["|---|---|---|---:|---:|---:|---:|"]
    for row in rows:
        seq = _find(rows, engine=row["engine"], impl="rshop sequential")
        ratio = (
            f"{seq['fb']['ms'] / row['fb']['ms']:.2f}×"
            if seq and "fb" in seq and "fb" in row and row is not seq
            else ""
        )
        err = f"{row['err']:.1e}" if "err" in row else row.get("error", "")
        out.append(
            f"| {row['engine']} | {row['impl']} | {row.get('path', '')} | {_ms(row, 'fwd')} | {_ms(row, 'fb')} | "
            f"{ratio} | {err} |"
        )
    return [*out, ""]


def _conformance_table(results: dict) -> list[str]:
    runs = [r for r in results["runs"] if r["part"] == "conformance" and "skipped" not in r]
    if not runs:
        return []
    out = ["## Conformance suite", "", "Against the numpy float64 reference, with the float32 tolerance table.", ""]
    out += ["| engine | device | tests | failed | skipped or xfail | seconds |", "|---|---|---:|---:|---:|---:|"]
    for run in runs:
        if "tests" in run:
            bad, where = run["failures"] + run["errors"], f"{run['engine']} | {run['device']}"
            out.append(f"| {where} | {run['tests']} | {bad} | {run['not_run']} | {run['seconds']:.0f} |")
        else:
            out.append(f"| {run['engine']} | {run['device']} | {run.get('error', '')} | | | |")
    failed = [f for run in runs for f in run.get("failed", ())]
    if failed:
        out += ["", "Failed:", "", *[f"- `{f}`" for f in failed]]
    out += ["", "Command (per engine): `" + runs[0].get("command", "") + "`"]
    return [*out, ""]


def _skipped(results: dict) -> list[str]:
    skipped = [f"- {r['part']}, {r['engine']}: {r['skipped']}" for r in results["runs"] if "skipped" in r]
    return ["## Skipped", "", *skipped, ""] if skipped else []
