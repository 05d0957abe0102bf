"""`lab`: bring the offline lab up, down, or report on it.

    lab up        build what is missing, start both clusters (idempotent)
    lab down      stop everything the lab started; nothing is left behind
    lab status    clusters, versions and nodes
"""

from __future__ import annotations

import argparse
import json
import sys

from labctl import clusters, k8sbin
from labctl.waiting import WaitTimeout

LAB_ERRORS = (clusters.ClusterError, k8sbin.BuildError, WaitTimeout)


def _log(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    clusters.up(log=_log)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    clusters.down(log=_log)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    report = {"clusters": clusters.status()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for row in report["clusters"]:
            print("  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    print(k8sbin.ensure_built(log=_log))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start both clusters").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop and remove everything the lab started").set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="report clusters")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sub.add_parser("build", help="build the control-plane binaries into the cache").set_defaults(func=cmd_build)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LAB_ERRORS as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
