"""Timing policy and the timer: warm-up calls, then the best of ``repeats`` medians of ``runs`` calls."""

from __future__ import annotations

import statistics
import time

# per workload: warm-up calls, repeats, (min, max) runs per repeat, seconds budget per repeat
FULL = {"W1": (2, 3, (3, 15), 0.3), "W2": (2, 3, (3, 15), 0.3), "W3": (1, 1, (2, 3), 4.0)}
QUICK = (1, 1, (3, 3), 0.0)
SLOW_S = 10.0  # a warm-up call slower than this is the measurement itself (runs = 0): it would dominate the run


def policy(workload, quick):
    return QUICK if quick else FULL[workload]


def measure(fn, workload, quick):
    """ms: the min over repeats of the median of runs; plus every median and the runs used."""
    warmup, repeats, (lo, hi), budget = policy(workload, quick)
    t = time.perf_counter()
    for _ in range(warmup):  # traces, compiles, warms the allocator
        t = time.perf_counter()
        fn()
    last = time.perf_counter() - t
    runs = max(lo, min(hi, int(budget / max(last, 1e-6))))
    if last > SLOW_S:
        return {"ms": last * 1e3, "medians": [last * 1e3], "runs": 0}
    medians = []
    for _ in range(repeats):
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t) * 1e3)
        medians.append(statistics.median(samples))
    return {"ms": min(medians), "medians": medians, "runs": runs}
