"""int32 and bool x, engine-free: the model's dtypes, the Embedding layer, the passes and analyses that
see an int x, the file format, and the errors raised while a step is built."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel, serialization
from rshop_core import functional as F
from rshop_core import initializers as I
from rshop_core.errors import RshopConfigError, RshopDTypeError
from rshop_core.execution import plan_for
from rshop_core.layers import Dense, Embedding
from rshop_core.parallel.structure import analyze
from rshop_core.passes import optimize


def char_model(dtype="float32", **opts):
    ids, h = Input((), "int32", name="ids"), Input((4,), dtype, name="h")
    e = Embedding(9, 3, dtype=dtype, name="emb")(ids)
    h_new = F.tanh(Dense(4, name="w")(e) + Dense(4, use_bias=False, name="u")(h))
    return RecurrentModel(input=ids, initial_states=[h], output=h_new, final_states=[h_new], seed=3, **opts)


def test_model_computes_in_its_parameters_dtype():
    m = char_model()
    assert (m.input_dtype, m.dtype, m.input_shape) == ("int32", "float32", ())
    assert char_model("float64").dtype == "float64"
    x_t, h = Input((2,), name="x"), Input((4,), name="h")
    plain = RecurrentModel(input=x_t, initial_states=[h], output=h, final_states=[Dense(4)(x_t) + h])
    assert (plain.input_dtype, plain.dtype) == ("float32", "float32")


def test_a_parameter_of_another_float_dtype_is_refused():
    ids, h = Input((), "int32", name="ids"), Input((4,), name="h")
    e = Embedding(9, 4, name="emb")(ids)
    h_new = F.tanh(Dense(4, name="w")(F.cast(e, "float64")) + F.cast(h, "float64"))
    with pytest.raises(RshopDTypeError) as e_info:
        RecurrentModel(input=ids, initial_states=[h], output=h_new, final_states=[F.cast(h_new, "float32")])
    assert "parameter 'w/kernel': expected dtype float32 (the model's: its first parameter's), received float64" in (
        str(e_info.value)
    )


def test_embedding_matches_a_table_lookup():
    m = char_model()
    table = m.get_weights()["emb/embeddings"]
    assert table.shape == (9, 3) and float(np.abs(table).max()) <= 0.05  # Keras' uniform(-0.05, 0.05)
    x = np.array([[0, 8, 3]], np.int32)
    layer = m.lower("numpy", "float64")
    w = {k: v.astype(np.float64) for k, v in m.get_weights().items()}
    h = np.zeros((1, 4))
    for t in range(3):
        h = np.tanh(w["emb/embeddings"][x[:, t]] @ w["w/kernel"] + w["w/bias"] + h @ w["u/kernel"])
    assert np.allclose(layer(x), h, atol=1e-12)
    normal = Embedding(5, 2, embeddings_initializer=I.RandomNormal(0.0, 1.0), name="e")
    assert normal.embeddings_initializer.config() == {"mean": 0.0, "stddev": 1.0}


def test_embedding_refuses_float_ids_and_bad_sizes():
    with pytest.raises(RshopDTypeError) as e:
        Embedding(5, 2, name="emb")(Input((), name="x"))
    assert str(e.value) == (
        "layer 'emb': expected int32 ids, received float32(batch,). Declare token ids Input(shape, 'int32'), "
        "or F.cast(value, 'int32') a computed one."
    )
    with pytest.raises(RshopConfigError, match=r"Embedding 'emb': expected input_dim \(the number of ids\) as an int"):
        Embedding(0, 2, name="emb")
    with pytest.raises(RshopConfigError, match=r"expected output_dim \(the size of one embedding\) as an int > 0"):
        Embedding(3, True, name="emb")


def test_hoist_inputs_moves_the_embedding_lookup_out_of_the_loop():
    """The lookup and the input projection read only x and parameters: one gather and one matmul over all
    T steps before the loop; the step then scans the projected embeddings, not the ids."""
    plan = optimize(plan_for(char_model(), False, False, False), ("hoist_inputs",))
    assert plan.hoisted is not None
    hoisted_ops = sorted(n.op for n in plan.hoisted.graph.nodes)
    assert "gather" in hoisted_ops and "matmul" in hoisted_ops
    assert "gather" not in {n.op for n in plan.graph.nodes}
    assert plan.hoisted.graph.nodes[plan.hoisted.graph.x[0]].type.dtype == "int32"
    assert plan.report[0][1].startswith("3 op(s) (gather, matmul)")
    # a lookup alone (nothing heavier reads the ids) is hoisted too
    ids, h = Input((), "int32", name="ids"), Input((3,), name="h")
    h_new = F.tanh(Embedding(9, 3, name="emb")(ids) + h)
    alone = RecurrentModel(input=ids, initial_states=[h], output=h_new, final_states=[h_new], seed=0)
    plan = optimize(plan_for(alone, False, False, False), ("hoist_inputs",))
    assert plan.hoisted is not None and [n.op for n in plan.hoisted.graph.nodes if n.op == "gather"] == ["gather"]


def test_time_parallel_analysis_sees_an_int_x():
    """Coefficients gathered by the ids are state-free: the step is affine with a diagonal Jacobian."""
    ids, h = Input((), "int32", name="ids"), Input((4,), name="h")
    a = F.sigmoid(Embedding(9, 4, name="a")(ids))
    h_new = a * h + Embedding(9, 4, name="b")(ids)
    m = RecurrentModel(input=ids, initial_states=[h], output=h_new, final_states=[h_new], seed=0)
    report = analyze(m.graph)
    assert [s.affine for s in report.states] == [True] and (report.affine, report.structure) == (True, "diagonal")


def test_file_round_trip_keeps_the_int_x():
    m = char_model(return_sequences=True)
    doc = serialization.to_document(m)
    loaded = serialization.loads(serialization.dumps(m))
    assert serialization.to_document(loaded) == doc
    assert loaded.input_dtype == "int32" and loaded.dtype == "float32"
    bits, h = Input((2,), "bool", name="bits"), Input((2,), name="h")
    h_new = F.where(bits, F.tanh(Dense(2, name="d")(h)), h)
    masked = RecurrentModel(input=bits, initial_states=[h], output=h_new, final_states=[h_new], seed=0)
    assert serialization.loads(serialization.dumps(masked)).input_dtype == "bool"


def test_ids_fed_to_dense_are_refused_when_built():
    with pytest.raises(RshopDTypeError) as e:
        Dense(4, name="d")(Input((3,), "int32", name="ids"))
    assert str(e.value) == (
        "layer 'd': expected a float input, received int32(batch, 3). Embed token ids with "
        "layers.Embedding(vocabulary, size)(ids), or use their values: F.cast(x, 'float32')."
    )
