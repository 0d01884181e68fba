"""``check_numerics=True``: name the first time step and node where a NaN or an Inf appears.

The call path (:meth:`rshop_backends.lowered.Lowered._run_model`) runs the call as usual, then
hands its arguments and result to :func:`check`, which

1. checks what comes in (x, ground truth, initial states, constants, parameters): a bad value
   there is named as that argument;
2. runs the model's probe plan (:func:`rshop_core.probe.probe_plan`: no passes, no fused kernel,
   every float node an output at every step) with the engine's own loop, brings the per-node
   sequences to numpy (``layer._to_host``) and names the first (step, node) holding a NaN or an Inf;
3. checks the call's own result, which an optimized path could still make non-finite.

Values must be concrete: under a trace (jax.jit, a tf.function, torch.compile) ``_to_host``
returns None and the call fails with :class:`~rshop_core.errors.RshopConfigError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rshop_core import probe
from rshop_core.errors import RshopConfigError, RshopNumericsError

if TYPE_CHECKING:
    from rshop_core.execution import Plan
    from rshop_core.model import RecurrentModel

    from .lowered import Lowered

__all__ = ["check"]


def _host(layer: Lowered, model: RecurrentModel, a: Any) -> np.ndarray:
    h = layer._to_host(a)
    if h is None:
        raise RshopConfigError(
            f"{type(layer.model).__name__} {layer.model.name!r}, argument check_numerics: expected an eager call "
            f"(concrete values to inspect), received a traced one ({layer.engine}: jax.jit, a tf.function or "
            "torch.compile). Call the layer eagerly with check_numerics=True, or drop the option inside the trace."
        )
    return h


def check(
    layer: Lowered,
    model: RecurrentModel,
    plan: Plan,
    P: dict,
    inputs: tuple,
    result: tuple,
    states_given: bool,
    check_numerics: object = True,
) -> None:
    """Raise :class:`RshopNumericsError` naming the first non-finite value of a call of ``model``.

    ``inputs``: ``(xs, states, consts, steps)`` as the plan's loop received them; ``result``:
    ``(ys, finals)`` as it returned them; ``states_given``: the caller passed ``initial_state``.
    """
    if check_numerics is not True:
        raise RshopConfigError(
            f"{type(layer.model).__name__} {layer.model.name!r}, argument check_numerics: "
            f"expected True or False, received {check_numerics!r}."
        )
    xs, states, consts, steps = inputs
    top = layer.model
    host = [_host(layer, model, a) for a in xs]  # first: a traced call fails before any other work
    opts = model.options

    def bad(what, a, batch_axis=True):
        found = probe.first_bad_in(a, batch_axis)
        if found is not None:
            raise RshopNumericsError(probe.argument_message(top, model, what, found[1], found[0]))

    mask = None
    for src, a in zip(plan.scan, host):  # scanned: (batch, T, ...), in time order
        if src == "mask":
            mask = a
            continue
        found = probe.first_bad([a[:, ::-1] if opts.go_backwards else a], [None])  # processing order, like the probe
        if found is None:
            continue
        k, _, b, kind = found
        t = probe._time_index(opts, k, steps)
        if src == "x":
            raise RshopNumericsError(probe.argument_message(top, model, "argument x", kind, b, k, steps))
        # ground truth, shifted by one step: its first (last, go_backwards) slot is the initial readout
        first = t == (steps - 1 if opts.go_backwards else 0)
        what = (
            "argument initial_readout"
            if first
            else f"argument ground_truth at time step {t + 1 if opts.go_backwards else t - 1}"
        )
        raise RshopNumericsError(probe.argument_message(top, model, what, kind, b))
    for state_src, a in zip(plan.states, states):
        if state_src[0] == "state":
            name = model.state_specs[state_src[1]].name
            what = (
                f"argument initial_state #{state_src[1]} {name!r}"
                if states_given
                else f"the carried state {name!r} (stateful)"
                if layer._carried is not None
                else f"the initial state {name!r} (from its initializer)"
            )
        elif state_src[0] == "readout":
            what = "argument initial_readout"
        else:
            continue  # held outputs start at zeros
        bad(what, _host(layer, model, a))
    g = model._require_built()
    for const_src, a in zip(plan.constants, consts):
        if const_src[0] == "constant":
            bad(
                f"argument constants #{const_src[1]}",
                _host(layer, model, a),
                g.nodes[g.constants[const_src[1]]].type.batched,
            )
        elif const_src[0] == "x":
            bad("argument x", _host(layer, model, a))
    for name in model.param_specs:
        bad(f"parameter {name!r}", _host(layer, model, P[name]), batch_axis=False)

    pplan = probe.probe_plan(model, *plan.key[1:4])
    assert (pplan.scan, pplan.states, pplan.constants) == (plan.scan, plan.states, plan.constants)
    with np.errstate(all="ignore"):  # the numpy engine would warn about what this reports
        ys, _ = layer._loop(pplan, P, xs, states, consts, steps)
    seqs = [_host(layer, model, y) for y in list(ys)[pplan.n_outputs :]]
    found = probe.first_bad(seqs, pplan.probed)
    if found is not None:
        k, nid, b, kind = found
        assert nid is not None, "every probed output names its node"
        raise RshopNumericsError(probe.node_message(top, model, k, nid, b, kind, steps, mask))

    ys, finals = result
    names = [f"output #{j}" for j in range(plan.n_outputs)]
    names += [f"final state {model.state_specs[src[1]].name!r}" for src in plan.states if src[0] == "state"]
    user_finals = [f for f, src in zip(finals, plan.states) if src[0] == "state"]
    for what, a in zip(names, list(ys)[: plan.n_outputs] + user_finals):
        bad_result = probe.first_bad_in(_host(layer, model, a))
        if bad_result is not None:
            raise RshopNumericsError(probe.result_message(top, model, what, bad_result[1], bad_result[0]))
