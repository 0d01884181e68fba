"""The cost rule that picks which default passes run (rshop_core.passes.cost): what it counts,
which passes it keeps for the LSTM, GRU, RHN and attention-decoder steps and why, what
``explain()`` says on every engine, and that the plans it picks compute the reference's numbers."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tests.conformance.conftest import assert_close, harness, native, reference, run
from tests.conformance.tolerances import FORWARD_ATOL, SAME_ENGINE_ATOL

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.execution import plan_for
from rshop_core.layers import Dense
from rshop_core.ops import Op
from rshop_core.passes import LoopCost, loop_cost, optimize
from rshop_core.passes.cost import verdict

# jax's pipelines (rshop_backends.jax.PASSES / GRAD_PASSES), named here so that this file imports no engine
JAX_FORWARD = ("cse", "fuse_matmuls", "licm")
JAX_GRAD = ("cse", "fuse_matmuls", "split_gates", "licm")
TORCH = ("cse", "fuse_matmuls", "licm", "hoist_inputs")


def rhn(d=3, units=6, depth=2):
    """A recurrent highway network written as RecurrentShop's example does: one Dense per matrix."""
    x, h = Input((d,), name="x"), Input((units,), name="h")
    s = h
    for k in range(depth):
        hl, tl = Dense(units, name=f"H{k}"), Dense(units, name=f"T{k}")
        if k == 0:
            rh, rt = Dense(units, use_bias=False, name="RH"), Dense(units, use_bias=False, name="RT")
            pre_h, pre_t = F.add(hl(x), rh(s)), F.add(tl(x), rt(s))
        else:
            pre_h, pre_t = hl(s), tl(s)
        g = F.sigmoid(pre_t)
        s = F.add(F.multiply(F.tanh(pre_h), g), F.multiply(s, F.subtract(F.constant(1.0), g)))
    return RecurrentModel(input=x, initial_states=[h], output=s, final_states=[s], return_sequences=True, seed=3)


def attention_decoder(d=3, units=5, enc_steps=4, enc_dim=6):
    """An LSTM decoder (one Dense per gate) attending over a constant encoder sequence (additive score)."""
    x, h, c = Input((d,), name="x"), Input((units,), name="h"), Input((units,), name="c")
    enc = Input((enc_steps, enc_dim), name="enc")
    keys = Dense(units, use_bias=False, name="W_a")(enc)
    query = F.reshape(Dense(units, use_bias=False, name="U_a")(h), (1, units))
    a = F.softmax(Dense(1, use_bias=False, name="v")(F.tanh(F.add(keys, query))), axis=-2)
    inp = F.concat([x, F.sum(F.multiply(a, enc), axes=[-2])])
    z = [F.add(Dense(units, name=f"W_{g}")(inp), Dense(units, use_bias=False, name=f"U_{g}")(h)) for g in "ifco"]
    c_new = F.add(F.multiply(F.sigmoid(z[1]), c), F.multiply(F.sigmoid(z[0]), F.tanh(z[2])))
    h_new = F.multiply(F.sigmoid(z[3]), F.tanh(c_new))
    return RecurrentModel(
        input=x,
        initial_states=[h, c],
        output=h_new,
        final_states=[h_new, c_new],
        constants=[enc],
        return_sequences=True,
        seed=4,
    )


MODELS = {
    "lstm": lambda: LSTMCell(6, input_dim=3).get_layer(return_sequences=True, seed=1),
    "gru": lambda: GRUCell(6, input_dim=3).get_layer(return_sequences=True, seed=2),
    "rhn": rhn,
    "attention": attention_decoder,
}


def raw(name):
    return plan_for(MODELS[name](), False, False, False)


def said(plan):
    return dict(plan.report)


# -- what the rule counts --------------------------------------------------------------------


def test_loop_cost_counts_products_and_multiply_adds_per_example():
    # LSTM(6) on 3 inputs: x @ (3, 24) and h @ (6, 24): 2 products, 3*24 + 6*24 multiply-adds
    assert loop_cost(raw("lstm").graph) == LoopCost(2, 3 * 24 + 6 * 24, loop_cost(raw("lstm").graph).nodes)
    # the decoder: keys enc(4, 6) @ (6, 5), query, score (4, 5) @ (5, 1), 4 gates on [x|ctx] (9), 4 on h (5)
    want = 4 * 6 * 5 + 5 * 5 + 4 * 5 * 1 + 4 * (9 * 5) + 4 * (5 * 5)
    cost = loop_cost(raw("attention").graph)
    assert (cost.products, cost.flops) == (11, want)


def test_loop_cost_of_einsum_is_the_product_of_its_index_sizes():
    x, h = Input((3,), name="x"), Input((4,), name="h")
    enc = Input((7, 4), name="enc")
    ctx = F.einsum("td,d->t", enc, h)  # 7 * 4 multiply-adds
    h_new = F.tanh(F.add(Dense(4, name="d")(x), F.multiply(F.sum(ctx, keepdims=True), h)))
    model = RecurrentModel(input=x, initial_states=[h], output=h_new, final_states=[h_new], constants=[enc], seed=0)
    assert (loop_cost(plan_for(model, False, False, False).graph).flops) == 7 * 4 + 3 * 4


def test_dead_products_do_not_count():
    x, h = Input((3,), name="x"), Input((4,), name="h")
    Dense(9, name="unused")(x)  # read by nothing the step returns
    h_new = F.tanh(F.add(Dense(4, name="d")(x), h))
    model = RecurrentModel(input=x, initial_states=[h], output=h_new, final_states=[h_new], seed=0)
    assert loop_cost(plan_for(model, False, False, False).graph).products == 1


def test_verdict_refuses_more_products_for_the_same_work_and_accepts_less_work():
    assert verdict(LoopCost(2, 100, 10), LoopCost(8, 100, 20)) == (
        "not run (cost rule): 2 -> 8 matrix products per step for the same 100 multiply-adds; "
        "a default pass may not add work to the time loop"
    )
    assert verdict(LoopCost(8, 100, 20), LoopCost(2, 100, 24)) is None  # fusing: fewer products
    assert verdict(LoopCost(2, 100, 10), LoopCost(3, 60, 12)) is None  # fewer multiply-adds, whatever the count
    assert verdict(LoopCost(2, 100, 10), LoopCost(2, 100, 9)) is None  # fewer nodes
    assert "multiply-adds" in str(verdict(LoopCost(2, 100, 10), LoopCost(2, 120, 9)))


# -- which passes run on which cell, and why -----------------------------------------------


@pytest.mark.parametrize("name", ["lstm", "gru", "rhn", "attention"])
def test_split_gates_never_runs_under_the_rule_on_the_benchmark_cells(name):
    """jax's differentiated pipeline names split_gates; on each cell it would add products to the loop
    (LSTM 2 -> 8, GRU 2 -> 6, and on RHN / the decoder it undoes what fuse_matmuls joined)."""
    before = raw(name)
    plan = optimize(before, JAX_GRAD, cost_rule=True)
    assert said(plan)["split_gates"].startswith("not run (cost rule): ")
    assert "split_gates" not in plan.key[-1]
    assert loop_cost(plan.graph).products <= loop_cost(before.graph).products
    assert loop_cost(plan.graph).flops <= loop_cost(before.graph).flops
    forced = optimize(before, JAX_GRAD)  # named explicitly, it runs
    assert re.match(r"\d+ gate slice\(s\) pushed through", said(forced)["split_gates"])
    assert loop_cost(forced.graph).products > loop_cost(plan.graph).products


def test_rhn_and_the_decoder_keep_fuse_matmuls_and_licm():
    """One Dense per matrix: x @ W_H and x @ W_T (and h @ R_H, h @ R_T) become one product each."""
    plan = optimize(raw("rhn"), JAX_GRAD, cost_rule=True)
    assert said(plan)["fuse_matmuls"] == "6 matmuls on 3 shared operand(s) fused into 3"
    assert loop_cost(plan.graph).products == 3  # x, h at depth 1, s at depth 2
    assert plan.prologue is not None and plan.key[-1] == ("cse", "fuse_matmuls", "licm")
    dec = optimize(raw("attention"), JAX_GRAD, cost_rule=True)
    # [x|ctx] @ W_{i,f,c,o} and h @ U_{i,f,c,o} become 2 products; the query h @ U_a, read at an earlier
    # stage (it starts the attention that makes ctx), stays apart; keys and score stay
    said_dec = "8 matmuls on 2 shared operand(s) fused into 2; 1 kept apart (read at another stage of the step)"
    assert said(dec)["fuse_matmuls"] == said_dec
    assert loop_cost(dec.graph).products == 5


def test_lstm_and_gru_run_the_plain_step_on_jax_when_differentiated():
    for name in ("lstm", "gru"):
        plan = optimize(raw(name), JAX_GRAD, cost_rule=True)
        assert loop_cost(plan.graph).products == 2
        assert plan.key[-1] == ("cse", "fuse_matmuls", "licm")


def test_hoisting_inputs_takes_products_out_of_the_loop_and_runs():
    for name, left in (("lstm", 1), ("gru", 1), ("rhn", 2)):
        plan = optimize(raw(name), TORCH, cost_rule=True)
        assert plan.hoisted is not None, name
        assert said(plan)["hoist_inputs"].endswith("nodes per step)"), name
        assert loop_cost(plan.graph).products == left, name
    # the decoder's inputs meet the context before any product: nothing to hoist
    assert said(optimize(raw("attention"), TORCH, cost_rule=True))["hoist_inputs"] == "no change"


def test_a_loop_that_pays_per_operation_refuses_passes_that_add_operations():
    """torch (per_op): fusing RHN's products costs two slices and two adds per shared product, more
    dispatches than the addmm per Dense it replaces; hoisting still runs, licm has nothing left to do."""
    plan = optimize(raw("rhn"), TORCH, cost_rule=True, per_op=True)
    before = loop_cost(raw("rhn").graph)
    assert said(plan)["fuse_matmuls"] == (
        f"not run (cost rule): {before.nodes} -> {before.nodes + 6} operations per step, and this engine's loop "
        "pays for each operation"
    )
    assert plan.key[-1] == ("cse", "licm", "hoist_inputs") and said(plan)["licm"] == "no change"
    assert plan.hoisted is not None and loop_cost(plan.graph).products == 4  # s @ R_H, s @ R_T, H1(s), T1(s)
    assert loop_cost(plan.graph).nodes < before.nodes
    dec = optimize(raw("attention"), TORCH, cost_rule=True, per_op=True)
    assert dec.graph == raw("attention").graph and dec.key[-1] == ("cse", "licm", "hoist_inputs")
    for name in ("lstm", "gru"):  # nothing to fuse: the same plans as without per_op
        assert optimize(raw(name), TORCH, cost_rule=True, per_op=True).key == optimize(raw(name), TORCH, True).key


def test_wide_gates_were_already_left_whole():
    model = LSTMCell(256, input_dim=4).get_layer(seed=0)  # 1024 wide: split_gates declines by itself
    plan = optimize(plan_for(model, False, False, False), JAX_GRAD, cost_rule=True)
    assert said(plan)["split_gates"] == "skipped: gates wider than 512 stay whole"


# -- first call: what keeps the seq2seq compile small ------------------------------------


def test_seq2seq_differentiated_plan_has_no_more_products_than_the_step_as_written():
    """XLA's compile time of a differentiated scan grows with the products in its body (forward and
    backward); the first jit of the seq2seq-with-attention training step took 7 s when split_gates
    quadrupled them (bench/first_call.py). Pinned: the differentiated jax plans of the encoder and the
    decoder have no more products than the written steps, and the loop is not unrolled."""
    for name in ("lstm", "attention"):
        before = raw(name)
        plan = optimize(before, JAX_GRAD, cost_rule=True)
        assert loop_cost(plan.graph).products <= loop_cost(before.graph).products
        assert sum(n.op == Op.MATMUL for n in plan.graph.nodes) == loop_cost(plan.graph).products
        assert plan.options.unroll is False


# -- on the engines: explain() and the numbers -------------------------------------------


@pytest.fixture(scope="module")
def lowered():
    layers: dict = {}

    def get(engine, name):
        if (engine, name) not in layers:
            layers[(engine, name)] = MODELS[name]().lower(engine)
        return layers[(engine, name)]

    return get


def test_explain_says_which_passes_ran_and_why(engine, lowered):
    e = str(lowered(engine, "rhn").explain(grad=True))
    if engine == "numpy":
        assert "passes: none" in e
        return
    if engine == "torch":  # an eager loop: fusing would add operations; hoisting removes some
        assert "fuse_matmuls: not run (cost rule): " in e and "operations per step" in e
        assert "hoist_inputs: " in e and "hoist_inputs: no change" not in e
        assert "split_gates" not in e
        return
    assert "fuse_matmuls: 6 matmuls on 3 shared operand(s) fused into 3" in e
    if engine == "jax":  # the only engine whose differentiated pipeline names split_gates
        assert "split_gates: not run (cost rule): 3 -> 6 matrix products per step" in e
    else:
        assert "split_gates" not in e


@pytest.mark.parametrize("name", ["rhn", "attention"])
def test_default_plans_compute_the_reference(engine, lowered, name):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 3))
    constants = [rng.standard_normal((2, 4, 6))] if name == "attention" else None
    want = reference(MODELS[name](), x, constants=constants)
    got = run(MODELS[name](), engine, x, constants=constants, layer=lowered(engine, name))
    assert_close(got, want, FORWARD_ATOL["float32"], f"{name} on {engine}")


def test_default_differentiated_plan_matches_no_passes_gradients(trainable_engine, lowered):
    """Gradients of the default (cost-rule) plan against the same engine without passes."""
    h = harness(trainable_engine)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 3))
    enc = rng.standard_normal((2, 4, 6))
    w = rng.standard_normal((2, 5, 5)).astype(np.float32)
    grads = [
        h.loss_grads(layer, native(h, x, "float32"), w, constants=[native(h, enc, "float32")])
        for layer in (lowered(trainable_engine, "attention"), attention_decoder().lower(trainable_engine, passes=()))
    ]
    assert sorted(grads[0]) == sorted(grads[1])
    for k in grads[0]:
        assert_close((grads[0][k],), (grads[1][k].astype(np.float64),), 10 * SAME_ENGINE_ATOL["float32"], k)
