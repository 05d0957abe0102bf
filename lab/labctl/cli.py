"""`lab`: bring the offline lab up, down, or report on it.

    lab up [--profile demo]   build what is missing; start both clusters, the fleet of the
                              profile, storage (Redis, JuiceFS mirror) and the Rancher
                              stand-in (idempotent)
    lab up --clusters-only    only the two Kubernetes clusters
    lab down                  stop everything the lab started; nothing is left behind
    lab status                clusters, machines, stand-ins
    lab summary               clusters, kubeconfigs, machines with their Nodes, next commands
    lab restart-apiserver worker [--down-seconds N]   restart one cluster's kube-apiserver
    lab fleet|rancher|storage ...     one part at a time
    lab devicemanager up|down|status  the kubelet device-manager + GFD stand-in
    lab omelab up|down|status|install-crds  the OME/LWS stand-in: their controllers run out of
                              cluster, cert-manager, webhook routing, the model agent
    lab repos build|publish|info  the apt and chart repositories the lab mirror serves
    lab kubeocean up|down|status|clock  the Kubeocean manager/syncer stand-in (vnodes in `manager`)
    lab apiendpoint up|down|status  the worker cluster's intranet API endpoint (https://10.77.0.1:36543),
                              a TLS pipe to its apiserver for token kubeconfigs
"""

from __future__ import annotations

import argparse
import json
import sys

from labctl import (
    apiendpoint,
    clusters,
    controllers,
    devicemanager,
    fleet,
    k8sbin,
    kubeocean_syncer,
    omelab,
    paths,
    rancher,
    repos,
    storage,
    summary,
)
from labctl.storage import binary as juicefs_binary
from labctl.waiting import WaitTimeout

LAB_ERRORS = (clusters.ClusterError, k8sbin.BuildError, fleet.FleetError, rancher.RancherLabError,
              storage.StorageLabError, storage.JuiceFSBuildError, WaitTimeout, repos.RepoBuildError,
              devicemanager.DeviceManagerError, omelab.OmeLabError, kubeocean_syncer.KubeoceanError,
              apiendpoint.ApiEndpointError)


def _log(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    clusters.up(log=_log)
    if args.clusters_only:
        return 0
    machines = fleet.up(args.profile)
    _log(f"fleet: {len(machines)} machines up ({args.profile}), inventory {fleet.INVENTORY_PATH}")
    # After the fleet: these services also listen on the fleet bridge, which exists from then on.
    storage.up(log=_log)
    # Device support: the toolkit's apt repository and the chart repository, served by the storage
    # mirror (up above), and the kubelet device-manager + GFD stand-in for the worker cluster.
    info = repos.publish(log=_log)
    _log(f"repos: apt {info['apt']['url']}, charts {info['charts']['url']}")
    devicemanager.up("worker", log=_log)
    # SGLang stage: cert-manager's API for OME's chart, and the runner of the real OME and LWS controllers
    # (out of cluster, once the roles install their Deployments) with its cert-manager and model-agent stand-ins.
    omelab.install_cert_manager_crds("worker", log=_log)
    omelab.up("worker", log=_log)
    # Kubeocean: its manager/syncer stand-in for the computing cluster (windows in the host's local time,
    # as the real pods mount /etc/localtime), and the worker's intranet API endpoint on the lab gateway,
    # the address a ClusterBinding's kubeconfig names (the syncer retries until it answers).
    kubeocean_syncer.up("manager", log=_log)
    apiendpoint.up("worker", log=_log)
    rancher.up(paths.kubeconfig_path("worker"), log=_log)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    # A lab that is down is gone: the next `lab up` starts from bare machines, empty
    # clusters, an unformatted volume and a Rancher that knows no nodes.
    rancher.down(log=_log, purge=True)
    apiendpoint.down(log=_log)  # in reverse of their start, before the clusters they serve go away
    kubeocean_syncer.down(log=_log)
    devicemanager.down(log=_log)  # before the clusters it watches go away
    omelab.down(log=_log)  # stops the controllers, gives the webhooks their Services back
    fleet.down()  # machines unmount /data/k8s before its metadata engine goes away
    storage.down(log=_log, purge=True)
    clusters.down(log=_log)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    report = {"clusters": clusters.status(), "machines": fleet.status(), "rancher": rancher.status(),
              "storage": storage.status(), "devicemanager": devicemanager.status(),
              "omelab": omelab.status(), "kubeocean": kubeocean_syncer.status(),
              "apiendpoint": apiendpoint.status()}
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    for row in report["clusters"]:
        print("cluster  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    for row in report["machines"]:
        print("machine  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    print("rancher  " + "  ".join(f"{k}={v}" for k, v in report["rancher"].items() if k != "clusters"))
    print("storage  " + "  ".join(f"{k}={v}" for k, v in report["storage"].items()))
    for row in report["devicemanager"]:
        print("devicemanager  " + "  ".join(f"{k}={v}" for k, v in row.items() if k not in ("advertised", "log")))
    for row in report["omelab"]:
        print("omelab  " + "  ".join(f"{k}={v}" for k, v in row.items() if not isinstance(v, (dict, list))))
    for row in report["kubeocean"]:
        print("kubeocean  " + "  ".join(f"{k}={v}" for k, v in row.items()
                                        if k != "log" and not isinstance(v, (dict, list))))
    for row in report["apiendpoint"]:
        print("apiendpoint  " + "  ".join(f"{k}={v}" for k, v in row.items() if k != "log"))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    print("\n".join(summary.render(summary.collect())))
    return 0


def cmd_restart_apiserver(args: argparse.Namespace) -> int:
    result = clusters.restart_apiserver(args.cluster, down_seconds=args.down_seconds,
                                        stop_timeout=args.stop_timeout, log=_log)
    print(json.dumps(result))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    if args.check:  # exit 0 when everything is built; prints nothing
        return 0 if k8sbin.is_built() and juicefs_binary.is_built() and controllers.is_built() else 1

    def log(message: str) -> None:
        print(f"{args.log_prefix}: {message}", file=sys.stderr, flush=True)

    print(k8sbin.ensure_built(log=log))
    print(juicefs_binary.ensure_built(log=log))
    for path in controllers.ensure_built(log=log).values():
        print(path)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the clusters, the fleet and the stand-ins")
    up.add_argument("--profile", default="demo", help="fleet profile (lab/labctl/fleet/profiles) or a YAML path")
    up.add_argument("--clusters-only", action="store_true", help="only the two Kubernetes clusters")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop and remove everything the lab started").set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="report clusters")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sub.add_parser("summary", help="clusters, kubeconfigs, machines with their Nodes, next commands").set_defaults(
        func=cmd_summary)
    restart = sub.add_parser("restart-apiserver", help="stop a cluster's kube-apiserver, wait for it to exit, "
                             "start it again and wait for /readyz")
    restart.add_argument("cluster", choices=[s.name for s in clusters.specs()])
    restart.add_argument("--down-seconds", type=float, default=0, help="stay down this long before starting")
    restart.add_argument("--stop-timeout", type=float, default=None,
                         help=f"SIGKILL after this many seconds (default {clusters.APISERVER_STOP_TIMEOUT:g})")
    restart.set_defaults(func=cmd_restart_apiserver)
    build = sub.add_parser("build", help="build the lab's Go binaries into the cache (control plane, Helm, JuiceFS, "
                           "the OME and LeaderWorkerSet controllers); "
                           "tool output goes to a log under lab/state/logs")
    build.add_argument("--check", action="store_true", help="only tell (exit 0/1) whether everything is built")
    build.add_argument("--log-prefix", default="lab", help=argparse.SUPPRESS)
    build.set_defaults(func=cmd_build)
    fleet.register_cli(sub)
    rancher.register_cli(sub)
    storage.register_cli(sub)
    devicemanager.register_cli(sub)
    omelab.register_cli(sub)
    kubeocean_syncer.register_cli(sub)
    apiendpoint.register_cli(sub)
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
