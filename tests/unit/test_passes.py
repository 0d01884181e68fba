"""What each optimisation pass does to a plan's graphs (the numbers they keep are checked on
every engine in tests/conformance/test_passes.py)."""

from __future__ import annotations

import pytest

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import LSTMCell
from rshop_core.errors import RshopConfigError
from rshop_core.execution import plan_for
from rshop_core.layers import Dense
from rshop_core.passes import ORDER, check_pipeline, optimize


def ops(graph, op):
    return sum(n.op == op for n in graph.nodes)


def lstm_plan():
    return plan_for(LSTMCell(8, input_dim=3).get_layer(seed=0), False, False, False)


def per_gate_model():
    """An LSTM-like step written one Dense per gate: 4 matmuls on x, 4 on h."""
    x, h, c = Input((3,), name="x"), Input((8,), name="h"), Input((8,), name="c")
    gates = [F.add(Dense(8, name=f"x{g}")(x), Dense(8, use_bias=False, name=f"h{g}")(h)) for g in "ifgo"]
    i, f, o = (F.sigmoid(gates[k]) for k in (0, 1, 3))
    c_new = f * c + i * F.tanh(gates[2])
    h_new = o * F.tanh(c_new)
    return RecurrentModel(input=x, initial_states=[h, c], output=h_new, final_states=[h_new, c_new], seed=1)


def test_cse_merges_a_repeated_layer_call():
    x, h = Input((3,), name="x"), Input((4,), name="h")
    d = Dense(4, name="d")
    y = F.tanh(F.add(d(x), d(x)) + h)  # d(x) twice: two matmuls and two bias adds
    model = RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y], seed=0)
    plan = plan_for(model, False, False, False)
    assert ops(plan.graph, "matmul") == 2
    new = optimize(plan, ("cse",))
    assert ops(new.graph, "matmul") == 1 and "merged" in dict(new.report)["cse"]


def test_cse_never_merges_dropout():
    x, h = Input((3,), name="x"), Input((3,), name="h")
    y = F.dropout(x, 0.5, name="a") + F.dropout(x, 0.5, name="b") + h
    model = RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y], seed=0)
    plan = plan_for(model, True, False, False)  # training: two masks
    new = optimize(plan, ("cse",))
    assert sum(src[0] == "dropout" for src in new.constants) == 2
    assert ops(new.graph, "multiply") == ops(plan.graph, "multiply")


def test_fuse_matmuls_makes_one_matmul_per_operand():
    plan = plan_for(per_gate_model(), False, False, False)
    assert ops(plan.graph, "matmul") == 8
    new = optimize(plan, ("fuse_matmuls", "licm"))
    assert ops(new.graph, "matmul") == 2  # x @ [Wi|Wf|Wg|Wo], h @ [Ui|Uf|Ug|Uo]
    assert ops(new.graph, "concat") == 0 and ops(new.prologue, "concat") == 2  # weights joined once per call
    assert "8 matmuls on 2 shared operand(s) fused into 2" in dict(new.report)["fuse_matmuls"]


def test_fuse_matmuls_keeps_a_product_read_at_another_stage_apart():
    # An attention query h @ U_a starts the chain (scores, context) that meets the gates' h @ U_g:
    # fused, the gates' products would all run before that chain instead of beside it.
    x, h = Input((3,), name="x"), Input((8,), name="h")
    enc = Input((5, 4), name="enc")
    query = F.reshape(Dense(8, use_bias=False, name="U_a")(h), (1, 8))
    scores = Dense(1, use_bias=False, name="v")(F.tanh(F.add(Dense(8, use_bias=False, name="W_a")(enc), query)))
    ctx = F.sum(F.multiply(F.softmax(scores, axis=-2), enc), axes=[-2])
    inp = F.concat([x, ctx])
    gates = [F.add(Dense(8, name=f"W_{g}")(inp), Dense(8, use_bias=False, name=f"U_{g}")(h)) for g in "zr"]
    h_new = F.sigmoid(gates[0]) * h + F.tanh(gates[1])
    model = RecurrentModel(input=x, initial_states=[h], output=h_new, final_states=[h_new], constants=[enc], seed=2)
    plan = plan_for(model, False, False, False)
    new = optimize(plan, ("fuse_matmuls",))
    said = dict(new.report)["fuse_matmuls"]
    assert said == "4 matmuls on 2 shared operand(s) fused into 2; 1 kept apart (read at another stage of the step)"
    fused = [n for n in new.graph.nodes if n.op == "matmul" and n.name == "fused_matmul"]
    widths = sorted(n.type.shape[-1] for n in fused)
    assert widths == [16, 16]  # inp @ [W_z|W_r], h @ [U_z|U_r]; h @ U_a stays its own product


def test_split_gates_then_licm():
    plan = lstm_plan()
    new = optimize(plan, ("split_gates", "licm"))
    assert ops(new.graph, "matmul") == 8 and ops(new.graph, "split") == 0  # one x@W_g and h@U_g per gate
    assert ops(new.graph, "slice") == 0  # the weight slices moved to the prologue
    assert ops(new.prologue, "slice") == 12 and len(new.prologue_names) == 12
    assert all(n in new.graph.params for n in new.prologue_names)


def test_licm_alone_leaves_a_plain_lstm_alone():
    new = optimize(lstm_plan(), ("licm",))
    assert new.prologue is None and dict(new.report)["licm"] == "no change"


def test_hoist_inputs_moves_x_matmul_before_the_loop():
    plan = lstm_plan()
    new = optimize(plan, ("hoist_inputs",))
    h = new.hoisted
    assert ops(h.graph, "matmul") == 1 and ops(new.graph, "matmul") == 1  # x @ W before, h @ U inside
    assert h.inputs == (0,) and h.keep == ()  # x is not scanned any more: x @ W is
    assert len(new.graph.x) == 1 and new.graph.nodes[new.graph.x[0]].type.shape == (32,)


def test_hoist_inputs_keeps_x_when_the_step_reads_it_too():
    x, h = Input((3,), name="x"), Input((3,), name="h")
    y = F.tanh(Dense(3, name="d")(x) + h) * x  # x is read again inside the step
    model = RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y], seed=0)
    new = optimize(plan_for(model, False, False, False), ("hoist_inputs",))
    assert new.hoisted.keep == (0,) and len(new.graph.x) == 2


def test_hoist_inputs_needs_a_matmul():
    x, h = Input((3,), name="x"), Input((3,), name="h")
    y = F.tanh(x * 2.0 + h)
    model = RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y], seed=0)
    new = optimize(plan_for(model, False, False, False), ("hoist_inputs",))
    assert new.hoisted is None


def test_pipeline_is_checked_and_ordered():
    assert check_pipeline(["licm", "cse"], "w") == ("cse", "licm")
    assert check_pipeline((), "w") == ()
    assert check_pipeline(list(ORDER), "w") == ORDER
    for bad, words in [(["fast"], "pass names"), ("cse", "a list"), (["cse", "cse"], "at most once")]:
        with pytest.raises(RshopConfigError, match=words):
            check_pipeline(bad, "lower('x'), argument passes")


def test_optimized_plans_get_their_own_key():
    plan = lstm_plan()
    assert optimize(plan, ("cse",)).key != optimize(plan, ()).key != plan.key


def test_split_gates_leaves_wide_gates_whole():
    wide = plan_for(LSTMCell(256, input_dim=3).get_layer(seed=0), False, False, False)  # gates 1024 wide
    new = optimize(wide, ("split_gates",))
    assert ops(new.graph, "matmul") == 2 and "skipped" in dict(new.report)["split_gates"]
