"""`lab fleet ...` subcommands; the top-level CLI calls :func:`register_cli`."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import FleetError


def _up(args: argparse.Namespace) -> int:
    from .runtime import up
    for m in up(args.profile):
        print(f"{m.name:<16} {m.address:<12} {m.describe_accelerators()}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from .runtime import down
    down()
    return 0


def _status(args: argparse.Namespace) -> int:
    from .runtime import status
    rows = status()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no fleet machines")
    else:
        print(f"{'NAME':<16} {'ADDRESS':<12} {'ACCELERATORS':<14} STATE")
        for r in rows:
            print(f"{r['name']:<16} {r['address']:<12} {r['accelerators']:<14} {r['state']}")
    return 0


def _add(args: argparse.Namespace) -> int:
    from .runtime import add
    m = add(args.name, args.model or "", args.count)
    print(f"{m.name:<16} {m.address:<12} {m.describe_accelerators()}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from .runtime import remove
    remove(args.name)
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``fleet {up,down,status,add}`` to an argparse subparsers object.

    Each leaf sets ``func(args) -> int``; failures raise :class:`FleetError` (one-line message).
    """
    fleet = subparsers.add_parser("fleet", help="lab machines (podman systemd containers with simulated accelerators)")
    sub = fleet.add_subparsers(dest="fleet_command", required=True)
    p = sub.add_parser("up", help="start the fleet of a profile (idempotent) and write the inventory")
    p.add_argument("--profile", default="demo", help="profile name in labctl/fleet/profiles or a YAML path")
    p.set_defaults(func=_up)
    sub.add_parser("down", help="remove all fleet machines and the network").set_defaults(func=_down)
    p = sub.add_parser("status", help="list machines: name, address, accelerators, state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)
    p = sub.add_parser("add", help="add one machine to the running fleet")
    p.add_argument("name")
    p.add_argument("--model", default="", help="accelerator model (A100, A100-80GB, H100, T4, 910B, 310P); none = CPU")
    p.add_argument("--count", type=int, default=0, help="number of accelerators")
    p.set_defaults(func=_add)
    p = sub.add_parser("remove", help="take one machine out of the running fleet")
    p.add_argument("name")
    p.set_defaults(func=_remove)
    return fleet


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m labctl.fleet up|down|status|add``."""
    top = argparse.ArgumentParser(prog="python -m labctl.fleet")
    sub = top.add_subparsers(dest="command", required=True)
    register_cli(sub)
    args = top.parse_args(["fleet", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except FleetError as exc:
        print(f"lab fleet: error: {exc}", file=sys.stderr)
        return 1
