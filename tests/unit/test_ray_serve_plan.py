"""module_utils/ray_serve and the ray_serve_plan module: every bad-input rule (one test each), the RayService of a
valid configuration (the seed's Serve application, head and GPU worker groups, disabled groups left out, the model
cache and the login Secret in every pod), and that no password is ever part of a result or a message. The module runs
against the fake API server (fake_kube.py) with Nodes, a model cache claim and a login Secret."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import ray_serve
from ansible_collections.aicluster.platform.plugins.modules import ray_serve_plan
from fake_kube import FakeKube
from plan_helpers import DROP, assert_problem, merged

ALICE_PASSWORD = "alice-wonderland-2024"
BOB_PASSWORD = "bob-the-builder-99"
SHORT_PASSWORD = "tiny-pw"
PASSWORDS = (ALICE_PASSWORD, BOB_PASSWORD, SHORT_PASSWORD)
ALICE = {"name": "alice", "password": ALICE_PASSWORD, "role": "admin"}
BOB = {"name": "bob", "password": BOB_PASSWORD, "role": "user"}
A100 = {"name": "a100", "replicas": 2, "gpus": 1, "gpu_type": "A100", "cpu": "16", "memory": "24G",
        "node_selector": {"node.deckhouse.io/group": "w-gpu"},
        "tolerations": [{"key": "dedicated.apiac.ru", "operator": "Equal", "value": "w-gpu", "effect": "NoExecute"}]}
RTX3060 = {"name": "rtx-3060", "enabled": False, "replicas": 1, "gpus": 1, "gpu_type": "RTX3060"}
SETTINGS = {
    "name": "llm-serve",
    "namespace": "llm",
    "image": "gitlab.example.com:5050/it-operations/k8s-config/vllm-0.6.5-ray-2.42.0-py310-cu121-serve:1.1.2",
    "image_pull_secrets": ["regcred"],
    "application": {"name": "Dolphin3.0", "import_path": "serve:model", "route_prefix": "/",
                    "model_id": "Valdemardi/Dolphin3.0-R1-Mistral-24B-AWQ", "model_name": "Dolphin3.0",
                    "tensor_parallelism": 1, "pipeline_parallelism": 2, "min_replicas": 1, "max_replicas": 1,
                    "deployment_ready_timeout_s": 1200, "env": {"DTYPE": "float16"}},
    "head": {"cpu": "6", "memory": "8G", "node_selector": {"node-role": "cpu"}},
    "worker_groups": [A100, RTX3060],
    "auth_users": [ALICE, BOB],
}


def node(name, gpu_type=None, gpus=0):
    labels = {"kubernetes.io/hostname": name}
    if gpu_type:
        labels["gpu-type"] = gpu_type
    allocatable = {"cpu": "64", "memory": "256Gi"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {"metadata": {"name": name, "labels": labels}, "status": {"allocatable": allocatable}}


NODES = [node("gpu-a100-1", "A100", 8), node("gpu-a100-2", "A100", 8), node("gpu-t4-1", "T4", 2), node("cpu-1")]


def settings_with(**changes):
    return merged(SETTINGS, changes)


def group_with(**changes):
    return merged(A100, changes)


def app_with(**changes):
    return merged(SETTINGS["application"], changes)


def assert_no_password(text):
    for password in PASSWORDS:
        assert password not in text


def test_the_standard_configuration_is_fine():
    assert ray_serve.problems(SETTINGS, NODES) == []


def test_a_disabled_group_is_not_checked_against_the_cluster():
    # RTX3060 is no Node's gpu-type; the group is disabled, so it does not matter.
    assert ray_serve.problems(settings_with(worker_groups=[A100, merged(RTX3060, {"gpus": 64})]), NODES) == []


# ------------------------------------------------------------------ users and passwords
@pytest.mark.parametrize(("users", "min_length", "problem"), [
    ([ALICE, {"name": "carol", "role": "user"}], 12, "user carol: no password (give one from the vaulted inventory)"),
    ([ALICE, {"name": "carol", "password": "", "role": "user"}], 12,
     "user carol: no password (give one from the vaulted inventory)"),
    ([ALICE, {"name": "carol", "password": None, "role": "user"}], 12,
     "user carol: no password (give one from the vaulted inventory)"),
    ([ALICE, dict(BOB, password=SHORT_PASSWORD)], 12,
     "user bob: the password is shorter than 12 characters (auth_password_min_length)"),
    ([ALICE, BOB], 20, "user bob: the password is shorter than 20 characters (auth_password_min_length)"),
    ([ALICE, dict(BOB, password=12345678901234)], 12, "user bob: the password must be a string (quote it in the "
                                                      "inventory)"),
    ([], 12, "auth_users is empty: nobody could log in (POST /token); list at least one user with a password from "
             "the vaulted inventory"),
    ([ALICE, ALICE], 12, "user alice is listed 2 times"),
    ([ALICE, {"password": BOB_PASSWORD, "role": "user"}], 12, "auth_users[1]: name is required"),
    ([ALICE, dict(BOB, role=DROP)], 12, "user bob: role must be a non-empty string, got None"),
    ([ALICE], 6, "auth_password_min_length must be an integer of at least 8 (aicluster.platform.serve_auth_secret's "
                 "minimum), got 6"),
])
def test_user_problems(users, min_length, problem):
    users = [{k: v for k, v in u.items() if v is not DROP} for u in users]
    found = ray_serve.problems(settings_with(auth_users=users, auth_password_min_length=min_length), NODES)
    assert_problem(found, problem)
    assert_no_password(json.dumps(found))


def test_a_password_of_exactly_the_minimum_is_fine():
    users = [dict(ALICE, password="x" * 12)]
    assert ray_serve.problems(settings_with(auth_users=users), NODES) == []


# ------------------------------------------------------------------ worker groups and the cluster's GPUs
@pytest.mark.parametrize(("groups", "problem"), [
    ([group_with(gpus=16)], "worker group a100: gpus 16 is more than any Node has: the Nodes with gpu-type=A100 have "
                            "at most 8 nvidia.com/gpu allocatable"),
    ([group_with(gpu_type="T4", gpus=4)], "worker group a100: gpus 4 is more than any Node has: the Nodes with "
                                          "gpu-type=T4 have at most 2 nvidia.com/gpu allocatable"),
    ([group_with(gpu_type="", gpus=9)], "worker group a100: gpus 9 is more than any Node has: the Nodes have at most "
                                        "8 nvidia.com/gpu allocatable"),
    ([group_with(gpu_type="H100")], "worker group a100: gpu_type H100 is not the gpu-type label of any Node (the "
                                    "Nodes have A100, T4)"),
    ([group_with(gpus=0)], "worker_groups: at least one enabled group must have gpus and replicas (the application "
                           "runs on GPU workers)"),
    ([group_with(enabled=False)], "worker_groups: at least one enabled group must have gpus and replicas..."),
    ([], "worker_groups: at least one enabled group must have gpus and replicas (the application runs on GPU "
         "workers)"),
    ([group_with(replicas=3, min_replicas=1, max_replicas=2)],
     "worker group a100: replicas 3 must be between min_replicas 1 and max_replicas 2"),
    ([A100, A100], "worker group a100 is defined 2 times"),
    ([group_with(name="A100_Group")], "worker group A100_Group: name 'A100_Group' must be a DNS-1123 label..."),
    ([group_with(name=DROP)], "worker_groups[0]: name is required"),
    ([group_with(gpus=-1)], "worker group a100: gpus must be at least 0, got -1"),
    ([group_with(replicas="two")], "worker group a100: replicas must be an integer, got 'two'"),
    ([group_with(memory="24 GB")], "worker group a100: memory must be a Kubernetes quantity such as 8, 500m or 24Gi, "
                                   "got '24 GB'"),
    ([group_with(enabled="yes")], "worker group a100: enabled must be true or false, got 'yes'"),
    ([group_with(colour="red")], "worker group a100: unknown field colour (known: name, enabled..."),
    ([group_with(node_selector={"gpu-type": "T4"})], "worker group a100: node_selector gpu-type=T4 contradicts "
                                                     "gpu_type A100"),
    ([group_with(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "Never"}])],
     "worker group a100: tolerations[0]: effect must be one of NoSchedule, PreferNoSchedule, NoExecute (or empty: "
     "all), got 'Never'"),
    ([group_with(tolerations=[{"key": "dedicated", "operator": "Exists", "value": "gpu"}])],
     "worker group a100: tolerations[0]: a toleration with operator Exists takes no value"),
])
def test_worker_group_problems(groups, problem):
    groups = [{k: v for k, v in g.items() if v is not DROP} for g in groups]
    assert_problem(ray_serve.problems(settings_with(worker_groups=groups), NODES), problem)


def test_no_node_with_gpu_types():
    found = ray_serve.problems(SETTINGS, [node("cpu-1")])
    assert_problem(found, "worker group a100: gpu_type A100 is not the gpu-type label of any Node (no Node has a "
                          "gpu-type label)")


def test_without_nodes_the_cluster_is_not_checked():
    assert ray_serve.problems(settings_with(worker_groups=[group_with(gpu_type="H100", gpus=64)])) == []


def test_the_application_must_fit_in_the_workers_gpus():
    found = ray_serve.problems(settings_with(application=app_with(tensor_parallelism=2, pipeline_parallelism=2)),
                               NODES)
    assert found == ["application: tensor_parallelism x pipeline_parallelism = 4 GPUs per replica, 4 for min_replicas "
                     "1, but the enabled worker groups have 2"]


# ------------------------------------------------------------------ the other settings
@pytest.mark.parametrize(("changes", "problem"), [
    ({"image": "registry.example/serve:latest"}, "image registry.example/serve:latest must be pinned to a release tag "
                                                 "or a digest, not latest..."),
    ({"image": "registry.example:5000/serve"}, "image registry.example:5000/serve must be pinned to a release tag or "
                                               "a digest (it names no tag, which means latest)"),
    ({"image": "registry example/serve:1"}, "image must be an image reference without spaces, got 'registry "
                                            "example/serve:1'"),
    ({"name": "llm-serve-" + "x" * 40}, "name 'llm-serve-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' has 50 characters; "
                                        "KubeRay allows at most 47 for a RayService (its RayCluster adds 6, its "
                                        "Services more)"),
    ({"name": "1serve"}, "name '1serve' must start with a letter (KubeRay wants a DNS-1035 label)"),
    ({"name": DROP}, "name is required (the RayService's name, e.g. llm-serve)"),
    ({"namespace": "LLM"}, "namespace: namespace 'LLM' must be a DNS-1123 label..."),
    ({"ray_version": "2.42"}, "ray_version must be the image's Ray version, e.g. 2.42.0, got '2.42'"),
    ({"cache_mount": "data/model-cache"}, "cache_mount must be an absolute directory without '..', got "
                                          "'data/model-cache'"),
    ({"cache_claim": "Model_Cache"}, "cache_claim: cache_claim 'Model_Cache' must be a DNS-1123 subdomain..."),
    ({"image_pull_policy": "Sometimes"}, "image_pull_policy must be one of IfNotPresent, Always, Never, got "
                                         "'Sometimes'"),
    ({"runtime_class": "Nvidia"}, "runtime_class: runtime_class 'Nvidia' must be a DNS-1123 subdomain..."),
    ({"head": {"cpu": "lots"}}, "head: cpu must be a Kubernetes quantity such as 8, 500m or 24Gi, got 'lots'"),
    ({"head": {"node_selector": {"bad key!": "x"}}}, "head: node_selector bad key!: name part 'bad key!' must..."),
])
def test_settings_problems(changes, problem):
    assert_problem(ray_serve.problems(settings_with(**changes), NODES), problem)


@pytest.mark.parametrize(("changes", "problem"), [
    ({"route_prefix": "api/"}, "application: route_prefix must start with / and not end with / (unless it is /), "
                               "without braces, got 'api/'"),
    ({"route_prefix": "/api/"}, "application: route_prefix must start with / and not end with / (unless it is /), "
                                "without braces, got '/api/'"),
    ({"import_path": "serve"}, "application: import_path 'serve' must be module:attribute or module.attribute (e.g. "
                               "serve:model)"),
    ({"import_path": "a:b:c"}, "application: import_path 'a:b:c' must be module:attribute or module.attribute (e.g. "
                               "serve:model)"),
    ({"tensor_parallelism": 0}, "application: tensor_parallelism must be at least 1, got 0"),
    ({"min_replicas": 3, "max_replicas": 2}, "application: min_replicas 3 is more than max_replicas 2"),
    ({"target_ongoing_requests": 0}, "application: target_ongoing_requests must be a positive number, got 0"),
    ({"deployment_ready_timeout_s": 0}, "application: deployment_ready_timeout_s must be at least 1, got 0"),
    ({"model_id": ""}, "application: model_id must be a non-empty string, got ''"),
    ({"env": {"MODEL_ID": "other"}}, "application: env: MODEL_ID is generated from the application's settings (use "
                                     "them instead)"),
    ({"env": {"not a name": "x"}}, "application: env: 'not a name' is not a variable name"),
])
def test_application_problems(changes, problem):
    assert_problem(ray_serve.problems(settings_with(application=app_with(**changes)), NODES), problem)


def test_every_problem_is_reported_at_once():
    found = ray_serve.problems(settings_with(
        image="registry.example/serve:latest", worker_groups=[group_with(gpu_type="H100")],
        auth_users=[ALICE, dict(BOB, password=SHORT_PASSWORD), {"name": "carol", "role": "user"}]), NODES)
    assert len(found) == 4, found


def test_plan_raises_with_every_problem():
    with pytest.raises(ray_serve.RayServeError) as error:
        ray_serve.plan(settings_with(worker_groups=[group_with(gpus=16)]), NODES)
    assert error.value.problems == ["worker group a100: gpus 16 is more than any Node has: the Nodes with "
                                    "gpu-type=A100 have at most 8 nvidia.com/gpu allocatable"]


# ------------------------------------------------------------------ the RayService
@pytest.fixture(scope="module")
def planned():
    return ray_serve.plan(SETTINGS, NODES, checksum="c0ffee")


def test_the_serve_config_is_the_seeds_application(planned):
    service = planned["ray_service"]
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    assert service["metadata"] == {"name": "llm-serve", "namespace": "llm", "labels": {
        "app.kubernetes.io/managed-by": "aicluster", "aicluster.io/ray-serve": "llm-serve"}}
    text = service["spec"]["serveConfigV2"]
    assert isinstance(text, str)
    config = yaml.safe_load(text)
    assert config == {"applications": [{
        "name": "Dolphin3.0",
        "import_path": "serve:model",
        "route_prefix": "/",
        "runtime_env": {"working_dir": "file:///home/ray/serve.zip", "env_vars": {
            "MODEL_ID": "Valdemardi/Dolphin3.0-R1-Mistral-24B-AWQ", "TENSOR_PARALLELISM": "1",
            "PIPELINE_PARALLELISM": "2", "MODEL_NAME": "Dolphin3.0", "DTYPE": "float16"}},
        "deployments": [{
            "name": "VLLMDeployment",
            # Where Ray 2.42 reads it, and without num_replicas (Ray refuses both).
            "autoscaling_config": {"min_replicas": 1, "initial_replicas": 1, "max_replicas": 1,
                                   "target_ongoing_requests": 2},
            "deployment_ready_timeout_s": 1200,
        }],
    }]}


def test_the_head_group(planned):
    cluster = planned["ray_service"]["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.42.0"
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"] == {"dashboard-host": "0.0.0.0", "num-cpus": "0"}
    spec = head["template"]["spec"]
    container = spec["containers"][0]
    assert container["name"] == "ray-head" and container["image"] == SETTINGS["image"]
    assert container["resources"] == {"requests": {"cpu": "6", "memory": "8G"}, "limits": {"cpu": "6", "memory": "8G"}}
    assert spec["nodeSelector"] == {"node-role": "cpu"}
    assert "runtimeClassName" not in spec and "tolerations" not in spec
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]


def test_only_enabled_worker_groups_with_gpus_on_the_right_nodes(planned):
    groups = planned["ray_service"]["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert [g["groupName"] for g in groups] == ["a100"]  # rtx-3060 is disabled
    group = groups[0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 2, 2)
    spec = group["template"]["spec"]
    assert spec["nodeSelector"] == {"node.deckhouse.io/group": "w-gpu", "gpu-type": "A100"}
    assert spec["tolerations"] == A100["tolerations"]
    assert spec["runtimeClassName"] == "nvidia"
    container = spec["containers"][0]
    assert container["name"] == "ray-worker"
    assert container["resources"]["limits"] == {"cpu": "16", "memory": "24G", "nvidia.com/gpu": "1"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert planned["worker_pods"] == 2 and planned["worker_groups"] == ["a100"]


def test_every_pod_mounts_the_cache_and_takes_the_login_secret(planned):
    cluster = planned["ray_service"]["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for template in templates:
        spec, container = template["spec"], template["spec"]["containers"][0]
        assert spec["volumes"] == [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}}]
        assert container["volumeMounts"] == [{"name": "model-cache", "mountPath": "/data/model-cache"}]
        assert container["envFrom"] == [{"secretRef": {"name": "auth-config"}}]
        assert {"name": "HF_HOME", "value": "/data/model-cache"} in container["env"]
        assert template["metadata"]["labels"]["aicluster.io/ray-serve"] == "llm-serve"
        assert template["metadata"]["annotations"] == {"aicluster.io/auth-config-checksum": "c0ffee"}


def test_no_checksum_no_annotation():
    service = ray_serve.plan(SETTINGS, NODES)["ray_service"]
    assert "annotations" not in service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]


def test_cpu_groups_get_no_gpu_and_no_runtime_class():
    cpu = {"name": "cpu", "replicas": 1, "gpus": 0}
    groups = ray_serve.plan(settings_with(worker_groups=[A100, cpu]), NODES)["ray_service"]["spec"][
        "rayClusterConfig"]["workerGroupSpecs"]
    spec = groups[1]["template"]["spec"]
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]
    assert "runtimeClassName" not in spec and "nodeSelector" not in spec


def test_defaults_fill_what_the_inventory_leaves_out():
    minimal = {"name": "llm-serve", "image": "registry.example/serve:1.0", "worker_groups": [{"name": "gpu"}],
               "auth_users": [ALICE]}
    # The default pipeline of 2 needs 2 GPUs: one worker of 1 GPU (the group's defaults) is not enough.
    assert ray_serve.problems(minimal, NODES) == [
        "application: tensor_parallelism x pipeline_parallelism = 2 GPUs per replica, 2 for min_replicas 1, but the "
        "enabled worker groups have 1"]
    result = ray_serve.plan(merged(minimal, {"worker_groups": [{"name": "gpu", "replicas": 2}]}), NODES)
    group = result["ray_service"]["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 2, 2)
    assert "nodeSelector" not in group["template"]["spec"]  # no gpu_type: any Node with the GPUs
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "8", "memory": "24Gi", "nvidia.com/gpu": "1"}
    config = yaml.safe_load(result["ray_service"]["spec"]["serveConfigV2"])
    assert config["applications"][0]["runtime_env"]["env_vars"]["PIPELINE_PARALLELISM"] == "2"


def test_the_result_names_users_without_passwords(planned):
    assert planned["users"] == [{"name": "alice", "role": "admin"}, {"name": "bob", "role": "user"}]
    assert planned["gpu_types"] == {"A100": 8, "T4": 2}
    assert_no_password(json.dumps(planned))


def test_removal_keeps_the_model_cache():
    removal = ray_serve.removal("llm-serve", "llm", "auth-config")
    assert removal["objects"] == [{"apiVersion": "ray.io/v1", "kind": "RayService",
                                   "metadata": {"name": "llm-serve", "namespace": "llm"}}]
    assert {s["kind"]: s["label_selector"] for s in removal["selectors"]} == {
        "RayCluster": "ray.io/originated-from-cr-name=llm-serve,ray.io/originated-from-crd=RayService",
        "Pod": "aicluster.io/ray-serve=llm-serve"}
    assert removal["secret"]["kind"] == "Secret" and removal["secret"]["metadata"]["name"] == "auth-config"
    assert "PersistentVolumeClaim" not in json.dumps(removal)


@pytest.mark.parametrize("value", [
    {"a": "x: y", "b": ["- z", "#c", ""], "c": {"d": 'say "hi"\nnext'}, "e": [], "f": {}, "g": True, "h": 1.5,
     "i": None, "j": [{"k": 1, "l": [1, 2]}, [3, 4]], "app.kubernetes.io/x": "ü 日本"},
])
def test_yaml_text_reads_back_as_the_same_data(value):
    assert yaml.safe_load(ray_serve.yaml_text(value)) == value


def test_auth_checksum_is_stable_and_changes_with_the_data():
    data = {"JWT_KEY": "a2V5", "USER_LIST": "QUxJQ0U="}
    assert ray_serve.auth_checksum(data) == ray_serve.auth_checksum(dict(reversed(list(data.items()))))
    assert ray_serve.auth_checksum(data) != ray_serve.auth_checksum({**data, "USER_LIST": "QUxJQ0UsQk9C"})
    assert re.fullmatch(r"[0-9a-f]{64}", ray_serve.auth_checksum(data))


# ------------------------------------------------------------------ the module, against the fake API server
CLAIM_ROUTE = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/persistentvolumeclaims/(?P<name>[^/]+)$")


class ClusterWithClaims(FakeKube):
    """The fake API server with PersistentVolumeClaims (GET only)."""

    def __init__(self, *args, claims=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.claims = set(claims)

    def handle(self, handler, method):
        match = CLAIM_ROUTE.match(handler.path.split("?")[0])
        if match is None or method != "GET":
            super().handle(handler, method)
            return
        with self.lock:
            self.requests.append((method, handler.path))
        key = (match["namespace"], match["name"])
        if key in self.claims:
            self._send(handler, 200, {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "metadata": {
                "name": key[1], "namespace": key[0]}, "status": {"phase": "Bound"}})
        else:
            self._send(handler, 404, {"kind": "Status", "code": 404,
                                      "message": f'persistentvolumeclaims "{key[1]}" not found'})


SECRET = {"metadata": {"name": "auth-config", "namespace": "llm"}, "type": "Opaque",
          "data": {"JWT_KEY": "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXktc2VjcmV0", "USER_LIST": "QUxJQ0U="}}


@pytest.fixture
def kube():
    nodes = {n["metadata"]["name"]: {"metadata": {"labels": n["metadata"]["labels"]}, "status": n["status"]}
             for n in NODES}
    with ClusterWithClaims(nodes, claims={("llm", "model-cache")},
                           secrets={("llm", "auth-config"): SECRET}) as server:
        yield server


def run(kube, tmp_path, capsys, check=False, **more):
    args = {"kubeconfig": kube.kubeconfig(tmp_path / "kubeconfig.json"), **copy.deepcopy(SETTINGS), **more}
    if check:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        ray_serve_plan.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    result["_rc"], result["_out"] = exit_info.value.code, out
    return result


def test_module_renders_the_rayservice_with_the_secrets_checksum(kube, tmp_path, capsys):
    result = run(kube, tmp_path, capsys)
    assert result["_rc"] == 0, result.get("msg")
    assert result["changed"] is False and result["problems"] == []
    checksum = ray_serve.auth_checksum(SECRET["data"])
    assert result["auth_checksum"] == checksum
    head = result["ray_service"]["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    assert head["metadata"]["annotations"] == {"aicluster.io/auth-config-checksum": checksum}
    assert result["worker_pods"] == 2 and result["gpu_types"] == {"A100": 8, "T4": 2}
    assert result["users"] == [{"name": "alice", "role": "admin"}, {"name": "bob", "role": "user"}]
    assert_no_password(result["_out"])
    assert SECRET["data"]["JWT_KEY"] not in result["_out"]  # the Secret's content never leaves the module
    assert all(method == "GET" for method, _ in kube.requests)


def test_module_without_a_secret_yet_renders_no_checksum(kube, tmp_path, capsys):
    kube.secrets.clear()
    result = run(kube, tmp_path, capsys)
    assert result["_rc"] == 0 and result["auth_checksum"] == ""
    assert "annotations" not in result["ray_service"]["spec"]["rayClusterConfig"]["headGroupSpec"]["template"][
        "metadata"]


def test_module_fails_naming_every_problem_without_a_password(kube, tmp_path, capsys):
    result = run(kube, tmp_path, capsys, worker_groups=[group_with(gpu_type="H100"), group_with(name="big", gpus=16)],
                 auth_users=[ALICE, dict(BOB, password=SHORT_PASSWORD), {"name": "carol", "role": "user"}])
    assert result["_rc"] == 1 and result["changed"] is False
    assert result["msg"].startswith("4 problems in the Ray Serve settings: ")
    for problem in ("worker group a100: gpu_type H100 is not the gpu-type label of any Node (the Nodes have A100, T4)",
                    "worker group big: gpus 16 is more than any Node has: the Nodes with gpu-type=A100 have at most "
                    "8 nvidia.com/gpu allocatable",
                    "user bob: the password is shorter than 12 characters (auth_password_min_length)",
                    "user carol: no password (give one from the vaulted inventory)"):
        assert problem in result["problems"] and problem in result["msg"]
    assert "ray_service" not in result
    assert_no_password(result["_out"])
    assert all(method == "GET" for method, _ in kube.requests)


def test_module_refuses_a_missing_model_cache_claim(kube, tmp_path, capsys):
    kube.claims.clear()
    result = run(kube, tmp_path, capsys)
    assert result["_rc"] == 1
    assert result["problems"] == ["the model cache claim llm/model-cache does not exist (role model_cache makes it)"]


def test_module_in_check_mode_only_warns_about_a_missing_claim(kube, tmp_path, capsys, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule

    # The warnings the module gives, whatever other tests of this process left in ansible's global warning store.
    said = []
    original = AnsibleModule.warn
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning, *a, **k: (said.append(str(warning)),
                                                                              original(self, warning, *a, **k))[1])
    kube.claims.clear()
    result = run(kube, tmp_path, capsys, check=True)
    assert result["_rc"] == 0 and "ray_service" in result
    assert any("the model cache claim llm/model-cache does not exist" in w for w in said), said


def test_module_names_bad_input_also_when_the_cluster_cannot_be_read(tmp_path, capsys):
    with ClusterWithClaims() as server:
        kubeconfig = server.kubeconfig(tmp_path / "kubeconfig.json")
    args = {**copy.deepcopy(SETTINGS), "kubeconfig": kubeconfig, "request_timeout": 2,
            "auth_users": [dict(ALICE, password=SHORT_PASSWORD)]}
    with patch_module_args(args), pytest.raises(SystemExit):
        ray_serve_plan.main()
    result = json.loads(capsys.readouterr().out)
    assert "user alice: the password is shorter than 12 characters (auth_password_min_length)" in result["problems"]
    assert result["problems"][-1].startswith("cannot read the cluster: ")
    assert SHORT_PASSWORD not in json.dumps(result)


def test_module_absent_reads_nothing(kube, tmp_path, capsys):
    result = run(kube, tmp_path, capsys, state="absent")
    assert result["_rc"] == 0 and kube.requests == []
    assert result["removal"] == ray_serve.removal("llm-serve", "llm", "auth-config")
