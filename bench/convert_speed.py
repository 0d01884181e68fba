"""How long the converters take to recognise (or refuse) a model, by size.

``PYTHONPATH=src python bench/convert_speed.py [--repeats N]`` prints one row per case: the first
call (which also builds the cached template of the cell at that size) and the median of the next
``N`` calls, in milliseconds. Cases, for GRU and LSTM with ``units = input_dim`` of 256 and 512:

- ``describe``: recognising the cell of ``Cell(units).get_layer()`` (rshop_core.convert.common);
- ``to_torch``: describe, build the ``torch.nn`` module, copy the weights;
- ``from_torch``: read a ``torch.nn`` module's weights and build the rshop model;
- ``reject``: refusing a 512-unit LSTM step with one op more than an LSTMCell (its ``c`` halved).

The weights are drawn before timing (they are drawn on first use, and drawing is not recognising).
torch is optional: without it only ``describe`` and ``reject`` run. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.convert.common import describe
from rshop_core.errors import RshopConfigError

SIZES = (256, 512)
CELLS = {"GRU": GRUCell, "LSTM": LSTMCell}


def timed(repeats, fn, *args):
    """(first call of ``fn(*args)``, median of ``repeats`` more) in ms."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - start) * 1e3)
    return times[0], statistics.median(times[1:])


def odd_lstm(units):
    """An LSTM step with one extra op: the carried cell state is halved."""
    x, h, c = Input((units,), name="x"), Input((units,), name="h"), Input((units,), name="c")
    y, (h_new, c_new) = LSTMCell(units)(x, [h, c])
    return RecurrentModel(
        input=x, initial_states=[h, c], output=y, final_states=[h_new, F.multiply(c_new, 0.5)], seed=0, name="odd_lstm"
    )


def refuse(model):
    try:
        describe(model, "bench")
    except RshopConfigError:
        return
    raise AssertionError("the odd LSTM step was recognised as a cell")


def cases(repeats):
    try:
        import torch

        from rshop_core.convert import from_torch, to_torch
    except ImportError:
        torch = None
    for units in SIZES:
        for kind, cls in CELLS.items():
            model = cls(units, input_dim=units).get_layer(seed=0, return_sequences=True)
            model.get_weights()  # drawn now, not inside the timings
            yield f"{kind}({units})", "describe", timed(repeats, describe, model, "bench")
            if torch is not None:
                yield f"{kind}({units})", "to_torch", timed(repeats, to_torch, model)
                module = getattr(torch.nn, kind)(units, units, batch_first=True)
                yield f"{kind}({units})", "from_torch", timed(repeats, from_torch, module)
    odd = odd_lstm(SIZES[-1])
    odd.get_weights()
    yield f"LSTM({SIZES[-1]}) + one op", "reject", timed(repeats, refuse, odd)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(f"| model | call | first ms | median ms (of {args.repeats}) |")
    print("|---|---|---:|---:|")
    for model, call, (first, median) in cases(args.repeats):
        print(f"| {model} | {call} | {first:.1f} | {median:.1f} |", flush=True)


if __name__ == "__main__":
    main()
