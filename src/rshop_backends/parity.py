"""Parity as a product: run one model on several engines and measure each against the numpy float64 reference.

:func:`compare` runs ``model`` on the numpy engine in float64 (the reference), then on each engine in
``dtype``, and returns a :class:`ParityReport`: per engine and per result (each output, each returned final
state and, with ``grads=True``, each parameter's gradient) the largest absolute and relative error and the
limit it is held to (:mod:`rshop_backends.tolerances`, the conformance suite's table). docs/parity.md.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rshop_core.errors import RshopConfigError, RshopParityError

from . import registry, tolerances
from .arrays import engine_arrays

if TYPE_CHECKING:
    from rshop_core.lowerable import Lowerable

__all__ = [
    "FD_ENTRIES",
    "PROJECTION_SEED",
    "ParityReport",
    "ParityRow",
    "central_differences",
    "compare",
    "random_inputs",
]

# With grads=True the reference gradient comes from central differences on the numpy float64 engine:
# two runs per checked entry. Up to FD_ENTRIES entries of each parameter are checked (all of a smaller
# one; a seeded random choice of a larger one), so the cost grows with the number of parameters, not
# their size (decision in docs/decisions.md).
FD_ENTRIES = 64
# grads=True differentiates sum(first output * w), w = np.random.default_rng(PROJECTION_SEED).standard_normal(its shape)
PROJECTION_SEED = 0


@dataclass(frozen=True)
class ParityRow:
    """One engine's error on one result: ``kind`` is ``"output"``, ``"state"`` or ``"grad"``; ``name``
    the output (``output``, ``output_1``...), state or parameter name. ``max_abs``: the largest
    ``|engine - reference|``; ``max_rel``: that divided by the largest ``|reference|`` of the result;
    ``limit``: the largest ``max_abs`` allowed; ``detail``: why a row failed without numbers (a shape)."""

    engine: str
    kind: str
    name: str
    max_abs: float
    max_rel: float
    limit: float
    ok: bool
    detail: str = ""

    @property
    def label(self) -> str:
        """How the table names the result: ``output`` / ``output_1``, ``state h``, ``grad dense/kernel``."""
        return self.name if self.kind == "output" else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class ParityReport:
    """What :func:`compare` measured. ``rows``: one :class:`ParityRow` per engine and result;
    ``notes``: what was not compared and why (gradients of an inference-only engine);
    ``tolerances``: the table used, for ``dtype``."""

    model: str
    dtype: str
    engines: tuple[str, ...]
    rows: tuple[ParityRow, ...]
    tolerances: dict[str, float]
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when every row is within its limit."""
        return all(r.ok for r in self.rows)

    def table(self) -> str:
        """The report as a printable table, one row per engine and result."""
        head = f"parity of {self.model!r}: engines in {self.dtype} vs the numpy float64 reference"
        w = max([26, *(len(r.label) for r in self.rows)])
        cols = f"  {'engine':<11} {'result':<{w}} {'max abs err':>11} {'max rel err':>11} {'limit':>9}  ok"
        lines = [head, cols]
        for r in self.rows:
            mark = "yes" if r.ok else "NO" + (f" ({r.detail})" if r.detail else "")
            lines.append(
                f"  {r.engine:<11} {r.label:<{w}} {r.max_abs:>11.2e} {r.max_rel:>11.2e} {r.limit:>9.1e}  {mark}"
            )
        t = self.tolerances
        lines.append(
            f"limits: outputs and states {t['forward_atol']:g} x max(1, max|reference|)"
            + (
                f"; gradients {t['grad_rtol']:g} x max(1, max|reference gradient|), reference by central "
                f"differences (eps {t['fd_eps']:g}, float64, up to {FD_ENTRIES} entries per parameter)"
                if any(r.kind == "grad" for r in self.rows)
                else ""
            )
        )
        lines.extend(f"note: {n}" for n in self.notes)
        bad = sum(not r.ok for r in self.rows)
        lines.append("within tolerance" if not bad else f"{bad} of {len(self.rows)} results exceed their limit")
        return "\n".join(lines)

    def assert_close(self) -> None:
        """Raise :class:`~rshop_core.errors.RshopParityError` (holding :meth:`table`) unless :attr:`ok`."""
        if not self.ok:
            failed = [f"{r.engine} {r.label}" for r in self.rows if not r.ok]
            raise RshopParityError(
                f"compare({self.model!r}): expected every engine within tolerance of the numpy float64 "
                f"reference, received {len(failed)} result(s) beyond it ({', '.join(failed[:6])}"
                f"{', ...' if len(failed) > 6 else ''}). Look for an op or option the engine lowers "
                f"differently; the table:\n{self.table()}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``json.dumps`` gives standard JSON: a non-finite error is the string
        ``"inf"`` or ``"nan"``)."""

        def num(v: float) -> float | str:
            return v if math.isfinite(v) else str(v)

        rows = [{**asdict(r), "max_abs": num(r.max_abs), "max_rel": num(r.max_rel)} for r in self.rows]
        out = {
            "model": self.model,
            "dtype": self.dtype,
            "engines": list(self.engines),
            "ok": self.ok,
            "tolerances": dict(self.tolerances),
            "rows": rows,
            "notes": list(self.notes),
        }
        json.dumps(out, allow_nan=False)  # guards the promise above
        return out


def central_differences(
    params: dict[str, np.ndarray],
    loss: Callable[[], float],
    entries: Mapping[str, Sequence[tuple[int, ...]]] | None = None,
) -> dict[str, np.ndarray]:
    """d loss / d p by central differences (eps ``tolerances.FD_EPS``) for float64 arrays ``params``,
    perturbed in place and restored. ``entries``: the indices to differentiate per name (default:
    every entry of every array); the others are left 0 in the result."""
    eps = tolerances.FD_EPS
    grads = {}
    for name, p in params.items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape) if entries is None else entries.get(name, ()):
            keep = p[idx]
            p[idx] = keep + eps
            up = loss()
            p[idx] = keep - eps
            down = loss()
            p[idx] = keep
            g[idx] = (up - down) / (2 * eps)
        grads[name] = g
    return grads


def as_tuple(result: Any) -> tuple[Any, ...]:
    """A call's result as a tuple (a single output becomes a 1-tuple)."""
    return result if isinstance(result, tuple) else (result,)


def native(hooks: Any, a: Any, dtype: str, where: str = "compare") -> Any:
    """A numpy call argument as the engine's array (``hooks``: its ``testing`` module): floats in ``dtype``,
    masks bool, ids and lengths int32 (refused with an ``RshopConfigError`` naming ``where`` when they do
    not fit). The conformance suite and the fuzzer convert their arguments with it too."""
    a = np.asarray(a)
    kind = "bool" if a.dtype == bool else "int32" if a.dtype.kind in "iu" else dtype
    if kind == "int32" and a.size and (a.min() < -(2**31) or a.max() >= 2**31):
        raise RshopConfigError(
            f"{where}: expected integer inputs that fit int32 (ids, lengths), received values in "
            f"[{a.min()}, {a.max()}]. rshop's int inputs are int32."
        )
    return hooks.to_native(a, kind)


def _convert(hooks: Any, v: Any, dtype: str) -> Any:
    if isinstance(v, np.ndarray):
        return native(hooks, v, dtype)
    if isinstance(v, (list, tuple)) and v and all(isinstance(a, np.ndarray) for a in v):
        return [native(hooks, a, dtype) for a in v]
    return v


def _check_numpy(where: str, v: Any, array: bool) -> None:
    """Refuse engine arrays (and anything else that is not numpy) where compare takes numpy: x must be an
    ndarray; a keyword an ndarray, a list of them, or a plain value (``training=False``)."""
    plain = (type(None), bool, int, float, str, np.generic)
    items = [v] if array or not isinstance(v, (list, tuple)) else list(v)
    for a in items:
        if not isinstance(a, np.ndarray) and (array or not isinstance(a, plain)):
            raise RshopConfigError(
                f"{where}: expected numpy arrays, received {type(a).__name__}. compare converts numpy inputs "
                "for every engine: pass np.asarray(...) or rshop_backends.to_numpy(...)."
            )


def _errors(got: np.ndarray, want: np.ndarray) -> tuple[float, float, float]:
    """``(max abs error, max rel error, max |want|)``; NaN where both are NaN counts as equal."""
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    diff = np.abs(g - w)
    diff = np.where(np.isnan(g) & np.isnan(w), 0.0, diff)
    scale = float(np.nanmax(np.abs(w))) if w.size and not np.all(np.isnan(w)) else 0.0
    err = float(np.max(diff)) if diff.size else 0.0
    return err, err / scale if scale > 0 else (0.0 if err == 0 else math.inf), scale


def _row(engine: str, kind: str, name: str, got: np.ndarray, want: np.ndarray, atol: float) -> ParityRow:
    if got.shape != want.shape:
        detail = f"shape {tuple(got.shape)}, reference {tuple(want.shape)}"
        return ParityRow(engine, kind, name, math.inf, math.inf, atol, False, detail)
    err, rel, scale = _errors(got, want)
    limit = atol * max(1.0, scale)
    return ParityRow(engine, kind, name, err, rel, limit, bool(err <= limit))


def _result_names(model: Lowerable, n: int) -> list[tuple[str, str]]:
    states = [s.name for s in model.returned_state_specs]
    outs = n - len(states)
    names = [("output", "output" if outs == 1 else f"output_{i}") for i in range(outs)]
    return names + [("state", s) for s in states]


def _engines(engines: Sequence[str] | None) -> list[str]:
    if engines is None:
        return [name for name, e in registry.engines().items() if e.installed()]
    if isinstance(engines, str) or not all(isinstance(e, str) for e in engines):
        raise RshopConfigError(
            f"compare engines: expected a list of engine names, received {engines!r:.80}. Pass e.g. "
            "engines=['jax', 'torch'], or None for every installed engine."
        )
    for name in engines:
        registry.load(name)  # an unknown or uninstalled engine fails here, naming the fix
    return list(dict.fromkeys(engines))


def compare(
    model: Lowerable,
    inputs: np.ndarray,
    engines: Sequence[str] | None = None,
    dtype: str = "float32",
    grads: bool = False,
    **call: Any,
) -> ParityReport:
    """Run ``model`` on each engine and measure it against the numpy float64 reference.

    ``inputs``: x as a numpy array, (batch, T, *input_shape) (a decoder's: (batch, *input_shape));
    ``call``: the call's other keywords in numpy (``constants=[...]``, ``initial_state=[...]``,
    ``mask=``, ``sequence_lengths=``, ``ground_truth=``...; ``training`` defaults to False). Float
    arrays run in ``dtype`` on each engine and in float64 on the reference; bool stays bool, integers
    become int32. ``engines``: names (default: every installed engine, numpy included: numpy in
    float32 is a check too). ``grads=True`` also compares, on each trainable engine, the gradient of
    ``sum(first output * w)`` (``w`` a fixed random projection) w.r.t. every trainable parameter with
    central differences of the reference (up to :data:`FD_ENTRIES` entries per parameter).
    Nothing is asserted: see :meth:`ParityReport.assert_close`.
    """
    where = f"compare({getattr(model, 'name', type(model).__name__)!r})"
    if dtype not in tolerances.FORWARD_ATOL:
        raise RshopConfigError(
            f"{where} dtype: expected one of {sorted(tolerances.FORWARD_ATOL)}, received {dtype!r}. The "
            "tolerance table has no other dtype."
        )
    _check_numpy(f"{where} inputs", inputs, True)
    for k, v in call.items():
        _check_numpy(f"{where} argument {k}", v, False)
    names = _engines(engines)
    call = {"training": False, **call}

    ref_hooks = engine_arrays("numpy")
    ref_layer = model.lower("numpy", "float64")
    ref_call = {k: _convert(ref_hooks, v, "float64") for k, v in call.items()}
    x_ref = _convert(ref_hooks, inputs, "float64")
    reference = [np.asarray(r) for r in as_tuple(ref_layer(x_ref, **ref_call))]
    labels = _result_names(model, len(reference))

    atol = tolerances.FORWARD_ATOL[dtype]
    rtol = tolerances.GRAD_RTOL[dtype]
    rows: list[ParityRow] = []
    notes: list[str] = []
    want_grads: dict[str, np.ndarray] = {}
    entries: dict[str, list[tuple[int, ...]]] = {}
    w_out = np.zeros(0)
    if grads:
        w_out = np.random.default_rng(PROJECTION_SEED).standard_normal(reference[0].shape)
        want_grads, entries = _reference_grads(model, x_ref, ref_call, w_out)
    grad_scale = max([1.0] + [float(np.max(np.abs(g))) for g in want_grads.values() if g.size])

    for engine in names:
        hooks = engine_arrays(engine)
        scope = hooks.float64_scope() if dtype == "float64" else contextlib.nullcontext()
        with scope:
            layer = model.lower(engine, dtype)
            x = _convert(hooks, inputs, dtype)
            kw = {k: _convert(hooks, v, dtype) for k, v in call.items()}
            got = [np.asarray(hooks.to_numpy(r)) for r in as_tuple(layer(x, **kw))]
            if len(got) != len(reference):
                raise RshopConfigError(
                    f"{where}, engine {engine!r}: expected {len(reference)} results as the reference returns, "
                    f"received {len(got)}. The engine does not follow the call contract (docs/engines.md)."
                )
            rows += [_row(engine, k, n, g, r, atol) for (k, n), g, r in zip(labels, got, reference)]
            if not grads:
                continue
            if not getattr(hooks, "GRADIENTS", True):  # an inference-only engine says False
                notes.append(f"{engine}: no gradients (an inference-only engine)")
                continue
            ikw = {k: kw.pop(k) for k in ("initial_state", "constants") if k in kw}
            _restart(model, layer)  # a stateful layer differentiates its first call, as the reference does
            got_grads = hooks.loss_grads(layer, x, w_out.astype(dtype), **ikw, **kw)
            for name, want in want_grads.items():
                if name not in got_grads:
                    rows.append(ParityRow(engine, "grad", name, math.inf, math.inf, 0.0, False, "no gradient"))
                    continue
                g = np.asarray(got_grads[name], np.float64)
                if g.shape != want.shape:
                    rows.append(_row(engine, "grad", name, g, want, rtol))
                    continue
                err, rel, _ = _errors(
                    np.array([g[i] for i in entries[name]]), np.array([want[i] for i in entries[name]])
                )
                limit = rtol * grad_scale
                rows.append(ParityRow(engine, "grad", name, err, rel, limit, bool(err <= limit)))
    return ParityReport(
        model=getattr(model, "name", type(model).__name__),
        dtype=dtype,
        engines=tuple(names),
        rows=tuple(rows),
        tolerances={
            "forward_atol": atol,
            "grad_rtol": rtol,
            "fd_eps": tolerances.FD_EPS,
        },
        notes=tuple(notes),
    )


def _restart(model: Lowerable, layer: Any) -> None:
    """Forget what a stateful layer carried from its last call (each run of compare is a first call)."""
    if model.options.stateful:
        layer.reset_states()


def _reference_grads(
    model: Lowerable, x: Any, call: dict[str, Any], w_out: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, list[tuple[int, ...]]]]:
    """Central differences of ``sum(first output * w_out)`` on the float64 reference, for the trainable
    parameters: up to FD_ENTRIES entries of each (all of a smaller one; else a seeded random choice).
    Its own lowered layer: the parameters are perturbed in place."""
    layer = model.lower("numpy", "float64")
    params = {k: v for k, v in layer.params.items() if model.param_specs[k].trainable}
    rng = np.random.default_rng(PROJECTION_SEED + 1)
    entries: dict[str, list[tuple[int, ...]]] = {}
    for name, p in params.items():
        every = list(np.ndindex(p.shape))
        pick = (
            every if len(every) <= FD_ENTRIES else [every[i] for i in sorted(rng.choice(len(every), FD_ENTRIES, False))]
        )
        entries[name] = pick

    def loss() -> float:
        _restart(model, layer)
        return float(np.sum(as_tuple(layer(x, **call))[0] * w_out))

    return central_differences(params, loss, entries), entries


def _id_bound(graph: Any, node: int) -> int:
    """How many ids an int input may take: the smallest table it indexes with ``gather`` (2 when none)."""
    bounds = [
        int(graph.nodes[n.inputs[0]].type.shape[n.attrs.get("axis", 0)])
        for n in graph.nodes
        if n.op == "gather" and len(n.inputs) > 1 and n.inputs[1] == node
    ]
    return min(bounds, default=2)


def _random_array(graph: Any, node: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dtype = graph.nodes[node].type.dtype
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith(("int", "uint")):
        return rng.integers(0, _id_bound(graph, node), shape).astype(dtype)
    return rng.standard_normal(shape)


def random_inputs(model: Lowerable, batch: int = 2, steps: int = 8, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Random numpy inputs for ``model`` made from its own specs: ``(x, call keywords)``.

    x is (batch, steps, *input shape) ((batch, *input shape) for a decoder); constants, when the step
    has some, are ``call["constants"]``, with ``steps`` for a dimension of unknown size (an encoder
    sequence). Floats are standard normal (float64; compare casts them), bool inputs random masks,
    int inputs ids in ``[0, n)`` where ``n`` is the size of the smallest table the step gathers them
    from (2 when it gathers none). States start from the model's own initializers.
    """
    where = f"random_inputs({getattr(model, 'name', type(model).__name__)!r})"
    for what, v in (("batch", batch), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise RshopConfigError(f"{where} {what}: expected an int >= 1, received {v!r}.")
    rng = np.random.default_rng(seed)
    leaf = model.leaves[0]
    graph = leaf._require_built()
    x_node = graph.x[0]
    per_step = tuple(model.input_shape)
    x_shape = (batch, *per_step) if model.options.decode else (batch, steps, *per_step)
    x = _random_array(graph, x_node, x_shape, rng)
    call: dict[str, Any] = {}
    if graph.constants and getattr(model, "KIND", "") != "SequenceStack":
        call["constants"] = [
            _random_array(graph, c, (batch, *(steps if d is None else d for d in graph.nodes[c].type.shape)), rng)
            for c in graph.constants
        ]
    return x, call
