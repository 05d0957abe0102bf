"""Package and chart repositories the lab serves through its site-mirror stand-in (lab fixtures).

    apt      the NVIDIA Container Toolkit apt repository (flat, signed; stand-in packages under the
             real names) at http://10.77.0.1:8380/nvidia/libnvidia-container/   (labctl.repos.apt)
    charts   a Helm chart repository at http://10.77.0.1:8380/charts/ (labctl.repos.charts): the real
             nvidia-device-plugin, ome-crd, ome-resources and lws charts (from their Go modules), and
             the lab's chart stand-ins dcgm-exporter, kubeocean and kubeocean-worker (Kubeocean's
             manager and worker charts; sources in repos/chartsrc/)
    ascend   the Ascend Docker Runtime release package (a stand-in under the real name, two releases) at
             http://10.77.0.1:8380/ascend/mind-cluster/releases/download/v<version>/
             Ascend-docker-runtime_<version>_linux-<arch>.run (labctl.repos.ascend)

Each is built once per definition into ``~/.cache/ai-cluster-lab/repos`` and published by a
symlink into the mirror stand-in's root (``lab/state/storage/mirror``), which serves files
through symlinks; ``publish()`` also writes ``lab/state/repos/{nvidia-apt,charts,ascend-docker-runtime}.json``
for the lab inventory. The mirror itself is started by ``labctl.storage.up()``.
"""

from __future__ import annotations

import argparse
import json
import sys

from labctl.repos.common import DEFAULT_BASE_URL, RepoBuildError


def publish(log=print, base_url: str = DEFAULT_BASE_URL) -> dict:
    """Build every repository (cached), link them into the mirror tree; return their infos."""
    from labctl.repos import apt, ascend, charts

    return {"apt": apt.publish(log, base_url), "charts": charts.publish(log, base_url),
            "ascend": ascend.publish(log, base_url)}


def info(base_url: str = DEFAULT_BASE_URL) -> dict:
    from labctl.repos import apt, ascend, charts

    return {"apt": apt.apt_repo_info(base_url, log=lambda m: None), "charts": charts.charts_repo_info(base_url),
            "ascend": ascend.runtime_info(base_url)}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _guard(func):
    def run(args: argparse.Namespace) -> int:
        try:
            print(json.dumps(func(args), indent=2))
            return 0
        except RepoBuildError as exc:
            print(f"lab: error: {exc}", file=sys.stderr)
            return 1
    return run


def _add_commands(sub) -> None:
    from labctl.repos import apt, ascend, charts

    sub.add_parser("build", help="build every repository into the cache").set_defaults(func=_guard(
        lambda a: {"apt": str(apt.ensure_built(_say)), "charts": str(charts.ensure_built(_say)),
                   "ascend": str(ascend.ensure_built(_say))}))
    sub.add_parser("publish", help="build and link every repository into the mirror tree").set_defaults(func=_guard(
        lambda a: publish(_say)))
    sub.add_parser("info", help="URLs, key, versions and digests").set_defaults(func=_guard(lambda a: info()))


def register_cli(subparsers) -> None:
    """Add ``repos build|publish|info`` to an argparse subparsers object (``func(args) -> int``)."""
    repos = subparsers.add_parser("repos", help="apt and Helm chart repositories and the Ascend Docker Runtime "
                                  "package served by the mirror (lab fixture)")
    _add_commands(repos.add_subparsers(dest="repos_command", required=True))


def main(argv: list[str] | None = None) -> int:
    """``python -m labctl.repos build|publish|info``."""
    parser = argparse.ArgumentParser(prog="python -m labctl.repos")
    _add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


__all__ = ["RepoBuildError", "info", "publish", "register_cli"]
