"""Type rules, literals, forward-mode tangents and time-parallel analysis of cast and the shape / index ops
(the engines' numbers are in tests/conformance/test_ops_dtypes_shapes.py)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.parallel_helpers import Point, compile_graph
from tests.unit.test_parallel_structure import hand, param

from rshop_core import Input
from rshop_core import functional as F
from rshop_core.errors import RshopConfigError, RshopDTypeError, RshopShapeError
from rshop_core.parallel import analyze, jvp_graph


def test_types_of_the_new_ops():
    enc, ids = Input((None, 4)), Input((2,), "int32")
    assert F.expand_dims(enc, 0).shape == (1, None, 4) and F.expand_dims(enc, -1).shape == (None, 4, 1)
    assert F.squeeze(Input((1, 3, 1)), [0, -1]).shape == (3,)
    assert F.reshape(enc, (None, 2, 2)).shape == (None, 2, 2)
    assert F.reshape(enc, [-1]).shape == (None,)
    assert F.min(enc, axes=-1, keepdims=True).shape == (None, 1)
    top = F.argmax(enc, axis=0)
    assert (top.shape, top.dtype) == ((4,), "int32")
    assert F.argmax(enc, keepdims=True).shape == (None, 1)
    assert F.logsumexp(enc, axes=[0]).shape == (4,)
    assert F.cumsum(ids, reverse=True).type == ids.type
    picked = F.gather(enc, ids, axis=0)
    assert (picked.shape, picked.type.batched) == ((2, 4), True)
    table = F.gather(param("t/table", (5, 3)), ids, axis=0)
    assert (table.shape, table.type.batched) == ((2, 3), True)
    assert F.take(enc, [1, 0, 1], axis=-1).shape == (None, 3)
    assert F.cast(F.greater(enc, 0.0), "float32").dtype == "float32"
    assert (enc - Input((4,))).shape == (None, 4)  # (T, d) - (d,), both batched


def test_literals_keep_bool_and_int32():
    mask, pos = Input((3,), "bool"), Input((3,), "int32")
    assert F.equal(mask, True).inputs[1].dtype == "bool"
    assert F.equal(pos, 2).inputs[1].dtype == "int32"
    assert F.constant([True, False], dtype="bool").dtype == "bool"
    assert F.where(mask, pos, 0).dtype == "int32"
    with pytest.raises(RshopConfigError, match=r"constant: expected integers next to an int32 value, received 2.5"):
        pos + 2.5


def test_errors_name_the_node_and_the_fix():
    mask, pos, x = Input((3,), "bool"), Input((3,), "int32"), Input((3,))
    with pytest.raises(
        RshopDTypeError, match=r"node 'add' \(op add\): expected numeric operands .*\(cast\(mask, 'float32'\)\)"
    ):
        mask + mask
    with pytest.raises(RshopDTypeError, match=r"node 'divide' \(op divide\): expected floating operands"):
        pos / pos
    with pytest.raises(RshopDTypeError, match=r"node 'cast' \(op cast\): expected a dtype in .* received 'int64'"):
        F.cast(x, "int64")
    with pytest.raises(RshopDTypeError, match=r"node 'g' \(op gather\): expected int32 indices, received float32"):
        F.gather(x, x, name="g")
    with pytest.raises(
        RshopShapeError, match=r"node 'gather' \(op gather\): expected indices in \[0, 3\) along axis 0"
    ):
        F.gather(x, [0, 3])
    with pytest.raises(RshopShapeError, match=r"node 'squeeze' \(op squeeze\): expected axis -1 of size 1"):
        F.squeeze(x, -1)
    with pytest.raises(RshopShapeError, match=r"expected a shape with one -1 \(or None\) whose other dimensions"):
        F.reshape(Input((None, 4)), (None, 3))
    with pytest.raises(RshopDTypeError, match=r"node 'logsumexp' \(op logsumexp\): expected a floating operand"):
        F.logsumexp(pos)
    with pytest.raises(RshopDTypeError, match=r"node 'argmax' \(op argmax\): expected a numeric operand"):
        F.argmax(mask)
    with pytest.raises(RshopConfigError, match=r"node 'cumsum' \(op cumsum\): expected reverse as True or False"):
        F.cumsum(x, reverse=1)


def every_new_op(x, s, k):
    """A step graph touching every new op on the way to its final states."""
    (h,) = s  # (4,)
    rows = F.reshape(F.concat([h, h * 0.5]), (2, 4))  # (2, 4)
    i = F.argmax(rows, axis=-1)  # (2,) int32
    picked = F.gather(rows, F.minimum(i, 1), axis=0)  # (2, 4): indices read the state (no tangent)
    spread = F.cumsum(h, reverse=True) - F.cumsum(h, exclusive=True)
    lse = F.logsumexp(rows, axes=[0], keepdims=True)  # (1, 4)
    low = F.min(rows * rows, axes=[0])  # (4,)
    wide = F.cast(F.cast(h, "float64"), "float32")  # float -> float: the tangent passes
    flag = F.cast(F.cast(F.greater(h, 0.0), "int32"), "float32")  # no tangent through bool / int
    out = F.squeeze(F.expand_dims(wide, 0), 0) * flag + F.sum(picked, axes=[0]) * 0.1 + spread * 0.2
    return [F.tanh(out + F.squeeze(lse, 0) * 0.3 + low * 0.1 + F.matmul(x, param("w/kernel", (3, 4))))]


def test_tangents_of_the_new_ops_match_central_differences():
    g = hand(every_new_op)
    p = Point(g, batch=3, seed=4)
    seed = np.random.default_rng(1).standard_normal(4)
    out, _ = p.run(compile_graph(jvp_graph(g, [[seed]])))
    s0 = p.flat(p.states)
    eps = 1e-6
    step = compile_graph(g)
    fd = (p.finals(step, s0 + eps * seed) - p.finals(step, s0 - eps * seed)) / (2 * eps)
    np.testing.assert_allclose(p.flat([out[1]]), fd, rtol=1e-6, atol=1e-7)


def test_analysis_sees_through_non_float_values():
    """A where on an argmax of the state is not affine; float casts and shape ops keep a diagonal Jacobian."""
    gated = hand(lambda x, s, k: [F.where(F.equal(F.argmax(s[0], keepdims=True), 0), s[0] * 0.5, s[0])])
    assert not analyze(gated).affine
    kept = hand(
        lambda x, s, k: [
            F.squeeze(F.expand_dims(F.cast(s[0], "float32"), 0), 0) * 0.5 + F.matmul(x, param("w/kernel", (3, 4)))
        ]
    )
    a = analyze(kept)
    assert a.affine and a.structure == "diagonal"
    truncated = hand(lambda x, s, k: [F.cast(F.cast(s[0], "int32"), "float32")])
    assert not analyze(truncated).affine
