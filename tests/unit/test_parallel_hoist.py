"""rshop_core.parallel.hoist: the state-free prefix and the remainder compute what the whole graph
computes, and the zero-state form of a coefficient graph equals the graph evaluated at zero states
(numpy float64, the numpy engine's generated code, random weights and inputs)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.parallel_helpers import Point, compile_graph
from tests.unit.test_parallel_structure import GRAPHS, hand, ind_rnn, param

from rshop_core import functional as F
from rshop_core.execution import plan_for
from rshop_core.ops import LEAVES
from rshop_core.parallel import analyze, jacobian_seeds, jvp_graph
from rshop_core.parallel.hoist import at_zero_states, split, state_free
from rshop_core.parallel.loop_plan import attach


def gated_ind_rnn(x, s, k):
    """A Newton cell with a gate from x alone: g = sigmoid(x W_g), h' = g·tanh(x W + u·h) + (1 - g)·h."""
    g = F.sigmoid(F.matmul(x, param("w/gate", (3, 4))))
    cand = F.tanh(F.matmul(x, param("w/kernel", (3, 4))) + s[0] * param("w/u", (4,)))
    return [g * cand + (1.0 - g) * s[0]]


def const_gated(x, s, k):
    """A gate from a loop constant and x, a state-free value returned as is (the output is the gate)."""
    g = F.sigmoid(F.matmul(F.concat([x, k[0]]), param("w/gate", (5, 4))))
    return [F.tanh(g * s[0] + F.matmul(x, param("w/kernel", (3, 4)))), g]


def const_gated_graph():
    from rshop_core import Input
    from rshop_core.tracing import trace

    x, h, k = Input((3,), name="x"), Input((4,), name="s0"), Input((2,), name="k0")
    h_new, g = const_gated(x, [h], [k])
    return trace([x], [h], [k], [h_new, g], [h_new], "test graph")


CELLS = {
    **{name: GRAPHS[name] for name in ("min_gru", "ind_rnn", "elementwise_lstm", "grouped_einsum")},
    **{name: GRAPHS[name] for name in ("min_gru_masked", "min_gru_masked_zero", "min_gru_readout", "min_gru_teacher")},
    "gated_ind_rnn": lambda: hand(gated_ind_rnn),
    "const_gated": const_gated_graph,
    "case_indrnn": GRAPHS["case_indrnn"],
    "case_min_gru": GRAPHS["case_min_gru"],
}


def coefficients(graph):
    return jvp_graph(graph, jacobian_seeds(analyze(graph), graph), "test coefficients")


def run_split(graph, point):
    """The graph's (outputs, final states) computed as the prefix and then the remainder."""
    cut = split(graph, "test")
    assert cut is not None
    pre, pre_finals = compile_graph(cut.prefix)(point.P, *point.xs, [], point.consts)
    assert len(pre_finals) == 0 and len(pre) == cut.hoisted
    xs = [point.xs[k] for k in cut.keep] + list(pre)
    return compile_graph(cut.remainder)(point.P, *xs, point.states, point.consts)


def same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        w = np.asarray(w, np.float64)
        np.testing.assert_allclose(np.broadcast_to(g, w.shape), w, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("which", ["step", "coefficients"])
def test_prefix_and_remainder_compute_the_whole_graph(name, which):
    graph = CELLS[name]()
    if which == "coefficients":
        graph = coefficients(graph)
    if not state_free(graph):
        assert split(graph, "test") is None
        pytest.skip(f"{name} {which}: no state-free value to hoist (checked: split gives None)")
    for seed in (0, 1):
        p = Point(graph, batch=5, seed=seed)
        want_out, want_finals = p.run(compile_graph(graph))
        got_out, got_finals = run_split(graph, p)
        same(got_out, want_out)
        same(got_finals, want_finals)


@pytest.mark.parametrize("name", ["gated_ind_rnn", "const_gated", "min_gru", "case_min_gru", "min_gru_readout"])
def test_the_remainder_reads_no_state_free_op(name):
    """Every op left in the remainder reads a state (directly or through other ops): the hoisted
    part is all of it."""
    graph = coefficients(CELLS[name]())
    cut = split(graph, "test")
    assert cut is not None and cut.hoisted >= 1
    rest = cut.remainder
    assert not state_free(rest)
    assert all(n.op in LEAVES for n in cut.prefix.nodes if n.id in cut.prefix.states)
    assert not cut.prefix.states


def test_the_gated_newton_cell_hoists_its_gate_and_projection():
    graph = coefficients(hand(gated_ind_rnn))
    ops_before = sum(n.op not in LEAVES for n in graph.nodes)
    cut = split(graph, "test")
    assert cut is not None
    ops_after = sum(n.op not in LEAVES for n in cut.remainder.nodes)
    # the two matmuls, the sigmoid and 1 - g leave the per-iteration graph
    assert ops_before - ops_after >= 4
    assert {n.op for n in cut.prefix.nodes} >= {"matmul", "sigmoid"}
    assert "matmul" not in {n.op for n in cut.remainder.nodes if n.inputs and n.inputs[0] in cut.remainder.x}


def test_a_graph_whose_every_op_reads_a_state_is_not_split():
    from rshop_core import Input
    from rshop_core.tracing import trace

    x, h = Input((4,), name="x"), Input((4,), name="h")
    h_new = F.tanh(h * param("w/u", (4,)) + x)
    graph = trace([x], [h], [], [h_new], [h_new], "test graph")
    assert not state_free(graph)
    assert split(graph, "test") is None


AFFINE = ["min_gru", "min_gru_readout", "min_gru_teacher", "case_min_gru"]


@pytest.mark.parametrize("name", AFFINE)
def test_zero_state_form_equals_the_graph_at_zero_states(name):
    graph = coefficients(CELLS[name]())
    zero = at_zero_states(graph, "test")
    assert zero is not None, f"{name}: every zero should fold"
    assert not zero.states and not zero.final_states
    p = Point(graph, batch=4, seed=3)
    zeros = [np.zeros_like(s) for s in p.states]
    want, _ = p.run(compile_graph(graph), zeros)
    got, _ = compile_graph(zero)(p.P, *p.xs, [], p.consts)
    same(got, want)


def test_zero_state_form_of_min_gru_reads_no_zero_and_multiplies_nothing():
    """minGRU's b = z·h~ and A = 1 - z: no multiply by a state survives (fewer ops than the graph)."""
    graph = coefficients(CELLS["min_gru"]())
    zero = at_zero_states(graph, "test")
    assert zero is not None
    ops = lambda g: sum(n.op not in LEAVES for n in g.nodes)
    assert ops(zero) < ops(graph)


def test_zero_state_form_gives_up_where_a_zero_meets_an_op_without_a_rule():
    graph = coefficients(hand(ind_rnn))  # tanh(x W + u·0) needs tanh of a folded value: fine; its tangent too
    zero = at_zero_states(graph, "test")
    if zero is not None:  # tanh(x W) and (1 - tanh²)·u: exact where it folds
        p = Point(graph, batch=4, seed=4)
        want, _ = p.run(compile_graph(graph), [np.zeros_like(s) for s in p.states])
        same(compile_graph(zero)(p.P, *p.xs, [], p.consts)[0], want)
    from rshop_core import Input
    from rshop_core.tracing import trace

    x, h = Input((4,), name="x"), Input((4,), name="h")
    h_new = F.exp(h) * x  # exp(0) = 1: no folding rule for exp of a zero
    g = trace([x], [h], [], [h_new], [h_new], "test graph")
    assert at_zero_states(g, "test") is None
    # masking: a seed made as state·0 + 1 meets an add that would broadcast a scalar literal (the driver
    # then evaluates the whole graph at zero states)
    for name in ("min_gru_masked", "min_gru_masked_zero"):
        assert at_zero_states(coefficients(CELLS[name]()), "test") is None


def test_levels_of_plans_carry_the_forms_the_driver_runs():
    """A scan level has its zero-state form, a Newton level with a gate from x its split."""
    from rshop_core import Input, RecurrentModel

    x, h = Input((3,), name="x"), Input((4,), name="h")
    h_new = gated_ind_rnn(x, [h], [])[0]
    model = RecurrentModel(input=x, initial_states=[h], output=h_new, final_states=[h_new], time_parallel="newton")
    (level,) = attach(plan_for(model, training=False, teacher=False, masked=False)).parallel.levels
    assert level.kind == "newton" and level.split is not None and level.zero is None
    from tests.unit.test_parallel_structure import min_gru_model

    plain = attach(plan_for(min_gru_model(time_parallel="scan"), training=False, teacher=False, masked=False)).parallel
    assert all(lv.kind == "scan" and lv.zero is not None and lv.split is None for lv in plain.levels)
