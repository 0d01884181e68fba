"""``rshop info``: installed engines with versions, the active engine and why."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence

from rshop_core import __version__
from rshop_core.errors import RshopError

from . import registry, selection


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rshop", description="rshop command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="installed engines, their versions, and the active one")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            print(info_text())
    except RshopError as e:
        print(f"rshop: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
