"""`lab up`/`lab down` handle the GPU stage's fixtures only with LAB_DEVICE_SUPPORT=1 (no lab needed:
every part is replaced by a recorder)."""

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
    return seen


UP = argparse.Namespace(clusters_only=False, profile="demo")


def test_without_the_switch_nothing_changes(calls, monkeypatch):
    monkeypatch.delenv("LAB_DEVICE_SUPPORT", raising=False)
    cli.cmd_up(UP)
    cli.cmd_down(argparse.Namespace())
    assert calls == ["clusters.up", "fleet.up", "storage.up", "rancher.up",
                     "rancher.down", "fleet.down", "storage.down", "clusters.down"]


def test_with_the_switch_repos_after_storage_and_device_manager_stopped_first(calls, monkeypatch):
    monkeypatch.setenv("LAB_DEVICE_SUPPORT", "1")
    cli.cmd_up(UP)
    cli.cmd_down(argparse.Namespace())
    assert calls == ["clusters.up", "fleet.up", "storage.up", "repos.publish", "devicemanager.up", "rancher.up",
                     "rancher.down", "devicemanager.down", "fleet.down", "storage.down", "clusters.down"]
