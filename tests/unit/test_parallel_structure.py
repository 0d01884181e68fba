"""rshop_core.parallel.analyze: affinity and Jacobian structure of step graphs, checked against the
float64 finite-difference Jacobian of the numpy engine's generated step (every numerically nonzero
entry must lie inside a coupled group) and, for affinity, against the affine identity
f(a·s1 + (1-a)·s2) = a·f(s1) + (1-a)·f(s2)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conformance.cases import CASES
from tests.unit.parallel_helpers import Point, compile_graph

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.execution import plan_for
from rshop_core.parallel import MAX_BLOCK, analyze
from rshop_core.replay import param_tensor
from rshop_core.specs import ParamSpec
from rshop_core.tracing import trace


def param(name, shape):
    return param_tensor(ParamSpec(name, shape))


def hand(build, state_shapes=((4,),), n_x=3, constants=()):
    """A graph from ``build(x, states, consts) -> final states`` (the final states are also the outputs)."""
    x = Input((n_x,), name="x")
    states = [Input(s, name=f"s{i}") for i, s in enumerate(state_shapes)]
    consts = [Input(s, name=f"k{i}") for i, s in enumerate(constants)]
    finals = build(x, states, consts)
    return trace([x], states, consts, finals, finals, "test graph")


def min_gru_step(x, h, readout=None):
    """minGRU: h_t = (1 - z)·h + z·hx, with z and hx from x only (plus the readout, when given)."""
    z = F.sigmoid(F.matmul(x, param("z/kernel", (3, 4))))
    hx = F.matmul(x, param("hx/kernel", (3, 4)))
    if readout is not None:
        hx = hx + readout * param("hx/readout", (4,))
    return (1.0 - z) * h + z * hx


def min_gru_model(**opts):
    x, h = Input((3,), name="x"), Input((4,), name="h")
    h_new = min_gru_step(x, h)
    return RecurrentModel(input=x, initial_states=[h], output=h_new, final_states=[h_new], seed=1, **opts)


def min_gru_readout_model(**opts):
    x, h, r = Input((3,), name="x"), Input((4,), name="h"), Input((4,), name="r")
    h_new = min_gru_step(x, h, readout=r)
    return RecurrentModel(
        input=x, initial_states=[h], output=h_new, final_states=[h_new], readout_input=r, seed=1, **opts
    )


def ind_rnn(x, s, k):
    """IndRNN: tanh(x W + u·h)."""
    return [F.tanh(F.matmul(x, param("w/kernel", (3, 4))) + s[0] * param("w/u", (4,)), name="tanh_3")]


def elementwise_lstm(x, s, k):
    """Two states coupled elementwise: c = f·c + i·g, h = o·tanh(c), gates from x and u·h."""
    h, c = s
    z = F.matmul(x, param("w/kernel", (3, 16))) + F.concat([h, h, h, h]) * param("w/u", (16,))
    i, f, g, o = F.split(z, 4)
    c_new = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    return [F.sigmoid(o) * F.tanh(c_new), c_new]


def grouped_einsum(x, s, k):
    """h (8,) seen as (4, 2), transposed to (2, 4): two groups of 4 (elements i with equal i mod 2),
    each mixed by its own 4x4 matrix, then laid out again."""
    g = F.transpose(F.reshape(s[0], [4, 2]), [1, 0])
    mixed = F.einsum("gi,gij->gj", g, param("w/blocks", (2, 4, 4)))
    return [F.tanh(F.reshape(F.transpose(mixed, [1, 0]), [8]) + F.matmul(x, param("w/kernel", (3, 8))))]


def linear_dense(x, s, k):
    """h U + x W, no activation: affine, dense."""
    return [F.matmul(s[0], param("w/recurrent", (4, 4))) + F.matmul(x, param("w/kernel", (3, 4)))]


def state_free(x, s, k):
    return [F.tanh(F.matmul(x, param("w/kernel", (3, 4))))]


GRAPHS = {
    "min_gru": lambda: hand(lambda x, s, k: [min_gru_step(x, s[0])]),
    "ind_rnn": lambda: hand(ind_rnn),
    "elementwise_lstm": lambda: hand(elementwise_lstm, ((4,), (4,))),
    "grouped_einsum": lambda: hand(grouped_einsum, ((8,),)),
    "linear_dense": lambda: hand(linear_dense),
    "state_free": lambda: hand(state_free),
    "simple_rnn": lambda: SimpleRNNCell(5, input_dim=3).get_layer(seed=0).graph,
    "gru": lambda: GRUCell(5, input_dim=3).get_layer(seed=0).graph,
    "lstm": lambda: LSTMCell(3, input_dim=3).get_layer(seed=0).graph,
    "min_gru_masked": lambda: plan_for(min_gru_model(), training=False, teacher=False, masked=True).graph,
    "min_gru_masked_zero": lambda: (
        plan_for(min_gru_model(zero_output_for_mask=True), training=False, teacher=False, masked=True).graph
    ),
    "min_gru_readout": lambda: plan_for(min_gru_readout_model(), training=False, teacher=False, masked=False).graph,
    "min_gru_teacher": lambda: plan_for(min_gru_readout_model(), training=True, teacher=True, masked=False).graph,
    **{f"case_{name}": (lambda c=c: c.build().graph) for name, c in CASES.items()},
}

# name -> (affine, structure, block)
EXPECTED = {
    "min_gru": (True, "diagonal", 1),
    "ind_rnn": (False, "diagonal", 1),
    "elementwise_lstm": (False, "block", 2),
    "grouped_einsum": (False, "block", 4),
    "linear_dense": (True, "dense", 4),
    "state_free": (True, "none", 1),
    "simple_rnn": (False, "dense", 5),
    "gru": (False, "dense", 5),
    "lstm": (False, "dense", 6),
    # the held output (a second state) reads h: each h_i couples with held_i (a lower-triangular 2x2 block)
    "min_gru_masked": (True, "block", 2),
    "min_gru_masked_zero": (True, "diagonal", 1),
    "min_gru_readout": (True, "block", 2),
    "min_gru_teacher": (True, "diagonal", 1),
}


@pytest.fixture(scope="module")
def graphs():
    return {name: build() for name, build in GRAPHS.items()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_affinity_and_structure(graphs, name):
    a = analyze(graphs[name])
    assert (a.affine, a.structure, a.block) == EXPECTED[name]
    n = sum(r.size for r in a.states)
    assert sorted(i for g in a.groups for i in g) == list(range(n))
    assert all(list(g) == sorted(g) for g in a.groups)
    assert [g[0] for g in a.groups] == sorted(g[0] for g in a.groups)


def _nonzero_pairs(graph, seed=0):
    fn = compile_graph(graph)
    J = np.abs(Point(graph, seed=seed).jacobian(fn)).max(axis=0)
    return J, np.argwhere(J > 1e-7)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_every_nonzero_jacobian_entry_lies_in_a_group(graphs, name):
    g = graphs[name]
    a = analyze(g)
    J, pairs = _nonzero_pairs(g)
    where = {i: k for k, grp in enumerate(a.groups) for i in grp}
    outside = [(int(i), int(j)) for i, j in pairs if where[i] != where[j]]
    assert not outside, f"entries outside the groups {a.groups}: {outside}"
    if a.structure in ("block", "dense") and a.block > 1:
        # the groups are not needlessly large: each group is connected by numerically nonzero entries
        lab = {i: i for i in range(J.shape[0])}

        def root(i):
            while lab[i] != i:
                i = lab[i]
            return i

        for i, j in pairs:
            lab[root(int(i))] = root(int(j))
        for grp in a.groups:
            assert len({root(i) for i in grp}) == 1, f"group {grp} is not connected numerically"
    if a.structure == "none":
        assert len(pairs) == 0


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_affine_flag_matches_the_affine_identity(graphs, name):
    g = graphs[name]
    fn = compile_graph(g)
    p = Point(g, seed=3)
    s1 = p.flat(p.states)
    s2 = np.random.default_rng(4).standard_normal(s1.shape) * 2.0
    lhs = p.finals(fn, 0.3 * s1 + 0.7 * s2)
    rhs = 0.3 * p.finals(fn, s1) + 0.7 * p.finals(fn, s2)
    holds = np.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)
    assert analyze(g).affine == holds


def test_groups_of_two_coupled_states_pair_element_i_of_each(graphs):
    a = analyze(graphs["elementwise_lstm"])
    assert a.groups == tuple((i, 4 + i) for i in range(4))
    assert [r.depends_on for r in a.states] == [("s0", "s1"), ("s0", "s1")]


def test_transposed_einsum_blocks_are_strided(graphs):
    a = analyze(graphs["grouped_einsum"])
    assert a.groups == ((0, 2, 4, 6), (1, 3, 5, 7))


def test_breaker_is_the_first_non_affine_node_and_describe_names_it(graphs):
    g = graphs["ind_rnn"]
    a = analyze(g)
    tanh = next(n for n in g.nodes if n.op == "tanh")
    assert a.breaker_node() == tanh.id == a.states[0].breaker
    assert a.describe(g) == f"node %{tanh.id} 'tanh_3' (tanh) makes state 's0' non-affine; Jacobian diagonal"
    lstm = graphs["lstm"]
    a = analyze(lstm)
    first_sigmoid = min(n.id for n in lstm.nodes if n.op == "sigmoid")
    assert a.breaker_node() == first_sigmoid
    assert all(r.breaker is not None and lstm.nodes[r.breaker].op == "sigmoid" for r in a.states)


def test_describe_affine_and_block(graphs):
    assert analyze(graphs["min_gru"]).describe(graphs["min_gru"]) == (
        "state 's0' is affine in the states, Jacobian diagonal"
    )
    g = graphs["min_gru_readout"]
    text = analyze(g).describe(g)
    assert text.endswith("are affine in the states, Jacobian block(2)") and "'h'" in text
    assert "independent" in analyze(graphs["state_free"]).describe(graphs["state_free"])


def test_nodes_feeding_only_outputs_do_not_matter():
    x, h = Input((3,), name="x"), Input((4,), name="h")
    h_new = h * 0.5 + F.matmul(x, param("w/kernel", (3, 4)))
    out = F.tanh(F.matmul(h, param("w/dense", (4, 4))))  # non-affine and dense, but only an output
    g = trace([x], [h], [], [out], [h_new], "test graph")
    a = analyze(g)
    assert (a.affine, a.structure, a.breaker_node()) == (True, "diagonal", None)


def test_product_of_two_state_dependent_values_breaks_affinity():
    g = hand(lambda x, s, k: [s[0] * F.sigmoid(F.matmul(x, param("w/k", (3, 4)))) * s[0]])
    a = analyze(g)
    # s·sigmoid(xW) is affine; multiplying it by s again is the breaker (the final state itself)
    assert (a.affine, a.breaker_node(), a.structure) == (False, g.final_states[0], "diagonal")


def test_where_on_a_state_condition_breaks_affinity_and_a_state_free_one_does_not():
    def on_state(x, s, k):
        return [F.where(F.greater(s[0], 0.0), s[0], s[0] * 2.0)]

    def on_x(x, s, k):
        return [F.where(F.greater(F.slice(x, 0, 1), 0.0), s[0], s[0] * 2.0)]

    assert not analyze(hand(on_state)).affine
    assert analyze(hand(on_x, ((1,),), n_x=1)).affine


def test_block_larger_than_the_cap_is_dense():
    n = MAX_BLOCK + 1

    def big_blocks(x, s, k):
        g = F.reshape(s[0], [2, n])
        return [F.reshape(F.einsum("gi,ij->gj", g, param("w/m", (n, n))), [2 * n])]

    a = analyze(hand(big_blocks, ((2 * n,),)))
    assert (a.structure, a.block, a.groups, a.affine) == ("dense", 2 * n, (tuple(range(2 * n)),), True)


def test_softmax_and_reductions_couple_along_their_axes():
    def step(x, s, k):
        m = s[0]  # (2, 3): softmax couples each row; the row max couples each row too
        return [F.softmax(m, axis=-1) + F.max(m, axes=[-1], keepdims=True) * 0.1]

    a = analyze(hand(step, ((2, 3),)))
    assert a.groups == ((0, 1, 2), (3, 4, 5)) and not a.affine
