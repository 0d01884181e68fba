"""Shape and dtype errors surface while the step graph is built, naming the node."""

from __future__ import annotations

import pytest

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.errors import RshopConfigError, RshopDTypeError, RshopShapeError
from rshop_core.layers import Dense


def test_elementwise_broadcast_and_batch():
    a, b = Input((3, 4)), Input((4,))
    assert (a + F.constant([1.0, 2.0, 3.0, 4.0])).shape == (3, 4)
    assert (a + b).shape == (3, 4)  # numpy broadcasting per example; engines line the batch axes up
    with pytest.raises(RshopShapeError, match="expected shapes that broadcast"):
        Input((3,)) + Input((4,))


def test_matmul_rules():
    x = Input((5,))
    w = Dense(3)
    assert w(x).shape == (3,)
    with pytest.raises(RshopShapeError, match="right operand that is an unbatched 2-D matrix"):
        F.matmul(x, Input((5, 3)))
    with pytest.raises(RshopShapeError, match="a left operand whose last axis is 5"):
        F.matmul(Input((4,)), w._weights["kernel"])
    with pytest.raises(RshopShapeError, match=r"weight 'kernel': expected shape \(5, 3\) \(built by an earlier call\)"):
        w(Input((4,)))  # the kernel was built for 5 features by the first call


def test_dtype_mismatch_is_an_error():
    with pytest.raises(RshopDTypeError, match="operands of one dtype"):
        Input((3,), dtype="float32") + Input((3,), dtype="float64")
    with pytest.raises(RshopDTypeError, match="a floating operand"):
        F.tanh(Input((3,)) > 0.0)


def test_axes_are_per_example_and_normalized():
    x = Input((2, 6))
    assert F.softmax(x, axis=1).attrs["axis"] == -1
    assert F.sum(x, axes=0).shape == (6,)
    assert F.mean(x, keepdims=True).shape == (1, 1)
    with pytest.raises(RshopConfigError, match=r"expected an axis in \[-2, 2\)"):
        F.softmax(x, axis=2)


def test_split_slice_reshape_transpose_concat():
    x = Input((12,))
    parts = F.split(x, [2, 4, 6])
    assert [p.shape for p in parts] == [(2,), (4,), (6,)]
    assert F.slice(x, 3, 5).shape == (2,)
    assert F.reshape(x, [3, -1]).shape == (3, 4)
    assert F.transpose(F.reshape(x, [3, 4]), [1, 0]).shape == (4, 3)
    assert F.concat([x, x]).shape == (24,)
    with pytest.raises(RshopShapeError, match="expected sizes adding up to 12"):
        F.split(x, [5, 5])
    with pytest.raises(RshopShapeError, match="divisible into 5 equal pieces"):
        F.split(x, 5)
    with pytest.raises(RshopShapeError, match="expected a shape with 12 elements per example"):
        F.reshape(x, [5, 2])
    with pytest.raises(RshopConfigError, match=r"0 <= begin < end <= 12"):
        F.slice(x, 4, 13)
    with pytest.raises(RshopShapeError, match="all batched or all unbatched"):
        F.concat([x, F.constant([1.0])])


def test_einsum_checks():
    a, b = Input((7, 8)), Input((8,))
    assert F.einsum("td,d->t", a, b).shape == (7,)
    with pytest.raises(RshopConfigError, match=r"without '\.\.\.'"):
        F.einsum("...d,d->...", a, b)
    with pytest.raises(RshopShapeError, match="axis 'd' of size 8"):
        F.einsum("td,d->t", a, Input((9,)))
    with pytest.raises(RshopConfigError, match="output subscripts taken from the operands"):
        F.einsum("td,d->q", a, b)


def test_where_needs_bool():
    x = Input((3,))
    assert F.where(x > 0.0, x, 0.0).shape == (3,)
    with pytest.raises(RshopDTypeError, match="a bool condition"):
        F.where(x, x, x)


def test_python_condition_on_symbolic_tensor():
    with pytest.raises(RshopConfigError, match=r"[uU]se rshop_core\.functional\.where"):
        if Input((3,)) > 0.0:
            pass


def test_undeclared_input_is_named():
    x, h, stray = Input((3,)), Input((3,)), Input((3,), name="stray")
    y = x + h + stray
    with pytest.raises(RshopConfigError, match="reads Input 'stray'"):
        RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y])
