"""`lab up`/`lab down` order: the device-support fixtures (repositories, device-manager stand-in) come
up after the storage mirror that serves them and stop before the fleet and clusters they watch (no lab
needed: every part is replaced by a recorder)."""

from __future__ import annotations

import argparse

import pytest
from labctl import cli


@pytest.fixture
def calls(monkeypatch):
    seen: list[str] = []

    def rec(name, result=None):
        def call(*args, **kwargs):
            seen.append(name)
            return result
        return call

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
    return seen


UP = argparse.Namespace(clusters_only=False, profile="demo")


def test_repos_after_storage_and_device_manager_stopped_before_the_fleet(calls):
    cli.cmd_up(UP)
    cli.cmd_down(argparse.Namespace())
    assert calls == ["clusters.up", "fleet.up", "storage.up", "repos.publish", "devicemanager.up",
                     "omelab.install_cert_manager_crds", "omelab.up", "rancher.up",
                     "rancher.down", "devicemanager.down", "omelab.down", "fleet.down", "storage.down",
                     "clusters.down"]


def test_clusters_only_starts_no_device_support(calls):
    cli.cmd_up(argparse.Namespace(clusters_only=True, profile="demo"))
    assert calls == ["clusters.up"]
