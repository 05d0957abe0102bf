"""What the lab's stand-in daemons share: their process lifecycle, files and CLI.

A lab stand-in daemon plays, for one lab cluster, a part of a real cluster that cannot run in the
lab because kwok runs no pod: :mod:`labctl.devicemanager` (the kubelet's device manager and GPU
Feature Discovery), :mod:`labctl.omelab` (the OME/LWS controllers' kubelet, cert-manager, Service
routing, OME's model agent). Each is a Kubernetes client, one background process per cluster, and
each has the same lifecycle, written here once; a :class:`StandIn` names the daemon and holds what
differs (messages, error class, stop timeout, status fields):

* **files**, under ``lab/state/<name>/`` (made 0700 by :func:`labctl.paths.private_dir`), per
  cluster: ``<cluster>.pid`` (written by ``up``), ``<cluster>.log`` (the process's output) and
  ``<cluster>.json``, the state the process writes (atomically replaced): at least ``pid`` and
  ``synced``, plus what its status rows show;
* **ours**: a pid from the pid file counts only while it is alive and its argv names
  ``labctl.<name>``, the cluster and this checkout's state dir (a stale pid file, a recycled pid or
  another checkout's daemon is not ours);
* **up**: a no-op while ours runs; otherwise, given the cluster's kubeconfig, start
  ``python -m labctl.<name> run --cluster C --kubeconfig K --state-dir D ...`` detached
  (:func:`labctl.procs.spawn_detached`) and wait until the state file shows that pid synced (it has
  listed the cluster once); a process that exits, or does not sync in time (then it is stopped),
  loses its pid file and the error quotes the last log line;
* **down**: SIGTERM, SIGKILL after the daemon's stop timeout, pid file removed;
* **status**: a row per cluster with a pid file, and always ``worker``: ``cluster``, ``running``,
  ``pid``, ``synced``, the daemon's own fields, ``log``;
* **CLI**: ``lab <name> up|down|status`` (errors as one ``lab: error: ...`` line, exit 1) and the
  background process ``python -m labctl.<name> run`` (SIGTERM/SIGINT stop it);
* **list, then watch** (:func:`list_then_watch`): how a daemon keeps up with one resource: list it,
  watch from the list's resourceVersion, list again when the watch expires (410 Gone) or fails (back-off
  0.5 s doubling up to 10 s), wait while the resource is not served (404), stop when told;
* **running**: the process's log lines (:func:`foreground_log`), its state file rewritten when the state
  changed (:meth:`StandIn.state_writer`), the state written and the API client closed however it ends
  (:meth:`StandIn.run_until_stopped`);
* **API calls** (:func:`api_request`): one raw call through a kubernetes ``ApiClient`` (parsed JSON, or
  the stream of a watch); :class:`WatchCache`: one resource's objects by (namespace, name), listed and
  watched by :func:`list_then_watch` (the daemon's subclass makes the calls and reports changes and errors).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import paths, procs
from labctl.waiting import WaitTimeout, wait_for

Say = Callable[[str], None]
REQUEST_TIMEOUT = 15                       # seconds: an API call (a watch: the connect timeout)
WATCH_SECONDS = 60                         # a watch ends on the server after this long, then is re-opened


def cli_log(message: str) -> None:
    """A progress line of a ``lab`` command (stderr)."""
    print(f"lab: {message}", file=sys.stderr, flush=True)


def foreground_log(log: Say | None = None) -> Say:
    """The log of a stand-in running in the foreground: ``<local time> <message>`` to ``log`` (default: a
    line on stdout), one whole line at a time (its watch threads log too)."""
    lock = threading.Lock()
    out = log or (lambda m: print(m, flush=True))

    def say(message: str) -> None:
        with lock:
            out(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}")

    return say


@dataclass(frozen=True)
class StandIn:
    """One kind of stand-in daemon: its name and what differs from the others."""

    name: str                                  # lab/state/<name>/, labctl.<name>, `lab <name>`, "<name>: ..." lines
    what: str                                  # one process in errors and stop waits: "<what> <cluster>"
    title: str                                 # the start wait: "the <title> of <cluster> to list the cluster"
    up_title: str                              # the progress line: "<name>: <up_title> for <cluster> up (pid N)"
    error: type[Exception]                     # the daemon's one-line error
    stop_timeout: float                        # SIGTERM, then SIGKILL after this long
    status_fields: Callable[[dict], dict]      # its own status row fields, from its state file ({} if not running)
    after_stop: Callable[[str, Say], None] | None = None  # down(): more to stop for a cluster (pid or not)
    private_files: bool = False                # log and state file 0600 from the start (else as the umask has it)

    # ------------------------------------------------------------------ files and processes
    def state_dir(self) -> Path:
        return paths.STATE_DIR / self.name

    def files(self, cluster: str, base: Path | None = None) -> dict[str, Path]:
        """The pid file, log and state file of ``cluster`` in ``base`` (default: :meth:`state_dir`)."""
        d = Path(base or self.state_dir())
        return {"pid": d / f"{cluster}.pid", "log": d / f"{cluster}.log", "state": d / f"{cluster}.json"}

    def write_state(self, path: Path, data: dict) -> None:
        """The background process's state file, atomically replaced."""
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        if self.private_files:
            paths.write_private(path, text)
            return
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def state_writer(self, state_file: Path | None, data: Callable[[], dict],
                     default: Callable[[Any], Any] | None = None) -> Callable[[], None]:
        """``write_state()`` of the running stand-in: :meth:`write_state` of ``data()`` to ``state_file``
        (nothing without one), only when it changed (compared as JSON; ``default`` as for ``json.dumps``)."""
        written = [""]

        def write_state() -> None:
            if state_file is None:
                return
            state = data()
            text = json.dumps(state, sort_keys=True, default=default)
            if text != written[0]:
                written[0] = text
                self.write_state(state_file, state)

        return write_state

    @staticmethod
    def run_until_stopped(run: Callable[[], None], write_state: Callable[[], None], api, say: Say) -> None:
        """The running stand-in's body: its state written, ``run()`` (until it is stopped), then, whatever
        happened, its state written again, the API client closed and ``stopped`` logged."""
        write_state()
        try:
            run()
        finally:
            write_state()
            api.close()
            say("stopped")

    def our_pid(self, cluster: str) -> int | None:
        """PID of the running stand-in of ``cluster`` started from this checkout's state dir, if any."""
        try:
            pid = int(self.files(cluster)["pid"].read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if procs.alive(pid) and f"labctl.{self.name}".encode() in argv and cluster.encode() in argv \
                and str(self.state_dir()).encode() in argv:
            return pid
        return None

    def log_tail(self, cluster: str) -> str:
        try:
            lines = self.files(cluster)["log"].read_text().strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def clusters(self) -> list[str]:
        """The clusters with a pid file."""
        d = self.state_dir()
        return sorted(p.stem for p in d.glob("*.pid")) if d.is_dir() else []

    # ------------------------------------------------------------------ up / down / status
    def up(self, cluster: str, kubeconfig: Path, options: Sequence[str], timeout: float, log: Say | None) -> dict:
        """Start the stand-in of ``cluster`` in the background (no-op if it runs): ``run`` with
        ``options`` after the common ones; wait until it has synced. Returns its status row."""
        say = log or (lambda m: None)
        if self.our_pid(cluster) is None:
            if not kubeconfig.is_file():
                raise self.error(f"{self.what} {cluster}: no kubeconfig at {kubeconfig} (is the cluster up?)")
            d = paths.private_dir(self.state_dir())
            f = self.files(cluster)
            f["state"].unlink(missing_ok=True)
            if self.private_files:
                os.close(os.open(f["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            argv = [sys.executable, "-m", f"labctl.{self.name}", "run", "--cluster", cluster,
                    "--kubeconfig", str(kubeconfig), "--state-dir", str(d), *options]
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.LAB_DIR), env.get("PYTHONPATH")]))
            try:
                pid = procs.spawn_detached(argv, d, f["log"], env)
            except OSError as exc:
                raise self.error(f"{self.what} {cluster}: {exc}") from None
            f["pid"].write_text(f"{pid}\n")

            def synced() -> str | None:
                if not procs.alive(pid):
                    return "exited"
                state = procs.read_json(f["state"])
                return "synced" if state.get("pid") == pid and state.get("synced") else None

            try:
                outcome = wait_for(synced, timeout, f"the {self.title} of {cluster} to list the cluster", interval=0.2)
            except WaitTimeout as exc:
                procs.stop(pid, f"{self.what} {cluster}", self.stop_timeout)
                f["pid"].unlink(missing_ok=True)
                raise self.error(f"{self.what} {cluster} did not start: {exc} ({self.log_tail(cluster)})") from None
            if outcome == "exited":
                f["pid"].unlink(missing_ok=True)
                raise self.error(f"{self.what} {cluster} exited: {self.log_tail(cluster)} (log: {f['log']})")
            say(f"{self.name}: {self.up_title} for {cluster} up (pid {pid})")
        return next(row for row in self.status() if row["cluster"] == cluster)

    def down(self, cluster: str | None = None, log: Say | None = None) -> None:
        """Stop the stand-in of ``cluster`` (all of them by default), then :attr:`after_stop`."""
        say = log or (lambda m: None)
        for name in [cluster] if cluster else self.clusters():
            pid = self.our_pid(name)
            if pid is not None:
                procs.stop(pid, f"{self.what} {name}", self.stop_timeout)
                say(f"{self.name}: stand-in for {name} (pid {pid}) stopped")
            if self.after_stop is not None:
                self.after_stop(name, say)
            self.files(name)["pid"].unlink(missing_ok=True)

    def status(self) -> list[dict]:
        rows = []
        for name in sorted(set(self.clusters()) | {"worker"}):
            f = self.files(name)
            pid = self.our_pid(name)
            state = procs.read_json(f["state"]) if pid else {}
            rows.append({"cluster": name, "running": pid is not None, "pid": pid, "synced": bool(state.get("synced")),
                         **self.status_fields(state), "log": str(f["log"])})
        return rows

    # ------------------------------------------------------------------ CLI
    def guard(self, func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        """``func`` with the daemon's error (or a wait that timed out) as one ``lab: error:`` line, exit 1."""
        def guarded(args: argparse.Namespace) -> int:
            try:
                return func(args)
            except (self.error, WaitTimeout) as exc:
                print(f"lab: error: {exc}", file=sys.stderr)
                return 1
        return guarded

    def register_cli(self, subparsers, help_text: str, up_options: Callable[[argparse.ArgumentParser], None],
                     start: Callable[[argparse.Namespace, Say], dict], down_help: str):
        """Add ``<name> up|down|status`` to an argparse subparsers object (``func(args) -> int``) and
        return the ``<name>`` subparsers (for more commands). ``up_options`` adds the daemon's own
        ``up`` options after ``--cluster`` and ``--kubeconfig``; ``start(args, say)`` starts it and
        returns its status row."""
        def cmd_up(args: argparse.Namespace) -> int:
            print(json.dumps(start(args, cli_log), indent=2))
            return 0

        def cmd_down(args: argparse.Namespace) -> int:
            self.down(args.cluster, log=cli_log)
            return 0

        def cmd_status(args: argparse.Namespace) -> int:
            print(json.dumps(self.status(), indent=2))
            return 0

        top = subparsers.add_parser(self.name, help=help_text)
        sub = top.add_subparsers(dest=f"{self.name}_command", required=True)
        p_up = sub.add_parser("up", help="start the stand-in for a cluster (no-op if running)")
        p_up.add_argument("--cluster", default="worker")
        p_up.add_argument("--kubeconfig", type=Path, default=None, help="default: lab/state/kubeconfig/<cluster>.yaml")
        up_options(p_up)
        p_up.set_defaults(func=self.guard(cmd_up))
        p_down = sub.add_parser("down", help=down_help)
        p_down.add_argument("--cluster", default=None)
        p_down.set_defaults(func=self.guard(cmd_down))
        sub.add_parser("status", help="report the stand-ins").set_defaults(func=self.guard(cmd_status))
        return sub

    def main(self, argv: list[str] | None, run_options: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace, threading.Event], None]) -> int:
        """``python -m labctl.<name> run ...``: the background process. ``run_options`` adds the daemon's
        own options after ``--cluster``, ``--kubeconfig`` and ``--state-dir``; ``run(args, stop)`` runs
        it until ``stop`` is set (SIGTERM, SIGINT). The daemon's error: exit 1."""
        parser = argparse.ArgumentParser(prog=f"labctl.{self.name}")
        sub = parser.add_subparsers(dest="command", required=True)
        p_run = sub.add_parser("run")
        p_run.add_argument("--cluster", default="worker")
        p_run.add_argument("--kubeconfig", type=Path, default=None)
        p_run.add_argument("--state-dir", type=Path, default=None)
        run_options(p_run)
        args = parser.parse_args(argv)
        stop_event = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: stop_event.set())
        try:
            run(args, stop_event)
        except self.error as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0


# ------------------------------------------------------------------ list, then watch
class NotServed(Exception):
    """Raised by the list of :func:`list_then_watch`: the API server does not serve the resource (404, e.g.
    its CRD is not installed); the argument is the path, for the log line."""


class _WatchExpired(Exception):
    pass


def error_line(exc: BaseException) -> str:
    """``Class: first line of the message`` (at most 200 characters of it), for a log line."""
    return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def list_then_watch(name: str, stop: threading.Event, log: Say, relist: Callable[[], str],
                    watch: Callable[[str], Any], on_event: Callable[[str, dict], None],
                    on_error: Callable[[Exception, float], None],
                    on_not_served: Callable[[bool], None] | None = None, not_served_retry: float = 5.0) -> None:
    """Keep up with one resource until ``stop`` is set (a watch thread's body).

    ``relist()`` lists the resource, keeps what it listed and returns the list's resourceVersion; it raises
    :class:`NotServed` when the resource is not served. ``watch(version)`` opens a watch from there (a
    streamed urllib3 response, closed and released after); each ADDED, MODIFIED or DELETED event goes to
    ``on_event(type, object)`` and every event's resourceVersion (bookmarks too) is where the next watch
    starts, so a watch that ends (server-side timeout) is re-opened without a list.

    * an ERROR event (e.g. 410 Gone: the version is too old): logged ``watch <name>: <code> <reason>: <message>;
      listing again``, listed again at once;
    * :class:`NotServed`: ``on_not_served(first)`` if given (``first``: not reported since the last list
      that worked), logged once ``watch <name>: <path> not served (yet); checking every <s>s``, listed again
      after ``not_served_retry`` seconds;
    * any other error, unless ``stop`` is set (then it returns): ``on_error(exc, backoff)`` (the daemon's
      bookkeeping and log line, e.g. with :func:`error_line`), listed again after the back-off: 0.5 s,
      doubled up to 10 s, 0.5 s again once a list works.
    """
    from kubernetes.watch.watch import iter_resp_lines

    backoff = 0.5
    reported_missing = False
    while not stop.is_set():
        try:
            version = relist()
            backoff, reported_missing = 0.5, False
            while not stop.is_set():
                resp = watch(version)
                try:
                    for line in iter_resp_lines(resp):
                        if stop.is_set():
                            break
                        if not line:
                            continue
                        event = json.loads(line)
                        obj, typ = event.get("object") or {}, event.get("type")
                        if typ == "ERROR":
                            raise _WatchExpired(f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if typ in ("ADDED", "MODIFIED", "DELETED"):
                            on_event(typ, obj)
                finally:
                    resp.close()
                    with contextlib.suppress(Exception):
                        resp.release_conn()
        except NotServed as exc:
            if on_not_served is not None:
                on_not_served(not reported_missing)
            if not reported_missing:
                log(f"watch {name}: {exc} not served (yet); checking every {not_served_retry:g}s")
                reported_missing = True
            stop.wait(not_served_retry)
        except _WatchExpired as exc:
            log(f"watch {name}: {exc}; listing again")
        except Exception as exc:
            if stop.is_set():
                return
            on_error(exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)


# ------------------------------------------------------------------ API calls, list+watch caches
def api_request(api, method: str, path: str, query: Mapping[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, timeout: Any = REQUEST_TIMEOUT, stream: bool = False):
    """One call through a kubernetes ``ApiClient``: the parsed JSON body, or the raw urllib3 response
    when ``stream`` (a watch). ``ApiException`` (with ``.status``) for HTTP errors."""
    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    request = api.param_serialize(method, path, query_params=[(k, v) for k, v in (query or {}).items()
                                                              if v is not None],
                                  header_params=headers, body=body, auth_settings=["BearerToken"])
    resp = api.call_api(*request, _request_timeout=timeout)
    if not 200 <= resp.status <= 299:
        data = resp.read()
        raise ApiException.from_response(http_resp=resp, body=data.decode(errors="replace") if data else None,
                                         data=None)
    if stream:
        return resp.response
    data = resp.read()
    return json.loads(data) if data else {}


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a failed API call (``ApiException.status``), None for other errors."""
    return getattr(exc, "status", None)


def object_key(obj: Mapping) -> tuple[str, str]:
    """(namespace, name) of an object, "" for what it lacks."""
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class WatchCache:
    """One resource's objects (transformed) by :func:`object_key`, kept by :func:`list_then_watch` in
    :meth:`run` (a watch thread's body) until ``stop`` is set: listed, then watched from the list's
    resourceVersion; a resource that is not served (404) is empty and listed again every
    :attr:`not_served_retry` seconds. A subclass makes the calls (``_request``), tells of changes
    (``_changed``) and handles failures (``_failed``); ``_query`` and ``_listed`` may add to the
    query and to what a list that worked does."""

    not_served_retry = 5.0

    def __init__(self, api, name: str, path: str, log: Say, stop: threading.Event, selector: str | None = None,
                 transform: Callable[[dict], dict] | None = None) -> None:
        self.api, self.name, self.path, self.selector = api, name, path, selector
        self.log, self.stop = log, stop
        self.transform = transform or (lambda o: o)
        self.items: dict[tuple[str, str], dict] = {}
        self.synced = False
        self.served = False
        self.lock = threading.Lock()

    def values(self) -> list[dict]:
        with self.lock:
            return list(self.items.values())

    def get(self, namespace: str, name: str) -> dict | None:
        with self.lock:
            return self.items.get((namespace, name))

    # ------------------------------------------------------------------ the subclass's part
    def _request(self, query: dict, **options) -> Any:
        """GET :attr:`path` with ``query`` (``options``: ``timeout``, ``stream``), as :func:`api_request`."""
        raise NotImplementedError

    def _changed(self) -> None:
        raise NotImplementedError

    def _failed(self, exc: Exception, backoff: float) -> None:
        raise NotImplementedError

    def _query(self, **more) -> dict:
        return {"labelSelector": self.selector, **more}

    def _listed(self) -> None:
        """A list worked (before ``_changed``)."""

    # ------------------------------------------------------------------ list, watch, events
    def _list(self) -> str:
        try:
            body = self._request(self._query())
        except Exception as exc:
            if status_of(exc) == 404:
                raise NotServed(self.path) from None
            raise
        with self.lock:
            self.items = {object_key(o): self.transform(o) for o in body.get("items") or []}
        self.synced = self.served = True
        self._listed()
        self._changed()
        return body["metadata"]["resourceVersion"]

    def _watch(self, version: str) -> Any:
        return self._request(self._query(watch="true", resourceVersion=version, allowWatchBookmarks="true",
                                         timeoutSeconds=WATCH_SECONDS),
                             timeout=(REQUEST_TIMEOUT, WATCH_SECONDS + 30), stream=True)

    def _event(self, typ: str, obj: dict) -> None:
        with self.lock:
            if typ == "DELETED":
                self.items.pop(object_key(obj), None)
            else:
                self.items[object_key(obj)] = self.transform(obj)
        self._changed()

    def _not_served(self, first: bool) -> None:
        """Served no more (or not yet): empty and synced; a change if it had objects or is first told."""
        with self.lock:
            had = bool(self.items)
            self.items = {}
        self.synced, self.served = True, False
        if had or first:
            self._changed()

    def run(self) -> None:
        list_then_watch(self.name, self.stop, self.log, self._list, self._watch, self._event, self._failed,
                        self._not_served, self.not_served_retry)


__all__ = ["REQUEST_TIMEOUT", "WATCH_SECONDS", "NotServed", "StandIn", "WatchCache", "api_request", "cli_log",
           "error_line", "foreground_log", "list_then_watch", "object_key", "status_of"]
