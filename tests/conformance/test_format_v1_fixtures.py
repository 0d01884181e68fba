"""Files written by format version 1 (tests/data/v1, made by tests/data/make_v1_fixtures.py before
model kinds became one type) still load, and compute on every engine what they computed then."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rshop_core
from rshop_core import serialization

from .conftest import assert_close, run
from .tolerances import FORWARD_ATOL

DATA = Path(__file__).parents[1] / "data" / "v1"
EXPECTED = dict(np.load(DATA / "expected.npz"))
KINDS = {"lstm": "RecurrentModel", "sequential": "RecurrentModel", "bidirectional": "Bidirectional"}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_v1_file_loads_and_computes_what_it_did(engine, name):
    model = rshop_core.load(DATA / f"{name}.rshop")
    assert serialization.to_document(model)["kind"] == KINDS[name]
    want = tuple(EXPECTED[k] for k in sorted(k for k in EXPECTED if k.startswith(f"{name}/")))
    assert len(want) > 0
    assert_close(run(model, engine, EXPECTED["x"]), want, FORWARD_ATOL["float32"], f"{engine}/{name} v1 file")


@pytest.mark.parametrize("name", sorted(KINDS))
def test_v1_file_saves_back_to_the_same_document(name, tmp_path):
    model = rshop_core.load(DATA / f"{name}.rshop")
    again = rshop_core.load(model.save(tmp_path / "again.rshop"))
    assert serialization.to_document(again) == serialization.to_document(model)
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(again.get_weights()[k], v)
