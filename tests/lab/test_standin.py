"""labctl.standin's list-then-watch loop, and the three stand-ins that keep their caches with it (device
manager, OME/LWS, Kubeocean syncer): what is listed and watched, how events, an expired watch, an API that
is not served and errors (back-off) are handled, how it stops; what a running stand-in shares (its state
file, log lines, the way out). Scripted API answers and a stop event that records its waits: nothing sleeps,
no cluster needed."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException
from labctl import devicemanager as dm
from labctl import kubeocean_syncer as ko
from labctl import omelab, standin


class FakeStop:
    """A ``threading.Event`` that does not wait: it records how long it was asked to."""

    def __init__(self):
        self.waits = []
        self.flag = False

    def is_set(self):
        return self.flag

    def set(self):
        self.flag = True

    def wait(self, seconds):
        self.waits.append(seconds)
        return self.flag


class Stream:
    """A streamed watch response (what urllib3 returns with ``_preload_content=False``): one JSON event a line."""

    def __init__(self, *events):
        self.lines = [b"\n"] + [json.dumps(e).encode() + b"\n" for e in events]
        self.closed = self.released = False

    def stream(self, amt=None, decode_content=False):
        yield from self.lines

    def close(self):
        self.closed = True

    def release_conn(self):
        self.released = True


def obj(name, version, namespace=""):
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": version}}


def ev(typ, o):
    return {"type": typ, "object": o}


GONE = {"type": "ERROR", "object": {"code": 410, "reason": "Expired", "message": "too old resource version: 1"}}


def scripted(stop, steps):
    """A call answering with the next step (an exception is raised); when none is left, it sets ``stop``
    and raises, as a call that fails because the daemon is stopping."""
    steps = list(steps)

    def call(*args, **kwargs):
        if not steps:
            stop.set()
            raise ConnectionError("stopping")
        step = steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step
    return call


# ------------------------------------------------------------------ the loop
def test_error_line_is_the_class_and_the_first_line():
    assert standin.error_line(OSError("refused\ndetails")) == "OSError: refused"
    assert standin.error_line(RuntimeError()) == "RuntimeError: "
    assert standin.error_line(ValueError("x" * 300)) == "ValueError: " + "x" * 200


def test_watches_from_the_last_version_and_lists_again_when_the_watch_expires():
    stop, events, logs, watched = FakeStop(), [], [], []
    streams = [Stream(ev("ADDED", obj("a", "11")), ev("MODIFIED", obj("a", "12")), ev("BOOKMARK", obj("", "13")),
                      ev("DELETED", obj("a", "14"))),
               Stream(GONE),
               Stream()]

    def watch(version):
        watched.append(version)
        if len(watched) == len(streams):
            stop.set()
        return streams[len(watched) - 1]

    standin.list_then_watch("pods", stop, logs.append, scripted(stop, ["10", "20"]), watch,
                            lambda t, o: events.append((t, o)), lambda exc, backoff: pytest.fail(str(exc)))
    # a watch that ends is re-opened from the last event's version (a bookmark's too), without a list
    assert watched == ["10", "14", "20"]
    assert [(t, o["metadata"]["resourceVersion"]) for t, o in events] == [("ADDED", "11"), ("MODIFIED", "12"),
                                                                          ("DELETED", "14")]
    assert logs == ["watch pods: 410 Expired: too old resource version: 1; listing again"]
    assert stop.waits == []  # an expired watch lists again at once
    assert all(s.closed and s.released for s in streams)


def test_errors_back_off_doubling_up_to_10s_and_from_0_5s_again_after_a_list():
    stop, failures = FakeStop(), []
    relist = scripted(stop, [OSError("down")] * 6 + ["5"])
    watch = scripted(stop, [ConnectionError("watch broke")])
    standin.list_then_watch("nodes", stop, pytest.fail, relist, watch, lambda t, o: None,
                            lambda exc, backoff: failures.append((str(exc), backoff)))
    assert failures == [("down", 0.5), ("down", 1.0), ("down", 2.0), ("down", 4.0), ("down", 8.0), ("down", 10.0),
                        ("watch broke", 0.5)]
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 0.5]  # the last failure came with stop set: no report


def test_a_resource_not_served_is_listed_again_every_retry_reported_once_per_absence():
    stop, firsts, logs, failures = FakeStop(), [], [], []
    path = "/apis/ome.io/v1beta1/clusterbasemodels"
    relist = scripted(stop, [standin.NotServed(path), standin.NotServed(path), "5", standin.NotServed(path)])
    watch = scripted(stop, [ConnectionError("reset")])
    standin.list_then_watch("models", stop, logs.append, relist, watch, lambda t, o: None,
                            lambda exc, backoff: failures.append(backoff), firsts.append, 7.0)
    assert firsts == [True, False, True]
    message = f"watch models: {path} not served (yet); checking every 7s"
    assert logs == [message, message]
    assert failures == [0.5]
    assert stop.waits == [7.0, 7.0, 0.5, 7.0]


def test_stop_ends_the_watch_between_two_events():
    stop, events = FakeStop(), []
    stream = Stream(ev("ADDED", obj("a", "2")), ev("ADDED", obj("b", "3")))

    def on_event(typ, o):
        events.append(o["metadata"]["name"])
        stop.set()

    standin.list_then_watch("pods", stop, pytest.fail, lambda: "1", lambda v: stream, on_event,
                            lambda exc, backoff: pytest.fail(str(exc)))
    assert events == ["a"] and stream.closed and stream.released and stop.waits == []


# ------------------------------------------------------------------ the stand-ins' caches
def test_devicemanager_lists_and_watches_through_the_core_api(tmp_path):
    stop, logs, calls = FakeStop(), [], []
    answers = scripted(stop, [
        type("Resp", (), {"data": json.dumps({"metadata": {"resourceVersion": "7"},
                                              "items": [obj("gpu-1", "6")]}).encode()})(),
        Stream(ev("ADDED", obj("gpu-2", "8"))),
        OSError("boom")])

    class Core:
        list_pod_for_all_namespaces = list_config_map_for_all_namespaces = None

        def list_node(self, **kwargs):
            calls.append(kwargs)
            return answers()

    manager = dm.DeviceManager(Core(), tmp_path / "fleet.json", log=logs.append)
    manager.stop = stop
    manager.watch_forever("nodes")
    assert calls == [{"_preload_content": False, "_request_timeout": dm.REQUEST_TIMEOUT}] + [
        {"watch": True, "resource_version": v, "allow_watch_bookmarks": True, "timeout_seconds": dm.WATCH_SECONDS,
         "_preload_content": False, "_request_timeout": (dm.REQUEST_TIMEOUT, dm.WATCH_SECONDS + 30)}
        for v in ("7", "8")] + [{"_preload_content": False, "_request_timeout": dm.REQUEST_TIMEOUT}]
    assert sorted(manager.nodes) == ["gpu-1", "gpu-2"]
    assert manager.synced["nodes"] is False  # the watch failed: not synced until listed again
    assert logs == ["watch nodes: OSError: boom; retrying in 0.5s"]
    assert stop.waits == [0.5]


def test_omelab_cache_not_served_then_listed_then_watched(monkeypatch):
    stop, logs, changes, calls = FakeStop(), [], [], []
    path = "/apis/ome.io/v1beta1/clusterbasemodels"
    answers = scripted(stop, [
        ApiException(status=404),
        {"metadata": {"resourceVersion": "3"}, "items": [obj("a", "2", "ns")]},
        Stream(ev("ADDED", obj("b", "4", "ns")), ev("DELETED", obj("a", "5", "ns")), ev("BOOKMARK", obj("", "6"))),
        OSError("reset")])

    def request(api, method, p, query=None, body=None, content_type=None, timeout=None, stream=False):
        calls.append((method, p, query, timeout, stream))
        return answers()

    monkeypatch.setattr(omelab, "api_request", request)
    cache = omelab.Cache(object(), "models", path, changes.append, logs.append, stop, "app=x",
                         lambda o: {**o, "slim": True})
    cache.run()
    watch = {"labelSelector": "app=x", "watch": "true", "allowWatchBookmarks": "true",
             "timeoutSeconds": standin.WATCH_SECONDS}
    listing = ("GET", path, {"labelSelector": "app=x"}, None, False)  # None: api_request's default timeout
    assert calls == [listing] * 2 + [
        ("GET", path, {**watch, "resourceVersion": v}, (standin.REQUEST_TIMEOUT, standin.WATCH_SECONDS + 30), True)
        for v in ("3", "6")] + [listing]
    assert changes == [cache] * 4  # not served (first report), listed, ADDED, DELETED
    assert cache.values() == [{**obj("b", "4", "ns"), "slim": True}] and cache.synced and cache.served
    assert logs == [f"watch models: {path} not served (yet); checking every {omelab.MISSING_API_RETRY:g}s",
                    "watch models: OSError: reset; retrying in 0.5s"]
    assert stop.waits == [omelab.MISSING_API_RETRY, 0.5]


def test_kubeocean_cache_keeps_the_error_and_logs_a_repeated_one_once(monkeypatch):
    stop, logs, changes, calls = FakeStop(), [], [], []
    answers = scripted(stop, [
        ConnectionRefusedError("refused"), ConnectionRefusedError("refused"),
        {"metadata": {"resourceVersion": "3"}, "items": [obj("gpu-1", "2")]},
        Stream(ev("MODIFIED", obj("gpu-1", "4")), GONE),
        {"metadata": {"resourceVersion": "9"}, "items": []}])

    def request(api, method, p, query=None, body=None, content_type=None, timeout=None, stream=False):
        calls.append((p, query, timeout, stream))
        return answers()

    monkeypatch.setattr(ko, "api_request", request)
    cache = ko.Cache(object(), "cls-a/nodes", "/api/v1/nodes", lambda: changes.append(cache.error), logs.append,
                     stop, selector="role=gpu", field_selector="spec.unschedulable=false")
    cache.run()
    selectors = {"labelSelector": "role=gpu", "fieldSelector": "spec.unschedulable=false"}
    watch = {**selectors, "watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": standin.WATCH_SECONDS}
    assert [c[1] for c in calls] == [selectors] * 3 + [
        {**watch, "resourceVersion": "3"}, selectors, {**watch, "resourceVersion": "9"}]
    # each failure before the first list reports (not synced yet); the list clears the error
    assert [type(e).__name__ if e else None for e in changes] == [
        "ConnectionRefusedError", "ConnectionRefusedError", None, None, None]
    assert logs == ["watch cls-a/nodes: ConnectionRefusedError: refused; retrying (back-off up to 10s)",
                    "watch cls-a/nodes: 410 Expired: too old resource version: 1; listing again"]
    assert stop.waits == [0.5, 1.0]  # the failure while stopping is not reported
    assert cache.values() == [] and cache.error is None and cache.synced


# ------------------------------------------------------------------ the running stand-in
def test_the_state_file_is_written_only_when_it_changed(tmp_path, monkeypatch):
    daemon = standin.StandIn(name="x", what="x", title="x", up_title="x", error=RuntimeError, stop_timeout=1,
                             status_fields=lambda state: {})
    written, state = [], {"synced": False}
    monkeypatch.setattr(daemon.__class__, "write_state", lambda self, path, data: written.append((path, data)))
    write_state = daemon.state_writer(tmp_path / "c.json", lambda: {"pid": 7, **state}, default=str)
    write_state()
    write_state()
    state["synced"] = True
    write_state()
    assert written == [(tmp_path / "c.json", {"pid": 7, "synced": False}),
                       (tmp_path / "c.json", {"pid": 7, "synced": True})]
    daemon.state_writer(None, lambda: {"pid": 7})()  # no state file: nothing written
    assert len(written) == 2


def test_run_until_stopped_writes_the_state_and_closes_the_api_whatever_happened():
    events = []

    class Api:
        def close(self):
            events.append("closed")

    def failing():
        events.append("run")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        standin.StandIn.run_until_stopped(failing, lambda: events.append("state"), Api(), events.append)
    assert events == ["state", "run", "state", "closed", "stopped"]


def test_foreground_log_stamps_each_line():
    lines = []
    standin.foreground_log(lines.append)("hello")
    assert len(lines) == 1 and lines[0].endswith(" hello") and lines[0][4] == "-" and lines[0][10] == "T"
