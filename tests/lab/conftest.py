"""Markers used by the lab package's tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts a private control plane of its own (kwokctl, cached binaries); -m 'not slow' skips")
