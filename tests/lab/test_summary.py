"""`lab summary` (the end of `make site`): formatting, from fake data (no lab needed)."""

from __future__ import annotations

from types import SimpleNamespace

from labctl import cli, paths, summary

WORKER_KC = str(paths.REPO_ROOT / "lab/state/kubeconfig/worker.yaml")
MANAGER_KC = str(paths.REPO_ROOT / "lab/state/kubeconfig/manager.yaml")

NVIDIA = {"kubernetes.io/hostname": "x", "gpu": "true", "gpu-type": "A100", "nvidia.com/gpu.present": "true",
          "cpu": "true", "train": "true", "notebook": "true", "service": "true", "org": "public",
          "cattle.io/os": "linux", "node-role.kubernetes.io/worker": "worker"}
ASCEND = {"accelerator": "huawei-Ascend910", "accelerator-type": "module-910b-8", "workerselector": "dls-worker-node",
          "cpu": "true", "train": "true", "notebook": "true", "service": "true", "org": "public"}
CPU = {"cpu": "true", "train": "true", "notebook": "true", "service": "true", "org": "public"}


def demo_data() -> dict:
    machines = [
        ("gpu-a100-1", "10.77.0.10", "8x A100", NVIDIA), ("gpu-a100-2", "10.77.0.11", "8x A100", NVIDIA),
        ("gpu-t4-1", "10.77.0.12", "2x T4", dict(NVIDIA, **{"gpu-type": "T4"})),
        ("npu-910b-1", "10.77.0.13", "8x 910B", ASCEND), ("npu-910b-2", "10.77.0.14", "8x 910B", ASCEND),
        ("cpu-1", "10.77.0.15", "-", CPU),
    ]
    return {
        "clusters": [
            {"cluster": "worker", "kubeconfig": WORKER_KC, "state": "up", "version": "v1.36.3", "nodes": "6/6 Ready"},
            {"cluster": "manager", "kubeconfig": MANAGER_KC, "state": "up", "version": "v1.36.3",
             "nodes": "2/2 Ready"},
        ],
        "machines": [{"name": n, "address": a, "accelerators": acc, "group": "", "state": "running"}
                     for n, a, acc, _ in machines],
        "nodes": {n: {"ready": True, "labels": labels} for n, _, _, labels in machines},
        "errors": [],
    }


def test_demo_fleet_summary_is_short_and_complete():
    lines = summary.render(demo_data())
    text = "\n".join(lines)
    assert len(lines) <= 30
    assert max(len(line) for line in lines) <= 160
    assert "worker   up   v1.36.3  6/6 Ready" in text
    assert "kubeconfig lab/state/kubeconfig/worker.yaml" in text
    assert "kubeconfig lab/state/kubeconfig/manager.yaml" in text
    a100 = next(line for line in lines if "gpu-a100-1" in line)
    assert "10.77.0.10" in a100 and "8x A100" in a100 and "Ready" in a100
    assert "gpu-type=A100" in a100 and "nvidia.com/gpu.present" in a100
    for flag in ("cpu", "gpu", "train", "notebook", "service"):
        assert f" {flag}" in a100
    assert "cattle.io" not in text and "kubernetes.io/hostname" not in text
    npu = next(line for line in lines if "npu-910b-1" in line)
    assert "accelerator=huawei-Ascend910" in npu and "accelerator-type=module-910b-8" in npu
    assert " gpu" not in npu.replace("gpu-", "")
    assert "--check --diff" in text and "--limit gpu-a100-1 --tags storage" in text
    assert "lab fleet add" in text and "make test" in text


def test_machines_without_node_or_not_ready_or_stopped_say_so():
    data = demo_data()
    del data["nodes"]["cpu-1"]
    data["nodes"]["gpu-t4-1"]["ready"] = False
    data["machines"][3]["state"] = "exited"
    data["nodes"]["stray-node"] = {"ready": True, "labels": {}}
    lines = summary.render(data)
    assert "no Node" in next(line for line in lines if "cpu-1" in line)
    assert "NotReady" in next(line for line in lines if "gpu-t4-1" in line)
    assert "[exited]" in next(line for line in lines if "npu-910b-1" in line)
    assert any("other Nodes in worker: 1 (stray-node)" in line for line in lines)


def test_clusters_down_and_no_fleet():
    data = {"clusters": [{"cluster": "worker", "kubeconfig": WORKER_KC, "state": "down"},
                         {"cluster": "manager", "kubeconfig": MANAGER_KC, "state": "down"}],
            "machines": [], "nodes": {}, "errors": ["fleet: podman is not installed"]}
    lines = summary.render(data)
    assert any(line.startswith("  worker   down") for line in lines)
    assert any(line.startswith("machines: none") for line in lines)
    assert any("! fleet: podman is not installed" in line for line in lines)


def test_node_rows_from_api_objects():
    def node(name, ready, labels):
        cond = [SimpleNamespace(type="Ready", status="True" if ready else "False")]
        return SimpleNamespace(metadata=SimpleNamespace(name=name, labels=labels),
                               status=SimpleNamespace(conditions=cond))

    rows = summary.node_rows([node("a", True, {"gpu": "true"}), node("b", False, None)])
    assert rows == {"a": {"ready": True, "labels": {"gpu": "true"}}, "b": {"ready": False, "labels": {}}}


def test_cli_prints_the_rendered_summary(monkeypatch, capsys):
    monkeypatch.setattr(summary, "collect", demo_data)
    assert cli.main(["summary"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == summary.render(demo_data())
