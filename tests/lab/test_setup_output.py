"""Set-up output: one line per component on the terminal, the tools' flood in a private log, the
log's tail on failure, one line when warm. scripts/setup.sh runs in a scratch copy of the checkout
with stand-ins for the venv and `lab` (nothing is installed or built); labctl's build log is
tested directly."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from labctl import buildlog, k8sbin, paths

REPO = paths.REPO_ROOT

FAKE_LAB = """#!/usr/bin/env bash
# stand-in for .venv/bin/lab: `build --check` says what $FAKE_BUILT says; `build` floods the log
if [ "$1 $2" = "build --check" ]; then [ "$FAKE_BUILT" = yes ]; exit; fi
if [ "$1" = build ]; then
  echo "$3: building Kubernetes v1.36.3 control plane ... (~7 min on 2 cores, cold) ..." >&2
  for i in $(seq 1 200); do echo "go: downloading example.com/mod$i v1.0.$i" >>"$LAB_BUILD_LOG"; done
  if [ "$FAKE_FAIL" = yes ]; then echo "compile: something broke" >>"$LAB_BUILD_LOG"
    echo "lab: error: control-plane build failed (exit 1)" >&2; exit 1; fi
  echo /cache/bin
fi
"""


def _sha(*files: Path) -> str:
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


@pytest.fixture
def checkout(tmp_path):
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    (root / "lab").mkdir()
    (root / "lab" / "apt-packages.txt").write_text("# nothing missing: dpkg-query is a stand-in\ncoreutils\n")
    (root / "lab" / "pyproject.toml").write_text("[project]\nname='labctl'\n")
    (root / "requirements.lock").write_text("ansible-core==2.20.0\n")
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".requirements.sha256").write_text(_sha(root / "requirements.lock", root / "lab" / "pyproject.toml") + "\n")
    for name, text in {"python": "#!/bin/sh\necho /cache/helm/helm\n", "lab": FAKE_LAB}.items():
        (venv / "bin" / name).write_text(text)
        (venv / "bin" / name).chmod(0o755)
    req = venv / "lib" / "python3.11" / "site-packages" / "ansible_test" / "_internal"
    req.mkdir(parents=True)
    (req / "python_requirements.py").write_text("    default_packages = dict(\n        pip='24.2',\n    )\n")
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    (fakebin / "dpkg-query").write_text("#!/bin/sh\nprintf 'install ok installed'\n")
    (fakebin / "dpkg-query").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    return root, {"PATH": f"{fakebin}:{os.environ['PATH']}", "HOME": str(home), "LANG": "C"}


def _setup(checkout, **env):
    root, base = checkout
    return subprocess.run(["bash", str(root / "scripts" / "setup.sh")], capture_output=True, text=True,
                          env=base | env, timeout=60, check=False)


def test_warm_run_is_one_line_and_writes_no_log(checkout):
    root, _env = checkout
    _setup(checkout, FAKE_BUILT="yes")  # the first run creates the get-pip stand-in (one line)
    run = _setup(checkout, FAKE_BUILT="yes")
    assert run.returncode == 0, run.stderr
    assert (run.stdout + run.stderr).strip().splitlines() == [
        "setup: everything present (Debian packages, .venv, lab binaries in ~/.cache/ai-cluster-lab)"]
    assert not (root / "lab" / "state" / "logs").exists() or not any((root / "lab" / "state" / "logs").iterdir())


def test_cold_build_prints_a_line_per_component_and_logs_the_flood_privately(checkout):
    root, _env = checkout
    run = _setup(checkout, FAKE_BUILT="no")
    assert run.returncode == 0, run.stderr
    out = (run.stdout + run.stderr).splitlines()
    assert len(out) <= 6, out
    assert any(line.startswith("setup: building Kubernetes v1.36.3 control plane") for line in out)
    assert not any("go: downloading" in line for line in out)
    logs = list((root / "lab" / "state" / "logs").glob("setup-*.log"))
    assert len(logs) == 1
    assert any(f"lab/state/logs/{logs[0].name}" in line for line in out)  # its path is printed
    assert logs[0].read_text().count("go: downloading") == 200
    assert stat.S_IMODE(logs[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(logs[0].parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "lab" / "state").stat().st_mode) == 0o700
    assert not (root / ".cache" / "facts").exists()  # facts stay in memory (ansible.cfg): no fact file
    assert run.stdout.splitlines()[-1].startswith("setup: done in ")


def test_failure_shows_the_last_lines_of_the_log_and_its_path(checkout):
    root, _env = checkout
    run = _setup(checkout, FAKE_BUILT="no", FAKE_FAIL="yes")
    assert run.returncode == 1
    err = run.stderr.splitlines()
    assert any("compile: something broke" in line for line in err)
    tail = [line for line in err if "go: downloading" in line]
    assert 20 <= len(tail) <= 30
    log = next((root / "lab" / "state" / "logs").glob("setup-*.log"))
    assert err[-1] == f"setup: full log: lab/state/logs/{log.name}"


def test_ansible_test_gets_an_offline_get_pip_named_for_its_pip_version(checkout):
    _root, env = checkout
    run = _setup(checkout, FAKE_BUILT="yes")
    assert run.returncode == 0, run.stderr
    get_pip = Path(env["HOME"]) / ".ansible" / "test" / "cache" / "get_pip_24_2.py"
    text = get_pip.read_text()
    assert "import ensurepip" in text and "ensurepip.bootstrap()" in text
    assert stat.S_IMODE(get_pip.stat().st_mode) == 0o644
    assert stat.S_IMODE(get_pip.parent.stat().st_mode) == 0o700
    compile(text, str(get_pip), "exec")


def test_the_real_ansible_test_wants_that_file_name():
    import importlib.util

    spec = importlib.util.find_spec("ansible_test")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ansible-test is not installed in this Python")
    source = Path(next(iter(spec.submodule_search_locations))) / "_util" / "target" / "setup" / "requirements.py"
    assert "~/.ansible/test/cache/get_pip_%s.py" in source.read_text()


# ---------------------------------------------------------------- labctl's build log

@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    monkeypatch.setattr(buildlog, "_own_log", None)
    monkeypatch.delenv(buildlog.ENV, raising=False)
    return tmp_path / "state"


def test_build_output_goes_to_a_private_log_not_the_terminal(state, capfd):
    code, path = buildlog.run([sys.executable, "-c", "print('go: downloading x v1'); print('built')"], "demo build")
    assert code == 0
    assert path.parent == state / "logs" and path.name.startswith("build-")
    assert "go: downloading x v1" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_failed_build_prints_the_tail_of_its_own_log(state, capfd):
    script = "import sys\nfor i in range(100): print('line', i)\nsys.exit(3)"
    code, _path = buildlog.run([sys.executable, "-c", script], "demo build")
    assert code == 3
    err = capfd.readouterr().err.splitlines()
    assert err[0].startswith("--- last 30 lines of ")
    assert err[-1].strip().startswith("== demo build: exit 3 after 0m0") and "line 99" in err[-2]
    assert len(err) == 31


def test_under_setup_builds_append_to_its_log_and_leave_the_tail_to_it(state, tmp_path, monkeypatch, capfd):
    log = tmp_path / "setup.log"
    monkeypatch.setenv(buildlog.ENV, str(log))
    code, path = buildlog.run([sys.executable, "-c", "import sys; print('boom'); sys.exit(1)"], "demo build")
    assert (code, path) == (1, log)
    assert "boom" in log.read_text()
    assert capfd.readouterr().err == ""
    assert buildlog.note() == ""


def test_k8s_build_progress_is_one_line_with_what_why_and_minutes(state, tmp_path, monkeypatch):
    monkeypatch.setattr(k8sbin, "bin_dir", lambda: tmp_path / "bin")
    monkeypatch.setattr(k8sbin, "helm_path", lambda: tmp_path / "helm" / "helm")
    monkeypatch.setattr(k8sbin, "_require_go", lambda: "/usr/bin/false")
    monkeypatch.setattr(buildlog, "run", lambda cmd, what, env=None, cwd=None: (1, state / "logs" / "x.log"))
    lines = []
    with pytest.raises(k8sbin.BuildError) as err:
        k8sbin.ensure_built(log=lines.append)
    assert len(lines) == 1
    assert lines[0].startswith(f"building Kubernetes {k8sbin.kube_version()} control plane")
    assert "for the lab clusters" in lines[0] and "min" in lines[0] and "output: " in lines[0]
    assert "see " in str(err.value) and "\n" not in str(err.value)
