"""Initializers: the documented distributions, seeded by (model seed, parameter name)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rshop_core import initializers as I
from rshop_core.errors import RshopConfigError


def draw(init, shape=(200, 300), name="p"):
    return I.get(init)(shape, "float64", I.rng_for(0, name))


def test_deterministic_by_seed_and_name():
    a = draw("glorot_uniform")
    np.testing.assert_array_equal(a, draw("glorot_uniform"))
    assert not np.array_equal(a, draw("glorot_uniform", name="q"))


def test_glorot_uniform_limit_and_variance():
    a = draw("glorot_uniform")
    lim = math.sqrt(6 / 500)
    assert np.abs(a).max() <= lim
    assert abs(a.var() - 2 / 500) < 0.05 * 2 / 500


@pytest.mark.parametrize("name,var", [("glorot_normal", 2 / 500), ("he_normal", 2 / 200)])
def test_truncated_variance_scaling(name, var):
    a = draw(name)
    assert abs(a.var() - var) < 0.05 * var
    assert np.abs(a).max() <= 2 * math.sqrt(var) / 0.87962566103423978 + 1e-12


def test_he_uniform_limit():
    assert np.abs(draw("he_uniform")).max() <= math.sqrt(6 / 200)


def test_orthogonal_and_identity():
    q = draw(I.Orthogonal(gain=2.0), (6, 10))
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(6), atol=1e-12)
    np.testing.assert_array_equal(draw("identity", (3, 4)), np.eye(3, 4))


def test_simple_and_random():
    assert draw("zeros", (2,)).tolist() == [0, 0]
    assert draw("ones", (2,)).tolist() == [1, 1]
    assert draw(I.Constant(0.01), (2,)).tolist() == [0.01, 0.01]
    u = draw(I.RandomUniform(-1, 2))
    assert u.min() >= -1 and u.max() <= 2 and abs(u.mean() - 0.5) < 0.02
    n = draw(I.RandomNormal(1.0, 0.5))
    assert abs(n.mean() - 1.0) < 0.01 and abs(n.std() - 0.5) < 0.01
    t = draw(I.TruncatedNormal(0.0, 1.0))
    assert np.abs(t).max() <= 2.0


def test_concatenate_lstm_forget_bias():
    b = draw(I.Concatenate([(2, "zeros"), (2, "ones"), (4, "zeros")]), (8,))
    assert b.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]


def test_json_round_trip_and_errors():
    for init in [
        I.Constant(0.5),
        I.RandomNormal(0.1, 2.0),
        I.Orthogonal(3.0),
        I.Concatenate([(1, "zeros"), (2, I.Constant(2.0))]),
    ]:
        assert I.get(init.to_json()) == init
    with pytest.raises(RshopConfigError, match=r"initializer 'constant' expected arguments of Constant"):
        I.get({"name": "constant", "valu": 1})
    with pytest.raises(RshopConfigError, match="expected a finite number"):
        I.Constant(float("nan"))
