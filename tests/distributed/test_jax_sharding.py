"""Data parallel on jax: the global batch sharded over 2 virtual CPU devices with ``NamedSharding``
(``--xla_force_host_platform_device_count=2``, set in a child process before jax starts). For each model of
``dp_models`` the gradient of the loss equals the one-device gradient on the whole batch (eager ``jax.grad``
with numpy masks, and a jitted step with ``dropout_key``), and a stateful layer's states after two calls
equal the one-device run's. jax sees the global batch, so dropout masks equal the one-device masks."""

from __future__ import annotations

import pytest
from dp_child import run_child, run_example
from dp_models import NAMES, TOL

from rshop_backends.conformance.fixtures import only_engine


@pytest.fixture(scope="module")
def report(request):
    only_engine(request, "jax", "data parallel with jax sharding")
    return run_child("jax_sharding_child.py", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})


def test_two_devices_and_the_batch_sharded(report):
    assert report["devices"] == 2
    for name in NAMES:  # the output's sharding, and for a stateful layer its two carried states' first
        assert report[name]["output_sharding"].count("P('batch'") == (3 if name == "stateful" else 1), report[name]


@pytest.mark.parametrize("name", NAMES)
def test_gradients_equal_one_device(report, name):
    r = report[name]
    modes = {"lstm": ("jit",), "dropout_cell": ("eager", "jit"), "bidirectional": ("jit",), "stateful": ("eager",)}
    for mode in modes[name]:
        assert r[mode] <= TOL, (name, mode, r)
    assert r["scale"] > 0.1, r  # gradients of a size where 1e-6 is float32 round-off, not the whole value


def test_dropout_masks_are_drawn(report):
    # the data-parallel run uses the masks: its gradient is far from the inference one
    assert report["dropout_cell"]["training_vs_inference"] > 1e-2, report["dropout_cell"]


def test_stateful_states_equal_one_device(report):
    assert report["stateful"]["states"] <= TOL, report["stateful"]


def test_example_script(request):
    only_engine(request, "jax", "data parallel with jax sharding")
    assert run_example("distributed_jax.py", "--steps", "2") <= TOL  # the example's own check against one device


def test_explicit_sharding_mode_refused_under_jit(report):
    assert "received one sharded over the Explicit axes ['batch']" in report["refused_explicit"], report
