"""check_numerics=True: the first NaN/Inf is named (time step, node, batch element) identically on every engine.

The cell drains a state by x each step: ``s_t = s_{t-1} - x_t``, ``y_t = log(s_t) + exp(30 s_t)``.
Where ``log`` turns NaN (``s_t < 0``) or ``exp`` overflows float32 (``30 s_t > log(float32 max)``) is
computed here with numpy from the inputs alone, independently of every engine.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rshop_core import Bidirectional, Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.errors import RshopConfigError, RshopError, RshopNumericsError

from .conftest import as_tuple, harness

OVERFLOW = float(np.log(np.finfo(np.float32).max))  # exp(v) is +Inf in float32 beyond this
S0 = np.full((3, 2), 2.5, np.float32)


def _model(name="m", invariant=False, hidden=False, **options):
    x, s = Input((2,), name="x"), Input((2,), name="s")
    s_new = F.subtract(s, x, name="drain")
    log = F.log(s_new, name="log")
    blowup = F.exp(F.multiply(s_new, F.constant(30.0), name="scale"), name="blowup")
    y = F.add(log, blowup, name="y")
    if invariant:  # a loop-invariant value (no batch axis) that is NaN from the first step
        y = F.add(y, F.log(F.constant(-1.0), name="log_const"), name="y_bad")
    if hidden:  # a NaN that `where` keeps out of the output: log of a negative copy of the state
        neg = F.log(F.negative(F.abs(s_new), name="neg"), name="log_neg")
        y = F.where(F.greater(s_new, F.constant(1e9)), neg, y, name="hide")
    return RecurrentModel(
        input=x,
        initial_states=[s],
        output=y,
        final_states=[s_new],
        name=name,
        return_sequences=True,
        return_states=True,
        seed=0,
        **options,
    )


_LAYERS: dict = {}


def layer(engine, variant="plain", **kw):
    key = (engine, variant)
    if key not in _LAYERS:
        build = {
            "plain": lambda: _model(),
            "backwards": lambda: _model(go_backwards=True),
            "invariant": lambda: _model(invariant=True),
            "hidden": lambda: _model(hidden=True),
            "bidirectional": lambda: Bidirectional(_model()),
            "stateful": lambda: _model(stateful=True, batch_size=3),
        }[variant]
        _LAYERS[key] = build().lower(engine, **kw)
    return _LAYERS[key]


def call(engine, x, s0=S0, variant="plain", **kwargs):
    """The call's results as numpy arrays (a tuple)."""
    h = harness(engine)
    kwargs = {
        k: h.to_native(v, "bool" if v.dtype == bool else "int32" if v.dtype.kind in "iu" else "float32")
        if isinstance(v, np.ndarray)
        else v
        for k, v in kwargs.items()
    }
    st = None if s0 is None else [h.to_native(s0, "float32")]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the numpy engine warns on log(-1) in the call itself
        out = layer(engine, variant)(h.to_native(x, "float32"), initial_state=st, **kwargs)
    return tuple(h.to_numpy(o) for o in as_tuple(out))


def error(engine, x, s0=S0, variant="plain", **kwargs) -> RshopError:
    with pytest.raises(RshopError) as info:
        call(engine, x, s0, variant, check_numerics=True, **kwargs)
    return info.value


def expected_first(x, s0, backwards=False):
    """Independently: (time step, node name, batch element, kind) of the first bad value."""
    order = range(x.shape[1] - 1, -1, -1) if backwards else range(x.shape[1])
    s = s0.astype(np.float64)
    for t in order:
        s = s - x[:, t]
        nan = (s < 0).any(axis=1)
        inf = (30 * s > OVERFLOW).any(axis=1)
        if nan.any():
            return t, "log", int(np.flatnonzero(nan)[0]), "NaN"
        if inf.any():
            return t, "blowup", int(np.flatnonzero(inf)[0]), "+Inf"
    return None


def drain(steps=6):
    """x draining row 1 below zero at time step 3 (rows 0 and 2 stay positive)."""
    x = np.full((3, steps, 2), 0.1, np.float32)
    x[1] = 0.8
    return x


def fill(steps=6):
    """x filling row 2 until exp(30 s) overflows float32 at time step 2."""
    x = np.full((3, steps, 2), 0.1, np.float32)
    x[2, :, 0] = -0.3
    return x


NODE = {"log": "node %3 'log' (op log)", "blowup": "node %6 'blowup' (op exp)"}


def test_nan_named_same_step_and_node_everywhere(engine):
    x = drain()
    t, node, b, kind = expected_first(x, S0)
    assert (t, node, b, kind) == (3, "log", 1, "NaN")  # the case is what it says
    err = error(engine, x)
    assert type(err) is RshopNumericsError and isinstance(err, FloatingPointError)
    assert str(err).startswith(
        f"RecurrentModel 'm', check_numerics: expected finite values, received NaN at time step {t} in {NODE[node]}, "
        f"first in batch element {b}. Every value the node reads at that step is finite, so op 'log' made it"
    )
    assert str(err) == str(error("numpy", x)), "message differs from the numpy engine's"


def test_inf_from_exp_overflow(engine):
    x = fill()
    t, node, b, kind = expected_first(x, S0)
    assert (node, kind) == ("blowup", "+Inf")
    err = error(engine, x)
    assert type(err) is RshopNumericsError
    assert f"received +Inf at time step {t} in {NODE[node]}, first in batch element {b}." in str(err), str(err)
    assert str(err) == str(error("numpy", x))


def test_go_backwards_names_time_index_and_processing_step(engine):
    x = drain()
    t, node, b, kind = expected_first(x, S0, backwards=True)
    k = x.shape[1] - 1 - t
    err = error(engine, x, variant="backwards")
    assert (
        f"received {kind} at time step {t} (processing step {k}, go_backwards) in {NODE[node]}, "
        f"first in batch element {b}." in str(err)
    ), str(err)
    assert str(err) == str(error("numpy", x, variant="backwards"))


def test_finite_call_returns_exactly_the_plain_result(engine):
    x = drain(steps=3)
    assert expected_first(x, S0) is None
    plain = call(engine, x)
    checked = call(engine, x, check_numerics=True)
    assert len(plain) == len(checked) == 2
    for a, b in zip(plain, checked):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    reference = call("numpy", x)
    assert np.allclose(checked[0], reference[0], rtol=1e-5)


def test_masked_step_is_reported_and_says_so(engine):
    x = drain()
    x[1, 2:] = 5.0  # padding: a masked step keeps the state (0.9) but still computes log(0.9 - 5)
    lengths = np.array([6, 2, 6], np.int32)
    err = error(engine, x, sequence_lengths=lengths)
    assert (
        "received NaN at time step 2 in node %3 'log' (op log), first in batch element 1 (a masked step of "
        "batch element 1: the call discards its values)." in str(err)
    ), str(err)
    assert str(err) == str(error("numpy", x, sequence_lengths=lengths))
    # without the option the masked call is finite: only check_numerics reveals it
    assert all(np.isfinite(a).all() for a in call(engine, x, sequence_lengths=lengths))


def test_value_hidden_by_where_is_found(engine):
    x = drain(steps=3)
    assert all(np.isfinite(a).all() for a in call(engine, x, variant="hidden"))
    err = error(engine, x, variant="hidden")
    assert "received NaN at time step 0 in node %" in str(err) and "'log_neg' (op log)" in str(err), str(err)
    assert "first in batch element 0." in str(err)


def test_loop_invariant_node(engine):
    err = error(engine, drain(steps=3), variant="invariant")
    assert "received NaN at time step 0 in node %" in str(err), str(err)
    assert "'log_const' (op log; loop-invariant), first in batch element 0." in str(err), str(err)
    assert str(err) == str(error("numpy", drain(steps=3), variant="invariant"))


@pytest.mark.parametrize("where", ["x", "initial_state"])
def test_non_finite_argument_is_named(engine, where):
    x, s0 = drain(steps=4), S0.copy()
    if where == "x":
        x[2, 1, 0] = -np.inf
        want = (
            "RecurrentModel 'm', check_numerics, argument x: expected finite values, received -Inf at time "
            "step 1, first in batch element 2. The call computes nothing non-finite itself"
        )
    else:
        s0[1, 1] = np.nan
        want = (
            "RecurrentModel 'm', check_numerics, argument initial_state #0 's': expected finite values, "
            "received NaN, first in batch element 1."
        )
    err = error(engine, x, s0)
    assert type(err) is RshopNumericsError and str(err).startswith(want), str(err)


def _bidirectional_error(engine, x, states):
    h = harness(engine)
    with pytest.raises(RshopNumericsError) as info, np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        layer(engine, "bidirectional")(
            h.to_native(x, "float32"), initial_state=[h.to_native(s, "float32") for s in states], check_numerics=True
        )
    return str(info.value)


def test_bidirectional_names_the_direction(engine):
    x = drain()
    assert expected_first(x, S0)[:3] == (3, "log", 1)
    err = _bidirectional_error(engine, x, [S0, S0])  # the forward direction runs first
    assert err.startswith(
        "Bidirectional 'bidirectional_m', forward direction, check_numerics: expected finite "
        "values, received NaN at time step 3 in node %3 'log' (op log), first in batch element "
        "1."
    ), err
    x = np.full((3, 6, 2), 0.1, np.float32)
    x[1, :5], x[1, 5] = -0.08, 2.6  # forward: 2.5 + 0.4 - 2.6 > 0; backward: 2.5 - 2.6 < 0 at once
    assert expected_first(x, S0) is None
    assert expected_first(x, S0, backwards=True)[:3] == (5, "log", 1)
    err = _bidirectional_error(engine, x, [S0, S0])
    assert err.startswith(
        "Bidirectional 'bidirectional_m', backward direction, check_numerics: expected finite "
        "values, received NaN at time step 5 (processing step 0, go_backwards) in node %3 'log' "
        "(op log), first in batch element 1."
    ), err
    assert err == _bidirectional_error("numpy", x, [S0, S0])


def test_stateful_error_keeps_the_carry_and_names_it(engine):
    h = harness(engine)
    lay = layer(engine, "stateful")
    lay.reset_states([h.to_native(S0, "float32")])
    x = drain(steps=3)  # row 1: 2.5 - 3 * 0.8 = 0.1 left, finite
    call(engine, x, s0=None, variant="stateful", check_numerics=True)  # finite: carries on
    carried = h.to_numpy(lay.states[0])
    err = error(engine, drain(steps=3), s0=None, variant="stateful")  # row 1 drains below 0 now
    assert "received NaN at time step 0 in node %3 'log'" in str(err), str(err)
    assert np.array_equal(h.to_numpy(lay.states[0]), carried), "a failed call moved the carry"
    lay.reset_states([h.to_native(np.full((3, 2), np.inf, np.float32), "float32")])
    err = error(engine, x, s0=None, variant="stateful")
    assert str(err).startswith(
        "RecurrentModel 'm', check_numerics, the carried state 's' (stateful): expected "
        "finite values, received +Inf, first in batch element 0."
    ), str(err)
    lay.reset_states()


def test_option_must_be_a_bool(engine):
    with pytest.raises(RshopConfigError, match="argument check_numerics: expected True or False, received 'yes'"):
        call(engine, drain(steps=2), check_numerics="yes")


def test_traced_call_is_refused(engine):
    """Under a trace values are unknown: an RshopConfigError asking for an eager call."""
    h = harness(engine)
    lay = layer(engine)
    x, s0 = h.to_native(drain(steps=2), "float32"), h.to_native(S0, "float32")
    if engine == "jax":
        import jax

        traced = jax.jit(lambda x, s: lay(x, initial_state=[s], check_numerics=True))
    elif engine == "tensorflow":
        import tensorflow as tf

        # autograph=False: autograph re-raises errors from converted user code as its StagingError
        traced = tf.function(lambda x, s: lay(x, initial_state=[s], check_numerics=True), autograph=False)
    else:
        pytest.skip(
            f"{engine}: no tracing exercised here (numpy is always eager; torch.compile is too slow "
            "for the suite and goes through the same _to_host hook)"
        )
    with pytest.raises(
        RshopConfigError,
        match=r"argument check_numerics: expected an eager call \(concrete values "
        r"to inspect\), received a traced one",
    ):
        traced(x, s0)


def _readout_model(**options):
    """The output is fed back: y_t = y_{t-1} - x, with log(y_t) as a second output."""
    x, h, r = Input((2,), name="x"), Input((2,), name="h"), Input((2,), name="r")
    d = F.subtract(r, x, name="drain")
    return RecurrentModel(
        input=x,
        initial_states=[h],
        output=[d, F.log(d, name="log")],
        final_states=[F.add(h, x, name="h_new")],
        readout_input=r,
        name="r",
        seed=0,
        return_sequences=True,
        **options,
    )


_READOUT: dict = {}


def _readout_error(engine, decode, x, **kwargs):
    if (engine, decode) not in _READOUT:
        opts = {"decode": True, "output_length": 5} if decode else {"teacher_force": True}
        _READOUT[engine, decode] = _readout_model(**opts).lower(engine)
    h = harness(engine)
    kwargs = {k: h.to_native(v, "float32") if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with pytest.raises(RshopNumericsError) as info, np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _READOUT[engine, decode](
            h.to_native(x, "float32"), initial_readout=h.to_native(S0, "float32"), check_numerics=True, **kwargs
        )
    return str(info.value)


def test_decode_names_the_decode_step(engine):
    x = np.full((3, 2), 0.1, np.float32)
    x[2] = 0.8  # row 2: 2.5 - 0.8 * 4 < 0 at decode step 3
    err = _readout_error(engine, True, x)
    assert (
        "received NaN at decode step 3 in node %" in err
        and "'log' (op log; output #1), first in batch element 2." in err
    ), err
    assert err == _readout_error("numpy", True, x)


def test_teacher_forcing_names_the_ground_truth_step(engine):
    x = np.full((3, 4, 2), 0.1, np.float32)
    gt = np.ones((3, 4, 2), np.float32)
    gt[0, 1, 1] = np.nan  # fed as the readout of time step 2
    err = _readout_error(engine, False, x, ground_truth=gt, training=True)
    assert err.startswith(
        "RecurrentModel 'r', check_numerics, argument ground_truth at time step 1: expected "
        "finite values, received NaN, first in batch element 0."
    ), err
