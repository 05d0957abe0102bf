"""Markers and fixtures shared by the lab package's tests."""

import pytest
from labctl import paths


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts a private control plane of its own (kwokctl, cached binaries); -m 'not slow' skips")


@pytest.fixture(scope="module")
def lab_dirs(tmp_path_factory):
    """The lab's cache and state directories, private to one test module (a repository build writes there)."""
    cache, state = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "CACHE_DIR", cache)
        mp.setattr(paths, "STATE_DIR", state)
        yield cache, state
