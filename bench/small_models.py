"""A small model's training step: TensorFlow eager against ``tf.function``, torch with 1 and 2 threads.

``python bench/small_models.py`` writes bench/results/small_models.json and the table between the
``small-models`` markers of docs/performance.md (``--engine E`` measures one engine and prints JSON).
The model: ``LSTMCell(32, input_dim=16)`` as a layer with ``return_sequences=True``, batch 16,
T 50, float32; one training step is forward, gradients of mean(y ** 2) and an SGD update.
torch runs its fused kernel (the default) and the generic loop (``fast_path=False``).

Timing on a shared machine: the settings of one engine are timed in interleaved rounds (each
round runs every setting ``RUNS`` times and keeps its median); reported: the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH, STEPS, INPUT, HIDDEN = 16, 50, 16, 32
ROUNDS, RUNS = 7, 5
BEGIN, END = "<!-- small-models-table:begin (bench/small_models.py writes it) -->", "<!-- small-models-table:end -->"


def _model():
    from rshop_core.cells import LSTMCell

    return LSTMCell(HIDDEN, input_dim=INPUT).get_layer(return_sequences=True, seed=0)


def _x():
    import numpy as np

    return np.random.default_rng(0).standard_normal((BATCH, STEPS, INPUT)).astype(np.float32)


def tensorflow_settings():
    import tensorflow as tf

    layer = _model().lower("tensorflow")
    x = tf.constant(_x())

    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(layer(x, training=True) ** 2)
        grads = tape.gradient(loss, layer.trainable_variables)
        for v, g in zip(layer.trainable_variables, grads):
            v.assign_sub(0.01 * g)
        return loss

    compiled = tf.function(step, input_signature=[tf.TensorSpec((None, None, INPUT), tf.float32)])
    return {"eager": lambda: step(x).numpy(), "tf.function": lambda: compiled(x).numpy()}


def torch_settings():
    import torch

    x = torch.from_numpy(_x())
    out = {}
    for path, fast in (("fused kernel", True), ("generic loop", False)):
        layer = _model().lower("torch", fast_path=fast)
        opt = torch.optim.SGD(layer.parameters(), lr=0.01)

        def step(layer=layer, opt=opt):
            opt.zero_grad(set_to_none=True)
            (layer(x, training=True) ** 2).mean().backward()
            opt.step()

        for threads in (1, 2):

            def run(step=step, threads=threads):
                torch.set_num_threads(threads)
                step()

            out[f"{path}, set_num_threads({threads})"] = run
    return out


def measure(engine):
    fns = tensorflow_settings() if engine == "tensorflow" else torch_settings()
    for fn in fns.values():
        fn()
        fn()
    medians = {k: [] for k in fns}
    for _ in range(ROUNDS):
        for k, fn in fns.items():
            samples = []
            for _ in range(RUNS):
                t = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t) * 1e3)
            medians[k].append(statistics.median(samples))
    return [{"engine": engine, "setting": k, "ms": statistics.median(v), "rounds": v} for k, v in medians.items()]


def table(meta, rows):
    lines = [
        f"Measured by `python bench/small_models.py` ({os.cpu_count()} cores, load average {meta['load_start']:.1f} at "
        f"the start, {meta['load_end']:.1f} at the end; median over {ROUNDS} interleaved rounds). "
        f"LSTMCell({HIDDEN}), input {INPUT}, batch {BATCH}, T {STEPS}: one training step.",
        "",
        "| engine | setting | ms per training step |",
        "|---|---|---:|",
    ]
    lines += [f"| {r['engine']} | {r['setting']} | {r['ms']:.1f} |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=("tensorflow", "torch"))
    args = ap.parse_args(argv)
    if args.engine:
        print(json.dumps(measure(args.engine)))
        return
    load_start = os.getloadavg()[0]
    rows = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    for engine in ("tensorflow", "torch"):
        proc = subprocess.run(
            [sys.executable, __file__, "--engine", engine], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        rows += json.loads(proc.stdout.strip().splitlines()[-1])
    meta = {"load_start": load_start, "load_end": os.getloadavg()[0]}
    out = ROOT / "bench" / "results" / "small_models.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1), encoding="utf-8")
    doc = ROOT / "docs" / "performance.md"
    head, rest = doc.read_text(encoding="utf-8").split(BEGIN)
    doc.write_text(f"{head}{BEGIN}\n{table(meta, rows)}\n{END}{rest.split(END)[1]}", encoding="utf-8")
    print(table(meta, rows))


if __name__ == "__main__":
    main()
