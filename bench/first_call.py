"""First-call time of a small seq2seq with attention on jax: tracing, XLA compile, and its size.

``python bench/first_call.py`` runs each variant in a fresh process (``--case VARIANT`` prints one
JSON line) and writes bench/results/first_call.json and the table between the ``first-call``
markers of docs/performance.md. A measurement, not a test: the unit tests pin the structure
that makes it fast (tests/unit/test_pass_cost.py).

The model: an LSTMCell encoder (hidden 32) over T_enc = 12 steps, and the attention decoder of
bench/expressive_cells.py attending over its outputs for T_dec = 10 steps; batch 16, input 16.
The call: ``jax.jit(jax.value_and_grad(loss))`` of both layers' parameters, as a training step.
Variants: ``default`` (the engines' pipelines under the cost rule), ``split`` (the differentiated
pipeline before the rule: ``split_gates`` forced) and ``none`` (``passes=()``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

VARIANTS = ("default", "split", "none")
BEGIN, END = "<!-- first-call-table:begin (bench/first_call.py writes it) -->", "<!-- first-call-table:end -->"


def case(variant):
    t0 = time.perf_counter()
    import expressive_cells
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rshop_backends.jax import GRAD_PASSES
    from rshop_core.cells import LSTMCell

    passes = {"default": None, "split": GRAD_PASSES, "none": ()}[variant]
    b, t_enc, t_dec, d, h = 16, 12, 10, 16, 32
    t1 = time.perf_counter()
    enc = LSTMCell(h, input_dim=d).get_layer(return_sequences=True, seed=0).lower("jax", passes=passes)
    dec = expressive_cells.attention_decoder(d, h, t_enc, h).lower("jax", passes=passes)
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((b, t_enc, d)).astype(np.float32))
    ys = jnp.asarray(rng.standard_normal((b, t_dec, d)).astype(np.float32))

    def loss(pe, pd, xs, ys):
        return jnp.sum(dec.apply(pd, ys, constants=[enc.apply(pe, xs)]) ** 2)

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    t2, c2 = time.perf_counter(), time.process_time()
    lowered = step.lower(enc.params, dec.params, xs, ys)
    t3, c3 = time.perf_counter(), time.process_time()
    compiled = lowered.compile()
    t4, c4 = time.perf_counter(), time.process_time()
    jax.block_until_ready(compiled(enc.params, dec.params, xs, ys))
    t5 = time.perf_counter()
    hlo = compiled.as_text()
    return {
        "variant": variant,
        "import_s": t1 - t0,
        "lower_s": t2 - t1,  # rshop: build, passes, code generation
        "trace_s": t3 - t2,
        "compile_s": t4 - t3,
        "compile_cpu_s": c4 - c3,
        "trace_cpu_s": c3 - c2,
        "first_call_s": t5 - t1,
        "dots": hlo.count(" dot("),
        "fusions": len(re.findall(r"= \S+ fusion\(", hlo)),
        "hlo_lines": hlo.count("\n"),
        "load": os.getloadavg()[0],
    }


def table(rows):
    import statistics

    lines = [
        "| variant | first call s (median) | of which XLA compile s | compile CPU s | trace s | dots | fusions |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v in VARIANTS:
        rs = [r for r in rows if r["variant"] == v]
        if not rs:
            continue

        def med(k, rs=rs):
            return statistics.median(r[k] for r in rs)

        lines.append(
            f"| {v} | {med('first_call_s'):.2f} | {med('compile_s'):.2f} | {med('compile_cpu_s'):.2f} | "
            f"{med('trace_s'):.2f} | {rs[0]['dots']} | {rs[0]['fusions']} |"
        )
    loads = [r["load"] for r in rows]
    lines.append("")
    lines.append(
        f"{len(rows) // len(VARIANTS)} fresh processes per variant, interleaved; load average "
        f"{min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores during the run."
    )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=VARIANTS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-docs", action="store_true", help="print the table; leave docs/performance.md alone")
    args = ap.parse_args(argv)
    if args.case:
        print(json.dumps(case(args.case)))
        return
    rows = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    for _ in range(args.repeats):
        for v in VARIANTS:
            proc = subprocess.run(
                [sys.executable, __file__, "--case", v], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
            )
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr, flush=True)
    out = BENCH / "results" / "first_call.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    text = table(rows)
    if not args.no_docs:
        doc = ROOT / "docs" / "performance.md"
        head, rest = doc.read_text(encoding="utf-8").split(BEGIN)
        doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END)[1]}", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
