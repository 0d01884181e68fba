"""rshop_core.parallel.jvp_graph, jacobian_seeds and group_layout: tangents evaluated by the numpy
engine's generated code in float64, compared with central finite differences of the step itself."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conformance.cases import CASES
from tests.unit.parallel_helpers import Point, compile_graph
from tests.unit.test_activations_math import math_ops_step
from tests.unit.test_parallel_structure import elementwise_lstm, grouped_einsum, hand, ind_rnn, param

from rshop_core import Input
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.errors import RshopConfigError, RshopDTypeError, RshopNotImplementedError, RshopShapeError
from rshop_core.execution import plan_for
from rshop_core.ops import Op
from rshop_core.parallel import analyze, group_layout, jacobian_seeds, jvp_graph
from rshop_core.tracing import trace


def extra_ops(x, s, k):
    """The ops TwoStateCell and the attention case leave out: einsum of two state-dependent operands,
    split, where with tangents on both branches, maximum/minimum of two state values, abs around zero."""
    h, m = s  # (4,), (2, 3)
    a, b = F.split(h, 2)
    outer = F.einsum("i,j->ij", a, b)  # (2, 2)
    mix = F.einsum("ij,jk->ik", outer, m)  # (2, 3)
    picked = F.where(F.greater(m, 0.0), F.exp(m * 0.3), F.square(m) + mix)
    h2 = F.maximum(h, F.slice(F.reshape(picked, [6]), 0, 4)) - F.minimum(F.abs(h), F.softplus(h))
    c = F.reshape(F.transpose(picked, [1, 0]), [6])
    m2 = F.reshape(F.mean(F.reshape(c, [3, 2]), axes=[-1], keepdims=True), [3])
    h3 = F.concat([F.slice(h2, 0, 1), F.matmul(F.concat([m2, k[0]]), param("w/k", (5, 3)))])
    return [h3 / (2.0 + F.sigmoid(h3)), F.log(1.0 + F.square(picked)) + F.max(mix, axes=[0], keepdims=True)]


def graph_of(name):
    if name == "extra_ops":
        return hand(extra_ops, ((4,), (2, 3)), constants=((2,),))
    if name == "math_ops":
        return hand(math_ops_step, ((12,),))
    return plan_for(CASES[name].build(), training=False, teacher=False, masked=False).graph


NAMES = ["two_state_custom", "attention", "lstm_variant", "gru", "extra_ops", "math_ops"]


@pytest.fixture(scope="module")
def graphs():
    return {n: graph_of(n) for n in NAMES}


def _tangents(graph, seeds, point):
    out, finals = point.run(compile_graph(jvp_graph(graph, seeds)))
    s = len(graph.states)
    return out[:s], finals, [out[s * (1 + c) : s * (2 + c)] for c in range(len(seeds))]


@pytest.mark.parametrize("name", NAMES)
def test_tangents_match_central_differences(graphs, name):
    g = graphs[name]
    p = Point(g, batch=4, seed=1)
    rng = np.random.default_rng(2)
    seeds = [[rng.standard_normal(g.nodes[i].type.shape) for i in g.states] for _ in range(2)]
    primal, finals, tangents = _tangents(g, seeds, p)
    reference = p.run(compile_graph(g))[1]
    for f, r, q in zip(primal, finals, reference):
        np.testing.assert_allclose(f, r, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(q, r, rtol=1e-13, atol=1e-13)
    s0 = p.flat(p.states)
    eps = 1e-6
    for c, direction in enumerate(seeds):
        v = np.broadcast_to(np.concatenate([d.reshape(-1) for d in direction]), s0.shape)
        fd = (p.finals(compile_graph(g), s0 + eps * v) - p.finals(compile_graph(g), s0 - eps * v)) / (2 * eps)
        got = p.flat(tangents[c])
        assert got.shape == fd.shape
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


def test_every_op_of_the_closed_set_has_a_rule_and_the_cases_touch_the_differentiable_ones(graphs):
    from rshop_core.ops import op_names
    from rshop_core.parallel.jvp import _RULES

    assert set(op_names()) - set(_RULES) == {Op.INPUT}
    touched = {n.op for g in graphs.values() for n in g.nodes}
    # custom: no derivative rule (refused, tests/unit/test_custom_ops.py)
    untouched = set(op_names()) - touched - {Op.DROPOUT, Op.LESS, Op.LESS_EQUAL, Op.GREATER_EQUAL, Op.EQUAL, Op.CUSTOM}
    # cast and the shape / index ops: their tangents are checked in tests/unit/test_ops_dtypes_shapes.py
    untouched -= {Op.CAST, Op.EXPAND_DIMS, Op.SQUEEZE, Op.MIN, Op.ARGMAX, Op.LOGSUMEXP, Op.CUMSUM, Op.GATHER}
    assert untouched == set(), untouched


def test_result_keeps_the_arguments_and_lists_values_then_tangents(graphs):
    g = graphs["two_state_custom"]
    seeds = [[np.ones(g.nodes[i].type.shape, np.float32) for i in g.states]] * 3
    j = jvp_graph(g, seeds)
    for role in ("x", "states", "constants"):
        assert [j.nodes[i].type for i in getattr(j, role)] == [g.nodes[i].type for i in getattr(g, role)]
        assert [j.nodes[i].name for i in getattr(j, role)] == [g.nodes[i].name for i in getattr(g, role)]
    assert len(j.outputs) == len(g.states) * 4
    assert j.final_states == j.outputs[: len(g.states)]
    assert all(j.nodes[o].type.batched for o in j.outputs)


def test_state_free_parts_emit_no_tangent():
    """A matmul of x only has no tangent: the JVP graph adds nothing for it."""
    g = hand(ind_rnn)
    j = jvp_graph(g, [[np.ones(4, np.float32)]])
    assert sum(n.op == Op.MATMUL for n in j.nodes) == 1
    assert sum(n.op == Op.TANH for n in j.nodes) == 1  # the tangent reuses the primal tanh


def test_zero_seed_gives_exact_zero_tangents():
    g = hand(elementwise_lstm, ((4,), (4,)))
    p = Point(g, seed=5)
    _, _, tangents = _tangents(g, [[np.zeros(4), np.zeros(4)]], p)
    assert all(np.array_equal(t, np.zeros_like(t)) for t in tangents[0])


@pytest.mark.parametrize(
    "build, shapes",
    [(elementwise_lstm, ((4,), (4,))), (grouped_einsum, ((8,),)), (ind_rnn, ((4,),))],
    ids=["block2", "strided_block4", "diagonal"],
)
def test_seeds_recover_the_block_entries_of_the_jacobian(build, shapes):
    g = hand(build, shapes)
    a = analyze(g)
    seeds = jacobian_seeds(a, g)
    assert len(seeds) == a.block
    layout = group_layout(a)
    assert layout.shape == (len(a.groups), a.block)
    p = Point(g, seed=7)
    J = p.jacobian(compile_graph(g))
    _, _, tangents = _tangents(g, seeds, p)
    flat = np.stack([p.flat(t) for t in tangents], axis=-1)  # (batch, N, k): tangent c at element i
    blocks = flat[:, layout, :]  # (batch, groups, k rows, k colors)
    for r, grp in enumerate(a.groups):
        want = J[:, np.ix_(grp, grp)[0], np.ix_(grp, grp)[1]]
        np.testing.assert_allclose(blocks[:, r, : len(grp), : len(grp)], want, rtol=1e-6, atol=1e-8)


def test_dense_seeds_are_the_identity_and_give_the_whole_jacobian():
    g = LSTMCell(2, input_dim=3).get_layer(seed=0).graph
    a = analyze(g)
    seeds = jacobian_seeds(a, g)
    assert a.structure == "dense" and len(seeds) == 4
    p = Point(g, seed=8)
    _, _, tangents = _tangents(g, seeds, p)
    got = np.stack([p.flat(t) for t in tangents], axis=-1)
    np.testing.assert_allclose(got, p.jacobian(compile_graph(g)), rtol=1e-6, atol=1e-8)


def test_max_ties_share_the_tangent_equally():
    h = Input((3,), name="h", dtype="float64")
    x = Input((1,), name="x", dtype="float64")
    top = F.max(h, axes=[-1], keepdims=True)
    g = trace([x], [h], [], [h * 0.0 + top], [h * 0.0 + top], "ties")
    p = Point(g, batch=1)
    p.states = [np.array([[2.0, 2.0, -1.0]])]
    _, _, tangents = _tangents(g, [[np.array([1.0, 3.0, 5.0])]], p)
    np.testing.assert_array_equal(tangents[0][0], [[2.0, 2.0, 2.0]])  # mean of 1 and 3


def test_dropout_is_refused_naming_the_node():
    g = GRUCell(2, input_dim=3, dropout=0.25).get_layer(seed=0).graph
    node = next(n for n in g.nodes if n.op == Op.DROPOUT)
    with pytest.raises(RshopNotImplementedError) as e:
        jvp_graph(g, [[np.ones(2, np.float32)]])
    assert f"node %{node.id} {node.name!r} (op dropout)" in str(e.value) and "plan_for" in str(e.value)


def test_bad_seeds_are_refused():
    g = hand(ind_rnn)
    with pytest.raises(RshopShapeError, match=r"jvp of a step graph: expected seed \[0\]\[0\] of the per-example"):
        jvp_graph(g, [[np.ones(3)]])
    with pytest.raises(RshopConfigError, match=r"expected one seed per state \(1\) in direction 0, received 2"):
        jvp_graph(g, [[np.ones(4), np.ones(4)]])
    with pytest.raises(RshopConfigError, match=r"expected seed \[0\]\[0\] of finite floats, received int64"):
        jvp_graph(g, [[np.ones(4, np.int64)]])
    s = Input((2,), "int32", name="count")
    xi = Input((1,), name="x")
    gi = trace([xi], [s], [], [xi], [s], "int state")
    with pytest.raises(RshopDTypeError, match="expected floating states to differentiate, received state #0 'count'"):
        jvp_graph(gi, [[np.ones(2)]])
