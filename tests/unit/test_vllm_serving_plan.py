"""module_utils/vllm_serving and the vllm_serving_plan module: every bad-input rule (one test each, the rows of
roles/vllm_serving/README.md's table among them), the objects of a valid configuration (vllm serve arguments,
probes, node selector, cron expressions, no replicas under KEDA), the replicas hand-over, what is deleted, and the
module against a small fake API server. No cluster."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import vllm_serving as vs
from ansible_collections.aicluster.platform.plugins.modules import vllm_serving_plan
from fake_kube import FakeKube
from plan_helpers import DROP, assert_problem, merged, role_variables

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "vllm_serving"

QWEN = {"name": "qwen-0-5b", "model": "Qwen/Qwen2.5-0.5B-Instruct", "gpu_type": "A100", "gpus": 1,
        "max_model_len": 4096, "day_start": "08:00", "day_end": "18:00", "day_replicas": 2, "night_replicas": 1}
LLAMA = {"name": "llama-8b", "model": "meta-llama/Llama-3.1-8B-Instruct", "gpu_type": "T4", "gpus": 2,
         "replicas": 1, "dtype": "half", "gpu_memory_utilization": 0.85, "extra_args": ["--max-num-seqs", "32"]}
SETTINGS = {"time_zone": "UTC"}
CLUSTER = {"gpu_types": {"A100": 8, "T4": 2}, "keda": True, "runtime_class": True, "claim": "Bound"}
LABELS = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/managed-by": "aicluster"}


def problems_of(service=None, other=None, settings=None, cluster=CLUSTER):
    """Problems of the standard configuration (qwen-0-5b windowed on A100, llama-8b fixed on T4) with qwen-0-5b
    changed, llama-8b changed or the settings changed."""
    return vs.problems([merged(QWEN, service or {}), merged(LLAMA, other or {})], {**SETTINGS, **(settings or {})},
                       cluster)


def by_kind(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_the_standard_configuration_is_fine():
    assert problems_of() == []


# ------------------------------------------------------------------ the README's bad-input table
@pytest.mark.parametrize(("change", "problem"), [
    ({"day_end": "08:00"}, "service qwen-0-5b: day_end 08:00 is the same as day_start: the window would be empty "
                           "(KEDA refuses a cron trigger whose start and end are the same); for the same count all "
                           "day give replicas and no window"),
    ({"night_replicas": 3}, "service qwen-0-5b: night_replicas 3 is above day_replicas 2: the night count is the "
                            "minimum KEDA keeps, the day count the most it scales to"),
    ({"gpus": 16}, "service qwen-0-5b: gpus 16 per replica is more than any Node with gpu-type=A100 has (at most 8 "
                   "nvidia.com/gpu allocatable)"),
    ({"gpu_type": "H100"}, "service qwen-0-5b: unknown GPU type H100: no Node has the label gpu-type=H100 (Nodes "
                           "have A100, T4)"),
])
def test_the_issue_s_four_refusals(change, problem):
    assert problems_of(change) == [problem]


def test_gpus_per_replica_against_the_largest_node_of_the_type():
    assert problems_of({"gpus": 8}) == []
    assert problems_of(other={"gpus": 3}) == ["service llama-8b: gpus 3 per replica is more than any Node with "
                                              "gpu-type=T4 has (at most 2 nvidia.com/gpu allocatable)"]


def test_a_gpu_type_without_allocatable_gpus_says_so():
    cluster = {**CLUSTER, "gpu_types": {"A100": 0, "T4": 2}}
    assert problems_of(cluster=cluster) == ["service qwen-0-5b: gpus 1 per replica, but no Node with gpu-type=A100 "
                                            "has nvidia.com/gpu allocatable (is the device plugin running there?)"]


def test_no_gpu_type_label_on_any_node():
    found = problems_of(cluster={**CLUSTER, "gpu_types": {}})
    assert found[0] == "service qwen-0-5b: unknown GPU type A100: no Node has the label gpu-type=A100 (no Node has " \
                       "a gpu-type label)"


@pytest.mark.parametrize(("change", "problem"), [
    ({"name": DROP}, "services[0]: name is required"),
    ({"name": "Qwen_05b"}, "service Qwen_05b: name 'Qwen_05b' must be a DNS-1123 label..."),
    ({"name": "0-5b"}, "service 0-5b: name '0-5b' must start with a letter (a DNS-1035 label: it names the Service)"),
    ({"name": "q" * 64}, f"service {'q' * 64}: name must be no more than 63 characters (has 64)"),
    ({"model": DROP}, "service qwen-0-5b: model is required: a Hugging Face model id such as "
                      "Qwen/Qwen2.5-0.5B-Instruct (or a path in the model cache), got None"),
    ({"model": "Qwen 2"}, "service qwen-0-5b: model is required..."),
    ({"gpus": 0}, "service qwen-0-5b: gpus must be at least 1, got 0"),
    ({"gpus": "2"}, "service qwen-0-5b: gpus must be an integer, got '2'"),
    ({"gpus": True}, "service qwen-0-5b: gpus must be an integer, got True"),
    ({"gpu_type": DROP}, "service qwen-0-5b: gpu_type is required: the gpu-type label of the Nodes to run on "
                         "(e.g. A100)"),
    ({"gpu_type": "A100 SXM"}, "service qwen-0-5b: gpu_type must be a label value such as A100, got 'A100 SXM'"),
    ({"dtype": "fp8"}, "service qwen-0-5b: dtype 'fp8' is not one of auto, half, float16, bfloat16, float, float32"),
    ({"max_model_len": 0}, "service qwen-0-5b: max_model_len must be at least 1, got 0"),
    ({"gpu_memory_utilization": 0}, "service qwen-0-5b: gpu_memory_utilization must be a fraction above 0 and at "
                                    "most 1 (e.g. 0.9), got 0"),
    ({"gpu_memory_utilization": 1.5}, "service qwen-0-5b: gpu_memory_utilization must be a fraction above 0..."),
    ({"gpu_memory_utilization": "0.9"}, "service qwen-0-5b: gpu_memory_utilization must be a fraction above 0..."),
    ({"image": "vllm/vllm-openai:latest"}, "service qwen-0-5b: image vllm/vllm-openai:latest is not pinned: latest "
                                           "moves with every release; pin one (e.g. vllm/vllm-openai:v0.11.0) or a "
                                           "digest"),
    ({"image": "registry.example:5000/vllm-openai"}, "service qwen-0-5b: image registry.example:5000/vllm-openai has "
                                                     "no tag, so it would pull latest..."),
    ({"image": "vllm/vllm-openai@sha256:abc"}, "service qwen-0-5b: image vllm/vllm-openai@sha256:abc: the digest "
                                               "must be sha256:<64 hex digits>"),
    ({"extra_args": "--max-num-seqs 32"}, "service qwen-0-5b: extra_args must be a list of non-empty strings..."),
    ({"extra_args": ["--port=9000"]}, "service qwen-0-5b: extra_args: --port is generated from the role (8000, the "
                                      "probes' and the Service's); set that instead"),
    ({"extra_args": ["--tensor-parallel-size", "2"]}, "service qwen-0-5b: extra_args: --tensor-parallel-size is "
                                                      "generated from gpus; set that instead"),
    ({"state": "gone"}, "service qwen-0-5b: state must be present or absent, got 'gone'"),
    ({"replicas": 2}, "service qwen-0-5b: replicas is for a service without a day window; with one, day_replicas "
                      "and night_replicas say how many"),
    ({"night_replicas": DROP}, "service qwen-0-5b: a day window needs day_start, day_end, day_replicas, "
                               "night_replicas; missing night_replicas"),
    ({"day_start": 480}, "service qwen-0-5b: day_start must be a quoted \"HH:MM\" time, got 480 (YAML reads an "
                         "unquoted time as a base-60 number: quote it, \"08:00\")"),
    ({"day_end": "18:00:00"}, "service qwen-0-5b: day_end '18:00:00' is not a time of day as \"HH:MM\" (00:00 to "
                              "23:59, two digits each)"),
    ({"day_start": "8:00"}, "service qwen-0-5b: day_start '8:00' is not a time of day..."),
    ({"day_end": "24:00"}, "service qwen-0-5b: day_end '24:00' is not a time of day..."),
    ({"day_replicas": 0}, "service qwen-0-5b: day_replicas must be at least 1, got 0"),
    ({"night_replicas": -1}, "service qwen-0-5b: night_replicas must be at least 0, got -1"),
    ({"colour": "blue"}, "service qwen-0-5b: unknown field colour (known: name, model, gpus, gpu_type, ..."),
])
def test_service_rules(change, problem):
    assert_problem(problems_of(change), problem)


def test_fixed_replicas_rules():
    assert problems_of(other={"replicas": 0}) == []
    assert problems_of(other={"replicas": -1}) == ["service llama-8b: replicas must be at least 0, got -1"]


def test_a_window_crossing_midnight_and_equal_counts_are_fine():
    assert problems_of({"day_start": "20:00", "day_end": "06:00", "night_replicas": 2}) == []


def test_nulls_mean_the_defaults():
    assert problems_of({"gpus": None, "dtype": None, "gpu_memory_utilization": None, "image": None}) == []


def test_names_are_unique_and_absent_services_are_only_named():
    found = vs.problems([QWEN, merged(QWEN, {"gpu_type": "T4"}), {"name": "Old_One", "state": "absent"}], SETTINGS,
                        CLUSTER)
    assert "service qwen-0-5b is defined 2 times" in found
    assert_problem(found, "service Old_One: name 'Old_One' must be a DNS-1123 label...")
    assert vs.problems([{"name": "old-one", "state": "absent"}], {}, CLUSTER) == []


@pytest.mark.parametrize(("settings", "problem"), [
    ({"time_zone": DROP}, "time_zone is required with a day window (qwen-0-5b): the IANA name of the zone day_start "
                          "and day_end are in (e.g. Europe/Berlin, UTC)"),
    ({"time_zone": ""}, "time_zone is required with a day window (qwen-0-5b)..."),
    ({"time_zone": "Mars/Olympus"}, "time_zone 'Mars/Olympus' is not an IANA time zone name (e.g. Asia/Shanghai, "
                                    "Europe/Berlin, UTC)"),
    ({"image": "vllm/vllm-openai"}, "image vllm/vllm-openai has no tag, so it would pull latest: pin a release "
                                    "(e.g. vllm/vllm-openai:v0.11.0) or a digest"),
    ({"image": "vllm/vllm-openai:latest"}, "image vllm/vllm-openai:latest is not pinned..."),
    ({"namespace": "LLM"}, "namespace: namespace 'LLM' must be a DNS-1123 label..."),
    ({"runtime_class": "NVIDIA"}, "runtime_class: runtime_class 'NVIDIA' must be a DNS-1123 subdomain..."),
    ({"gpu_resource": "gpu"}, "gpu_resource must be an extended resource name such as nvidia.com/gpu, got 'gpu'"),
    ({"gpu_type_label": "gpu type"}, "gpu_type_label must be a label key such as gpu-type, got 'gpu type'"),
    ({"cache_claim": "Model_Cache"}, "cache_claim: cache_claim 'Model_Cache' must be a DNS-1123 subdomain..."),
    ({"cache_mount": "data/cache"}, "cache_mount must be an absolute path other than / and without '..', got "
                                    "'data/cache'"),
    ({"cache_mount": "/"}, "cache_mount must be an absolute path other than /..."),
    ({"cache_mount": "/data/../etc"}, "cache_mount must be an absolute path other than /..."),
    ({"scale_down_stabilization_seconds": 3601}, "scale_down_stabilization_seconds must be an integer from 0 to 3600 "
                                                 "(the HPA's limit), got 3601"),
    ({"startup_timeout": 5}, "startup_timeout must be an integer of at least 10 seconds, got 5"),
    ({"state": "stopped"}, "state must be present or absent, got 'stopped'"),
])
def test_settings_rules(settings, problem):
    changes = {k: v for k, v in settings.items() if v is not DROP}
    merged_settings = {**SETTINGS, **changes}
    for key, value in settings.items():
        if value is DROP:
            merged_settings.pop(key, None)
    assert_problem(vs.problems([QWEN, LLAMA], merged_settings, CLUSTER), problem)


def test_time_zone_is_checked_without_windows_too_but_not_required():
    assert vs.problems([LLAMA], {}, CLUSTER) == []
    assert vs.problems([LLAMA], {"time_zone": "Nowhere/Land"}, CLUSTER) == [
        "time_zone 'Nowhere/Land' is not an IANA time zone name (e.g. Asia/Shanghai, Europe/Berlin, UTC)"]


@pytest.mark.parametrize(("cluster", "problem"), [
    ({"keda": False}, "KEDA is not installed: the cluster does not serve keda.sh/v1alpha1 ScaledObjects, which the "
                      "day windows need (qwen-0-5b)"),
    ({"runtime_class": False}, "RuntimeClass nvidia does not exist (the nvidia_device_plugin role creates it; or set "
                               "runtime_class to \"\" where NVIDIA is the container runtime's default)"),
    ({"claim": None}, "the model cache claim model-cache does not exist in namespace llm (the model_cache role "
                      "creates it)"),
])
def test_cluster_rules(cluster, problem):
    assert problems_of(cluster={**CLUSTER, **cluster}) == [problem]


def test_keda_is_only_needed_with_a_window():
    assert vs.problems([LLAMA], {}, {**CLUSTER, "keda": False}) == []


def test_without_cluster_facts_the_nodes_are_not_checked():
    assert vs.problems([merged(QWEN, {"gpu_type": "H100", "gpus": 64})], SETTINGS) == []


def test_role_state_absent_checks_no_service():
    assert vs.problems([{"name": "Bad_Name", "colour": 1}], {"state": "absent"}, CLUSTER) == []
    assert vs.problems([], {"state": "absent", "namespace": "LLM"})[0].startswith("namespace: namespace 'LLM'")


def test_services_must_be_a_list_of_dicts():
    assert vs.problems({"name": "x"}, SETTINGS) == ["services must be a list, got {'name': 'x'}"]
    assert vs.problems(["qwen"], SETTINGS) == ["services[0] must be a dict, got 'qwen'"]


def test_plan_raises_with_every_problem():
    with pytest.raises(vs.VLLMServingError, match=r"night_replicas 3 is above day_replicas 2") as info:
        vs.plan([merged(QWEN, {"night_replicas": 3, "gpu_type": "H100"})], SETTINGS, CLUSTER, [])
    assert len(info.value.problems) == 2


# ------------------------------------------------------------------ the objects
def test_the_objects_of_a_new_configuration():
    result = vs.plan([QWEN, LLAMA], SETTINGS, CLUSTER, [])
    assert [(o["kind"], o["metadata"]["name"]) for o in result["objects"]] == [
        ("Deployment", "qwen-0-5b"), ("Service", "qwen-0-5b"), ("ScaledObject", "qwen-0-5b"),
        ("Deployment", "llama-8b"), ("Service", "llama-8b")]
    for obj in result["objects"]:
        assert obj["metadata"]["namespace"] == "llm"
        assert obj["metadata"]["labels"] == {**LABELS, "app.kubernetes.io/instance": obj["metadata"]["name"]}
    assert result["wait"] == [{"name": "qwen-0-5b", "namespace": "llm", "minimum": 1},
                              {"name": "llama-8b", "namespace": "llm", "minimum": 1}]
    assert result["delete"] == [] and result["gone"] == [] and result["gone_selectors"] == []
    assert result["services"]["qwen-0-5b"] == {"state": "present", "gpu_type": "A100", "gpus": 1,
                                               "day": "08:00-18:00 UTC", "day_replicas": 2, "night_replicas": 1}
    assert result["services"]["llama-8b"] == {"state": "present", "gpu_type": "T4", "gpus": 2, "replicas": 1}
    assert result["gpu_types"] == {"A100": 8, "T4": 2}


def test_the_deployment():
    deployment = by_kind(vs.plan([LLAMA], {}, CLUSTER, [])["objects"], "Deployment", "llama-8b")
    assert deployment["apiVersion"] == "apps/v1" and deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "vllm",
                                                              "app.kubernetes.io/instance": "llama-8b"}}
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "llama-8b"
    spec = pod["spec"]
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"] == {"gpu-type": "T4"}
    (container,) = spec["containers"]
    assert container["name"] == "vllm" and container["image"] == "vllm/vllm-openai:v0.11.0"
    assert container["command"] == ["vllm", "serve"]
    assert container["args"] == ["meta-llama/Llama-3.1-8B-Instruct", "--host", "0.0.0.0", "--port", "8000",
                                 "--dtype", "half", "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.85",
                                 "--max-num-seqs", "32"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert container["env"] == [{"name": "HF_HOME", "value": "/data/model-cache/huggingface"}]
    assert container["volumeMounts"] == [{"name": "model-cache", "mountPath": "/data/model-cache"},
                                         {"name": "dshm", "mountPath": "/dev/shm"}]
    assert spec["volumes"] == [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}},
                               {"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": 8000}, probe
    assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] == 1800
    assert container["readinessProbe"]["failureThreshold"] == 3 and container["livenessProbe"]["periodSeconds"] == 30


def test_the_deployment_with_the_settings_changed():
    settings = {"runtime_class": "", "cache_claim": "models", "cache_mount": "/cache/", "gpu_resource": "amd.com/gpu",
                "gpu_type_label": "accelerator", "image": "registry.example/vllm:v0.10.2", "startup_timeout": 605,
                "namespace": "inference"}
    deployment = by_kind(vs.plan([merged(LLAMA, {"max_model_len": 8192, "image": "registry.example/vllm:v0.11.0-cu"})],
                                 settings, {**CLUSTER, "runtime_class": None}, [])["objects"], "Deployment", "llama-8b")
    spec = deployment["spec"]["template"]["spec"]
    assert "runtimeClassName" not in spec and spec["nodeSelector"] == {"accelerator": "T4"}
    (container,) = spec["containers"]
    assert container["image"] == "registry.example/vllm:v0.11.0-cu"
    assert container["args"][-4:] == ["--max-model-len", "8192", "--max-num-seqs", "32"]
    assert container["resources"] == {"limits": {"amd.com/gpu": "2"}}
    assert container["env"] == [{"name": "HF_HOME", "value": "/cache/huggingface"}]
    assert spec["volumes"][0] == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "models"}}
    assert container["startupProbe"]["failureThreshold"] == 61
    assert deployment["metadata"]["namespace"] == "inference"


def test_the_service():
    service = by_kind(vs.plan([QWEN], SETTINGS, CLUSTER, [])["objects"], "Service", "qwen-0-5b")
    assert service["apiVersion"] == "v1"
    assert service["spec"] == {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": "vllm",
                                                                 "app.kubernetes.io/instance": "qwen-0-5b"},
                               "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]}


def test_the_scaled_object():
    scaled = by_kind(vs.plan([merged(QWEN, {"day_start": "07:30", "day_end": "19:05"})],
                             {"time_zone": "Europe/Berlin", "scale_down_stabilization_seconds": 0}, CLUSTER,
                             [])["objects"], "ScaledObject", "qwen-0-5b")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "qwen-0-5b"},
        "minReplicaCount": 1, "maxReplicaCount": 2, "cooldownPeriod": 0,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}},
        "triggers": [{"type": "cron", "metadata": {"timezone": "Europe/Berlin", "start": "30 7 * * *",
                                                   "end": "5 19 * * *", "desiredReplicas": "2"}}]}


@pytest.mark.parametrize(("time", "expression"), [("00:00", "0 0 * * *"), ("08:00", "0 8 * * *"),
                                                  ("18:45", "45 18 * * *"), ("23:59", "59 23 * * *")])
def test_cron_expressions(time, expression):
    assert vs.cron(time) == expression


def test_no_scaled_object_without_a_window():
    assert [o["kind"] for o in vs.plan([LLAMA], {}, CLUSTER, [])["objects"]] == ["Deployment", "Service"]


# ------------------------------------------------------------------ replicas and KEDA
def existing_deployment(name, replicas, managers):
    """An existing Deployment whose spec.replicas is owned by ``managers`` (apply or update)."""
    fields = {"f:spec": {"f:replicas": {}, "f:template": {}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "llm", "labels": dict(LABELS),
                         "managedFields": [{"manager": m, "operation": op, "fieldsV1": fields} for m, op in managers]
                         + [{"manager": "aicluster-vllm-serving", "operation": "Apply",
                             "fieldsV1": {"f:spec": {"f:template": {}}}}]},
            "spec": {"replicas": replicas}}


def existing(kind, name):
    api = {"Deployment": "apps/v1", "Service": "v1", "ScaledObject": "keda.sh/v1alpha1"}[kind]
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "llm", "labels": dict(LABELS)}}


def test_a_new_windowed_deployment_is_created_with_the_night_count_and_handed_over():
    result = vs.plan([merged(QWEN, {"night_replicas": 0})], SETTINGS, CLUSTER, [])
    assert by_kind(result["objects"], "Deployment", "qwen-0-5b")["spec"]["replicas"] == 0
    assert result["handover"] == [{"apiVersion": "apps/v1", "kind": "Deployment",
                                   "metadata": {"name": "qwen-0-5b", "namespace": "llm"}, "spec": {"replicas": 0}}]
    (again,) = result["handover_objects"]
    assert "replicas" not in again["spec"]
    assert again == {**by_kind(result["objects"], "Deployment", "qwen-0-5b"),
                     "spec": {k: v for k, v in by_kind(result["objects"], "Deployment", "qwen-0-5b")["spec"].items()
                              if k != "replicas"}}
    assert result["wait"] == [{"name": "qwen-0-5b", "namespace": "llm", "minimum": 0}]


def test_an_existing_windowed_deployment_carries_no_replicas():
    current = existing_deployment("qwen-0-5b", 2, [("kube-controller-manager", "Update")])
    result = vs.plan([QWEN], SETTINGS, CLUSTER, [current, existing("Service", "qwen-0-5b"),
                                                 existing("ScaledObject", "qwen-0-5b")])
    assert "replicas" not in by_kind(result["objects"], "Deployment", "qwen-0-5b")["spec"]
    assert result["handover"] == [] and result["handover_objects"] == [] and result["delete"] == []


def test_after_the_handover_the_role_no_longer_owns_the_replicas():
    current = existing_deployment("qwen-0-5b", 1, [("aicluster-vllm-serving-replicas-handover", "Apply")])
    result = vs.plan([QWEN], SETTINGS, CLUSTER, [current])
    assert "replicas" not in by_kind(result["objects"], "Deployment", "qwen-0-5b")["spec"]
    assert result["handover"] == []


def test_a_fixed_deployment_becoming_windowed_keeps_its_count_through_the_handover():
    current = existing_deployment("llama-8b", 3, [("aicluster-vllm-serving", "Apply")])
    windowed = merged(LLAMA, {"replicas": DROP, "day_start": "09:00", "day_end": "17:00", "day_replicas": 4,
                              "night_replicas": 1})
    result = vs.plan([windowed], SETTINGS, CLUSTER, [current])
    assert by_kind(result["objects"], "Deployment", "llama-8b")["spec"]["replicas"] == 3
    assert result["handover"][0]["spec"] == {"replicas": 3}
    assert "replicas" not in result["handover_objects"][0]["spec"]


def test_owns_replicas_reads_the_apply_entries_of_the_field_manager():
    assert vs.owns_replicas(existing_deployment("x", 1, [("aicluster-vllm-serving", "Apply")]),
                            "aicluster-vllm-serving")
    assert not vs.owns_replicas(existing_deployment("x", 1, [("aicluster-vllm-serving", "Update")]),
                                "aicluster-vllm-serving")
    assert not vs.owns_replicas({"metadata": {}}, "aicluster-vllm-serving")


# ------------------------------------------------------------------ what is deleted
def test_absent_and_unlisted_services_are_deleted_scaled_objects_first():
    present = [existing(kind, "qwen-0-5b") for kind in ("Deployment", "Service", "ScaledObject")]
    absent = [existing(kind, "old-model") for kind in ("Deployment", "Service", "ScaledObject")]
    unlisted = [existing(kind, "forgotten") for kind in ("Service", "Deployment")]
    result = vs.plan([QWEN, {"name": "old-model", "state": "absent"}], SETTINGS, CLUSTER,
                     present + absent + unlisted)
    assert [(o["kind"], o["metadata"]["name"]) for o in result["delete"]] == [
        ("ScaledObject", "old-model"), ("Service", "forgotten"), ("Service", "old-model"),
        ("Deployment", "forgotten"), ("Deployment", "old-model")]
    assert all(set(o) == {"apiVersion", "kind", "metadata"} and o["metadata"]["namespace"] == "llm"
               for o in result["delete"])
    assert result["gone"] == result["delete"] + [{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                                                  "metadata": {"name": "keda-hpa-old-model", "namespace": "llm"}}]
    assert result["gone_selectors"] == [
        {"api_version": "v1", "kind": "Pod", "namespace": "llm",
         "label_selector": f"app.kubernetes.io/name=vllm,app.kubernetes.io/instance={name}"}
        for name in ("forgotten", "old-model")]
    assert result["services"]["old-model"] == {"state": "absent"}
    assert result["services"]["forgotten"] == {"state": "absent"}


def test_an_absent_service_that_does_not_exist_deletes_nothing():
    result = vs.plan([QWEN, {"name": "old-model", "state": "absent"}], SETTINGS, CLUSTER, [])
    assert result["delete"] == [] and result["gone"] == [] and result["services"]["old-model"] == {"state": "absent"}


def test_a_service_losing_its_window_loses_its_scaled_object_only():
    fixed = merged(QWEN, {"day_start": DROP, "day_end": DROP, "day_replicas": DROP, "night_replicas": DROP,
                          "replicas": 2})
    scaled = {**existing("ScaledObject", "qwen-0-5b"),
              "spec": {"advanced": {"horizontalPodAutoscalerConfig": {"name": "qwen-hpa"}}}}
    result = vs.plan([fixed], {}, CLUSTER, [existing("Deployment", "qwen-0-5b"), existing("Service", "qwen-0-5b"),
                                            scaled])
    assert [(o["kind"], o["metadata"]["name"]) for o in result["delete"]] == [("ScaledObject", "qwen-0-5b")]
    assert result["gone"][-1]["metadata"]["name"] == "qwen-hpa"
    assert result["gone_selectors"] == []
    assert by_kind(result["objects"], "Deployment", "qwen-0-5b")["spec"]["replicas"] == 2


def test_role_state_absent_deletes_every_object_of_the_role():
    objects = [existing(kind, name) for name in ("a", "b") for kind in ("Deployment", "Service", "ScaledObject")]
    result = vs.plan([QWEN], {"state": "absent"}, {"keda": True}, objects)
    assert result["objects"] == [] and result["wait"] == [] and result["handover"] == []
    assert [o["kind"] for o in result["delete"]] == ["ScaledObject"] * 2 + ["Service"] * 2 + ["Deployment"] * 2
    assert result["services"] == {"a": {"state": "absent"}, "b": {"state": "absent"}}


# ------------------------------------------------------------------ the Nodes
def node(name, gpu_type=None, gpus=None):
    labels = {"kubernetes.io/hostname": name}
    if gpu_type:
        labels["gpu-type"] = gpu_type
    status = {"conditions": [{"type": "Ready", "status": "True"}]}
    if gpus is not None:
        status["allocatable"] = {"cpu": "16", "nvidia.com/gpu": gpus}
    return {"metadata": {"name": name, "labels": labels}, "status": status}


LAB_NODES = [node("gpu-a100-1", "A100", "8"), node("gpu-a100-2", "A100", "4"), node("gpu-t4-1", "T4", "2"),
             node("npu-910b-1"), node("gpu-new", "L4")]


def test_gpu_types_take_the_largest_allocatable_per_type():
    assert vs.gpu_types(LAB_NODES) == {"A100": 8, "L4": 0, "T4": 2}
    assert vs.gpu_types([node("x", "A100", "bogus")]) == {"A100": 0}
    assert vs.gpu_types(LAB_NODES, resource="amd.com/gpu") == {"A100": 0, "L4": 0, "T4": 0}


# ------------------------------------------------------------------ the module
class FakeCluster(FakeKube):
    """FakeKube's Nodes plus what the plan module reads: this role's objects (namespace llm), ScaledObjects (404
    without KEDA), the cache claim and the RuntimeClass."""

    def __init__(self, nodes, objects=(), keda=True, claim=True, runtime_class=True):
        super().__init__(nodes)
        self.objects, self.keda, self.claim, self.runtime_class = list(objects), keda, claim, runtime_class

    def handle(self, handler, method):
        route, _, query = handler.path.partition("?")
        lists = {"/apis/apps/v1/namespaces/llm/deployments": "Deployment",
                 "/api/v1/namespaces/llm/services": "Service",
                 "/apis/keda.sh/v1alpha1/namespaces/llm/scaledobjects": "ScaledObject"}
        found = None
        if method == "GET" and route in lists:
            if lists[route] == "ScaledObject" and not self.keda:
                found = (404, {"kind": "Status", "code": 404, "message": "the server could not find the resource"})
            else:
                assert parse_qs(query)["labelSelector"] == [vs.SELECTOR], query
                found = (200, {"items": [o for o in self.objects if o["kind"] == lists[route]]})
        elif method == "GET" and route == "/api/v1/namespaces/llm/persistentvolumeclaims/model-cache":
            found = (200, {"status": {"phase": "Bound"}}) if self.claim else (404, {"kind": "Status", "code": 404})
        elif method == "GET" and route == "/apis/node.k8s.io/v1/runtimeclasses/nvidia":
            found = (200, {"handler": "nvidia"}) if self.runtime_class else (404, {"kind": "Status", "code": 404})
        if found is None:
            super().handle(handler, method)
            return
        with self.lock:
            self.requests.append((method, handler.path))
        self._send(handler, *found)


NODES = {n["metadata"]["name"]: {"metadata": {"labels": n["metadata"]["labels"]}, "status": n["status"]}
         for n in LAB_NODES}


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        vllm_serving_plan.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def test_module_returns_the_plan(isolated, tmp_path, capsys):
    objects = [existing("Deployment", "old-model"), existing("ScaledObject", "old-model")]
    with FakeCluster(NODES, objects) as kube:
        result = run_module({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "time_zone": "UTC",
                             "services": [QWEN, merged(LLAMA, {"gpus": 1}), {"name": "old-model", "state": "absent"}],
                             "_ansible_check_mode": True}, capsys)
    assert result["_rc"] == 0, result
    assert result["changed"] is False and result["problems"] == []
    assert result["gpu_types"] == {"A100": 8, "L4": 0, "T4": 2}
    assert result["objects"] == vs.plan([QWEN, merged(LLAMA, {"gpus": 1})], SETTINGS, CLUSTER, [])["objects"]
    assert [(o["kind"], o["metadata"]["name"]) for o in result["delete"]] == [("ScaledObject", "old-model"),
                                                                              ("Deployment", "old-model")]
    assert result["handover_field_manager"] == "aicluster-vllm-serving-replicas-handover"
    assert [p for m, p in kube.requests if p.startswith("/api/v1/nodes")] == ["/api/v1/nodes"]  # read once


def test_module_fails_listing_every_problem(isolated, tmp_path, capsys):
    bad = merged(QWEN, {"day_end": "08:00", "night_replicas": 3, "gpus": 9})
    with FakeCluster(NODES, keda=False, claim=False) as kube:
        result = run_module({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "time_zone": "UTC",
                             "services": [bad, merged(LLAMA, {"gpu_type": "H100"})]}, capsys)
    assert result["_rc"] == 1 and result["changed"] is False
    assert result["msg"].startswith("6 problems in the vLLM serving settings: service qwen-0-5b: day_end 08:00 is the "
                                    "same as day_start"), result["msg"]
    for text in ("night_replicas 3 is above day_replicas 2", "gpus 9 per replica is more than any Node with "
                 "gpu-type=A100 has (at most 8", "unknown GPU type H100", "KEDA is not installed",
                 "claim model-cache does not exist"):
        assert text in result["msg"], text
    assert "objects" not in result


def test_module_state_absent_reads_no_node(isolated, tmp_path, capsys):
    with FakeCluster(NODES, [existing("Service", "a"), existing("Deployment", "a")], keda=False) as kube:
        result = run_module({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "state": "absent",
                             "services": [{"name": "ignored", "colour": "blue"}]}, capsys)
    assert result["_rc"] == 0, result
    assert [(o["kind"], o["metadata"]["name"]) for o in result["delete"]] == [("Service", "a"), ("Deployment", "a")]
    assert not [p for _, p in kube.requests if p.startswith(("/api/v1/nodes", "/apis/node.k8s.io"))]


def test_module_names_an_unreachable_cluster_and_the_settings_problems(isolated, tmp_path, capsys):
    config = tmp_path / "config"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "u"}}]}))
    result = run_module({"kubeconfig": str(config), "services": [merged(QWEN, {"day_end": "08:00"})],
                         "time_zone": "UTC", "request_timeout": 2}, capsys)
    assert result["_rc"] == 1
    assert result["msg"].startswith("cannot read the cluster: ")
    assert "the settings also have 1 problem(s): service qwen-0-5b: day_end 08:00" in result["msg"]


# ------------------------------------------------------------------ the role
def test_defaults_argument_specs_and_readme_name_the_same_variables():
    defaults, specs, documented = role_variables(ROLE, "vllm_serving_")
    assert set(defaults) == set(specs) == documented


def test_the_lab_inventory_s_services_pass_the_plan():
    inference = yaml.safe_load((REPO / "inventory" / "lab" / "group_vars" / "all" / "inference.yml").read_text())
    services = inference["vllm_serving_services"]
    settings = {"time_zone": inference["vllm_serving_time_zone"],
                "scale_down_stabilization_seconds": inference.get("vllm_serving_scale_down_stabilization_seconds",
                                                                  300)}
    cluster = {**CLUSTER, "gpu_types": vs.gpu_types(LAB_NODES)}
    result = vs.plan(copy.deepcopy(services), settings, cluster, [])
    assert [o["kind"] for o in result["objects"]] == ["Deployment", "Service", "ScaledObject"]
