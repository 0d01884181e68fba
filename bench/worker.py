"""One family's timings in this process: ``python bench/worker.py FAMILY --out FILE.json``.

For each workload and model: the rshop numpy engine gives the reference output; each
implementation is built from the same weights, checked against it (max |diff| <= TOL), then timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

import registry

TOL = 1e-4


def run(family, workloads, quick):
    registry.prepare(family)
    import numpy as np
    import rshop_cases
    import timing
    import workloads as wl

    rows = []
    for workload in workloads:
        x = wl.inputs(workload, quick)
        _, _, d_in, hidden = wl.sizes(workload, quick)
        for kind in wl.MODELS:
            names = [n for k, n in registry.in_family(family) if k == kind]
            if not names:
                continue
            w = wl.short_weights(wl.rshop_model(kind, d_in, hidden))
            ref = rshop_cases.reference(kind, w, x)
            for name in names:
                row = {
                    "workload": workload,
                    "kind": kind,
                    "name": name,
                    "family": family,
                    "engine": registry.engine_of(family),
                    "load": os.getloadavg()[0],
                }
                try:
                    impl = registry.IMPLS[(kind, name)][1](w, x)
                    row["max_err"] = float(np.max(np.abs(np.asarray(impl.out()) - ref)))
                    if not row["max_err"] <= TOL:
                        raise AssertionError(f"forward differs from the numpy engine by {row['max_err']:.2e}")
                    row["fwd"] = timing.measure(impl.fwd, workload, quick)
                    row["fb"] = timing.measure(impl.fb, workload, quick)
                    print(
                        f"{workload} {kind:4} {name:<40} fwd {row['fwd']['ms']:9.2f}  fb {row['fb']['ms']:9.2f} ms"
                        f"  err {row['max_err']:.1e}",
                        file=sys.stderr,
                        flush=True,
                    )
                except Exception as e:  # one failing case must not lose the others
                    row["error"] = f"{type(e).__name__}: {e}"
                    traceback.print_exc()
                rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=registry.FAMILIES)
    ap.add_argument("--workloads", default="W1,W2,W3")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = run(args.family, args.workloads.split(","), args.quick)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(rows, f)


if __name__ == "__main__":
    main()
