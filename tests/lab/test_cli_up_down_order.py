"""`lab up`/`lab down` order: the device-support fixtures (repositories, device-manager stand-in) come
up after the storage mirror that serves them and stop before the fleet and clusters they watch; the
Kubeocean stand-in and the worker's intranet API endpoint come up after the OME stand-in and stop in
reverse (no lab needed: every part is replaced by a recorder)."""

from __future__ import annotations

import argparse

import pytest
from labctl import cli


@pytest.fixture
def calls(monkeypatch):

    def rec(name, result=None):
        def call(*args, **kwargs):
            seen.append(name)
            kwargs.pop("log", None)
            seen.args[name] = (args, kwargs)
            return result
        return call

    seen = Calls()

    monkeypatch.setattr(cli.clusters, "up", rec("clusters.up"))
    monkeypatch.setattr(cli.clusters, "down", rec("clusters.down"))
    monkeypatch.setattr(cli.fleet, "up", rec("fleet.up", []))
    monkeypatch.setattr(cli.fleet, "down", rec("fleet.down"))
    monkeypatch.setattr(cli.storage, "up", rec("storage.up"))
    monkeypatch.setattr(cli.storage, "down", rec("storage.down"))
    monkeypatch.setattr(cli.rancher, "up", rec("rancher.up"))
    monkeypatch.setattr(cli.rancher, "down", rec("rancher.down"))
    monkeypatch.setattr(cli.repos, "publish", rec("repos.publish", {"apt": {"url": "a"}, "charts": {"url": "c"}}))
    monkeypatch.setattr(cli.devicemanager, "up", rec("devicemanager.up"))
    monkeypatch.setattr(cli.devicemanager, "down", rec("devicemanager.down"))
    monkeypatch.setattr(cli.omelab, "install_cert_manager_crds", rec("omelab.install_cert_manager_crds"))
    monkeypatch.setattr(cli.omelab, "up", rec("omelab.up"))
    monkeypatch.setattr(cli.omelab, "down", rec("omelab.down"))
    monkeypatch.setattr(cli.kubeocean_syncer, "up", rec("kubeocean_syncer.up"))
    monkeypatch.setattr(cli.kubeocean_syncer, "down", rec("kubeocean_syncer.down"))
    monkeypatch.setattr(cli.apiendpoint, "up", rec("apiendpoint.up"))
    monkeypatch.setattr(cli.apiendpoint, "down", rec("apiendpoint.down"))
    return seen


class Calls(list):
    """The names called, in order; ``args[name]``: the arguments of its last call (``log`` left out)."""

    def __init__(self):
        super().__init__()
        self.args: dict[str, tuple] = {}


UP = argparse.Namespace(clusters_only=False, profile="demo")


def test_repos_after_storage_and_device_manager_stopped_before_the_fleet(calls):
    cli.cmd_up(UP)
    cli.cmd_down(argparse.Namespace())
    assert calls == ["clusters.up", "fleet.up", "storage.up", "repos.publish", "devicemanager.up",
                     "omelab.install_cert_manager_crds", "omelab.up", "kubeocean_syncer.up", "apiendpoint.up",
                     "rancher.up",
                     "rancher.down", "apiendpoint.down", "kubeocean_syncer.down", "devicemanager.down",
                     "omelab.down", "fleet.down", "storage.down", "clusters.down"]


def test_kubeocean_for_manager_in_host_local_time_and_endpoint_for_worker(calls):
    cli.cmd_up(UP)
    # No timezone given: the stand-in evaluates time windows in the host's local time.
    assert calls.args["kubeocean_syncer.up"] == (("manager",), {})
    assert calls.args["apiendpoint.up"] == (("worker",), {})


def test_their_errors_are_lab_errors():
    assert cli.kubeocean_syncer.KubeoceanError in cli.LAB_ERRORS
    assert cli.apiendpoint.ApiEndpointError in cli.LAB_ERRORS


def test_clusters_only_starts_no_device_support(calls):
    cli.cmd_up(argparse.Namespace(clusters_only=True, profile="demo"))
    assert calls == ["clusters.up"]
