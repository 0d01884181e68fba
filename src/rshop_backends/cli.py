"""The ``rshop`` command line.

- ``rshop info``: installed engines with versions, the active engine and why.
- ``rshop check MODEL.rshop``: the model on every installed engine against the numpy float64 reference
  (:func:`rshop_backends.parity.compare`); exit 0 within tolerance, 1 beyond it, 2 on an error.
- ``rshop explain MODEL.rshop --engine E``: what that engine runs for the model (``explain()``).
- ``rshop export MODEL.rshop --format savedmodel|torch|jax|onnx OUT``: the model as a serving artefact
  (:func:`rshop_backends.serving.export`), then (unless ``--no-verify``) the artefact read back and
  compared with the numpy float64 reference on random inputs (:func:`rshop_backends.serving.verify`);
  exit 0 within tolerance, 1 beyond it, 2 on an error.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from rshop_core import __version__
from rshop_core.errors import RshopConfigError, RshopError, RshopFormatError

from . import registry, selection

# the keys an --inputs .npz file may hold: x, then numbered lists and single arrays of a call
NPZ_LISTS = ("constants", "initial_state")
NPZ_ARRAYS = ("mask", "sequence_lengths", "ground_truth")


def info_text() -> str:
    lines = [f"rshop {__version__} on Python {platform.python_version()} ({platform.machine()})", "engines:"]
    for name, e in registry.engines().items():
        if e.installed():
            vers = ", ".join(f"{d} {v}" for d, v in e.versions().items()) or "version unknown"
            lines.append(f"  {name:<11} installed   {vers}")
        else:
            extra = f'pip install "rshop[{e.extra}]"' if e.extra else "not installed"
            lines.append(f"  {name:<11} missing     ({extra})")
    lines.append(f"active engine: {selection.backend()} ({selection.reason()})")
    return "\n".join(lines)


def load_inputs(path: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``(x, call keywords)`` from an ``.npz`` file: ``x``; ``constants_0``, ``constants_1``, ... and
    ``initial_state_0``, ...; ``mask``, ``sequence_lengths``, ``ground_truth``. Any other key is an
    error (a misspelt key would otherwise be ignored). Loaded with ``allow_pickle=False``."""
    where = f"--inputs {path}"
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise RshopFormatError(f"{where}: expected a readable .npz file of arrays, received an error: {e}.") from None
    if "x" not in arrays:
        raise RshopConfigError(
            f"{where}: expected an array named 'x', received {sorted(arrays)}. Save with np.savez(path, x=...)."
        )
    call: dict[str, Any] = {}
    lists: dict[str, dict[int, np.ndarray]] = {k: {} for k in NPZ_LISTS}
    for key, a in arrays.items():
        if key == "x":
            continue
        if key in NPZ_ARRAYS:
            call[key] = a
            continue
        base, _, index = key.rpartition("_")
        if base in NPZ_LISTS and index.isdigit():
            lists[base][int(index)] = a
            continue
        raise RshopConfigError(
            f"{where}: expected keys x, constants_<i>, initial_state_<i>, {', '.join(NPZ_ARRAYS)}, received {key!r}."
        )
    for base, numbered in lists.items():
        if numbered:
            if sorted(numbered) != list(range(len(numbered))):
                raise RshopConfigError(
                    f"{where}: expected {base}_0 ... {base}_{len(numbered) - 1}, received indices {sorted(numbered)}."
                )
            call[base] = [numbered[i] for i in range(len(numbered))]
    return arrays["x"], call


def _engine_list(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise RshopConfigError(f"--engines: expected comma-separated engine names, received {raw!r}.")
    return names


def check(args: argparse.Namespace) -> int:
    from rshop_core import load

    from .parity import compare, random_inputs

    model = load(args.model)
    if args.inputs:
        x, call = load_inputs(args.inputs)
    else:
        x, call = random_inputs(model, batch=args.batch, steps=args.time, seed=args.seed)
    report = compare(model, x, engines=_engine_list(args.engines), dtype=args.dtype, grads=args.grads, **call)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0 if report.ok else 1


def explain(args: argparse.Namespace) -> int:
    from rshop_core import load

    model = load(args.model)
    print(model.explain(args.engine, args.dtype))
    return 0


def export(args: argparse.Namespace) -> int:
    from rshop_core import load

    from . import serving

    if not args.no_verify:
        serving.check_sizes(args.batch, args.time, "rshop export --batch / --time")
    model = load(args.model)
    options = {"initial_state": args.initial_state, "mask": args.mask, "output_length": args.output_length}
    out = serving.export(model, args.out, args.format, dtype=args.dtype, **options)
    print(f"wrote {args.format} artefact {out}")
    if args.no_verify:
        return 0
    report = serving.verify(
        model, out, args.format, dtype=args.dtype, batch=args.batch, steps=args.time, seed=args.seed, **options
    )
    print(report)
    return 0 if report.ok else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rshop", description="rshop command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="installed engines, their versions, and the active one")
    c = sub.add_parser(
        "check",
        help="run a saved model on every installed engine against the numpy float64 reference",
        description="Exit status: 0 within tolerance, 1 when a tolerance is exceeded, 2 on an error.",
    )
    c.add_argument("model", help="a .rshop file")
    c.add_argument("--engines", help="comma-separated engines (default: every installed one)")
    c.add_argument("--grads", action="store_true", help="also compare parameter gradients (trainable engines)")
    c.add_argument("--batch", type=int, default=2, help="batch size of the random inputs (default 2)")
    c.add_argument("--time", type=int, default=8, help="time steps of the random inputs (default 8)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    c.add_argument("--inputs", help="an .npz with x (and constants_0, ..., initial_state_0, ..., mask, ...)")
    c.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="what the engines compute in")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    e = sub.add_parser("explain", help="what an engine runs for a saved model: fused kernel or loop, passes")
    e.add_argument("model", help="a .rshop file")
    e.add_argument("--engine", help="the engine (default: the active one)")
    e.add_argument("--dtype", choices=("float32", "float64"), default=None, help="the compute dtype")
    x = sub.add_parser(
        "export",
        help="write a saved model as a serving artefact (SavedModel, torch.export, jax.export, ONNX) and verify it",
        description="Exit status: 0 written (and within tolerance of the numpy float64 reference), 1 when the "
        "read-back artefact exceeds the tolerance, 2 on an error. See docs/serving.md.",
    )
    x.add_argument("model", help="a .rshop file")
    x.add_argument("out", help="where to write the artefact (a directory for savedmodel, a file otherwise)")
    x.add_argument("--format", required=True, choices=("savedmodel", "torch", "jax", "onnx"), help="the format")
    x.add_argument("--dtype", choices=("float32", "float64"), default=None, help="what the artefact computes in")
    x.add_argument("--initial-state", action="store_true", help="the artefact takes the initial states as inputs")
    x.add_argument("--mask", action="store_true", help="the artefact takes a (batch, T) bool mask")
    x.add_argument("--output-length", type=int, default=None, help="steps a decoder runs (decode=True models)")
    x.add_argument("--no-verify", action="store_true", help="skip reading the artefact back and comparing it")
    x.add_argument("--batch", type=int, default=3, help="batch size of the verification inputs (default 3)")
    x.add_argument("--time", type=int, default=7, help="time steps of the verification inputs (default 7)")
    x.add_argument("--seed", type=int, default=0, help="seed of the verification inputs (default 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "info":
            print(info_text())
        elif args.command == "check":
            return check(args)
        elif args.command == "explain":
            return explain(args)
        elif args.command == "export":
            return export(args)
    except RshopError as e:
        print(f"rshop: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
