"""Fixtures the unit tests of the Kubernetes modules share."""

from __future__ import annotations

import tempfile

import kubernetes.client
import pytest
from ansible_collections.aicluster.platform.plugins.module_utils import retry
from ansible_collections.kubernetes.core.plugins.module_utils.k8s import client as k8s_core_client
from fake_clock import FakeTime


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """A fresh process-wide client state per test (as one module run per process has: kubernetes' default
    configuration, kubernetes.core's client pool, the discovery cache in the temp dir, no K8S_AUTH_* from the
    environment), retries on a fake clock."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(kubernetes.client.Configuration, "_default", None)
    monkeypatch.setattr(k8s_core_client, "_pool", {})
    for name in ("K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(retry, "time", FakeTime())
