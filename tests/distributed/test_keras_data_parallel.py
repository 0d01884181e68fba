"""Data parallel with Keras 3's distribution API: ``keras.distribution.DataParallel`` over 2 virtual CPU
devices on the jax Keras backend (a child process: XLA_FLAGS and KERAS_BACKEND are set before jax and Keras
start), ``RecurrentLayer`` trained one ``Model.fit`` step. For each model of ``dp_models`` the step's weight
change equals the one-device step's (dropout included: the jax backend sees the global batch, so
``keras.random`` draws the one-device masks), and states carried through ``predict`` with ``initial_state=``
equal the one-device ones.

It needs keras and jax together: nox's ``parity`` and ``keras`` sessions (Keras comes with tensorflow, not
with jax, so ``tests(backend='jax')`` has no Keras and skips it)."""

from __future__ import annotations

import importlib.util

import pytest
from dp_child import run_child, run_example
from dp_models import NAMES, TOL

from rshop_backends.conformance.fixtures import only_engine


@pytest.fixture(scope="module")
def report(request):
    only_engine(request, "jax", "Keras DataParallel on the jax Keras backend")
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed in this session (nox's parity and keras sessions run this test)")
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    return run_child("keras_data_parallel_child.py", env)


def test_two_devices_batch_split_weights_replicated(report):
    assert report["devices"] == 2 and report["backend"] == "jax"
    assert report["data_layout"] == "('batch', None, None)"
    for name in NAMES:
        assert "Mesh('batch': 2" in report[name]["sharding"], report[name]


@pytest.mark.parametrize("name", NAMES)
def test_fit_step_equals_one_device(report, name):
    r = report[name]
    assert r["grads"] <= TOL, (name, r)  # the weight change of SGD(1.0): minus the gradient
    assert r["scale"] > 0.1, r


def test_dropout_masks_are_drawn(report):
    assert report["dropout_cell"]["training_vs_inference"] > 1e-2, report["dropout_cell"]


def test_stateful_refused_and_carried_states_equal_one_device(report):
    assert "expected a model with stateful=False" in report["refused_stateful"]
    assert report["stateful"]["states"] <= TOL, report["stateful"]


def test_example_script(report):  # after the report fixture's skips
    assert run_example("distributed_keras.py", "--steps", "2") <= TOL  # final weights vs one device
