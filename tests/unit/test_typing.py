"""What typing rshop_core changed: the names mypy now sees in `functional` are exactly the ops, and a bare
initializer name that needs arguments is refused with an RshopConfigError (a raw TypeError before). The
type checker's setup is checked with the other project files (test_project_files.py)."""

from __future__ import annotations

import pytest

from rshop_core import functional as F
from rshop_core import initializers
from rshop_core.errors import RshopConfigError
from rshop_core.ops import COMPARE, ELEMENTWISE_BINARY, ELEMENTWISE_UNARY, Op
from rshop_core.symbolic import Input


def test_functional_spells_out_one_function_per_elementwise_op():
    for op in ELEMENTWISE_BINARY + COMPARE + ELEMENTWISE_UNARY:
        f = getattr(F, op)
        assert f.__name__ == op and op in F.__all__
    a, b = Input((3,), name="a"), Input((3,), name="b")
    assert F.add(a, b).op == Op.ADD and F.greater(a, b).op == Op.GREATER and F.hard_sigmoid(a).op == Op.HARD_SIGMOID
    assert F.greater(a, b).dtype == "bool" and F.tanh(a).shape == (3,)


def test_bare_initializer_name_that_needs_arguments_is_a_config_error():
    with pytest.raises(RshopConfigError) as e:
        initializers.get("concatenate", "LSTMCell 'c' bias_initializer")
    msg = str(e.value)
    assert msg.startswith("LSTMCell 'c' bias_initializer: initializer 'concatenate'")
    assert "expected arguments of Concatenate, received []" in msg
    # the names that need nothing still make their initializer, and a dict with arguments still works
    assert isinstance(initializers.get("zeros"), initializers.Zeros)
    joined = initializers.get({"name": "concatenate", "parts": [[2, "zeros"], [1, "ones"]]})
    assert joined((3,), "float64").tolist() == [0.0, 0.0, 1.0]
