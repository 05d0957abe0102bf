# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Retries of transient faults, shared by the collection's Kubernetes and Rancher calls.

A call is retried when it fails with a connection error (refused, reset, timed out, no route,
name resolution) or an HTTP answer that says "later" (5xx, 429), with exponential back-off
(0.5 s, 1 s, 2 s, ... at most 8 s; a ``Retry-After`` the server gives wins when it is shorter
than what is left), and only while the call's time budget lasts: each attempt gets the time that
is left as its own timeout, and no sleep runs past the deadline. When the budget is spent,
``RetryTimeout`` names the endpoint, the number of attempts, the time spent and the last error.
Any other error is raised at once.

Standard library only.
"""

from __future__ import annotations

import errno
import socket
import threading
import time

FIRST_DELAY = 0.5
MAX_DELAY = 8.0
FACTOR = 2.0


class RetryTimeout(Exception):
    """The time budget of a call ran out while it kept failing with transient faults."""

    def __init__(self, endpoint, attempts, elapsed, last_error, last_error_text=None):
        self.endpoint = endpoint
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_error = last_error
        self.last_error_text = last_error_text or describe(last_error)
        super().__init__(
            f"{endpoint}: no success within {elapsed:.1f}s ({attempts} attempt{'s' if attempts != 1 else ''}); "
            f"last error: {self.last_error_text}"
        )


def describe(exc):
    """One line for an exception: its text, or its class name when it has none."""
    text = " ".join(str(exc).split())
    return text or exc.__class__.__name__


def transient_status(status):
    """HTTP statuses worth retrying: 429 Too Many Requests and every 5xx."""
    return isinstance(status, int) and (status == 429 or 500 <= status <= 599)


def transient_os_error(exc):
    """Connection-level failures, also when wrapped (urllib's URLError.reason, urllib3's MaxRetryError.reason,
    exception chaining)."""
    for cause in causes(exc):
        if isinstance(cause, (ConnectionError, TimeoutError, socket.gaierror)):
            return True
        if isinstance(cause, OSError) and cause.errno in _TRANSIENT_ERRNOS:
            return True
    return False


def causes(exc):
    """The exception, then what it wraps, breadth first: urllib's and urllib3's ``reason``, exceptions
    given as arguments (urllib3's ProtocolError), ``__cause__`` and ``__context__``."""
    seen = set()
    queue = [exc]
    while queue:
        current = queue.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        queue.extend(item for item in (reason, *current.args, current.__cause__, current.__context__)
                     if isinstance(item, BaseException))


_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
                 "ENETDOWN", "EHOSTDOWN", "EPIPE", "EAGAIN")
    if hasattr(errno, name)
)


def call(func, endpoint, timeout, is_transient, retry_after=None, describe_error=describe):
    """Call ``func(attempt_timeout)`` until it returns, retrying transient faults within ``timeout`` seconds.

    * ``func`` gets the seconds left in the budget and should use them as its request timeout;
    * ``is_transient(exc)`` tells which exceptions are retried; the others propagate unchanged;
    * ``retry_after(exc)``, optional, gives the server's ``Retry-After`` in seconds (or None);
    * ``endpoint`` (e.g. ``GET https://host/path``, or a function of the last error returning that)
      names what failed in ``RetryTimeout``; ``describe_error(exc)`` words the last error.
    """
    clock = time.monotonic
    start = clock()
    deadline = start + timeout
    delay = FIRST_DELAY
    attempts = 0
    while True:
        attempts += 1
        try:
            return func(max(deadline - clock(), 0.001))
        except Exception as exc:
            if not is_transient(exc):
                raise
            last = exc
        left = deadline - clock()
        wait = delay
        hint = retry_after(last) if retry_after else None
        if hint is not None and 0 <= hint < left:
            wait = max(hint, 0.0)
        if left <= 0 or wait >= left:
            name = endpoint(last) if callable(endpoint) else endpoint
            raise RetryTimeout(name, attempts, clock() - start, last, describe_error(last)) from last
        time.sleep(wait)
        delay = min(delay * FACTOR, MAX_DELAY)


def parse_retry_after(value):
    """Seconds from a ``Retry-After`` header given as a number of seconds; None otherwise."""
    try:
        seconds = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def bounded(func, seconds):
    """Run ``func()`` and return its result, raising TimeoutError when it has not finished in ``seconds``.

    For library calls that take no timeout of their own (client set-up that talks to the server):
    the call runs in a daemon thread, which is abandoned, not killed, when the time is up.
    """
    outcome = {}

    def target():
        try:
            outcome["value"] = func()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="aicluster-bounded-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:.1f}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
