"""Cold-start cost of one implementation, in a fresh process:
``python bench/probe.py KIND NAME WORKLOAD MODE`` prints one JSON line.

- first_ms: build (rshop: lowering) + trace/compile + the first call of MODE, with the framework
  already imported (import time is not counted) and nothing cached in the process.
- peak_mb: the process's RSS high-water mark (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after
  that first call, minus the RSS once the framework was imported and the data made.
- call_mb: the memory one steady-state call needs: the kernel's high-water mark is reset
  (``/proc/self/clear_refs`` 5) after the first call, one more call runs, and its VmHWM minus
  the RSS before it is reported (Linux only; None elsewhere).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import registry


def _status_kb(field):
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _import_framework(family, name):
    """Import and initialise the family's framework (and Keras for a Keras case), so that neither
    counts as the first call."""
    engine = registry.engine_of(family)
    if name.startswith("Keras"):
        import keras  # noqa: F401
    if engine == "torch":
        import torch

        torch.set_num_threads(2)
        torch.ones(2) @ torch.ones(2)
    elif engine == "jax":
        import jax.numpy as jnp

        (jnp.ones(2) @ jnp.ones(2)).block_until_ready()
    else:
        import tensorflow as tf

        (tf.ones((1, 2)) @ tf.ones((2, 1))).numpy()


def probe(kind, name, workload, mode, quick):
    family, factory = registry.IMPLS[(kind, name)]
    registry.prepare(family)
    import workloads as wl

    _import_framework(family, name)
    x = wl.inputs(workload, quick)
    _, _, d_in, hidden = wl.sizes(workload, quick)
    w = wl.short_weights(wl.rshop_model(kind, d_in, hidden))
    base_kb = _status_kb("VmRSS")
    t = time.perf_counter()
    impl = factory(w, x)
    call = impl.fwd if mode == "fwd" else impl.fb
    call()
    first_ms = (time.perf_counter() - t) * 1e3
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kb) / 1024
    call_mb = None
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        before = _status_kb("VmRSS")
        call()
        call_mb = (_status_kb("VmHWM") - before) / 1024
    except OSError:
        pass
    return {
        "kind": kind,
        "name": name,
        "workload": workload,
        "mode": mode,
        "family": family,
        "first_ms": first_ms,
        "peak_mb": peak_mb,
        "call_mb": call_mb,
        "base_mb": base_kb / 1024,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind")
    ap.add_argument("name")
    ap.add_argument("workload")
    ap.add_argument("mode", choices=("fwd", "fb"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(json.dumps(probe(args.kind, args.name, args.workload, args.mode, args.quick)))


if __name__ == "__main__":
    main()
