"""Restarting a cluster's kube-apiserver on purpose, and `lab up` never racing one that is still
exiting: against a stand-in process named kube-apiserver (no cluster, no Go build needed) that
serves /readyz over plain HTTP and takes its time to exit on SIGTERM, like the real one."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
import yaml
from labctl import cli, clusters, k8sbin, paths, procs
from labctl.waiting import wait_for

FAKE_APISERVER = textwrap.dedent("""\
    #!{python}
    # kube-apiserver stand-in: serves /readyz on --secure-port; on SIGTERM keeps its port for
    # --term-delay seconds (a graceful shutdown), or ignores SIGTERM with --term-delay=-1.
    import http.server, signal, sys, threading, time
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    delay = float(args.get("term-delay", "0"))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(args["secure-port"])), Handler)
    def on_term(signum, frame):
        if delay < 0:
            return
        def later():
            time.sleep(delay)
            import os; os._exit(0)
        threading.Thread(target=later, daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)
    print("fake kube-apiserver serving", flush=True)
    server.serve_forever()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_ready(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
        return resp.status == 200


@pytest.fixture
def fake_cluster(tmp_path, monkeypatch):
    """A kwokctl-like cluster dir `worker` whose kube-apiserver is the stand-in above."""
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    monkeypatch.setattr(paths, "KWOK_WORKDIR", tmp_path / "state" / "kwok")
    monkeypatch.setattr(paths, "KUBECONFIG_DIR", tmp_path / "state" / "kubeconfig")
    port = _free_port()
    cdir = paths.KWOK_WORKDIR / "clusters" / "worker"
    (cdir / "pids").mkdir(parents=True)
    (cdir / "logs").mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    binary = bindir / "kube-apiserver"
    binary.write_text(FAKE_APISERVER.format(python=sys.executable))
    binary.chmod(0o755)
    state = {"delay": "1"}

    def write_config() -> None:
        comp = {"name": "kube-apiserver", "binary": str(binary), "workDir": str(cdir),
                "args": [f"--secure-port={port}", f"--cert-dir={cdir}/pki", f"--term-delay={state['delay']}"],
                "envs": [{"name": "LAB_FAKE", "value": "1"}]}
        (cdir / "kwok.yaml").write_text(yaml.safe_dump_all([
            {"kind": "KwokctlConfiguration", "apiVersion": "config.kwok.x-k8s.io/v1alpha1", "components": [comp]},
        ]))

    write_config()
    spec = clusters.ClusterSpec(name="worker", apiserver_port=port)
    monkeypatch.setattr(clusters, "specs", lambda: [spec])
    monkeypatch.setattr(clusters, "readyz", lambda name: _http_ready(port))
    monkeypatch.setattr(clusters, "existing_clusters", lambda bindir=None: {"worker"})
    monkeypatch.setattr(k8sbin, "bin_dir", lambda: bindir)

    class Cluster:
        pass

    c = Cluster()
    c.dir, c.port, c.spec, c.binary = cdir, port, spec, binary

    def set_delay(value: str) -> None:
        state["delay"] = value
        write_config()

    c.set_delay = set_delay
    c.start = lambda: clusters.start_apiserver("worker", ready_timeout=20, log=lambda m: None)
    yield c
    for pid in procs.processes_matching(str(cdir)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _pid_file(c) -> int:
    return int((c.dir / "pids" / "kube-apiserver.pid").read_text())


def test_start_is_like_kwokctl_detached_with_pid_file_and_log(fake_cluster):
    started = fake_cluster.start()
    pid = started["pid"]
    assert _pid_file(fake_cluster) == pid and clusters.component_pid("worker") == pid
    assert procs.comm(pid) == "kube-apiserver"
    assert os.getsid(pid) == pid  # its own session, like kwokctl's fork-exec
    status = open(f"/proc/{pid}/status").read()
    assert f"PPid:\t{os.getpid()}\n" not in status  # nobody's child here: no zombie left with us
    assert open(f"/proc/{pid}/environ", "rb").read().count(b"LAB_FAKE=1") == 1
    assert "fake kube-apiserver serving" in (fake_cluster.dir / "logs" / "kube-apiserver.log").read_text()
    assert procs.port_owners(fake_cluster.port) == [pid]


def test_restart_waits_for_the_old_process_and_its_port(fake_cluster):
    old = fake_cluster.start()["pid"]
    result = clusters.restart_apiserver("worker", down_seconds=0.5, ready_timeout=20, log=lambda m: None)
    assert result["old_pid"] == old and result["new_pid"] != old
    assert not procs.alive(old)
    assert result["exit_seconds"] >= 1.0  # the stand-in keeps its port 1 s after SIGTERM: we waited
    assert result["down_seconds"] == 0.5
    assert result["total_seconds"] >= result["exit_seconds"] + 0.5
    assert procs.port_owners(fake_cluster.port) == [result["new_pid"]]
    assert _pid_file(fake_cluster) == result["new_pid"]
    assert _http_ready(fake_cluster.port)


def test_stop_escalates_to_sigkill_after_the_timeout(fake_cluster):
    fake_cluster.set_delay("-1")  # ignores SIGTERM
    old = fake_cluster.start()["pid"]
    t0 = time.monotonic()
    stopped = clusters.stop_apiserver("worker", stop_timeout=1.5, log=lambda m: None)
    assert stopped["pid"] == old and not procs.alive(old)
    assert 1.5 <= time.monotonic() - t0 < 10
    assert procs.port_free("127.0.0.1", fake_cluster.port)
    assert not (fake_cluster.dir / "pids" / "kube-apiserver.pid").exists()


def test_a_start_that_dies_is_reported_at_once_with_its_log(fake_cluster):
    comp = clusters.component("worker")
    comp["args"] = ["--secure-port=not-a-port"]
    (fake_cluster.dir / "kwok.yaml").write_text(yaml.safe_dump({"kind": "KwokctlConfiguration", "components": [comp]}))
    t0 = time.monotonic()
    with pytest.raises(clusters.ClusterError, match=r"exited: .*ValueError.*\(log: "):
        clusters.start_apiserver("worker", ready_timeout=60, log=lambda m: None)
    assert time.monotonic() - t0 < 15


def test_lab_up_waits_for_an_exiting_apiserver_then_starts(fake_cluster, monkeypatch):
    fake_cluster.set_delay("2")
    old = fake_cluster.start()["pid"]
    (paths.KUBECONFIG_DIR).mkdir(parents=True)
    paths.kubeconfig_path("worker").write_text("fake")
    monkeypatch.setattr(clusters, "readyz", lambda name: False)  # a dying apiserver does not serve
    calls = []

    def fake_kwokctl(bindir, *args, check=True):
        calls.append((args, procs.alive(old), procs.port_free("127.0.0.1", fake_cluster.port)))
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(clusters, "_kwokctl", fake_kwokctl)
    os.kill(old, signal.SIGTERM)  # e.g. a restart or a `lab down` cut short
    messages = []
    t0 = time.monotonic()
    action = clusters._start(fake_cluster.spec, fake_cluster.dir, {"worker"}, messages.append)
    assert action == "started"
    assert 1.5 <= time.monotonic() - t0 < 30
    assert calls == [(("start", "cluster", "--name", "worker", "--wait", f"{clusters.READY_TIMEOUT}s"), False, True)]
    assert any("runs but does not serve" in m for m in messages)
    # kwokctl would take a pid file naming a dead process (or a zombie) for a running component
    assert not (fake_cluster.dir / "pids" / "kube-apiserver.pid").exists()


def test_lab_up_waits_for_a_port_held_by_a_lab_process_without_pid_file(fake_cluster, monkeypatch):
    fake_cluster.set_delay("2")
    old = fake_cluster.start()["pid"]
    (fake_cluster.dir / "pids" / "kube-apiserver.pid").unlink()  # what `kwokctl stop` leaves
    monkeypatch.setattr(clusters, "_kwokctl", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", ""))
    os.kill(old, signal.SIGTERM)
    messages = []
    t0 = time.monotonic()
    clusters._start(fake_cluster.spec, fake_cluster.dir, {"worker"}, messages.append)
    assert time.monotonic() - t0 >= 1.5
    assert procs.port_free("127.0.0.1", fake_cluster.port)
    assert any(f"still held by exiting lab process(es) [{old}]" in m for m in messages)


def test_lab_up_takes_over_from_an_apiserver_that_neither_serves_nor_exits(fake_cluster, monkeypatch):
    fake_cluster.set_delay("-1")
    old = fake_cluster.start()["pid"]
    monkeypatch.setattr(clusters, "readyz", lambda name: False)
    monkeypatch.setattr(clusters, "_kwokctl", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", ""))
    monkeypatch.setattr(procs, "stop", lambda pid, what, timeout, _stop=procs.stop: _stop(pid, what, 0.5))
    messages = []
    assert clusters._await_apiserver(fake_cluster.spec, messages.append, timeout=1) is False
    wait_for(lambda: not procs.alive(old), 10, "old fake apiserver gone")
    assert any("neither served nor exited" in m for m in messages)


def test_stale_pid_files_are_dropped_but_live_components_kept(fake_cluster):
    pid = fake_cluster.start()["pid"]
    pids = fake_cluster.dir / "pids"
    (pids / "etcd.pid").write_text("999999999")                     # gone
    (pids / "kube-scheduler.pid").write_text(str(os.getpid()))      # reused by another program
    dropped = clusters._drop_stale_pid_files("worker")
    assert sorted(dropped) == ["etcd", "kube-scheduler"]
    assert _pid_file(fake_cluster) == pid


def test_restart_of_a_cluster_that_is_not_set_up_is_one_clear_error(fake_cluster, monkeypatch, capsys):
    monkeypatch.setattr(clusters, "existing_clusters", lambda bindir=None: set())
    assert cli.main(["restart-apiserver", "worker"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lab: error: cluster 'worker' is not set up: run `lab up`"]


def test_restart_cli_prints_timings_as_json(fake_cluster, capsys):
    fake_cluster.start()
    assert cli.main(["restart-apiserver", "worker", "--stop-timeout", "10"]) == 0
    out = capsys.readouterr().out
    assert '"cluster": "worker"' in out and '"exit_seconds"' in out and '"ready_seconds"' in out
