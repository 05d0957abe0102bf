"""module_utils/retry.py: exponential back-off within a time budget, on a fake clock (nothing sleeps)."""

from __future__ import annotations

import errno
import socket
import ssl
import threading
import urllib.error

import pytest
from ansible_collections.aicluster.platform.plugins.module_utils import retry
from fake_clock import FakeTime


class Status(Exception):
    def __init__(self, status, retry_after=None):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


@pytest.fixture
def clock(monkeypatch):
    fake = FakeTime(start=1000.0)
    monkeypatch.setattr(retry, "time", fake)
    return fake


def transient(exc):
    return retry.transient_status(getattr(exc, "status", None)) or retry.transient_os_error(exc)


def flaky(*outcomes, cost=0.0, clock=None):
    """A func that raises/returns the given outcomes in turn and records the timeouts it was given."""
    seen = []
    queue = list(outcomes)

    def func(left):
        seen.append(left)
        if clock is not None:
            clock.now += cost
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    func.seen = seen
    return func


def test_success_needs_no_retry(clock):
    func = flaky("ok")
    assert retry.call(func, "GET x", 30, transient) == "ok"
    assert clock.sleeps == [] and func.seen == [30]


def test_transient_faults_back_off_exponentially_then_succeed(clock):
    func = flaky(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), Status(503), Status(429),
                 Status(502), "ok")
    assert retry.call(func, "GET x", 30, transient) == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]
    # each attempt is given what is left of the budget as its own timeout
    assert func.seen == [30, 29.5, 28.5, 26.5, 22.5]


def test_delay_is_capped(clock):
    func = flaky(*[Status(500)] * 7, "ok")
    retry.call(func, "GET x", 300, transient)
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_time_up_names_endpoint_attempts_and_last_error(clock):
    func = flaky(Status(503), Status(503), ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))
    with pytest.raises(retry.RetryTimeout) as info:
        retry.call(func, "GET https://rancher.example/v3/clusters", 5, transient)
    exc = info.value
    # 0.5 + 1 + 2 = 3.5 s slept; the next 4 s would pass the 5 s deadline: no sleep past it
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert sum(clock.sleeps) <= 5
    assert exc.attempts == 4 and exc.endpoint == "GET https://rancher.example/v3/clusters"
    assert isinstance(exc.last_error, ConnectionResetError)
    assert str(exc) == ("GET https://rancher.example/v3/clusters: no success within 3.5s (4 attempts); "
                        "last error: [Errno 104] Connection reset by peer")


def test_slow_attempts_count_against_the_budget(clock):
    func = flaky(TimeoutError("timed out"), cost=10, clock=clock)
    with pytest.raises(retry.RetryTimeout) as info:
        retry.call(func, "GET x", 25, transient)
    assert info.value.attempts == 3 and func.seen == [25, 14.5, 3.5]
    assert "last error: timed out" in str(info.value)


def test_other_errors_are_raised_at_once(clock):
    for error in (Status(401), Status(404), ValueError("bad"), ssl.SSLCertVerificationError(1, "verify failed"),
                  PermissionError(errno.EACCES, "denied")):
        func = flaky(error)
        with pytest.raises(type(error)):
            retry.call(func, "GET x", 30, transient)
        assert len(func.seen) == 1
    assert clock.sleeps == []


def test_retry_after_is_honoured_when_it_fits(clock):
    hint = lambda exc: exc.retry_after  # noqa: E731
    func = flaky(Status(429, retry_after=3), Status(503, retry_after=100), "ok")
    retry.call(func, "GET x", 30, transient, retry_after=hint)
    assert clock.sleeps == [3, 1.0]  # 100 s does not fit in what is left: back-off instead


def test_endpoint_may_be_computed_from_the_last_error(clock):
    func = flaky(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    with pytest.raises(retry.RetryTimeout, match=r"^connecting to https://10\.0\.0\.1:6443: no success"):
        retry.call(func, lambda exc: "connecting to https://10.0.0.1:6443", 1, transient)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
        (urllib.error.URLError(ConnectionRefusedError(errno.ECONNREFUSED, "refused")), True),
        (urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")), True),
        (urllib.error.URLError(OSError(errno.EHOSTUNREACH, "No route to host")), True),
        (urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed")), False),
        (TimeoutError("timed out"), True),
        (OSError(errno.ENOENT, "No such file"), False),
        (ValueError("x"), False),
    ],
)
def test_transient_os_errors(exc, expected):
    assert retry.transient_os_error(exc) is expected


def test_wrapped_causes_are_followed():
    try:
        try:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        except ConnectionResetError as inner:
            raise RuntimeError("wrapper") from inner
    except RuntimeError as outer:
        assert retry.transient_os_error(outer)


@pytest.mark.parametrize(("status", "expected"), [(500, True), (503, True), (599, True), (429, True), (400, False),
                                                 (404, False), (200, False), (None, False), (0, False)])
def test_transient_status(status, expected):
    assert retry.transient_status(status) is expected


def test_parse_retry_after():
    assert retry.parse_retry_after("5") == 5.0
    assert retry.parse_retry_after(" 1.5 ") == 1.5
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry.parse_retry_after(None) is None
    assert retry.parse_retry_after("-1") is None


def test_bounded_returns_raises_and_times_out():
    assert retry.bounded(lambda: 42, 1) == 42
    with pytest.raises(KeyError):
        retry.bounded(lambda: {}["x"], 1)
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError, match=r"no answer within 0\.0s"):
            retry.bounded(release.wait, 0.01)  # a call that hangs (its thread is abandoned)
    finally:
        release.set()
