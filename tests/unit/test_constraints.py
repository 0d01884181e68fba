"""Weight constraints in rshop_core: the projections against hand-written numpy and keras.constraints,
how cells, Dense and add_weight take them, the errors, and how files store them."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import rshop_core
from rshop_core import Input, RecurrentModel, constraints, serialization
from rshop_core.cells import GRUCell, IndRNNCell, LSTMCell, MinGRUCell, RGLRUCell, SimpleRNNCell
from rshop_core.errors import RshopConfigError, RshopFormatError
from rshop_core.layers import Dense, Layer

EPS = 1e-7
RNG = np.random.default_rng(12)
W2 = 3.0 * RNG.standard_normal((5, 4))
W3 = 2.0 * RNG.standard_normal((2, 3, 4))


def by_hand(name, w, **cfg):
    """Keras 3's formulas, written out in float64 numpy."""
    if name == "non_neg":
        return np.where(w >= 0, w, 0.0)
    axis = cfg.get("axis", 0)
    axis = tuple(axis) if isinstance(axis, list) else axis
    norms = np.sqrt((w**2).sum(axis=axis, keepdims=True))
    if name == "unit_norm":
        return w / (EPS + norms)
    if name == "max_norm":
        return w * np.minimum(norms, cfg.get("max_value", 2.0)) / (EPS + norms)
    lo, hi, rate = cfg.get("min_value", 0.0), cfg.get("max_value", 1.0), cfg.get("rate", 1.0)
    return w * (rate * np.clip(norms, lo, hi) + (1 - rate) * norms) / (EPS + norms)


CASES = [
    ("max_norm", {}),
    ("max_norm", {"max_value": 1.5, "axis": 1}),
    ("max_norm", {"max_value": 0.5, "axis": [0, 1]}),
    ("unit_norm", {}),
    ("unit_norm", {"axis": -1}),
    ("non_neg", {}),
    ("min_max_norm", {}),
    ("min_max_norm", {"min_value": 2.0, "max_value": 3.0, "rate": 0.4, "axis": 1}),
]


@pytest.mark.parametrize(("name", "cfg"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_projection_matches_the_formula(name, cfg):
    c = constraints.CONSTRAINTS[name](**cfg)
    w = W3 if cfg.get("axis") == [0, 1] else W2
    got = c(w)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, by_hand(name, w, **cfg), rtol=1e-12, atol=1e-14)


def test_projection_lands_in_the_set():
    np.testing.assert_allclose(np.linalg.norm(constraints.unit_norm()(W2), axis=0), 1.0, rtol=1e-6)
    assert np.linalg.norm(constraints.max_norm(1.0)(W2), axis=0).max() <= 1.0
    assert constraints.non_neg()(W2).min() == 0.0
    norms = np.linalg.norm(constraints.min_max_norm(2.0, 3.0, axis=1)(W2), axis=1)
    assert np.all((norms >= 2.0 - 1e-6) & (norms <= 3.0 + 1e-6))


def test_float32_stays_float32():
    assert constraints.max_norm()(W2.astype(np.float32)).dtype == np.float32


def test_defaults_are_keras_3s():
    keras = pytest.importorskip("keras")
    for name in constraints.CONSTRAINTS:
        ours = constraints.get(name)
        theirs = keras.constraints.get(name).get_config()
        assert ours == {"name": name, **{k: v if isinstance(v, int) else float(v) for k, v in theirs.items()}}


@pytest.mark.parametrize(("name", "cfg"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_projection_matches_keras(name, cfg):
    keras = pytest.importorskip("keras")
    w = (W3 if cfg.get("axis") == [0, 1] else W2).astype(np.float32)
    theirs = keras.constraints.get({"class_name": name, "config": cfg})
    want = keras.ops.convert_to_numpy(theirs(keras.ops.convert_to_tensor(w)))
    got = constraints.CONSTRAINTS[name](**cfg)(w)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


def test_keras_objects_are_read_by_their_config():
    keras = pytest.importorskip("keras")
    assert constraints.get(keras.constraints.MaxNorm(3, axis=1)) == {"name": "max_norm", "max_value": 3.0, "axis": 1}
    assert constraints.get(keras.constraints.max_norm(0.5)) == {"name": "max_norm", "max_value": 0.5, "axis": 0}
    assert constraints.get(keras.constraints.NonNeg()) == {"name": "non_neg"}

    class Mine(keras.constraints.Constraint):
        def __call__(self, w):
            return w

    with pytest.raises(RshopConfigError, match=r"^LSTMCell 'lstm_cell' kernel_constraint: expected None, 'max_norm'"):
        LSTMCell(3, kernel_constraint=Mine())


def test_cells_and_dense_put_constraints_on_their_weights():
    mn = {"name": "max_norm", "max_value": 2.0, "axis": 0}
    un = {"name": "unit_norm", "axis": 0}
    nn = {"name": "non_neg"}
    for cell in (SimpleRNNCell, GRUCell, LSTMCell, IndRNNCell):
        m = cell(3, input_dim=2, kernel_constraint="max_norm", recurrent_constraint="unit_norm", bias_constraint=nn)
        got = {k.split("/")[1]: s.constraint for k, s in m.get_layer(seed=0).param_specs.items()}
        assert got == {"kernel": mn, "recurrent_kernel": un, "bias": nn}, cell
    m = MinGRUCell(3, input_dim=2, kernel_constraint=constraints.MaxNorm(), bias_constraint="non_neg")
    assert {s.constraint["name"] for s in m.get_layer(seed=0).param_specs.values()} == {"max_norm", "non_neg"}
    m = RGLRUCell(3, input_dim=2, a_constraint="non_neg").get_layer(seed=0)
    assert m.param_specs["rglru_cell/a_param"].constraint == nn
    assert m.param_specs["rglru_cell/kernel"].constraint is None
    x, h = Input((2,)), Input((3,))
    y = Dense(3, kernel_constraint=constraints.max_norm(1.5), bias_constraint="non_neg")(x)
    m = RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y])
    assert m.param_specs["dense/kernel"].constraint == {"name": "max_norm", "max_value": 1.5, "axis": 0}
    assert m.param_specs["dense/bias"].constraint == nn


class Scaled(Layer):
    """A user layer declaring its parameter with add_weight(constraint=...)."""

    def __init__(self, constraint, shape=(3,)):
        super().__init__()
        self.constraint, self.shape = constraint, shape

    def __call__(self, x):
        from rshop_core import functional as F

        return F.multiply(x, self.add_weight("scale", self.shape, "ones", constraint=self.constraint))


def test_add_weight_takes_a_constraint():
    x, h = Input((3,)), Input((3,))
    y = Scaled(constraints.min_max_norm(0.5, 2.0, rate=0.5))(x)
    m = RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y])
    assert m.param_specs["scaled/scale"].constraint == {
        "name": "min_max_norm",
        "min_value": 0.5,
        "max_value": 2.0,
        "rate": 0.5,
        "axis": 0,
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: LSTMCell(3, kernel_constraint="l2"),
            "LSTMCell 'lstm_cell' kernel_constraint: expected None, 'max_norm', 'unit_norm', 'non_neg', "
            "'min_max_norm', an rshop_core.constraints object or its keras.constraints counterpart, received 'l2'.",
        ),
        (
            lambda: GRUCell(3, recurrent_constraint=abs),
            "GRUCell 'gru_cell' recurrent_constraint: expected None, 'max_norm'",
        ),
        (lambda: Dense(3, bias_constraint=lambda w: w), "Dense 'dense' bias_constraint: expected None, 'max_norm'"),
        (
            lambda: Dense(3, kernel_constraint={"name": "max_norm", "max_valu": 1}),
            "Dense 'dense' kernel_constraint: expected the max_norm options ['axis', 'max_value'], "
            "received ['max_valu'].",
        ),
        (lambda: constraints.max_norm(-1), "max_norm max_value: expected a finite number >= 0, received -1."),
        (lambda: constraints.max_norm(axis=1.0), "max_norm axis: expected an int or a list of distinct ints"),
        (lambda: constraints.unit_norm(axis=[0, 0]), "unit_norm axis: expected an int or a list of distinct ints"),
        (
            lambda: constraints.min_max_norm(2.0, 1.0),
            "min_max_norm: expected min_value <= max_value, received min_value=2.0, max_value=1.0.",
        ),
        (lambda: constraints.min_max_norm(rate=1.5), "min_max_norm rate: expected a number in [0, 1], received 1.5."),
    ],
)
def test_bad_constraints_are_refused(make, message):
    with pytest.raises(RshopConfigError) as info:
        make()
    assert str(info.value).startswith(message)


def test_an_axis_the_weight_lacks_is_refused_when_it_is_declared():
    with pytest.raises(RshopConfigError) as info:
        Scaled(constraints.max_norm(axis=1))(Input((3,)))
    assert str(info.value).startswith(
        "layer 'scaled' weight 'scale' constraint: expected constraint axes within a parameter of rank 1 "
        "(shape (3,)), received axis=1."
    )
    with pytest.raises(
        RshopConfigError, match=r"^layer 'ind_rnn_cell' weight 'recurrent_kernel' constraint: expected constraint axes"
    ):
        IndRNNCell(3, input_dim=2, recurrent_constraint=constraints.unit_norm(axis=1)).get_layer()


# -- files ----------------------------------------------------------------------------
def constrained_model():
    return LSTMCell(
        3, input_dim=2, kernel_constraint=constraints.max_norm(1.5, axis=[0, 1]), bias_constraint="non_neg"
    ).get_layer(seed=3)


def test_save_load_keeps_constraints(tmp_path):
    model = constrained_model()
    loaded = rshop_core.load(model.save(tmp_path / "c.rshop"))
    assert {k: s.constraint for k, s in loaded.param_specs.items()} == {
        "lstm_cell/kernel": {"name": "max_norm", "max_value": 1.5, "axis": [0, 1]},
        "lstm_cell/recurrent_kernel": None,
        "lstm_cell/bias": {"name": "non_neg"},
    }
    assert loaded.to_json() == model.to_json()


def test_a_model_without_constraints_writes_what_older_readers_read():
    doc = serialization.to_document(LSTMCell(3, input_dim=2).get_layer(seed=3))
    assert all(set(p) == set(serialization.PARAM_KEYS) for p in doc["model"]["params"])


def members(raw):
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return json.loads(zf.read("model.json")), zf.read("weights.safetensors")


def repack(doc, weights):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.json", json.dumps(doc).encode())
        zf.writestr("weights.safetensors", weights)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        (
            {"name": "os.system", "cmd": "rm"},
            "params[0].constraint: expected a constraint named one of ['max_norm', 'min_max_norm', 'non_neg', "
            "'unit_norm'], received 'os.system'.",
        ),
        ({"name": "max_norm", "max_value": -2}, "params[0].constraint: max_norm max_value: expected a finite number"),
        ({"name": "max_norm", "extra": 1}, "params[0].constraint: expected the max_norm options ['axis', 'max_value']"),
        ("max_norm", "params[0].constraint: expected a constraint object of at most 8 keys, received str."),
        ({"name": "max_norm", "axis": 5}, "expected constraint axes within a parameter of rank 2"),
    ],
)
def test_a_bad_constraint_in_a_file_is_a_format_error(constraint, message):
    doc, weights = members(serialization.dumps(constrained_model()))
    doc["model"]["params"][0]["constraint"] = constraint
    with pytest.raises(RshopFormatError) as info:
        serialization.loads(repack(doc, weights), "f.rshop")
    assert message in str(info.value)
    assert str(info.value).startswith("f.rshop: ")


def test_from_keras_step_imports_dense_constraints():
    keras = pytest.importorskip("keras")
    from rshop_core.convert.keras_step import from_keras_step

    x_t, h = keras.Input((3,), name="x"), keras.Input((4,), name="h")
    dense = keras.layers.Dense(4, kernel_constraint=keras.constraints.max_norm(1.5), bias_constraint="non_neg")
    h_t = keras.layers.Activation("tanh")(keras.layers.Add()([dense(x_t), h]))
    model = from_keras_step(keras.Model([x_t, h], h_t), initial_states=[h], final_states=[h_t])
    got = {k.split("/")[-1]: s.constraint for k, s in model.param_specs.items()}
    assert got == {"kernel": {"name": "max_norm", "max_value": 1.5, "axis": 0}, "bias": {"name": "non_neg"}}

    class Mine(keras.constraints.Constraint):
        def __call__(self, w):
            return w

    odd = keras.layers.Dense(4, kernel_constraint=Mine(), name="odd")
    h_t = odd(x_t)
    with pytest.raises(RshopConfigError, match=r"kernel_constraint Mine \(rshop has max_norm, unit_norm"):
        from_keras_step(keras.Model([x_t, h], [h_t]), initial_states=[h], final_states=[h_t])
