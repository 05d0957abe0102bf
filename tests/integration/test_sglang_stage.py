"""The SGLang stage (playbooks/sglang.yml, issue 12) and one application by name (playbooks/sglang_app.yml)
against the lab, with the real OME v0.1.5 and LeaderWorkerSet v0.7.0 controllers running out of cluster
(lab/labctl/omelab.py) and the lab's kube-scheduler placing NPU pods through its `volcano` profile.

Story, in file order (the tests share the lab):
  1. the stage converges (first run, re-run changed=0, --check changes nothing); OME's CRDs are served in
     full (server-side apply) and every webhook carries its CA;
  2. `chat` (Deployment mode: 1 prefill + 1 decode + router) becomes engine, decoder and router Deployments
     and Services; its NPU pods run on the two 910B Nodes, scheduled by `volcano`, the router on a CPU Node;
     a re-run changes nothing; the dry run of another application shows its objects and creates nothing;
  3. `big` (LeaderWorkerSet mode, two machines per instance) becomes LeaderWorkerSets whose leader and
     worker pods carry their group labels (the real LWS webhooks and controller); no NPU is left, so the
     status report shows them pending with the scheduler's reason;
  4. deleting `big` by name leaves nothing of it while `chat` keeps running; OME's removal is refused while
     `chat` exists; deleting `chat`, then the stage, leaves no OME or LWS object;
  5. every rule of MindCluster's table and every bad setting of the roles is refused, nothing applied.

Needs `lab up` and the NPU stage converged (the fixture converges bootstrap and the NPU stage first).
Figures (printed as JSON): stage first run / re-run, InferenceService applied -> all pods Running, and the
controllers' resident memory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from stage_runner import changed_tasks, ensure_bootstrap, failures, playbook, shell, total_changed, wait_for

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
NPU = "huawei.com/Ascend910"
NPU_NODES = {"npu-910b-1", "npu-910b-2"}
MODEL_DIR = "/data/k8s/models/llama-3-2-1b-instruct"
OME_API = ("ome.io", "v1beta1")
ABSENT = {"lws_state": "absent", "ome_state": "absent"}
CHAT = {"name": "chat", "namespace": "inference", "model": "llama-3-2-1b-instruct", "runtime": "srt-910b-pd",
        "prefill": 1, "decode": 1, "router": 1}
BIG = {"name": "big", "namespace": "inference", "model": "llama-3-2-1b-instruct",
       "runtime": "srt-910b-pd-multinode", "prefill": 1, "decode": 1, "router": 0}


def api():
    from labctl import clusters

    return clusters.api_client("worker")


def core():
    from kubernetes import client as k8s

    return k8s.CoreV1Api(api())


def custom():
    from kubernetes import client as k8s

    return k8s.CustomObjectsApi(api())


def pods(namespace: str, selector: str) -> list:
    return core().list_namespaced_pod(namespace, label_selector=selector).items


def app_objects(name: str, namespace: str = "inference") -> list[str]:
    """Everything of an application in the cluster: its InferenceService, and what OME made from it."""
    from kubernetes import client as k8s

    selector = f"ome.io/inferenceservice={name}"
    found = [f"InferenceService/{i['metadata']['name']}" for i in custom().list_namespaced_custom_object(
        *OME_API, namespace, "inferenceservices")["items"] if i["metadata"]["name"] == name]
    found += [f"Deployment/{d.metadata.name}" for d in k8s.AppsV1Api(api()).list_namespaced_deployment(
        namespace, label_selector=selector).items]
    found += [f"StatefulSet/{s.metadata.name}" for s in k8s.AppsV1Api(api()).list_namespaced_stateful_set(
        namespace, label_selector=selector).items]
    found += [f"Service/{s.metadata.name}" for s in core().list_namespaced_service(namespace).items
              if s.metadata.name.startswith(f"{name}-") or s.metadata.name.startswith(f"lws-{name}-")]
    found += [f"Pod/{p.metadata.name}" for p in pods(namespace, selector)]
    try:
        found += [f"LeaderWorkerSet/{w['metadata']['name']}" for w in custom().list_namespaced_custom_object(
            "leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", label_selector=selector)["items"]]
    except Exception:  # LWS removed
        pass
    return sorted(found)


def app(extra: dict, *args: str) -> dict:
    return playbook("playbooks/sglang_app.yml", extra, *args)


def refused(out: dict, message: str) -> None:
    """Bad input: the run failed, some failure says ``message``, and nothing changed anywhere (the roles act
    once, from the control host, on whichever host runs first)."""
    msgs = failures(out)
    assert out["_rc"] != 0, "the stage accepted bad input"
    assert any(message in m for m in msgs), f"expected {message!r} in {msgs}"
    assert total_changed(out) == 0, changed_tasks(out)


def summary_lines(out: dict) -> list[str]:
    return [line for p in out["plays"] for task in p["tasks"]
            if task["task"]["name"].endswith("Show the applications' state")
            for result in task["hosts"].values() for line in (result.get("msg") or [])]


def resident_memory_mib() -> dict[str, float]:
    """RSS of the controllers the lab runs (and of its stand-in process), from /proc."""
    from labctl import omelab
    from labctl.procs import rss_bytes

    figures = {}
    for row in omelab.status():
        pids = {"omelab": row.get("pid")} | {name: c.get("pid") for name, c in (row.get("controllers") or {}).items()}
        for name, pid in pids.items():
            if pid:
                figures[f"{name}_rss_mib"] = round(rss_bytes([pid]) / 2**20, 1)
    return figures


@pytest.fixture(scope="module")
def stage():
    ensure_bootstrap()
    converged = playbook("playbooks/npu.yml")
    assert converged["_rc"] == 0, failures(converged)
    removed = playbook("playbooks/sglang.yml", ABSENT | {"lws_remove_with_workloads": True,
                                                       "ome_remove_with_workloads": True})
    assert removed["_rc"] == 0, failures(removed)
    # The model on the shared filesystem (a site's model agent downloads it): every Node sees it.
    shell("npu-910b-1", f"mkdir -p {MODEL_DIR}")
    shell("npu-910b-1", f"touch {MODEL_DIR}/config.json")
    first = playbook("site.yml", None, "--tags", "sglang")
    second = playbook("site.yml", None, "--tags", "sglang")
    figures = {"sglang_stage_first_run_s": first["_seconds"], "sglang_stage_rerun_s": second["_seconds"]}
    print(json.dumps(figures))
    return {"first": first, "second": second, "figures": figures}


# ------------------------------------------------------------------ the stage


def test_first_run_installs_ome_and_lws_with_answering_webhooks(stage):
    first = stage["first"]
    assert first["_rc"] == 0, failures(first)
    assert total_changed(first) > 0
    from kubernetes import client as k8s

    crd = k8s.ApiextensionsV1Api(api()).read_custom_resource_definition("inferenceservices.ome.io")
    # The full CRD, beyond client-side apply's 256 KiB annotation: only server-side apply gets it there.
    assert len(json.dumps(api().sanitize_for_serialization(crd))) > 262144
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (crd.metadata.annotations or {})
    admission = k8s.AdmissionregistrationV1Api(api())
    configs = [admission.read_mutating_webhook_configuration("inferenceservice.ome.io"),
               admission.read_mutating_webhook_configuration("lws-mutating-webhook-configuration"),
               admission.read_validating_webhook_configuration("lws-validating-webhook-configuration")]
    assert all(len(w.client_config.ca_bundle or "") > 64 for c in configs for w in c.webhooks)
    deployments = {d.metadata.name for d in k8s.AppsV1Api(api()).list_deployment_for_all_namespaces().items}
    assert {"ome-controller-manager", "lws-controller-manager"} <= deployments


def test_second_run_changes_nothing(stage):
    second = stage["second"]
    assert second["_rc"] == 0, failures(second)
    assert total_changed(second) == 0, changed_tasks(second)


def test_check_mode_changes_nothing(stage):
    out = playbook("site.yml", None, "--tags", "sglang", "--check", "--diff")
    assert out["_rc"] == 0, failures(out)
    assert total_changed(out) == 0, changed_tasks(out)


# ------------------------------------------------------------------ applications by name


@pytest.fixture(scope="module")
def chat(stage):
    started = time.monotonic()
    out = app({"sglang_serving_application": CHAT})
    assert out["_rc"] == 0, failures(out)
    stage["figures"]["chat_applied_to_all_pods_running_s"] = round(time.monotonic() - started, 1)
    stage["figures"].update(resident_memory_mib())
    print(json.dumps(stage["figures"]))
    return out


def test_deployment_mode_becomes_engine_decoder_and_router(chat):
    from kubernetes import client as k8s

    deployments = {d.metadata.name: d for d in k8s.AppsV1Api(api()).list_namespaced_deployment(
        "inference", label_selector="ome.io/inferenceservice=chat").items}
    assert set(deployments) == {"chat-engine", "chat-decoder", "chat-router"}
    services = {s.metadata.name for s in core().list_namespaced_service("inference").items}
    assert {"chat-engine", "chat-decoder", "chat-router"} <= services
    for role in ("engine", "decoder"):
        template = deployments[f"chat-{role}"].spec.template
        assert template.metadata.labels["fault-scheduling"] == "force"
        assert template.metadata.labels["pod-rescheduling"] == "on"
        assert template.metadata.annotations["huawei.com/schedule_minAvailable"] == "1"


def test_npu_pods_run_on_910b_nodes_by_volcano_and_the_router_on_a_cpu_node(chat):
    placed = {}
    for pod in pods("inference", "ome.io/inferenceservice=chat"):
        role = pod.metadata.labels["component"]
        assert pod.status.phase == "Running", (pod.metadata.name, pod.status.phase)
        placed[role] = pod
    assert set(placed) == {"engine", "decoder", "router"}
    npu_nodes = {placed[r].spec.node_name for r in ("engine", "decoder")}
    assert npu_nodes == NPU_NODES
    for role in ("engine", "decoder"):
        spec = placed[role].spec
        assert spec.scheduler_name == "volcano"
        assert spec.containers[0].resources.requests[NPU] == "8" == spec.containers[0].resources.limits[NPU]
    assert placed["router"].spec.node_name not in NPU_NODES
    assert NPU not in (placed["router"].spec.containers[0].resources.requests or {})


def test_rerun_of_the_application_changes_nothing(chat):
    out = app({"app": "chat", "sglang_serving_applications": [CHAT]})
    assert out["_rc"] == 0, failures(out)
    assert total_changed(out) == 0, changed_tasks(out)


def test_status_lists_instances_pods_and_nodes(chat):
    out = app({"app": "chat", "action": "status", "sglang_serving_applications": [CHAT]})
    assert out["_rc"] == 0, failures(out)
    text = "\n".join(summary_lines(out))
    for expected in ("inference/chat", "engine", "decoder", "router", "npu-910b-1", "npu-910b-2"):
        assert expected in text, text


def test_dry_run_shows_the_objects_and_creates_nothing(chat):
    preview = dict(CHAT, name="preview")
    out = app({"sglang_serving_application": preview}, "--check", "--diff")
    assert out["_rc"] == 0, failures(out)
    shown = [r.get("msg") for p in out["plays"] for t in p["tasks"] for r in t["hosts"].values()
             if t["task"]["name"].endswith("Show the generated objects (dry run)")]
    kinds = [(o["kind"], o["metadata"]["name"]) for objects in shown for o in objects]
    assert ("InferenceService", "preview") in kinds, shown
    service = next(o for objects in shown for o in objects if o["kind"] == "InferenceService")
    assert service["spec"]["engine"]["annotations"]["huawei.com/schedule_minAvailable"] == "1"
    assert app_objects("preview") == []


@pytest.fixture(scope="module")
def big(chat):
    out = app({"sglang_serving_application": BIG, "sglang_serving_wait": False})
    assert out["_rc"] == 0, failures(out)
    return out


def test_leaderworkerset_mode_makes_leader_and_worker_pods_with_group_labels(big):
    def lws_pods():
        found = pods("inference", "ome.io/inferenceservice=big")
        return found if len(found) == 4 else None

    found = wait_for(lws_pods, timeout=120)
    assert found, app_objects("big")
    labels = [p.metadata.labels for p in found]
    assert all("leaderworkerset.sigs.k8s.io/group-index" in lab for lab in labels), labels
    assert sorted(lab.get("leaderworkerset.sigs.k8s.io/worker-index") for lab in labels) == ["0", "0", "1", "1"]
    assert {p.spec.scheduler_name for p in found} == {"volcano"}


def test_status_names_why_pods_of_the_second_application_are_pending(big):
    def reported():
        out = app({"app": "big", "action": "status", "sglang_serving_applications": [BIG]})
        text = "\n".join(summary_lines(out))
        return text if f"Insufficient {NPU}" in text else None

    assert wait_for(reported, timeout=90, interval=3), "no FailedScheduling reason in the status report"


def test_deleting_one_application_leaves_nothing_of_it_and_the_other_running(big):
    out = app({"app": "inference/big", "state": "absent"})
    assert out["_rc"] == 0, failures(out)
    assert app_objects("big") == []
    running = [p for p in pods("inference", "ome.io/inferenceservice=chat") if p.status.phase == "Running"]
    assert len(running) == 3
    again = app({"app": "inference/big", "state": "absent"})
    assert again["_rc"] == 0 and total_changed(again) == 0, changed_tasks(again)


# ------------------------------------------------------------------ bad input: MindCluster's table, one each

RULES = [
    ({"runtime": {"sp_block": 16}}, "sp_block is only for accelerator_type module-a3-16-super-pod"),
    ({"runtime": {"accelerator_type": "module-a3-16-super-pod", "sp_block": 24}},
     "sp_block 24 is not a multiple of the node's 16 chips"),
    ({"runtime": {"chips_per_pod": 4}}, "chips_per_pod 4 is not the 8 chips of a module-910b-8 server"),
    ({"runtime": {"fault_retry_times": 0}}, "fault_retry_times must be a positive integer, got 0"),
    ({"runtime": {"fault_retry_times": "three"}}, "fault_retry_times must be a positive integer, got 'three'"),
    ({"runtime": {"fault_scheduling": "sometimes"}}, "fault_scheduling 'sometimes' is not one of grace, force, off"),
    ({"runtime": {"accelerator_type": "module-910c-4"}}, "accelerator_type 'module-910c-4' is not one of"),
    ({"app": {"min_available": {"prefill": 2, "decode": 1}}}, "min_available.prefill 2 must equal prefill (1)"),
    ({"app": {"runtime": "srt-910b-pd-multinode", "min_available": {"prefill": 1, "decode": 1}}},
     "min_available is not used with runtime srt-910b-pd-multinode (mode leaderworkerset)"),
    ({"app": {"prefill": 0}}, "prefill must be at least 1, got 0"),
    ({"app": {"model": "ghost"}}, "model 'ghost' is not one of the models"),
]


@pytest.mark.parametrize(("change", "message"), RULES, ids=[f"{i}-{m}" for i, (_, m) in enumerate(RULES)])
def test_mindcluster_rule_is_refused_before_anything_is_applied(chat, change, message):
    runtime = dict(next(r for r in _lab_runtimes() if r["name"] == "srt-910b-pd"), **change.get("runtime", {}))
    runtimes = [runtime if r["name"] == "srt-910b-pd" else r for r in _lab_runtimes()]
    broken = dict(CHAT, name="broken", **change.get("app", {}))
    out = app({"sglang_serving_application": broken, "sglang_serving_runtimes": runtimes})
    refused(out, message)
    assert app_objects("broken") == []


def _lab_runtimes() -> list[dict]:
    import yaml

    return yaml.safe_load((REPO / "inventory/lab/group_vars/all/sglang.yml").read_text())["sglang_serving_runtimes"]


# ------------------------------------------------------------------ bad input: the roles' settings

ROLE_CASES = [
    ({"lws_cluster": "nosuch"}, 'lws_cluster "nosuch" is not a key of aicluster_clusters'),
    ({"lws_image_tag": "main"}, "lws_image_tag must pin a release"),
    ({"lws_chart_repo_url": "", "lws_chart_ref": ""}, "the chart needs lws_chart_repo_url"),
    ({"lws_chart_version": "9.9.9"}, "chart lws version 9.9.9 is not in the repository"),
    ({"lws_gang_scheduler": "kube-batch"}, "lws_gang_scheduler"),
    ({"ome_cluster": "nosuch"}, 'ome_cluster "nosuch" is not a key of aicluster_clusters'),
    ({"ome_namespace": "inference"}, "ome_namespace must be ome"),
    ({"ome_image_tag": "latest"}, "ome_image_tag must pin a release"),
    ({"ome_model_root": "models"}, "ome_model_root must be an absolute path"),
    ({"ome_deployment_mode": "Knative"}, "ome_deployment_mode"),
    ({"ome_resources_chart_version": "9.9.9"}, "chart ome-resources version 9.9.9 is not in the repository"),
    ({"ome_cluster": "manager"}, "OME's chart needs cert-manager"),
    ({"sglang_serving_cluster": "nosuch"}, 'sglang_serving_cluster "nosuch" is not a key of aicluster_clusters'),
]


@pytest.mark.parametrize(("extra", "message"), ROLE_CASES, ids=[m[:40] for _, m in ROLE_CASES])
def test_bad_role_setting_is_refused_and_changes_nothing(chat, extra, message):
    role = next(iter(extra)).split("_")[0]  # lws, ome or sglang: run that role alone
    out = playbook("site.yml", extra, "--tags", "sglang_serving" if role == "sglang" else role)
    refused(out, message)


# ------------------------------------------------------------------ removal


def test_ome_removal_is_refused_while_an_application_runs(chat):
    out = playbook("playbooks/sglang.yml", {"ome_state": "absent"}, "--tags", "ome")
    refused(out, "InferenceServices still exist (inference/chat)")


def test_deleting_the_last_application_then_the_stage_leaves_nothing(chat):
    out = app({"app": "inference/chat", "state": "absent"})
    assert out["_rc"] == 0, failures(out)
    assert app_objects("chat") == []
    removed = playbook("playbooks/sglang.yml", ABSENT)
    assert removed["_rc"] == 0, failures(removed)
    from kubernetes import client as k8s

    crds = [c.metadata.name for c in k8s.ApiextensionsV1Api(api()).list_custom_resource_definition().items
            if c.spec.group in ("ome.io", "leaderworkerset.x-k8s.io")]
    assert crds == []
    namespaces = {n.metadata.name for n in core().list_namespace().items}
    assert not namespaces & {"ome", "lws-system"}
    again = playbook("playbooks/sglang.yml", ABSENT)
    assert again["_rc"] == 0 and total_changed(again) == 0, changed_tasks(again)
