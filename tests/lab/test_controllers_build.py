"""labctl.controllers: the OME and LeaderWorkerSet controllers built from wrapper Go modules.

Cache keys and paths, the wrapper modules' pins and workarounds, the progress lines and the
`lab build` hook, without building anything (the build itself is faked; the xet stub is
compiled against OME's header when the module cache and gcc are there).
"""

import re
import shutil
import subprocess

import pytest
from labctl import buildlog, cli, controllers, k8sbin, paths
from labctl.storage import binary as juicefs_binary

OME, LWS = "ome-manager", "lws-controller"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    monkeypatch.delenv(buildlog.ENV, raising=False)
    return tmp_path / "cache"


def _copy_module(name, tmp_path):
    module = tmp_path / name
    shutil.copytree(controllers.CONTROLLERS[name].module_dir, module)
    return module


@pytest.mark.parametrize("name", [OME, LWS])
def test_cache_key_follows_the_wrapper_module(name, tmp_path):
    key = controllers.module_key(name)
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    module = _copy_module(name, tmp_path)
    assert controllers.module_key(name, module) == key
    for rel in controllers.CONTROLLERS[name].files:
        changed = _copy_module(name, tmp_path / f"changed-{rel.replace('/', '_')}")
        (changed / rel).write_text((changed / rel).read_text() + "\n// changed\n")
        assert controllers.module_key(name, changed) != key, rel


def test_go_sum_change_rebuilds_only_that_controller(tmp_path):
    module = _copy_module(LWS, tmp_path)
    before = controllers.module_key(LWS, module)
    (module / "go.sum").write_text((module / "go.sum").read_text() + "example.invalid/x v1.0.0 h1:x=\n")
    assert controllers.module_key(LWS, module) != before
    assert controllers.CONTROLLERS[OME].module_dir != controllers.CONTROLLERS[LWS].module_dir


def test_the_ome_key_covers_the_xet_stub_and_lws_has_none():
    assert "xetstub/xet_stub.c" in controllers.CONTROLLERS[OME].files
    assert controllers.CONTROLLERS[LWS].files == ("go.mod", "go.sum", "build.sh")


def test_versions_come_from_the_wrapper_modules():
    assert controllers.version(OME) == "v0.1.5"
    assert controllers.version(LWS) == "v0.7.0"
    assert controllers.version("ray-operator") == "v1.5.0"
    assert controllers.version("keda") == "v2.21.0"


def test_keda_is_one_build_of_two_binaries():
    assert controllers.CONTROLLERS["keda"].outputs == ("keda-operator", "keda-adapter")
    assert controllers.binary("keda") == controllers.bin_dir("keda") / "keda-operator"
    assert controllers.binary("keda", "keda-adapter") == controllers.bin_dir("keda") / "keda-adapter"


def test_cache_layout_and_is_built(cache):
    for name in (OME, LWS):
        assert controllers.bin_dir(name) == cache / "controllers" / name / controllers.module_key(name) / "bin"
        assert controllers.binary(name) == controllers.bin_dir(name) / name
        assert not controllers.is_built(name)
    assert not controllers.is_built()
    controllers.binary(LWS).parent.mkdir(parents=True)
    controllers.binary(LWS).write_text("")
    assert controllers.is_built(LWS) and not controllers.is_built(OME) and not controllers.is_built()
    controllers.binary(OME).parent.mkdir(parents=True)
    controllers.binary(OME).write_text("")
    assert controllers.is_built(OME) and not controllers.is_built()   # KubeRay and KEDA are not built
    controllers.binary("ray-operator").parent.mkdir(parents=True)
    controllers.binary("ray-operator").write_text("")
    controllers.binary("keda").parent.mkdir(parents=True)
    controllers.binary("keda").write_text("")
    assert not controllers.is_built("keda") and not controllers.is_built()   # one of KEDA's two binaries
    controllers.binary("keda", "keda-adapter").write_text("")
    assert controllers.is_built()


def test_unknown_controller_is_one_clear_error():
    with pytest.raises(controllers.BuildError,
                       match=r"unknown controller 'kuberay'.*ome-manager, lws-controller, ray-operator, keda"):
        controllers.binary("kuberay")
    assert issubclass(controllers.BuildError, k8sbin.BuildError)  # `lab` reports it as one line


def _fake_build(calls):
    def run(cmd, what, env=None, cwd=None):
        calls.append((cmd, what))
        out = paths.CACHE_DIR / cmd[2].split(str(paths.CACHE_DIR) + "/", 1)[1]
        name = out.parent.parent.name
        out.mkdir(parents=True)
        for output in controllers.CONTROLLERS[name].outputs:
            (out / output).write_text("#!/bin/sh\n")
        return 0, paths.STATE_DIR / "logs" / "build.log"
    return run


def test_ensure_built_builds_once_with_one_line_each(cache, monkeypatch):
    calls, lines = [], []
    monkeypatch.setattr(buildlog, "run", _fake_build(calls))
    built = controllers.ensure_built(log=lines.append, names=(OME, LWS))
    assert built == {OME: controllers.binary(OME), LWS: controllers.binary(LWS)}
    assert [c[0] for c in calls] == [
        ["bash", str(paths.LAB_DIR / "omebin" / "build.sh"), str(controllers.bin_dir(OME))],
        ["bash", str(paths.LAB_DIR / "lwsbin" / "build.sh"), str(controllers.bin_dir(LWS))]]
    assert len(lines) == 2
    assert lines[0].startswith("building OME v0.1.5 controller (ome-manager) from Go modules")
    assert lines[1].startswith("building LeaderWorkerSet v0.7.0 controller (lws-controller) from Go modules")
    assert all("min on 2 cores, cold" in line and "output: " in line for line in lines)
    again = []
    assert controllers.ensure_built(log=again.append, names=(OME, LWS)) == built and again == [] and len(calls) == 2
    controllers.ensure_built(log=lines.append)     # every controller: KubeRay and KEDA built once each
    assert [c[0][1] for c in calls[2:]] == [str(paths.LAB_DIR / "kuberaybin" / "build.sh"),
                                            str(paths.LAB_DIR / "kedabin" / "build.sh")]
    assert controllers.is_built()


def test_failed_build_is_one_line_naming_the_log(cache, monkeypatch):
    monkeypatch.setattr(buildlog, "run", lambda cmd, what, env=None, cwd=None: (2, cache / "x.log"))
    with pytest.raises(controllers.BuildError) as err:
        controllers.ensure_built(log=lambda m: None, names=(LWS,))
    assert "lws-controller build failed (exit 2); see " in str(err.value) and "\n" not in str(err.value)


def test_missing_go_or_gcc_is_one_clear_error(cache, monkeypatch):
    monkeypatch.setattr(controllers.shutil, "which", lambda name: None)
    with pytest.raises(controllers.BuildError, match="Go toolchain not found"):
        controllers.ensure_built(log=lambda m: None)
    monkeypatch.setattr(controllers.shutil, "which", lambda name: None if name == "gcc" else f"/usr/bin/{name}")
    with pytest.raises(controllers.BuildError, match="gcc not found: ome-manager needs cgo"):
        controllers.ensure_built(log=lambda m: None, names=(OME,))


def test_lab_build_checks_and_reports_the_controllers(cache, monkeypatch, capsys):
    monkeypatch.setattr(k8sbin, "is_built", lambda: True)
    monkeypatch.setattr(juicefs_binary, "is_built", lambda: True)
    assert cli.main(["build", "--check"]) == 1
    monkeypatch.setattr(controllers, "is_built", lambda name=None: True)
    assert cli.main(["build", "--check"]) == 0
    monkeypatch.setattr(k8sbin, "ensure_built", lambda log: cache / "k8s")
    monkeypatch.setattr(juicefs_binary, "ensure_built", lambda log: cache / "juicefs")
    monkeypatch.setattr(controllers, "ensure_built", lambda log: {n: cache / n for n in controllers.NAMES})
    capsys.readouterr()
    assert cli.main(["build"]) == 0
    assert capsys.readouterr().out.split() == [str(cache / n) for n in ("k8s", "juicefs", *controllers.NAMES)]


def test_wrapper_modules_pin_upstream_and_name_the_tools():
    ome, lws = (controllers.CONTROLLERS[n].module_dir for n in (OME, LWS))
    assert "\ntool github.com/sgl-project/ome/cmd/manager\n" in (ome / "go.mod").read_text()
    assert "\ntool sigs.k8s.io/lws/cmd\n" in (lws / "go.mod").read_text()
    ome_sum = (ome / "go.sum").read_text()
    # seeded from OME's own go.sum: the two dependencies the checksum database does not answer for
    for line in ("github.com/sgl-project/ome v0.1.5 h1:", "sigs.k8s.io/kueue v0.10.6 h1:",
                 "sigs.k8s.io/scheduler-plugins v0.30.12 h1:"):
        assert line in ome_sum
    assert "sigs.k8s.io/lws v0.7.0 h1:" in (lws / "go.sum").read_text()
    ome_build, lws_build = (ome / "build.sh").read_text(), (lws / "build.sh").read_text()
    assert "GONOSUMDB=github.com/sgl-project/ome" in ome_build and 'CGO_LDFLAGS="-L$stub' in ome_build
    assert "-o \"$out.tmp/ome-manager\"" in ome_build and "-o \"$out.tmp/lws-controller\"" in lws_build
    for text in (ome_build, lws_build):
        assert '-ldflags "-s -w -X $pkg.GitVersion=' in text and "-trimpath" in text
        assert 'mv "$out.tmp" "$out"' in text
        assert "GOMODCACHE" not in text and "GOCACHE" not in text  # the shared default caches


def _module_source(module, version):
    go = shutil.which("go")
    if not go:
        pytest.skip("needs the Go toolchain")
    root = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    source = paths.Path(root) / f"{module}@{version}"
    if not source.is_dir():
        pytest.skip(f"{module}@{version} not in the module cache (`lab build` downloads it)")
    return source


def test_lws_version_variable_exists_upstream():
    source = _module_source("sigs.k8s.io/lws", "v0.7.0")
    text = (source / "pkg" / "version" / "version.go").read_text()
    assert re.search(r"^\s*GitVersion\s+string\s*=", text, re.M)


def test_xet_stub_implements_every_function_of_the_header_and_compiles(tmp_path):
    source = _module_source("github.com/sgl-project/ome", "v0.1.5")
    header = (source / "pkg" / "xet" / "xet.h").read_text()
    declared = set(re.findall(r"\b(xet_\w+)\s*\(", header))
    stub = (controllers.CONTROLLERS[OME].module_dir / "xetstub" / "xet_stub.c").read_text()
    defined = set(re.findall(r"^[A-Za-z][^\n;]*\b(xet_\w+)\s*\([^;{]*\{", stub, re.M))
    assert len(declared) == 10 and declared == defined
    gcc = shutil.which("gcc")
    if not gcc:
        pytest.skip("needs gcc")
    obj = tmp_path / "xet_stub.o"
    subprocess.run([gcc, "-Wall", "-Wextra", "-Werror", "-c", "-I", str(source / "pkg" / "xet"),
                    str(controllers.CONTROLLERS[OME].module_dir / "xetstub" / "xet_stub.c"), "-o", str(obj)],
                   check=True)
    symbols = subprocess.run(["nm", "--defined-only", str(obj)], capture_output=True, text=True, check=True).stdout
    assert declared <= {line.split()[-1] for line in symbols.splitlines() if " T " in line}
