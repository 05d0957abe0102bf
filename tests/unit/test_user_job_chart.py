"""charts/userchart, the users' job chart: helm lint, what `helm template` renders, and the values schema's refusals.

Runs the repository's helm (<repo>/.venv/bin/helm; the environment variable HELM overrides it): the tests that need
it are skipped without it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts/userchart"
HELM = Path(os.environ.get("HELM") or REPO / ".venv/bin/helm")
NAMESPACE = "alice"
WORKSPACE = {"home": "/root", "gfshome": "/gfshome", "share": "/share", "ssdshare": "/ssdshare"}
SEED_VALUES = ["NameSpace", "BaseName", "ContainerImage", "GPU", "DeployName", "Label", "ContainerName",
               "NVMEStorage", "Limits", "UseShm", "ShmSize", "Replicas"]
SCHEMA_FAILED = "values don't meet the specifications of the schema(s) in the following chart(s):\nuserchart:"
GPU_JOB = ["--set", "GPU=A100", "--set", "Limits.GPU=2", "--set", "Limits.CPU=16", "--set", "Limits.memory=64Gi",
           "--set", "UseShm=true", "--set", "ShmSize=16Gi", "--set", "NVMEStorage=500Gi"]


def helm(*args: str) -> subprocess.CompletedProcess:
    if not HELM.is_file():
        pytest.skip(f"helm is not built ({HELM})")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False, timeout=60)


def render(*args: str, release: str = "job1") -> list[dict]:
    done = helm("template", release, str(CHART), "-n", NAMESPACE, *args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def refusal(*args: str) -> str:
    done = helm("template", "job1", str(CHART), "-n", NAMESPACE, *args)
    assert done.returncode != 0, done.stdout
    return done.stderr


def deployment(docs: list[dict]) -> dict:
    assert [d["kind"] for d in docs] == ["Deployment"]
    return docs[0]


def pod_spec_of(dep: dict) -> dict:
    return dep["spec"]["template"]["spec"]


def volumes(pod: dict) -> dict[str, dict]:
    return {v["name"]: v for v in pod["volumes"]}


def mounts(pod: dict) -> dict[str, str]:
    (container,) = pod["containers"]
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.parametrize("args", [[], GPU_JOB], ids=["defaults", "gpu-job"])
def test_helm_lint_passes(args):
    done = helm("lint", "--strict", str(CHART), "-n", NAMESPACE, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_defaults_render_a_cpu_job_with_the_workspace_and_two_scratch_volumes():
    docs = render()
    dep = deployment(docs)  # one Deployment: no PersistentVolumeClaim (nor anything else) of the chart's own
    assert dep["metadata"]["name"] == "alice-pytorch-job1" and dep["metadata"]["namespace"] == NAMESPACE
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["spec"]["selector"]["matchLabels"] == {"app": "pytorch-job1", "app.kubernetes.io/instance": "job1"}
    pod = dep["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "runtimeClassName" not in pod
    assert pod["schedulerName"] == "default-scheduler"
    (container,) = pod["containers"]
    assert container["name"] == "pytorch-job1"
    assert container["image"] == "harbor-local.ai.iiis.co/llm-course/lab-cpu:v2"
    assert container["resources"] == {"limits": {"cpu": "8", "memory": "16Gi"},
                                      "requests": {"cpu": "8", "memory": "16Gi"}}
    assert mounts(pod) == {**WORKSPACE, "scratch1": "/scratch1", "scratch2": "/scratch2"}  # no /dev/shm
    vols = volumes(pod)
    for name in WORKSPACE:
        assert vols[name] == {"name": name, "persistentVolumeClaim": {"claimName": name}}
    for name in ("scratch1", "scratch2"):
        template = vols[name]["ephemeral"]["volumeClaimTemplate"]
        assert template["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-nvme",
                                    "resources": {"requests": {"storage": "100G"}}}
        assert template["metadata"]["labels"]["userchart/scratch"] == name


def test_gpu_job_gets_its_gpu_type_runtime_shm_and_scratch_size():
    dep = deployment(render(*GPU_JOB, "--set", "Scratch.StorageClass=nvme-fast", "--set", "Replicas=3"))
    spec = pod_spec_of(dep)
    assert spec["nodeSelector"] == {"gpu-type": "A100"}
    assert spec["runtimeClassName"] == "nvidia"
    limits = {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "2"}
    assert spec["containers"][0]["resources"] == {"limits": limits, "requests": limits}
    assert dep["spec"]["replicas"] == 3
    vols = volumes(spec)
    assert vols["shm"] == {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}
    assert mounts(spec)["shm"] == "/dev/shm"
    scratch = [v for v in spec["volumes"] if "ephemeral" in v]
    assert [v["name"] for v in scratch] == ["scratch1", "scratch2"]
    for vol in scratch:
        claim = vol["ephemeral"]["volumeClaimTemplate"]["spec"]
        assert claim["storageClassName"] == "nvme-fast" and claim["resources"]["requests"]["storage"] == "500Gi"
    assert {n: vols[n]["persistentVolumeClaim"]["claimName"] for n in WORKSPACE} == {n: n for n in WORKSPACE}


def test_no_gpu_means_no_gpu_type_selector_and_no_runtime_class():
    spec = pod_spec_of(deployment(render("--set", "GPU=T4", "--set", "Limits.GPU=0")))
    assert "nodeSelector" not in spec and "runtimeClassName" not in spec
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]


def test_runtime_class_and_scheduler_can_be_left_out_or_changed():
    spec = pod_spec_of(deployment(render(*GPU_JOB, "--set", "RuntimeClassName=", "--set", "SchedulerName=volcano")))
    assert "runtimeClassName" not in spec and spec["schedulerName"] == "volcano"
    spec = pod_spec_of(deployment(render("--set", "SchedulerName=")))
    assert "schedulerName" not in spec


def test_workspace_claims_are_configurable_and_each_can_be_left_out(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "PVCs": {"home": {"Enabled": True, "ClaimName": "alice-home", "MountPath": "/home/alice"},
                 "gfshome": {"Enabled": True, "ClaimName": "gfshome", "MountPath": "/gfshome"},
                 "share": {"Enabled": False, "ClaimName": "share", "MountPath": "/share"},
                 "ssdshare": {"Enabled": True, "ClaimName": "ssdshare", "MountPath": "/ssdshare"}},
        "Scratch": {"StorageClass": "local-nvme", "MountPaths": ["/tmp/fast"]},
    }))
    spec = pod_spec_of(deployment(render("-f", str(values))))
    assert mounts(spec) == {"home": "/home/alice", "gfshome": "/gfshome", "ssdshare": "/ssdshare",
                            "scratch1": "/tmp/fast"}
    assert volumes(spec)["home"]["persistentVolumeClaim"] == {"claimName": "alice-home"}


def test_names_follow_the_seed():
    dep = deployment(render("--set", "NameSpace=alice", "--set", "BaseName=llama", release="lab1"))
    assert dep["metadata"]["name"] == "alice-llama-lab1"
    assert pod_spec_of(dep)["containers"][0]["name"] == "llama-lab1"
    assert dep["spec"]["template"]["metadata"]["labels"]["app"] == "llama-lab1"
    dep = deployment(render("--set", "DeployName=mine", "--set", "Label=tag", "--set", "ContainerName=box"))
    assert dep["metadata"]["name"] == "mine" and dep["spec"]["selector"]["matchLabels"]["app"] == "tag"
    assert pod_spec_of(dep)["containers"][0]["name"] == "box"


def test_command_args_and_tolerations_are_passed_through():
    spec = pod_spec_of(deployment(render(
        "--set", "Command={sleep,infinity}", "--set-json",
        'Tolerations=[{"key":"gpu","operator":"Exists","effect":"NoSchedule"}]')))
    assert spec["containers"][0]["command"] == ["sleep", "infinity"] and "args" not in spec["containers"][0]
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "UseShm=yes"], "- at '/UseShm': got string, want boolean"),
    (["--set", "Replica=2"], "- at '': additional properties 'Replica' not allowed"),
    (["--set", "Limits.memory=16GB"], "- at '/Limits/memory': '16GB' does not match pattern"),
    (["--set", "NVMEStorage=lots"], "- at '/NVMEStorage': 'lots' does not match pattern"),
    (["--set", "Limits.GPU=-1"], "- at '/Limits/GPU': minimum: got -1, want 0"),
    (["--set", "Replicas=-1"], "- at '/Replicas': minimum: got -1, want 0"),
    (["--set", "GPU=A 100"], "- at '/GPU': 'A 100' does not match pattern"),
    (["--set", "Limits.CPU=0"], "- at '/Limits/CPU': exclusiveMinimum: got 0, want 0"),
    (["--set", "PVCs.home.Claim=x"], "- at '/PVCs/home': additional properties 'Claim' not allowed"),
    (["--set", "ImagePullPolicy=Sometimes"], "- at '/ImagePullPolicy': value must be one of"),
], ids=["wrong-type", "unknown-key", "bad-quantity", "bad-scratch-size", "negative-gpus", "negative-replicas",
        "bad-gpu-model", "zero-cpu", "unknown-pvc-key", "bad-pull-policy"])
def test_schema_refuses_wrong_values(args, message):
    err = refusal(*args)
    assert SCHEMA_FAILED in err and message in err, err


def test_a_namespace_other_than_the_release_namespace_is_refused():
    assert 'NameSpace is "bob" but the release namespace is "alice": install with -n bob' in refusal(
        "--set", "NameSpace=bob")


def test_two_volumes_at_one_path_are_refused():
    assert "two volumes are mounted at /root" in refusal("--set", "Scratch.MountPaths={/scratch1,/root/}")
    assert "two volumes are mounted at /dev/shm" in refusal("--set", "UseShm=true",
                                                             "--set", "Scratch.MountPaths={/dev/shm}")


def test_values_and_schema_name_the_same_values_the_seed_documents():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"])
    assert set(SEED_VALUES) <= set(values)
    assert set(values["Limits"]) == {"CPU", "memory", "GPU"} == set(schema["properties"]["Limits"]["properties"])
    assert set(values["PVCs"]) == set(WORKSPACE)
    readme = (CHART / "README.md").read_text()
    assert all(f"`{key}" in readme for key in values), "every value is in the README's table"


def test_values_yaml_comments_every_value():
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", " ", "-")) and line != "---":
            assert lines[i - 1].startswith("#"), f"values.yaml: no comment above {line!r}"
