"""The inference stage (playbooks/deploy.yml, issue 14) against the lab: the model cache on /data/k8s, KEDA and the
KubeRay operator from the lab's chart repository, run as the REAL keda-operator, keda-adapter and ray-operator
binaries by the lab's controller stand-in (lab/labctl/omelab.py), a vLLM service scaled by day and night through
a KEDA cron trigger, the real HPA and the real aggregation layer, and a RayService with JWT logins.

Story, in file order (the tests share the lab):
  1. the stage converges (the vLLM day window built around the current time, so the day count applies); re-run
     changed=0; --check changes nothing; KEDA's external metrics API is Available through kube-apiserver;
  2. vLLM: the pods run on A100 Nodes only, as many as the day count; the window moved away from now scales the
     Deployment to the night count, moved back to the day count (the real KEDA + HPA; seconds per switch);
  3. Ray Serve: the real operator makes the RayService's RayCluster, head and GPU workers on A100 Nodes, the
     auth Secret (envFrom) and the model cache (claim) in every pod; the Secret's logins work over HTTP with the
     Serve image's package; a user removed from the inventory cannot log in after a re-run; the signing key
     survives re-runs. Under kwok the RayService itself stops where the operator polls the head's Ray dashboard
     (nothing serves in a kwok pod): the test stops there too;
  4. every bad input is refused before anything is applied;
  5. removal: the services, then the operators, leave nothing but the model cache.

Needs `lab up`; the fixture converges bootstrap and the GPU stage (GPU capacity, RuntimeClass nvidia) first.
Figures (printed as JSON): stage first run / re-run, day->night and night->day seconds, the controllers' start-up
and resident memory.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from stage_runner import assert_refused, changed_tasks, ensure_bootstrap, failures, playbook, total_changed, wait_for

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
NS = "llm"
SERVICE = "qwen-0-5b"
GPU = "nvidia.com/gpu"
A100 = {"gpu-a100-1", "gpu-a100-2"}
DAY, NIGHT = 2, 1
OPERATORS_ABSENT = {"vllm_serving_state": "absent", "ray_serve_state": "absent", "keda_state": "absent",
                    "kuberay_operator_state": "absent", "keda_remove_with_workloads": True,
                    "kuberay_operator_remove_with_workloads": True}


def lab_inference() -> dict:
    return yaml.safe_load((REPO / "inventory/lab/group_vars/all/inference.yml").read_text())


def hhmm(t: datetime) -> str:
    return t.strftime("%H:%M")


# The module's day window starts at the minute the tests start (the cron trigger's start and end are minutes) and
# lasts two hours, far longer than the module runs: every run renders the same window, so re-runs change nothing.
STARTED = datetime.now(UTC)


def window(inside: bool) -> dict:
    """The day window (UTC): around now (inside), or starting three hours later (outside)."""
    start = STARTED if inside else STARTED + timedelta(hours=3)
    return {"day_start": hhmm(start), "day_end": hhmm(start + timedelta(hours=2))}


def services(inside: bool = True) -> list[dict]:
    service = copy.deepcopy(next(s for s in lab_inference()["vllm_serving_services"] if s["name"] == SERVICE))
    service.update(window(inside), day_replicas=DAY, night_replicas=NIGHT)
    return [service]


def extra(inside: bool = True, **more) -> dict:
    # Scale down at the HPA's next sync (the production default waits 300 s for a stable metric).
    return {"vllm_serving_services": services(inside), "vllm_serving_time_zone": "UTC",
            "vllm_serving_scale_down_stabilization_seconds": 0, **more}


def client():
    from labctl import clusters

    return clusters.api_client("worker")


def core():
    from kubernetes import client as k8s

    return k8s.CoreV1Api(client())


def custom():
    from kubernetes import client as k8s

    return k8s.CustomObjectsApi(client())


def apps():
    from kubernetes import client as k8s

    return k8s.AppsV1Api(client())


def pods(selector: str) -> list:
    return [p for p in core().list_namespaced_pod(NS, label_selector=selector).items
            if p.metadata.deletion_timestamp is None]


def running(selector: str) -> list:
    return [p for p in pods(selector) if p.status.phase == "Running"]


def vllm_replicas() -> tuple[int, int]:
    """(spec replicas, Running pods) of the vLLM Deployment."""
    dep = apps().read_namespaced_deployment(SERVICE, NS)
    return dep.spec.replicas, len(running(f"app.kubernetes.io/instance={SERVICE}"))


def settle_replicas(count: int, timeout: float = 120) -> float | None:
    """Seconds until the Deployment wants ``count`` replicas and that many pods run (None on timeout)."""
    started = time.monotonic()
    if wait_for(lambda: vllm_replicas() == (count, count), timeout=timeout, interval=0.5):
        return round(time.monotonic() - started, 1)
    return None


def controllers_state() -> dict:
    from labctl import omelab

    return next(iter(omelab.status()), {}).get("controllers") or {}


def resident_memory_mib() -> dict[str, float]:
    from labctl.procs import rss_bytes

    return {f"{name}_rss_mib": round(rss_bytes([row["pid"]]) / 2**20, 1)
            for name, row in controllers_state().items()
            if name in ("ray-operator", "keda-operator", "keda-adapter") and row.get("pid")}


def controller_start_seconds() -> dict[str, float]:
    """From the stand-in's log: seconds from each controller's start to ready, its last start."""
    from labctl import omelab

    log = Path(next(iter(omelab.status()), {}).get("log") or "/nonexistent")
    figures: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines() if log.is_file() else []:
        for name in ("ray-operator", "keda-operator", "keda-adapter"):
            if f" {name}: ready after " in line:
                figures[f"{name}_ready_s"] = float(line.rsplit("ready after ", 1)[1].split("s", 1)[0])
    return figures


def stage_installed() -> bool:
    """Anything of the stage in the worker cluster: its operators' namespaces or objects in the services' namespace."""
    namespaces = {n.metadata.name for n in core().list_namespace().items}
    if {"keda", "kuberay-system"} & namespaces:
        return True
    return NS in namespaces and bool(apps().list_namespaced_deployment(NS).items
                                     or core().list_namespaced_secret(NS).items)


# ------------------------------------------------------------------ 1. the stage


@pytest.fixture(scope="module")
def stage():
    ensure_bootstrap()
    gpu = playbook("playbooks/gpu.yml")
    assert gpu["_rc"] == 0, failures(gpu)
    if stage_installed():  # left by an earlier run: start from nothing (a fresh lab has nothing to remove)
        removed = playbook("playbooks/deploy.yml", OPERATORS_ABSENT)
        assert removed["_rc"] == 0, failures(removed)
    first = playbook("site.yml", extra(), "--tags", "inference")
    day_s = settle_replicas(DAY) if first["_rc"] == 0 else None
    second = playbook("site.yml", extra(), "--tags", "inference")
    figures = {"inference_stage_first_run_s": first["_seconds"], "inference_stage_rerun_s": second["_seconds"],
               "first_run_to_day_count_s": day_s}
    print(json.dumps(figures))
    return {"first": first, "second": second, "figures": figures}


def test_first_run_installs_keda_kuberay_and_the_services(stage):
    first = stage["first"]
    assert first["_rc"] == 0, failures(first)
    assert total_changed(first) > 0
    from kubernetes import client as k8s

    apiservice = k8s.ApiregistrationV1Api(client()).read_api_service("v1beta1.external.metrics.k8s.io")
    assert any(c.type == "Available" and c.status == "True" for c in apiservice.status.conditions), \
        apiservice.status.conditions
    state = controllers_state()
    for name in ("ray-operator", "keda-operator", "keda-adapter"):
        assert state[name]["running"] and state[name]["ready"], state[name]
    claim = core().read_namespaced_persistent_volume_claim("model-cache", NS)
    assert claim.status.phase == "Bound" and "ReadWriteMany" in claim.spec.access_modes


def test_second_run_changes_nothing(stage):
    second = stage["second"]
    assert second["_rc"] == 0, failures(second)
    assert total_changed(second) == 0, changed_tasks(second)


def test_check_mode_changes_nothing_and_shows_a_window_edit(stage):
    before = custom().get_namespaced_custom_object("keda.sh", "v1alpha1", NS, "scaledobjects", SERVICE)
    edited = extra()
    edited["vllm_serving_services"][0]["day_replicas"] = 3
    out = playbook("site.yml", edited, "--tags", "vllm_serving", "--check", "--diff")
    assert out["_rc"] == 0, failures(out)
    assert total_changed(out) > 0, "the dry run did not report the edit"
    after = custom().get_namespaced_custom_object("keda.sh", "v1alpha1", NS, "scaledobjects", SERVICE)
    # (KEDA writes the status all the time: the spec's generation is what an apply would have moved)
    assert after["spec"] == before["spec"] and after["metadata"]["generation"] == before["metadata"]["generation"]


# ------------------------------------------------------------------ 2. vLLM and day/night scaling


def test_vllm_pods_run_on_a100_nodes_only_with_the_day_count(stage):
    assert stage["figures"]["first_run_to_day_count_s"] is not None, vllm_replicas()
    vllm = running(f"app.kubernetes.io/instance={SERVICE}")
    assert len(vllm) == DAY
    assert {p.spec.node_name for p in vllm} <= A100, [p.spec.node_name for p in vllm]
    spec = vllm[0].spec
    assert spec.node_selector == {"gpu-type": "A100"}
    assert spec.runtime_class_name == "nvidia"
    container = spec.containers[0]
    assert container.resources.limits[GPU] == "1"
    assert container.readiness_probe.http_get.path == "/health" and container.liveness_probe.http_get.path == "/health"
    env = {e.name: e.value for e in container.env or []}
    assert env["HF_HOME"].startswith("/data/model-cache")
    claims = {v.persistent_volume_claim.claim_name for v in spec.volumes if v.persistent_volume_claim}
    assert claims == {"model-cache"}
    service = core().read_namespaced_service(SERVICE, NS)
    assert [p.port for p in service.spec.ports] == [8000]


def test_outside_the_window_night_count_then_day_count_again(stage):
    night = playbook("site.yml", extra(inside=False), "--tags", "vllm_serving")
    assert night["_rc"] == 0, failures(night)
    to_night = settle_replicas(NIGHT)
    from kubernetes import client as k8s

    hpa = next(h for h in k8s.AutoscalingV2Api(client()).list_namespaced_horizontal_pod_autoscaler(NS).items
               if h.spec.scale_target_ref.name == SERVICE)
    day = playbook("site.yml", extra(inside=True), "--tags", "vllm_serving")
    assert day["_rc"] == 0, failures(day)
    to_day = settle_replicas(DAY)
    stage["figures"].update({"day_to_night_s": to_night, "night_to_day_s": to_day})
    stage["figures"].update(controller_start_seconds())
    stage["figures"].update(resident_memory_mib())
    print(json.dumps(stage["figures"]))
    assert to_night is not None, f"not scaled to {NIGHT} outside the window: {vllm_replicas()}"
    assert to_day is not None, f"not scaled back to {DAY} inside the window: {vllm_replicas()}"
    # The HPA KEDA made, fed through the aggregated external metrics API: that is what scaled.
    assert hpa.metadata.name == f"keda-hpa-{SERVICE}"
    assert hpa.spec.min_replicas == NIGHT and hpa.spec.max_replicas == DAY
    assert hpa.spec.metrics[0].type == "External"


# ------------------------------------------------------------------ 3. Ray Serve


def ray_settings() -> dict:
    return {k: v for k, v in lab_inference().items() if k.startswith("ray_serve_")}


def lab_users() -> list[dict]:
    """The lab inventory's Ray Serve users with their passwords (the inventory templates them from a lab-only
    variable, as a site's would from its vault)."""
    passwords = lab_inference()["aicluster_lab_ray_serve_passwords"]
    return [{**u, "password": passwords[u["name"]]} for u in ray_settings()["ray_serve_auth_users"]]


def auth_environ() -> dict[str, str]:
    secret = core().read_namespaced_secret(ray_settings().get("ray_serve_auth_secret", "auth-config"), NS)
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def login_client(environ: dict):
    from aicluster_serve_auth import AuthConfig, ServeAuth
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    auth = ServeAuth(AuthConfig.from_env(environ))
    app = FastAPI()
    app.include_router(auth.router)

    @app.post("/v1/chat/completions")
    async def chat(body: dict, user=Depends(auth.current_user)):  # noqa: B008
        return {"user": user.username}

    return TestClient(app), auth


def test_the_operator_makes_the_rayservice_s_raycluster_on_the_right_nodes(stage):
    name = ray_settings().get("ray_serve_name", "llm-serve")
    service = custom().get_namespaced_custom_object("ray.io", "v1", NS, "rayservices", name)

    def raycluster():
        items = custom().list_namespaced_custom_object("ray.io", "v1", NS, "rayclusters")["items"]
        return next((c for c in items if any(o.get("kind") == "RayService" and o.get("name") == name
                                             for o in c["metadata"].get("ownerReferences") or [])), None)

    cluster = wait_for(raycluster, timeout=60)
    assert cluster, f"the operator made no RayCluster for RayService {name}: {service.get('status')}"
    selector = f"ray.io/cluster={cluster['metadata']['name']}"
    expected_workers = sum(int(g.get("replicas", 1)) for g in ray_settings().get("ray_serve_worker_groups") or []
                           if g.get("enabled", True))
    assert wait_for(lambda: len(running(selector)) == 1 + expected_workers, timeout=90), \
        [(p.metadata.name, p.status.phase, p.spec.node_name) for p in pods(selector)]
    for pod in running(selector):
        spec = pod.spec
        container = spec.containers[0]
        assert any(e.secret_ref and e.secret_ref.name == "auth-config" for e in container.env_from or []), \
            pod.metadata.name
        claims = {v.persistent_volume_claim.claim_name for v in spec.volumes if v.persistent_volume_claim}
        assert "model-cache" in claims, pod.metadata.name
        assert any(m.mount_path == "/data/model-cache" for m in container.volume_mounts), pod.metadata.name
        if pod.metadata.labels.get("ray.io/node-type") == "worker":
            assert spec.node_name in A100 and container.resources.limits[GPU] == "1", pod.metadata.name
    # The RayService's status names the cluster the operator made for it. Where the lab stops: next the operator
    # polls the head's Ray dashboard for the Serve application, which a kwok pod does not serve, so the
    # application never becomes RUNNING and the RayService never Ready here.
    service = custom().get_namespaced_custom_object("ray.io", "v1", NS, "rayservices", name)
    assert cluster["metadata"]["name"] in json.dumps(service.get("status") or {}), service.get("status")


def test_auth_secret_logins_and_tokens_over_http(stage):
    users = {u["name"]: u["password"] for u in lab_users()}
    http, _ = login_client(auth_environ())
    name, password = next(iter(users.items()))
    token = http.post("/token", data={"username": name, "password": password})
    assert token.status_code == 200, token.text
    opened = http.post("/v1/chat/completions", json={},
                       headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert opened.status_code == 200 and opened.json() == {"user": name}
    assert http.post("/token", data={"username": name, "password": password + "x"}).status_code == 401
    assert http.post("/v1/chat/completions", json={}).status_code == 401


def test_expired_token_is_refused(stage):
    from aicluster_serve_auth import AuthConfig, ServeAuth

    environ = auth_environ()
    name, password = next((u["name"], u["password"]) for u in lab_users())
    issued = ServeAuth(AuthConfig.from_env(environ), clock=lambda: time.time() - 24 * 3600)
    user = issued.authenticate(name, password)
    assert user is not None
    from aicluster_serve_auth import tokens

    old = tokens.issue_token(user.username, user.role, issued.config.key, issued.config.lifetime_seconds,
                             time.time() - 24 * 3600)
    http, _ = login_client(environ)
    assert http.post("/v1/chat/completions", json={}, headers={"Authorization": f"Bearer {old}"}).status_code == 401


def test_a_user_removed_from_the_inventory_cannot_log_in_and_the_key_stays(stage):
    users = lab_users()
    assert len(users) >= 2
    key_before = auth_environ()["JWT_KEY"]
    kept, removed = users[:-1], users[-1]
    out = playbook("site.yml", extra(ray_serve_auth_users=kept), "--tags", "ray_serve")
    assert out["_rc"] == 0, failures(out)
    environ = auth_environ()
    assert environ["JWT_KEY"] == key_before, "a re-run rotated the signing key"
    http, _ = login_client(environ)
    assert http.post("/token", data={"username": removed["name"], "password": removed["password"]}).status_code == 401
    assert http.post("/token", data={"username": kept[0]["name"], "password": kept[0]["password"]}).status_code == 200
    back = playbook("site.yml", extra(), "--tags", "ray_serve")
    assert back["_rc"] == 0, failures(back)
    assert auth_environ()["JWT_KEY"] == key_before


# ------------------------------------------------------------------ 4. bad input


def _vllm(**change) -> dict:
    settings = extra()
    settings["vllm_serving_services"][0].update(change)
    return settings


def _ray(**settings) -> dict:
    return extra(**settings)


BAD_INPUT = [
    ("vllm_serving", _vllm(day_end="__start__"), "is the same as day_start"),
    ("vllm_serving", _vllm(night_replicas=3), "night_replicas 3 is above day_replicas 2"),
    ("vllm_serving", _vllm(gpus=16), "gpus 16 per replica is more than any Node with gpu-type=A100 has"),
    ("vllm_serving", _vllm(gpu_type="H100"), "unknown GPU type H100: no Node has the label gpu-type=H100"),
    ("ray_serve", _ray(ray_serve_auth_users=[{"name": "carol", "role": "user"}]),
     "user carol: no password (give one from the vaulted inventory)"),
    ("ray_serve", _ray(ray_serve_auth_users=[{"name": "carol", "password": "tiny-pw1", "role": "user"}]),
     "user carol: the password is shorter than 12 characters"),
    ("keda", extra(keda_image_tag="latest"), 'keda_image_tag must pin a release (e.g. 2.21.0), not "latest"'),
    ("keda", extra(keda_cluster="nosuch"), 'keda_cluster "nosuch" is not a key of aicluster_clusters'),
    ("keda", extra(keda_chart_repo_url=""), "the chart needs keda_chart_repo_url (http(s)://) or keda_chart_ref"),
    ("keda", extra(keda_chart_version="9.9.9"), "chart keda version 9.9.9 is not in the repository"),
    ("kuberay_operator", extra(kuberay_operator_chart_version="9.9.9"),
     "chart kuberay-operator version 9.9.9 is not in the repository"),
    ("kuberay_operator", extra(kuberay_operator_image_tag="latest"),
     'kuberay_operator_image_tag must pin a release (e.g. v1.5.0), not "latest"'),
    ("kuberay_operator", extra(kuberay_operator_cluster="nosuch"),
     'kuberay_operator_cluster "nosuch" is not a key of aicluster_clusters'),
    ("kuberay_operator", extra(kuberay_operator_chart_repo_url=""),
     "the chart needs kuberay_operator_chart_repo_url (http(s)://) or kuberay_operator_chart_ref"),
    ("model_cache", extra(model_cache_path="/srv/models"), "model_cache_path must be a directory under /data/k8s"),
    ("model_cache", extra(model_cache_cluster="nosuch"),
     'model_cache_cluster "nosuch" is not a key of aicluster_clusters'),
    ("model_cache", extra(model_cache_size="lots"), 'model_cache_size must be a size such as 500Gi (got "lots")'),
]


@pytest.mark.parametrize(("tag", "settings", "message"), BAD_INPUT,
                         ids=["window end equal to start", "night above day", "more GPUs than a Node has",
                              "unknown GPU type", "a user without a password", "a password too short",
                              "keda image latest", "keda unknown cluster", "keda without a chart source",
                              "keda chart version missing", "kuberay chart version missing", "kuberay image latest",
                              "kuberay unknown cluster", "kuberay without a chart source",
                              "model cache outside /data/k8s", "model cache unknown cluster", "model cache size"])
def test_bad_input_is_refused_before_anything_is_applied(stage, tag, settings, message):
    settings = copy.deepcopy(settings)
    for service in settings.get("vllm_serving_services") or []:
        if service.get("day_end") == "__start__":
            service["day_end"] = service["day_start"]
    before = apps().read_namespaced_deployment(SERVICE, NS).metadata.resource_version
    out = playbook("site.yml", settings, "--tags", tag)
    assert_refused(out, message, "gpu-a100-1")
    assert total_changed(out) == 0, changed_tasks(out)
    assert apps().read_namespaced_deployment(SERVICE, NS).metadata.resource_version == before


# ------------------------------------------------------------------ 5. removal


@pytest.mark.parametrize(("tag", "message"), [
    ("keda", "ScaledObject llm qwen-0-5b"),
    ("kuberay_operator", "RayService llm llm-serve")])
def test_removal_is_refused_while_services_need_the_operators(stage, tag, message):
    out = playbook("playbooks/deploy.yml", {"keda_state": "absent", "kuberay_operator_state": "absent"},
                   "--tags", tag)
    assert_refused(out, message, "gpu-a100-1")


def test_removal_leaves_nothing_but_the_model_cache(stage):
    services_gone = playbook("playbooks/deploy.yml", {"vllm_serving_state": "absent", "ray_serve_state": "absent"})
    assert services_gone["_rc"] == 0, failures(services_gone)
    assert pods("app.kubernetes.io/name=vllm") == [] and pods("ray.io/is-ray-node=yes") == []
    removed = playbook("playbooks/deploy.yml", OPERATORS_ABSENT)
    assert removed["_rc"] == 0, failures(removed)
    from kubernetes import client as k8s

    crds = {c.metadata.name for c in k8s.ApiextensionsV1Api(client()).list_custom_resource_definition().items}
    assert not {c for c in crds if c.endswith((".ray.io", ".keda.sh"))}, crds
    namespaces = {n.metadata.name for n in core().list_namespace().items}
    assert not {"keda", "kuberay-system"} & namespaces
    assert [s.metadata.name for s in core().list_namespaced_secret(NS).items if s.metadata.name == "auth-config"] == []
    assert apps().list_namespaced_deployment(NS).items == []
    assert core().list_namespaced_service(NS).items == []
    state = controllers_state()
    assert not any(state[n]["running"] for n in ("ray-operator", "keda-operator", "keda-adapter")), state
    claim = core().read_namespaced_persistent_volume_claim("model-cache", NS)
    assert claim.status.phase == "Bound", "the model cache did not survive the removal"
    again = playbook("playbooks/deploy.yml", OPERATORS_ABSENT)
    assert again["_rc"] == 0 and total_changed(again) == 0, changed_tasks(again)
