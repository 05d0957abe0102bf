"""Fixtures for tests that run against the live lab (`lab up` first; the test command does it)."""

from __future__ import annotations

import pytest
from labctl import clusters, paths


@pytest.fixture(scope="session", params=["worker", "manager"])
def cluster_name(request) -> str:
    if not paths.kubeconfig_path(request.param).is_file():
        pytest.fail(f"lab cluster {request.param} is not up: run `lab up` (the test command does)")
    return request.param


@pytest.fixture(scope="session")
def api(cluster_name):
    client = clusters.api_client(cluster_name)
    yield client
    client.close()
