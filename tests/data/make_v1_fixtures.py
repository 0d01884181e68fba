"""Writes tests/data/v1/*.rshop and expected.npz: model files as format version 1 wrote them.

Made once, by the code of the commit before model kinds became one type (Lowerable), and
committed; tests/unit/test_format_v1_fixtures.py loads them with the current code and
compares their outputs on the numpy engine (float64) with those stored in expected.npz.
Run from the repository root: ``python tests/data/make_v1_fixtures.py`` (it overwrites).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rshop_core import Bidirectional, RecurrentSequential
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell

OUT = Path(__file__).parent / "v1"


def perturbed(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights(
        {k: (v + 0.1 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in model.get_weights().items()}
    )
    return model


def models():
    lstm = LSTMCell(4, input_dim=3).get_layer(name="lstm_v1", seed=1, return_sequences=True, return_states=True)
    seq = RecurrentSequential(name="stack_v1", seed=2, return_sequences=True)
    seq.add(GRUCell(4, input_dim=3))
    seq.add(SimpleRNNCell(2))
    seq.build()
    bi = Bidirectional(
        GRUCell(3, input_dim=3).get_layer(name="gru_v1", seed=3, return_sequences=True, return_states=True),
        merge_mode="concat",
    )
    return {"lstm": perturbed(lstm, 10), "sequential": perturbed(seq, 11), "bidirectional": perturbed(bi, 12)}


def main():
    OUT.mkdir(exist_ok=True)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    expected = {"x": x}
    for name, model in models().items():
        model.save(OUT / f"{name}.rshop")
        out = model.lower("numpy", "float64")(x)
        for i, y in enumerate(out if isinstance(out, tuple) else (out,)):
            expected[f"{name}/{i}"] = np.asarray(y)
    np.savez(OUT / "expected.npz", **expected)


if __name__ == "__main__":
    main()
