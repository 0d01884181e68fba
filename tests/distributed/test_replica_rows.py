"""``layer.set_replica(rank, replicas)`` on every engine under test, in one process: a replica's dropout masks
and random initial states are the rows of the one-device call's on the global batch, so its outputs are that
call's rows; bad arguments are refused. (The runtimes themselves — jax sharding, torch DDP, tf.distribute,
Keras — are tested in this folder's other files, each in its own process.)"""

from __future__ import annotations

import numpy as np
import pytest
from dp_models import GLOBAL_BATCH, SEED, data, dropout_cell

from rshop_backends.conformance.fixtures import only_engine
from rshop_backends.conformance.runs import run
from rshop_core import RshopConfigError, initializers
from rshop_core.cells import SimpleRNNCell

B = GLOBAL_BATCH // 2


def replica_outputs(model, engine, x, **kwargs):
    """The outputs of replica 0 and 1 of 2, each on its half of ``x``, stacked in rank order."""
    parts = []
    for rank in range(2):
        layer = model.lower(engine)
        layer.set_replica(rank, 2)
        assert layer.replica == (rank, 2)
        layer.reseed(SEED)
        parts.append(run(model, engine, x[rank * B : (rank + 1) * B], layer=layer, **kwargs)[0])
    return np.concatenate(parts)


def test_dropout_masks_are_the_global_batch_rows(engine):
    model = dropout_cell()
    _, x, _ = data("dropout_cell")
    layer = model.lower(engine)
    layer.reseed(SEED)
    whole = run(model, engine, x, layer=layer, training=True)[0]
    inference = run(model, engine, x, layer=layer)[0]
    assert np.abs(whole - inference).max() > 1e-2  # the masks change the outputs
    np.testing.assert_allclose(replica_outputs(model, engine, x, training=True), whole, rtol=0, atol=1e-6)


def test_random_initial_states_are_the_global_batch_rows(engine):
    model = SimpleRNNCell(4, input_dim=3).get_layer(seed=5, state_initializer=initializers.RandomNormal(0.0, 1.0))
    _, x, _ = data("lstm")
    whole = run(model, engine, x)[0]
    np.testing.assert_allclose(replica_outputs(model, engine, x), whole, rtol=0, atol=1e-6)
    first_rows_only = run(model, engine, x[B:])[0]  # without set_replica, replica 1 would start from rows 0..B
    assert np.abs(first_rows_only - whole[B:]).max() > 1e-2


def test_numpy_integers_accepted(engine):
    layer = dropout_cell().lower(engine)
    layer.set_replica(np.int64(1), np.int32(2))
    assert layer.replica == (1, 2) and all(type(v) is int for v in layer.replica)


@pytest.mark.parametrize("rank, replicas", [(2, 2), (-1, 2), (0, 0), (True, 2), (0, 2.0), ("0", 2), (0, np.bool_(1))])
def test_bad_replica_refused(engine, rank, replicas):
    layer = dropout_cell().lower(engine)
    with pytest.raises(RshopConfigError, match=r"set_replica: expected an int rank in \[0, replicas\)"):
        layer.set_replica(rank, replicas)
    assert layer.replica == (0, 1)


def test_torch_in_graph_masks_are_the_global_batch_rows(request):
    """Under torch.export (also compile, jit.trace) masks come from torch's generator: with the same
    ``torch.manual_seed`` on every rank, a replica's masks are the rows of the global batch's."""
    only_engine(request, "torch", "torch's in-graph dropout masks")
    import torch

    model = dropout_cell()
    xt = torch.from_numpy(data("dropout_cell")[1])

    def traced_call(layer, x):
        fn = torch.export.export(layer, (x,)).module()
        torch.manual_seed(7)
        return fn(x).detach().numpy()

    whole = traced_call(model.lower("torch"), xt)
    parts = []
    for rank in range(2):
        layer = model.lower("torch")
        layer.set_replica(rank, 2)
        parts.append(traced_call(layer, xt[rank * B : (rank + 1) * B]))
    alone = traced_call(model.lower("torch"), xt[B:])
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-6)
    assert np.abs(alone - whole[B:]).max() > 1e-2  # without set_replica: the first rows' masks


def test_jax_key_masks_are_the_global_batch_rows(request):
    """With ``dropout_key`` (a jitted step) too: a replica's ``jax.random`` masks are its rows of the global
    batch's, for one key shared by every replica (a process per replica, each with its own layer)."""
    only_engine(request, "jax", "jax's dropout_key masks")
    import jax

    model = dropout_cell()
    x, key = data("dropout_cell")[1], jax.random.key(3)

    def masked(layer, rows):
        return np.asarray(
            jax.jit(layer.apply, static_argnames="training")(layer.params, rows, training=True, dropout_key=key)
        )

    whole = masked(model.lower("jax"), x)
    parts = []
    for rank in range(2):
        layer = model.lower("jax")
        layer.set_replica(rank, 2)
        parts.append(masked(layer, x[rank * B : (rank + 1) * B]))
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-6)
    assert np.abs(masked(model.lower("jax"), x[B:]) - whole[B:]).max() > 1e-2
