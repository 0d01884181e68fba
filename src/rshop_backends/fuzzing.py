"""Differential fuzzing of engines: random well-typed step graphs, run against the numpy float64 reference.

A *recipe* is plain data (a dict of ints, bools and lists) that :func:`build_case` turns into a
:class:`FuzzCase`: a :class:`~rshop_core.RecurrentModel` whose step applies a list of ops of the closed
set to its input, states, constants and readout, the loop options it was built with, and deterministic
inputs for one call. :func:`recipes` is the hypothesis strategy that draws recipes; it only keeps a drawn op
when the op's own type rule accepts its operands (a refused op raises an ``RshopError`` while the graph is
built, and is left out), so every recipe builds. :func:`check_case` runs one case on an engine and on the
reference, and :func:`fuzz_engine` runs as many as asked under hypothesis, which shrinks a failing recipe
to a small one and prints it: paste it into a regression list and run it with :func:`check_case`.

Ops whose float32 result is ill-conditioned are wrapped so that a disagreement is an engine bug, not float32
noise: ``sqrt`` and ``log`` read ``softplus(a) + 0.1``, ``divide`` divides by ``softplus(b) + 0.5``, ``exp``
reads ``tanh(a)``, ``pow`` raises ``softplus(a) + 0.5`` to ``tanh(b)`` (or anything to the power 2), and every
new state is squashed by ``tanh`` so states stay O(1) over time.

hypothesis is an optional dependency (``pip install "rshop[fuzz]"``); only :func:`recipes` and
:func:`fuzz_engine` need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rshop_core import Input, RecurrentModel, initializers
from rshop_core import functional as F
from rshop_core.errors import RshopError, RshopNotImplementedError
from rshop_core.layers import Dense
from rshop_core.symbolic import Tensor

from .conformance.runs import as_tuple, native
from .conformance.runs import harness as _harness  # one name to patch in tests: the suite's own harness
from .tolerances import FD_EPS, FORWARD_ATOL, GRAD_RTOL

__all__ = [
    "KINDS",
    "FORWARD_ATOL",
    "GRAD_RTOL",
    "FuzzCase",
    "FuzzMismatch",
    "build_case",
    "check_case",
    "recipes",
    "fuzz_engine",
]

# FORWARD_ATOL (outputs and final states vs the float64 reference, max abs error, times max(1, max |reference|))
# and GRAD_RTOL (directional gradients vs float64 central differences, times max(1, |gradient|)) are the
# conformance table's (rshop_backends.tolerances): the same numbers as the suite's and compare's.

UNARY: tuple[str, ...] = ("negative", "abs", "square", "tanh", "sigmoid", "relu", "softplus", "softsign")
UNARY += ("elu", "hard_sigmoid", "sin", "cos", "erf", "silu", "selu", "relu6")
BINARY = ("add", "subtract", "multiply", "maximum", "minimum")
COMPARE = ("greater", "greater_equal", "less", "less_equal")
# every kind of step a recipe may hold; each reads operands a, b (pool indices) and a small int k (attributes)
KINDS: tuple[str, ...] = (
    *UNARY,
    *BINARY,
    "divide",
    "sqrt",
    "log",
    "exp",
    "pow",
    "clip",
    "gelu",
    "leaky_relu",
    "dense",
    "einsum",
    "softmax",
    "log_softmax",
    "sum",
    "mean",
    "max",
    "min",
    "logsumexp",
    "concat",
    "split",
    "slice",
    "reshape",
    "transpose",
    "expand_dims",
    "squeeze",
    *COMPARE,  # where(compare(a, b), a, tanh(b))
    "equal",  # the same on values rounded to int32
    "cast",
    "argmax_gather",
    "gather",
    "cumsum",
    "dropout",
    "literal",
)


@dataclass
class FuzzCase:
    """One generated model and its call. ``x`` is (batch, T, input_dim), or (batch, input_dim) for a
    decoder; ``call`` holds the call keywords (``mask``, ``sequence_lengths``, ``initial_state``,
    ``constants``) as numpy arrays; ``stateful`` cases are called twice, on ``x``'s two halves in time."""

    recipe: dict[str, Any]
    model: RecurrentModel
    x: np.ndarray
    call: dict[str, Any] = field(default_factory=dict)
    ops: tuple[str, ...] = ()


class FuzzMismatch(AssertionError):
    """An engine disagreed with the reference on a generated case; the message holds the recipe."""


def _dense(units: int, name: str | None = None) -> Dense:
    """A Dense layer with random biases: zero ones would put values exactly on the kinks of relu, selu, abs,
    max ... (a zero state through a zero bias), where a finite difference straddles the kink."""
    return Dense(units, bias_initializer=initializers.RandomNormal(0.0, 0.5), name=name)


def _flat(v: Tensor) -> Tensor:
    return F.reshape(v, [1]) if v.shape == () else F.reshape(v, [-1]) if len(v.shape) > 1 else v


def _broadcastable(a: Tensor, b: Tensor) -> Tensor:
    """``b`` itself when it broadcasts against ``a``'s shape, else its mean (a scalar, which always does)."""
    try:
        np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        return F.mean(b)
    return b


def _step(kind: str, a: Tensor, b: Tensor, k: int) -> Tensor:  # noqa: C901  (a list of cases, one per kind)
    """The value one recipe step adds to the pool (raises an RshopError when the op's type rule refuses)."""
    rank = len(a.shape)
    axis = -1 - (k % rank) if rank else -1
    if kind in UNARY:
        return getattr(F, kind)(a)
    if kind in BINARY:
        return getattr(F, kind)(a, _broadcastable(a, b))
    if kind == "divide":
        return F.divide(a, F.softplus(_broadcastable(a, b)) + 0.5)
    if kind == "sqrt":
        return F.sqrt(F.softplus(a) + 0.1)
    if kind == "log":
        return F.log(F.softplus(a) + 0.1)
    if kind == "exp":
        return F.exp(F.tanh(a))
    if kind == "pow":
        return F.pow(a, 2.0) if k % 2 else F.pow(F.softplus(a) + 0.5, F.tanh(_broadcastable(a, b)))
    if kind == "clip":
        return F.clip(a, -0.5 - 0.25 * (k % 3), 0.25 + 0.25 * (k % 4))
    if kind == "gelu":
        return F.gelu(a, approximate=bool(k % 2))
    if kind == "leaky_relu":
        return F.leaky_relu(a, negative_slope=(0.01, 0.2, 0.5)[k % 3])
    if kind == "dense":
        return _dense(2 + k % 3)(a)
    if kind == "einsum":
        if rank == 2 and b.shape == a.shape[-1:]:
            return F.einsum("rc,c->r", a, b)
        if rank == 1 and len(b.shape) == 1:
            return F.einsum("i,j->ij", a, b)
        return F.einsum("rc,rk->ck", a, b)
    if kind in ("softmax", "log_softmax"):
        return getattr(F, kind)(a, axis=axis)
    if kind in ("sum", "mean", "max", "min", "logsumexp"):
        return getattr(F, kind)(a, axes=axis, keepdims=rank == 1 or bool(k % 2))
    if kind == "concat":
        return F.concat([a, b], axis=axis)
    if kind == "split":
        n = a.shape[axis]
        return F.split(a, [1, n - 1], axis=axis)[k % 2] if n and n > 1 else F.split(a, 1, axis=axis)[0]
    if kind == "slice":
        n = a.shape[axis] or 1
        return F.slice(a, k % n, n, axis=axis)
    if kind == "reshape":
        size = int(np.prod(a.shape))
        shape = [2, size // 2] if rank < 2 and size % 2 == 0 and size > 2 else [-1]
        return F.reshape(a, shape)
    if kind == "transpose":
        return F.transpose(a if rank == 2 else F.expand_dims(a, -1), [1, 0])
    if kind == "expand_dims":
        return F.expand_dims(a, -1 - k % (rank + 1))
    if kind == "squeeze":
        ones = [i - rank for i, d in enumerate(a.shape) if d == 1]
        return F.squeeze(a, ones[: 1 + k % 2]) if ones else F.squeeze(F.expand_dims(a, axis), [axis])
    if kind == "equal":
        cond = F.equal(F.cast(a * 2.0, "int32"), F.cast(_broadcastable(a, b) * 2.0, "int32"))
        return F.where(cond, a, F.tanh(_broadcastable(a, b)))
    if kind in COMPARE:
        cond = getattr(F, kind)(a, _broadcastable(a, b))
        return F.where(cond, a, F.tanh(_broadcastable(a, b)))
    if kind == "cast":
        if k % 2:
            return F.cast(F.cast(a, "bool"), a.dtype)
        return F.cast(F.cast(a * 3.0, "int32"), a.dtype) + a
    if kind == "argmax_gather":
        # indices of a's last axis, so they index any value whose gathered axis is at least as long
        idx = F.argmax(a, axis=-1, keepdims=True)
        fits = len(b.shape) >= 1 and b.shape[-1] is not None and b.shape[-1] >= (a.shape[-1] if rank else 1)
        return F.gather(b if fits else a, idx, axis=-1)
    if kind == "gather":
        n = a.shape[axis] or 1
        return F.gather(a, [(k + i) % n for i in range(1 + k % 3)], axis=axis)
    if kind == "cumsum":
        return F.cumsum(a, axis=axis, reverse=bool(k % 2), exclusive=bool(k // 2 % 2))
    if kind == "dropout":
        return F.dropout(a, 0.25)
    if kind == "literal":
        value = np.linspace(-1.0, 1.0, int(np.prod(a.shape)) or 1).reshape(a.shape).astype(a.dtype)
        return getattr(F, BINARY[k % len(BINARY)])(a, value)
    raise RshopError(f"fuzz recipe: expected a kind of {KINDS}, received {kind!r}.")


def _pool_and_steps(
    recipe: dict[str, Any],
) -> tuple[Tensor, list[Tensor], list[Tensor], Tensor | None, list[Tensor], list[str]]:
    x = Input((recipe["input_dim"],), name="x")
    states = [Input(tuple(s), name=f"s{i}") for i, s in enumerate(recipe["states"])]
    consts = [Input(tuple(c), name=f"c{i}") for i, c in enumerate(recipe["constants"])]
    readout = Input((recipe["output_dim"],), name="y_prev") if recipe["readout"] else None
    pool = [x, *states, *consts, *([readout] if readout is not None else [])]
    ops = []
    for kind, ia, ib, k in recipe["steps"]:
        out = _step(kind, pool[ia % len(pool)], pool[ib % len(pool)], k)
        if out.dtype != x.dtype or out.shape is None or None in out.shape:
            raise RshopError(f"fuzz step {kind}: expected a float value of known shape, received {out.type}.")
        pool.append(out)
        ops.append(kind)
    return x, states, consts, readout, pool, ops


def _model(recipe: dict[str, Any]) -> tuple[RecurrentModel, list[str]]:
    x, states, consts, readout, pool, ops = _pool_and_steps(recipe)
    n, first = len(pool), len(pool) - len(ops)
    # the drawn heads and every step's value: no step is dead code, left out of the traced graph
    heads = [_flat(pool[i]) for i in sorted({i % n for i in recipe["heads"]} | set(range(first, n)))]
    head = heads[0] if len(heads) == 1 else F.concat(heads)
    output = _dense(recipe["output_dim"], name="out")(head)
    finals = []
    for i, s in enumerate(states):
        size = int(np.prod(s.shape))
        proj = _dense(size, name=f"new_s{i}")(F.concat([head, _flat(s)]))
        finals.append(F.tanh(F.reshape(proj, list(s.shape))))
    model = RecurrentModel(
        input=x,
        output=output,
        initial_states=states,
        final_states=finals,
        constants=consts or None,
        readout_input=readout,
        seed=recipe["seed"],
        **recipe["options"],
    )
    return model, ops


def build_case(recipe: dict[str, Any]) -> FuzzCase:
    """The model and call a recipe describes (see :func:`recipes` for its keys)."""
    model, ops = _model(recipe)
    rng = np.random.default_rng(recipe["seed"])
    batch, steps = recipe["batch"], recipe["time"]
    decode = recipe["options"].get("decode", False)
    x = rng.standard_normal((batch, recipe["input_dim"]) if decode else (batch, steps, recipe["input_dim"]))
    call: dict[str, Any] = {}
    if recipe["constants"]:
        call["constants"] = [rng.standard_normal((batch, *c)) for c in recipe["constants"]]
    if recipe["given_states"]:
        call["initial_state"] = [np.tanh(rng.standard_normal((batch, *s))) for s in recipe["states"]]
    if recipe["masking"] == "mask":
        call["mask"] = rng.random((batch, steps)) < 0.7
    elif recipe["masking"] == "lengths":
        call["sequence_lengths"] = rng.integers(0, steps + 1, batch).astype("int32")
    return FuzzCase(recipe, model, x, call, tuple(ops))


def _run(case: FuzzCase, engine: str, dtype: str, layer: Any = None) -> list[np.ndarray]:
    """Every result of the case's call(s) on ``engine`` as float64 numpy arrays (two calls when stateful)."""
    h = _harness(engine)
    layer = layer or case.model.lower(engine, dtype)
    conv = lambda a: native(h, a, dtype)
    kwargs = {
        k: [conv(a) for a in v] if isinstance(v, list) else conv(v) for k, v in case.call.items() if v is not None
    }
    parts = [(slice(None), kwargs)]
    if case.recipe["options"].get("stateful"):  # two calls, on the halves in time (a mask cut the same way)
        half = case.x.shape[1] // 2
        parts = [
            (t, {**kwargs, **({"mask": conv(case.call["mask"][:, t])} if "mask" in case.call else {})})
            for t in (slice(None, half), slice(half, None))
        ]
    results = []
    for t, part_kwargs in parts:
        out = layer(conv(case.x[:, t]), training=False, **part_kwargs)
        results += [np.asarray(h.to_numpy(o), np.float64) for o in as_tuple(out)]
    return results


def _describe(case: FuzzCase, engine: str, what: str) -> str:
    return f"engine {engine!r}, {what}; ops {list(case.ops)}; recipe:\n{case.recipe!r}"


def check_case(case: FuzzCase | dict[str, Any], engine: str, dtype: str = "float32", grads: bool = True) -> None:
    """Run ``case`` on ``engine`` (in ``dtype``) and on the numpy float64 reference, and raise
    :class:`FuzzMismatch` unless every output and final state agrees within ``FORWARD_ATOL[dtype]``
    (times the reference's largest magnitude when above 1) and, when ``grads`` and the engine has gradients
    (and the case is not stateful), each parameter's gradient projected on a random unit direction agrees
    with the float64 central difference of the loss ``sum(output * w)`` along it within ``GRAD_RTOL[dtype]``
    (times the gradient's norm when above 1)."""
    case = build_case(case) if isinstance(case, dict) else case
    want = _run(case, "numpy", "float64")
    got = _run(case, engine, dtype)
    if len(got) != len(want):
        raise FuzzMismatch(_describe(case, engine, f"{len(got)} results, expected {len(want)}"))
    for i, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            raise FuzzMismatch(_describe(case, engine, f"result #{i}: shape {g.shape}, expected {w.shape}"))
        err = float(np.max(np.abs(g - w))) if g.size else 0.0
        scale = max(1.0, float(np.max(np.abs(w))) if w.size else 0.0)
        if not err <= FORWARD_ATOL[dtype] * scale:  # NaN fails too
            raise FuzzMismatch(_describe(case, engine, f"result #{i}: max abs error {err:.3g} (scale {scale:.3g})"))
    if grads and not case.recipe["options"].get("stateful"):
        _check_grads(case, engine, dtype, want[0].shape)


def _check_grads(case: FuzzCase, engine: str, dtype: str, out_shape: tuple[int, ...]) -> None:
    h = _harness(engine)
    layer = case.model.lower(engine, dtype)
    conv = lambda a: native(h, a, dtype)
    rng = np.random.default_rng(case.recipe["seed"] + 1)
    w_out = rng.standard_normal(out_shape)
    kwargs = {k: [conv(a) for a in v] if isinstance(v, list) else conv(v) for k, v in case.call.items()}
    try:
        got = h.loss_grads(layer, conv(case.x), w_out.astype(dtype), **kwargs)
    except RshopNotImplementedError:
        return  # an inference-only engine
    ref = case.model.lower("numpy", "float64")
    ref_kwargs = dict(case.call)

    def loss() -> float:
        return float(np.sum(as_tuple(ref(case.x, training=False, **ref_kwargs))[0] * w_out))

    for name, p in ref.params.items():
        if name not in got:
            raise FuzzMismatch(_describe(case, engine, f"no gradient for parameter {name!r}"))
        v = rng.standard_normal(p.shape)
        v /= max(float(np.linalg.norm(v)), 1e-12)
        keep = p.copy()
        p[...] = keep + FD_EPS * v
        up = loss()
        p[...] = keep - FD_EPS * v
        down = loss()
        p[...] = keep
        fd = (up - down) / (2 * FD_EPS)
        g = np.asarray(got[name], np.float64)
        proj = float(np.sum(g * v))
        scale = max(1.0, float(np.linalg.norm(g)))
        if not abs(proj - fd) <= GRAD_RTOL[dtype] * scale:
            raise FuzzMismatch(
                _describe(case, engine, f"d loss / d {name} along a random direction: {proj:.6g}, reference {fd:.6g}")
            )


def recipes(max_steps: int = 8) -> Any:
    """A hypothesis strategy of recipes: dicts with ``input_dim``, ``states`` (one to three shapes, 1-D or
    2-D), ``constants`` (zero or one shape), ``readout``, ``output_dim``, ``steps`` (``[kind, a, b, k]``:
    the op ``kind`` of :data:`KINDS` on pool values ``a`` and ``b`` with attribute choice ``k``; the pool
    starts with x, the states, the constants and the readout, and grows by one value per step),
    ``heads`` (the pool values the output reads), ``options`` (go_backwards, return_sequences,
    return_states, zero_output_for_mask, stateful, decode), ``masking`` (None, "mask", "lengths"),
    ``given_states``, ``batch`` (2), ``time`` (1 to 4) and ``seed``."""
    from hypothesis import strategies as st

    shapes = st.sampled_from([(2,), (3,), (4,), (2, 2), (2, 3), (3, 2)])

    @st.composite
    def draw_recipe(draw: Callable[[Any], Any]) -> dict[str, Any]:
        recipe: dict[str, Any] = {
            "input_dim": draw(st.integers(2, 3)),
            "states": [list(s) for s in draw(st.lists(shapes, min_size=1, max_size=3))],
            "constants": [list(s) for s in draw(st.lists(shapes, max_size=1))],
            "readout": draw(st.booleans()),
            "output_dim": draw(st.integers(1, 3)),
            "steps": [],
        }
        n_steps = draw(st.integers(1, max_steps))
        for _ in range(n_steps):
            pool = 1 + len(recipe["states"]) + len(recipe["constants"]) + recipe["readout"] + len(recipe["steps"])
            step = [
                KINDS[draw(st.integers(0, 2**16)) * 7919 % len(KINDS)],  # uniform (sampled_from favours the first)
                draw(st.integers(0, pool - 1)),
                draw(st.integers(0, pool - 1)),
                draw(st.integers(0, 2**16)) * 40503 % 6,
            ]
            try:  # keep only what the op's type rule accepts
                _pool_and_steps({**recipe, "steps": [*recipe["steps"], step]})
            except RshopError:
                continue
            recipe["steps"].append(step)
        pool = 1 + len(recipe["states"]) + len(recipe["constants"]) + recipe["readout"] + len(recipe["steps"])
        recipe["heads"] = sorted(set(draw(st.lists(st.integers(0, pool - 1), min_size=1, max_size=2))) | {pool - 1})
        stateful = draw(st.booleans()) if not recipe["readout"] else False
        decode = not stateful and draw(st.integers(0, 4)) == 0
        recipe["options"] = {
            "go_backwards": draw(st.booleans()),
            "return_sequences": draw(st.booleans()),
            "return_states": draw(st.booleans()),
        }
        maskings = [None] if decode else [None, "mask"] if stateful else [None, "mask", "lengths"]
        recipe["masking"] = draw(st.sampled_from(maskings))
        if recipe["masking"]:
            recipe["options"]["zero_output_for_mask"] = draw(st.booleans())
        if stateful:
            recipe["options"].update(stateful=True, batch_size=2)
        recipe["time"] = draw(st.integers(2 if stateful else 1, 4))
        if decode:
            recipe["options"].update(decode=True, output_length=recipe["time"])
        recipe["given_states"] = not stateful and draw(st.booleans())
        recipe["batch"] = 2
        recipe["seed"] = draw(st.integers(0, 2**16))
        return recipe

    return draw_recipe()


def fuzz_engine(
    engine: str,
    max_examples: int = 200,
    seed: int = 0,
    dtype: str = "float32",
    grads: bool = True,
    max_steps: int = 8,
    on_case: Callable[[FuzzCase], None] | None = None,
) -> dict[str, int]:
    """Run ``max_examples`` generated models on ``engine`` against the numpy float64 reference with
    :func:`check_case`, drawn from the fixed ``seed`` (the same models on every run). A mismatch is shrunk by
    hypothesis to a small recipe and raised as :class:`FuzzMismatch`, recipe in the message. Returns how
    many generated steps used each kind of op (``"models"``: how many models ran). Needs hypothesis."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fixed_seed

    counts: dict[str, int] = {"models": 0}

    @fixed_seed(seed)
    @settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(recipes(max_steps))
    def run(recipe: dict[str, Any]) -> None:
        case = build_case(recipe)
        if on_case is not None:
            on_case(case)
        check_case(case, engine, dtype, grads)
        counts["models"] += 1
        for op in case.ops:
            counts[op] = counts.get(op, 0) + 1

    run()
    return counts


def op_coverage(recipes_: Sequence[dict[str, Any]]) -> set[str]:
    """The node ops of the closed set that the models of ``recipes_`` contain."""
    ops: set[str] = set()
    for r in recipes_:
        graph = build_case(r).model.graph
        assert graph is not None  # a built case's model is traced
        ops.update(node.op for node in graph.nodes)
    return ops
