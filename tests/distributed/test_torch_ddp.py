"""Data parallel on torch: ``DistributedDataParallel`` over 2 gloo processes (torch.multiprocessing.spawn,
in a child process), each rank on its half of the global batch with ``layer.set_replica(rank, 2)``. For
each model of ``dp_models`` the DDP-averaged gradients equal one process's gradients on the whole batch
(dropout masks included: a replica draws the global batch's masks and keeps its rows), and a stateful
layer's per-rank states equal the one-process run's rows."""

from __future__ import annotations

import pytest
from dp_child import run_child, run_example
from dp_models import NAMES, TOL

from rshop_backends.conformance.fixtures import only_engine


@pytest.fixture(scope="module")
def report(request):
    only_engine(request, "torch", "data parallel with torch DistributedDataParallel")
    return run_child("torch_ddp_child.py")


@pytest.mark.parametrize("name", NAMES)
def test_ddp_gradients_equal_one_process(report, name):
    r = report[name]
    assert report["world"] == 2
    assert r["rank0"] <= TOL and r["rank1"] <= TOL, (name, r)
    assert r["scale"] > 0.1, r


def test_dropout_masks_follow_the_global_batch(report):
    r = report["dropout_cell"]
    assert r["training_vs_inference"] > 1e-2, r  # the masks are drawn
    assert r["without_set_replica"] > 1e-2, r  # and set_replica is what makes the ranks' masks the global ones


def test_stateful_states_are_the_rank_rows(report):
    assert report["stateful"]["states"] <= TOL, report["stateful"]


def test_example_script(request):
    only_engine(request, "torch", "data parallel with torch DistributedDataParallel")
    assert run_example("distributed_torch.py", "--steps", "2") <= TOL  # the example's own check against one device
