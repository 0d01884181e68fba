"""Data parallel on tensorflow: ``tf.distribute.MirroredStrategy`` over 2 logical CPUs (in a child process,
configured before TensorFlow starts). For each model of ``dp_models`` the all-reduced replica gradients
equal one device's on the whole batch; the dropout cell in inference mode (TensorFlow draws masks per
replica from the layer's mirrored generator: reproducible per seed, different between replicas, checked
here); a stateful layer is refused under the strategy and its states, carried with ``initial_state=``,
equal the one-device stateful layer's."""

from __future__ import annotations

import pytest
from dp_child import run_child, run_example
from dp_models import NAMES, TOL

from rshop_backends.conformance.fixtures import only_engine


@pytest.fixture(scope="module")
def report(request):
    only_engine(request, "tensorflow", "data parallel with tf.distribute.MirroredStrategy")
    return run_child("tf_mirrored_child.py")


@pytest.mark.parametrize("name", NAMES)
def test_mirrored_gradients_equal_one_device(report, name):
    r = report[name]
    assert report["replicas"] == 2
    assert r["replica0"] <= TOL and r["replica1"] <= TOL, (name, r)
    assert r["scale"] > 0.1, r


def test_dropout_masks_per_replica_and_reproducible(report):
    r = report["dropout_cell"]
    assert r["training_repeat"] == 0.0, r  # reseed(seed): the same masks on every run
    assert r["training_vs_inference"] > 1e-2, r  # the masks are drawn
    assert r["replicas_differ"] > 1e-2, r  # the same rows on both replicas get different masks


def test_dropout_refusals(report):
    r = report["dropout_cell"]
    assert "lowered inside the scope" in r["refused_outside_scope"], r
    assert "inside a tf.function" in r["refused_eager"], r
    assert "expected set_replica to be left at (0, 1)" in r["refused_set_replica"], r


def test_stateful_refused_and_carried_states_equal_one_device(report):
    r = report["stateful"]
    assert "expected a model with stateful=False" in r["refused_stateful"], r
    assert r["first_states"] <= TOL and r["states"] <= TOL, r


def test_example_script(request):
    only_engine(request, "tensorflow", "data parallel with tf.distribute.MirroredStrategy")
    assert run_example("distributed_tf.py", "--steps", "2") <= TOL  # the example's own check against one device
