"""module_utils/sglang and the sglang_plan module: every rule of MindCluster's SGLang-on-OME table and the
referential rules (one test each), and the OME objects of a valid prefill/decode configuration in Deployment and
in LeaderWorkerSet mode. No cluster."""

from __future__ import annotations

import copy
import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import sglang
from ansible_collections.aicluster.platform.plugins.modules import sglang_plan
from plan_helpers import DROP, assert_problem, merged

NPU = "huawei.com/Ascend910"
MODEL = {"name": "llama-3-2-1b-instruct", "format": "safetensors", "architecture": "LlamaForCausalLM",
         "parameter_size": "1B", "path": "/data/k8s/models/llama-3-2-1b-instruct"}
FORMATS = [{"format": "safetensors", "architecture": "LlamaForCausalLM"}]
IMAGES = {"engine": "registry.example/sglang:v0.5.5-npu", "router": "registry.example/sgl-router:v0.2.4"}
A2 = {"name": "srt-a2", "accelerator_type": "module-910b-8", "mode": "deployment", "fault_retry_times": 3,
      "images": IMAGES, "model_formats": FORMATS}
A3 = {"name": "srt-a3", "accelerator_type": "module-a3-16", "mode": "deployment", "images": IMAGES,
      "model_formats": FORMATS}
SUPERPOD = {"name": "srt-superpod", "accelerator_type": "module-a3-16-super-pod", "mode": "leaderworkerset",
            "nodes_per_instance": 2, "sp_block": 32, "fault_scheduling": "grace", "host_arch": "huawei-arm",
            "images": IMAGES, "model_formats": FORMATS}
CHAT = {"name": "chat", "namespace": "inference", "model": "llama-3-2-1b-instruct", "runtime": "srt-a2",
        "prefill": 2, "decode": 1}
BIG = {"name": "big", "namespace": "inference", "model": "llama-3-2-1b-instruct", "runtime": "srt-superpod",
       "prefill": 1, "decode": 2, "images": {"engine": "registry.example/sglang:patched"}}


def problems_of(model=None, runtime=None, app=None, runtimes=None, model_root=sglang.DEFAULT_MODEL_ROOT):
    """Problems of the standard configuration with one model, runtime or application changed."""
    models = [merged(MODEL, model or {})]
    runtimes = runtimes or [merged(A2, runtime or {}), SUPERPOD]
    apps = [merged(CHAT, app or {})]
    return sglang.problems(models, runtimes, apps, model_root)


def test_the_standard_configuration_is_fine():
    assert sglang.problems([MODEL], [A2, A3, SUPERPOD], [CHAT, BIG]) == []


# ------------------------------------------------------------------ models
@pytest.mark.parametrize(("change", "problem"), [
    ({"name": DROP}, "models[0]: name is required"),
    ({"name": "Llama_3"}, "model Llama_3: name 'Llama_3' must be a DNS-1123 label..."),
    ({"name": "dshm"}, "model dshm: name dshm is taken by a volume of the runtimes' pods (OME names the model's "
                       "volume after the model)"),
    ({"format": DROP}, "model llama-3-2-1b-instruct: format is required"),
    ({"architecture": ""}, "model llama-3-2-1b-instruct: architecture must be a non-empty string, got ''"),
    ({"framework": 4}, "model llama-3-2-1b-instruct: framework must be a non-empty string, got 4"),
    ({"parameter_size": "1 billion"}, "model llama-3-2-1b-instruct: parameter_size must be a number with M, B or T "
                                      "(e.g. 1B, 7.5B), got '1 billion'"),
    ({"path": DROP}, "model llama-3-2-1b-instruct: path is required"),
    ({"path": "models/llama"}, "model llama-3-2-1b-instruct: path models/llama must be an absolute path"),
    ({"path": "/data/k8s/../etc/llama"}, "model llama-3-2-1b-instruct: path /data/k8s/../etc/llama must not "
                                         "contain '..'"),
    ({"path": "/srv/models/llama"}, "model llama-3-2-1b-instruct: path /srv/models/llama is not under model_root "
                                    "/data/k8s"),
    ({"path": "/data/k8s"}, "model llama-3-2-1b-instruct: path /data/k8s is not under model_root /data/k8s"),
    ({"path": "/data/k8sx/llama"}, "model llama-3-2-1b-instruct: path /data/k8sx/llama is not under model_root "
                                   "/data/k8s"),
    ({"storage_uri": "/data/k8s/models/x"}, "model llama-3-2-1b-instruct: storage_uri must be a URI such as "
                                            "local:///data/k8s/models/x, got '/data/k8s/models/x'"),
    ({"quantisation": "int8"}, "model llama-3-2-1b-instruct: unknown field quantisation (known: name, format, "
                               "architecture, parameter_size, path, framework, storage_uri)"),
], ids=["no-name", "bad-name", "volume-name", "no-format", "empty-architecture", "framework-type", "parameter-size",
        "no-path", "relative-path", "dotdot-path", "outside-root", "root-itself", "root-prefix-only", "storage-uri",
        "unknown-field"])
def test_model_rules(change, problem):
    assert_problem(problems_of(model=change), problem)


def test_a_model_defined_twice():
    found = sglang.problems([MODEL, MODEL], [A2], [CHAT])
    assert found == ["model llama-3-2-1b-instruct is defined 2 times"]


def test_model_root_must_be_absolute():
    found = problems_of(model_root="data/k8s")
    assert "model_root data/k8s must be an absolute path" in found


def test_model_root_is_honoured():
    assert problems_of(model={"path": "/srv/models/llama"}, model_root="/srv/models") == []


# ------------------------------------------------------------------ runtimes: the seed table's rows
def test_accelerator_type_is_one_of_three():
    assert_problem(problems_of(runtime={"accelerator_type": "ascend-910b"}),
                   "runtime srt-a2: accelerator_type 'ascend-910b' is not one of module-910b-8, module-a3-16, "
                   "module-a3-16-super-pod")


def test_accelerator_type_is_required():
    assert_problem(problems_of(runtime={"accelerator_type": DROP}),
                   "runtime srt-a2: accelerator_type is required (one of module-910b-8, module-a3-16, "
                   "module-a3-16-super-pod)")


@pytest.mark.parametrize(("runtime", "chips", "problem"), [
    (A2, 16, "runtime srt-a2: chips_per_pod 16 is not the 8 chips of a module-910b-8 server (Atlas 800I A2): "
             "MindCluster schedules whole servers only"),
    (A3, 8, "runtime srt-a3: chips_per_pod 8 is not the 16 chips of a module-a3-16 server (Atlas 800I A3): "
            "MindCluster schedules whole servers only"),
    (SUPERPOD, 4, "runtime srt-superpod: chips_per_pod 4 is not the 16 chips of a module-a3-16-super-pod server "
                  "(Atlas 900 A3 SuperPoD): MindCluster schedules whole servers only"),
    (A2, "8", "runtime srt-a2: chips_per_pod must be an integer, got '8'"),
], ids=["a2", "a3", "superpod", "string"])
def test_chips_per_pod_is_the_whole_server(runtime, chips, problem):
    found = sglang.problems([MODEL], [merged(runtime, {"chips_per_pod": chips})], [])
    assert_problem(found, problem)


def test_chips_per_pod_equal_to_the_server_is_fine():
    assert sglang.problems([MODEL], [merged(A3, {"chips_per_pod": 16}), merged(A2, {"chips_per_pod": 8})], []) == []


def test_host_arch_is_arm_or_x86():
    assert_problem(problems_of(runtime={"host_arch": "arm64"}),
                   "runtime srt-a2: host_arch 'arm64' is not one of huawei-arm, huawei-x86")


def test_fault_scheduling_is_grace_force_or_off():
    assert_problem(problems_of(runtime={"fault_scheduling": "on"}),
                   "runtime srt-a2: fault_scheduling 'on' is not one of grace, force, off")


def test_pod_rescheduling_is_a_bool():
    assert_problem(problems_of(runtime={"pod_rescheduling": "on"}),
                   "runtime srt-a2: pod_rescheduling must be true or false, got 'on'")


def test_pod_rescheduling_off_needs_fault_scheduling_off():
    assert_problem(problems_of(runtime={"pod_rescheduling": False}),
                   "runtime srt-a2: pod_rescheduling false with fault_scheduling force: MindCluster reschedules the "
                   "failed P/D instance of an OME service only with pod-rescheduling on (set fault_scheduling: off "
                   "to turn rescheduling off)")
    assert problems_of(runtime={"pod_rescheduling": False, "fault_scheduling": "off"}) == []


@pytest.mark.parametrize("retries", [0, -2, "3", True, 1.5, None], ids=["zero", "negative", "string", "bool",
                                                                        "float", "null"])
def test_fault_retry_times_is_a_positive_integer(retries):
    found = problems_of(runtime={"fault_retry_times": retries})
    if retries is None:  # absent: no unconditional retries
        assert found == []
    else:
        assert found == [f"runtime srt-a2: fault_retry_times must be a positive integer, got {retries!r}"]


def test_sp_block_only_on_a_superpod():
    assert_problem(problems_of(runtime={"sp_block": 16}),
                   "runtime srt-a2: sp_block is only for accelerator_type module-a3-16-super-pod (Atlas 900 A3 "
                   "SuperPoD), not 'module-910b-8'")


def test_sp_block_is_a_multiple_of_the_node_chips():
    found = sglang.problems([MODEL], [merged(SUPERPOD, {"name": "srt-a3", "sp_block": 24})], [])
    assert_problem(found, "runtime srt-a3: sp_block 24 is not a multiple of the node's 16 chips")


def test_sp_block_divides_each_instance():
    found = sglang.problems([MODEL], [merged(SUPERPOD, {"sp_block": 48})], [])
    assert found == ["runtime srt-superpod: sp_block 48 does not divide an instance's 32 chips (16 chips x 2 "
                     "nodes): each P/D instance must fill whole logical SuperPoDs"]


def test_sp_block_is_a_positive_integer():
    assert_problem(sglang.problems([MODEL], [merged(SUPERPOD, {"sp_block": "32"})], []),
                   "runtime srt-superpod: sp_block must be a positive integer, got '32'")


def test_sp_block_fitting_deployment_and_lws_instances_is_fine():
    deployment = merged(SUPERPOD, {"name": "srt-sp-deploy", "mode": "deployment", "nodes_per_instance": DROP,
                                   "sp_block": 16})
    lws = merged(SUPERPOD, {"nodes_per_instance": 4, "sp_block": 32})
    assert sglang.problems([MODEL], [deployment, lws], []) == []


# ------------------------------------------------------------------ runtimes: modes and the rest
def test_mode_is_deployment_or_leaderworkerset():
    assert_problem(problems_of(runtime={"mode": "lws"}),
                   "runtime srt-a2: mode 'lws' is not one of deployment, leaderworkerset")


def test_deployment_mode_is_one_node_per_instance():
    assert_problem(problems_of(runtime={"nodes_per_instance": 2}),
                   "runtime srt-a2: nodes_per_instance 2 needs mode leaderworkerset: in mode deployment an instance "
                   "is one pod on one server")


def test_leaderworkerset_mode_is_two_nodes_or_more():
    found = sglang.problems([MODEL], [merged(SUPERPOD, {"nodes_per_instance": 1, "sp_block": 16})], [])
    assert found == ["runtime srt-superpod: nodes_per_instance 1 is too small for mode leaderworkerset (a leader and "
                     "at least one worker: 2 or more); use mode deployment for one server per instance"]


def test_nodes_per_instance_is_an_integer():
    assert_problem(problems_of(runtime={"nodes_per_instance": True}),
                   "runtime srt-a2: nodes_per_instance must be an integer, got True")


@pytest.mark.parametrize(("change", "problem"), [
    ({"name": DROP}, "runtimes[0]: name is required"),
    ({"images": DROP}, "runtime srt-a2: images must be a dict with engine (and decoder, router), got None"),
    ({"images": {"router": "r:1"}}, "runtime srt-a2: images.engine is required"),
    ({"images": {"engine": "sglang: v1"}}, "runtime srt-a2: images.engine must be an image reference without "
                                            "spaces, got 'sglang: v1'"),
    ({"images": {"engine": "s:1", "prefill": "p:1"}}, "runtime srt-a2: images: unknown field prefill (known: "
                                                       "engine, decoder, router)"),
    ({"server_port": 0}, "runtime srt-a2: server_port must be a port number (1-65535), got 0"),
    ({"router_port": "8080"}, "runtime srt-a2: router_port must be a port number (1-65535), got '8080'"),
    ({"tp_size": 0}, "runtime srt-a2: tp_size must be at least 1, got 0"),
    ({"engine_args": "--mem-fraction-static 0.8"}, "runtime srt-a2: engine_args must be a list of arguments, got "
                                                   "'--mem-fraction-static 0.8'"),
    ({"decoder_args": [{"x": 1}]}, "runtime srt-a2: decoder_args item {'x': 1} must be a string or a number"),
    ({"router_args": ["--policy", "{{ policy }}"]}, "runtime srt-a2: router_args item '{{ policy }}' contains '{{': "
                                                    "OME expands Go templates in container fields"),
    ({"env": {"ASCEND_VISIBLE_DEVICES": "0"}}, "runtime srt-a2: env ASCEND_VISIBLE_DEVICES is set by the platform "
                                               "(ASCEND_VISIBLE_DEVICES from the chips Volcano allocates, MODEL_PATH "
                                               "by OME from the model's path)"),
    ({"env": {"1BAD NAME": "x"}}, "runtime srt-a2: env name '1BAD NAME' is not a valid environment variable name"),
    ({"env": {"HCCL_BUFFSIZE": None}}, "runtime srt-a2: env HCCL_BUFFSIZE must be a string or a number, got None"),
    ({"model_formats": []}, "runtime srt-a2: model_formats must be a non-empty list of {format, architecture, "
                            "framework}, got []"),
    ({"model_formats": [{"format": "safetensors"}]}, "runtime srt-a2: model_formats[0].architecture is required"),
    ({"resources": {"limits": {NPU: 8}}}, f"runtime srt-a2: resources.limits must not name {NPU}: the chips come "
                                          "from chips_per_pod (the whole server)"),
    ({"resources": {"requests": ["cpu"]}}, "runtime srt-a2: resources.requests must map resource names to "
                                           "quantities, got ['cpu']"),
    ({"router_resources": {"limit": {"cpu": "1"}}}, "runtime srt-a2: router_resources: unknown field limit (known: "
                                                    "requests, limits)"),
    ({"sp_blok": 16}, "runtime srt-a2: unknown field sp_blok (known: name, accelerator_type, ..."),
], ids=["no-name", "no-images", "no-engine-image", "image-space", "image-key", "server-port", "router-port", "tp-size",
        "args-string", "args-item", "args-template", "env-reserved", "env-name", "env-value", "formats-empty",
        "formats-architecture", "resources-npu", "resources-section", "router-resources-key", "unknown-field"])
def test_runtime_rules(change, problem):
    assert_problem(problems_of(runtime=change), problem)


def test_a_runtime_defined_twice():
    found = sglang.problems([MODEL], [A2, A2], [])
    assert found == ["runtime srt-a2 is defined 2 times"]


# ------------------------------------------------------------------ applications
@pytest.mark.parametrize(("change", "problem"), [
    ({"name": DROP}, "applications[0]: name is required"),
    ({"name": "1chat"}, "application 1chat: name '1chat' must start with a letter (a DNS-1035 label, as OME "
                        "requires)"),
    ({"name": "Chat"}, "application Chat: name 'Chat' must be a DNS-1123 label..."),
    ({"namespace": "In Ference"}, "application chat: namespace 'In Ference' must be a DNS-1123 label..."),
    ({"state": "running"}, "application chat: state 'running' is not one of present, absent"),
    ({"model": DROP}, "application chat: model is required"),
    ({"model": "qwen"}, "application chat: model 'qwen' is not one of the models (llama-3-2-1b-instruct)"),
    ({"runtime": DROP}, "application chat: runtime is required"),
    ({"runtime": "srt-910"}, "application chat: runtime 'srt-910' is not one of the runtimes (srt-a2, srt-superpod)"),
    ({"prefill": DROP}, "application chat: prefill (the number of prefill instances, OME's engine) is required"),
    ({"prefill": 0}, "application chat: prefill must be at least 1, got 0"),
    ({"decode": True}, "application chat: decode must be an integer, got True"),
    ({"decode": "2"}, "application chat: decode must be an integer, got '2'"),
    ({"router": -1}, "application chat: router must be at least 0, got -1"),
    ({"images": {"engine": "a b"}}, "application chat: images.engine must be an image reference without spaces, "
                                    "got 'a b'"),
    ({"replicas": 2}, "application chat: unknown field replicas (known: name, namespace, model, runtime, prefill, "
                      "decode, router, images, min_available, state)"),
], ids=["no-name", "dns-1035", "upper-case", "namespace", "state", "no-model", "unknown-model", "no-runtime",
        "unknown-runtime", "no-prefill", "zero-prefill", "bool-decode", "string-decode", "negative-router", "image",
        "unknown-field"])
def test_application_rules(change, problem):
    assert_problem(problems_of(app=change), problem)


def test_schedule_min_available_is_refused_in_leaderworkerset_mode():
    found = problems_of(app={"runtime": "srt-superpod", "min_available": {"prefill": 2}})
    assert found == ["application chat: min_available is not used with runtime srt-superpod (mode leaderworkerset): "
                     "MindCluster takes huawei.com/schedule_minAvailable only in Deployment mode, LeaderWorkerSet "
                     "gang-schedules each instance itself"]


def test_schedule_min_available_in_deployment_mode_is_the_instance_count():
    found = problems_of(app={"min_available": {"prefill": 1, "decode": 1}})
    assert found == ["application chat: min_available.prefill 1 must equal prefill (2): MindCluster's "
                     "huawei.com/schedule_minAvailable is the engine's instance count in Deployment mode"]
    assert problems_of(app={"min_available": {"prefill": 2, "decode": 1}}) == []


def test_schedule_min_available_is_a_dict():
    assert_problem(problems_of(app={"min_available": 2}),
                   "application chat: min_available must be a dict with prefill and/or decode, got 2")


def test_the_model_must_be_one_the_runtime_serves():
    found = problems_of(model={"architecture": "Qwen2ForCausalLM"})
    assert found == ["application chat: model llama-3-2-1b-instruct (safetensors, Qwen2ForCausalLM, framework "
                     "transformers) matches none of runtime srt-a2's model_formats: OME would refuse the runtime"]


def test_frameworks_must_match_and_default_to_transformers():
    """OME's matcher compares the frameworks; its CRD requires one per runtime model format, so an unset framework
    is transformers on both sides."""
    found = problems_of(model={"framework": "vllm"})
    assert_problem(found, "application chat: model llama-3-2-1b-instruct (safetensors, LlamaForCausalLM, framework "
                          "vllm) matches none of runtime srt-a2's model_formats...")
    both = [{"format": "safetensors", "architecture": "LlamaForCausalLM", "framework": "transformers"}]
    assert problems_of(model={"framework": "transformers"}) == []
    assert problems_of(runtime={"model_formats": both}) == []


def test_a_router_needs_an_image():
    found = problems_of(runtime={"images": {"engine": "s:1"}})
    assert found == ["application chat: router 1 needs a router image: set images.router here or in runtime srt-a2"]
    assert problems_of(runtime={"images": {"engine": "s:1"}}, app={"images": {"router": "r:2"}}) == []
    assert problems_of(runtime={"images": {"engine": "s:1"}}, app={"router": 0}) == []


def test_deployment_mode_name_fits_the_decoder_service():
    name = "a" * 56
    found = problems_of(app={"name": name})
    assert found == [f"application {name}: name '{name}' is too long: OME derives the Service name {name}-decoder "
                     "(64 characters, at most 63: a DNS-1035 label); use at most 55 characters"]
    assert problems_of(app={"name": "a" * 55}) == []


def test_leaderworkerset_mode_name_fits_the_worker_statefulsets():
    name = "a" * 39
    found = problems_of(app={"name": name, "runtime": "srt-superpod", "decode": 10})
    assert found == [f"application {name}: name '{name}' is too long: OME derives the worker StatefulSet name "
                     f"lws-{name}-decoder-9 (53 characters, at most 52: its pods are labelled "
                     "controller-revision-hash=<name>-<hash>, at most 63 characters); use at most 38 characters"]
    assert problems_of(app={"name": "a" * 38, "runtime": "srt-superpod", "decode": 10}) == []


def test_an_application_defined_twice_in_a_namespace():
    found = sglang.problems([MODEL], [A2], [CHAT, merged(CHAT, {"prefill": 1})])
    assert found == ["application chat is defined 2 times in namespace inference"]


def test_one_name_in_two_namespaces_is_fine():
    assert sglang.problems([MODEL], [A2], [CHAT, merged(CHAT, {"namespace": "staging"})]) == []


def test_an_absent_application_needs_only_its_name():
    assert sglang.problems([], [], [{"name": "old-chat", "namespace": "inference", "state": "absent",
                                     "model": "gone", "runtime": "gone-too"}]) == []


def test_a_null_setting_means_its_default():
    result = sglang.plan([merged(MODEL, {"framework": None})],
                         [merged(A2, {"fault_scheduling": None, "fault_retry_times": None, "server_port": None})],
                         [merged(CHAT, {"router": None, "namespace": None, "state": None})])
    engine = runtime_named(result["objects"], "srt-a2")["spec"]["engineConfig"]
    assert engine["labels"] == {"fault-scheduling": "force", "pod-rescheduling": "on"}
    assert service_named(result["objects"], "chat")["metadata"]["namespace"] == "default"
    assert service_named(result["objects"], "chat")["spec"]["router"] == {"minReplicas": 1, "maxReplicas": 1}


def test_inputs_must_be_lists():
    assert sglang.problems({"name": "m"}, [], None) == ["models must be a list, got {'name': 'm'}",
                                                        "applications must be a list, got None"]


def test_every_problem_is_reported_at_once():
    found = sglang.problems([merged(MODEL, {"path": "/srv/x"})],
                            [merged(A2, {"fault_retry_times": 0, "fault_scheduling": "soft"})],
                            [merged(CHAT, {"prefill": 0}), merged(CHAT, {"name": "Bad"})])
    assert len(found) == 5, found


def test_plan_refuses_with_every_problem():
    with pytest.raises(sglang.SGLangError) as info:
        sglang.plan([MODEL], [merged(A2, {"fault_retry_times": 0})], [merged(CHAT, {"decode": 0})])
    assert info.value.problems == ["runtime srt-a2: fault_retry_times must be a positive integer, got 0",
                                   "application chat: decode must be at least 1, got 0"]


# ------------------------------------------------------------------ generation
def runtime_named(objects, name):
    return next(o for o in objects if o["kind"] == "ClusterServingRuntime" and o["metadata"]["name"] == name)


def service_named(objects, name):
    return next(o for o in objects if o["kind"] == "InferenceService" and o["metadata"]["name"] == name)


def assert_npu_pod(pod, accelerator, chips, role, serving=True):
    """What MindCluster's table asks of a prefill/decode pod spec (OME component, leader or worker)."""
    assert pod["schedulerName"] == "volcano"
    assert pod["nodeSelector"]["accelerator-type"] == accelerator
    runner = pod["runner"]
    assert runner["resources"]["requests"][NPU] == chips
    assert runner["resources"]["limits"][NPU] == chips
    assert {"name": "ASCEND_VISIBLE_DEVICES",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['huawei.com/Ascend910']"}}} in runner["env"]
    assert {"name": "ascend-driver", "hostPath": {"path": "/usr/local/Ascend/driver"}} in pod["volumes"]
    assert {"name": "ascend-driver", "mountPath": "/usr/local/Ascend/driver"} in runner["volumeMounts"]
    command = runner["command"]
    assert command[:3] == ["python3", "-m", "sglang.launch_server"]
    assert command[command.index("--disaggregation-mode") + 1] == role
    assert command[command.index("--disaggregation-transfer-backend") + 1] == "ascend"
    assert command[command.index("--device") + 1] == "npu"
    assert ("readinessProbe" in runner) is serving


def test_deployment_mode_objects():
    result = sglang.plan([MODEL], [A2], [CHAT])
    assert [(o["kind"], o["metadata"]["name"]) for o in result["objects"]] == [
        ("ClusterBaseModel", "llama-3-2-1b-instruct"), ("ClusterServingRuntime", "srt-a2"),
        ("InferenceService", "chat")]
    model = result["objects"][0]
    assert model["apiVersion"] == "ome.io/v1beta1"
    assert model["spec"] == {"disabled": False, "modelFormat": {"name": "safetensors"},
                             "modelFramework": {"name": "transformers"},
                             "modelArchitecture": "LlamaForCausalLM", "modelParameterSize": "1B",
                             "storage": {"path": "/data/k8s/models/llama-3-2-1b-instruct",
                                         "storageUri": "local:///data/k8s/models/llama-3-2-1b-instruct"}}
    runtime = runtime_named(result["objects"], "srt-a2")
    spec = runtime["spec"]
    assert spec["supportedModelFormats"] == [{"name": "safetensors", "modelFormat": {"name": "safetensors"},
                                              "modelArchitecture": "LlamaForCausalLM", "autoSelect": False,
                                              "priority": 1, "modelFramework": {"name": "transformers"}}]
    for config, role in ((spec["engineConfig"], "prefill"), (spec["decoderConfig"], "decode")):
        assert "leader" not in config and "worker" not in config
        assert_npu_pod(config, "module-910b-8", 8, role)
        assert config["labels"] == {"fault-scheduling": "force", "pod-rescheduling": "on", "fault-retry-times": "3"}
        assert "annotations" not in config  # no sp-block off a SuperPoD
        assert config["runner"]["image"] == IMAGES["engine"]
        assert config["runner"]["command"][config["runner"]["command"].index("--tp-size") + 1] == "8"
        assert "--nnodes" not in config["runner"]["command"]
    router = spec["routerConfig"]["runner"]
    assert router["image"] == IMAGES["router"]
    assert "schedulerName" not in spec["routerConfig"]  # no NPU: the default scheduler
    command = router["command"]
    assert command[command.index("--prefill-selector") + 1:command.index("--decode-selector")] == [
        "component=engine", "ome.io/inferenceservice=$(INFERENCESERVICE_NAME)"]
    assert command[command.index("--service-discovery-port") + 1] == "8080"
    isvc = service_named(result["objects"], "chat")
    assert isvc["metadata"] == {"name": "chat", "namespace": "inference",
                                "labels": {"app.kubernetes.io/managed-by": "aicluster",
                                           "aicluster.io/sglang-app": "chat"}}
    assert isvc["spec"] == {
        "model": {"name": "llama-3-2-1b-instruct", "kind": "ClusterBaseModel"},
        "runtime": {"name": "srt-a2", "kind": "ClusterServingRuntime"},
        "engine": {"minReplicas": 2, "maxReplicas": 2, "annotations": {"huawei.com/schedule_minAvailable": "2"}},
        "decoder": {"minReplicas": 1, "maxReplicas": 1, "annotations": {"huawei.com/schedule_minAvailable": "1"}},
        "router": {"minReplicas": 1, "maxReplicas": 1},
    }
    for obj in result["objects"]:
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "aicluster"


def test_leaderworkerset_mode_objects():
    result = sglang.plan([MODEL], [SUPERPOD], [BIG])
    spec = runtime_named(result["objects"], "srt-superpod")["spec"]
    for config, role in ((spec["engineConfig"], "prefill"), (spec["decoderConfig"], "decode")):
        assert config["labels"] == {"fault-scheduling": "grace", "pod-rescheduling": "on"}
        assert config["annotations"] == {"sp-block": "32"}
        assert "runner" not in config and "schedulerName" not in config  # OME reads the leader's, not these
        assert_npu_pod(config["leader"], "module-a3-16-super-pod", 16, role)
        assert_npu_pod(config["worker"], "module-a3-16-super-pod", 16, role, serving=False)
        assert config["worker"]["size"] == 1  # 2 nodes: a leader and one worker
        for pod in (config["leader"], config["worker"]):
            assert pod["nodeSelector"] == {"accelerator-type": "module-a3-16-super-pod", "host-arch": "huawei-arm"}
            command = pod["runner"]["command"]
            assert command[command.index("--tp-size") + 1] == "32"
            assert command[command.index("--dist-init-addr") + 1] == "$(LWS_LEADER_ADDRESS):5757"
            assert command[command.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"
    command = spec["routerConfig"]["runner"]["command"]
    assert command[command.index("--decode-selector") + 1:] == [
        "component=decoder", "ome.io/inferenceservice=$(INFERENCESERVICE_NAME)",
        "leaderworkerset.sigs.k8s.io/worker-index=0"]
    isvc = service_named(result["objects"], "big")
    override = {"runner": {"name": "ome-container", "image": "registry.example/sglang:patched"}}
    assert isvc["spec"]["engine"] == {"minReplicas": 1, "maxReplicas": 1, "leader": override, "worker": override}
    assert isvc["spec"]["decoder"] == {"minReplicas": 2, "maxReplicas": 2, "leader": override, "worker": override}
    assert "annotations" not in isvc["spec"]["engine"]  # no schedule_minAvailable with LeaderWorkerSet


def test_runtime_options_reach_the_pods():
    runtime = merged(A3, {"fault_scheduling": "off", "pod_rescheduling": False, "env": {"HCCL_BUFFSIZE": 1024},
                          "resources": {"requests": {"cpu": "32", "memory": "256Gi"}},
                          "engine_args": ["--mem-fraction-static", 0.8], "tp_size": 8, "server_port": 30000,
                          "images": {"engine": "e:1", "decoder": "d:1", "router": "r:1"}})
    spec = runtime_named(sglang.plan([MODEL], [runtime], [])["objects"], "srt-a3")["spec"]
    engine, decoder = spec["engineConfig"], spec["decoderConfig"]
    assert engine["labels"] == {"fault-scheduling": "off"}
    assert {"name": "HCCL_BUFFSIZE", "value": "1024"} in engine["runner"]["env"]
    assert engine["runner"]["resources"] == {"requests": {"cpu": "32", "memory": "256Gi", NPU: 16},
                                             "limits": {NPU: 16}}
    assert engine["runner"]["command"][-2:] == ["--mem-fraction-static", "0.8"]
    assert "--mem-fraction-static" not in decoder["runner"]["command"]
    assert engine["runner"]["command"][engine["runner"]["command"].index("--tp-size") + 1] == "8"
    assert engine["runner"]["ports"] == [{"containerPort": 30000, "name": "http1", "protocol": "TCP"}]
    assert (engine["runner"]["image"], decoder["runner"]["image"]) == ("e:1", "d:1")
    router = spec["routerConfig"]["runner"]["command"]
    assert router[router.index("--service-discovery-port") + 1] == "30000"


def test_an_application_without_router():
    isvc = service_named(sglang.plan([MODEL], [A2], [merged(CHAT, {"router": 0})])["objects"], "chat")
    assert "router" not in isvc["spec"]  # minReplicas 0 would make OME deploy it with Knative


def test_plan_order_refs_absent_and_namespaces():
    old = {"name": "old-chat", "namespace": "inference", "state": "absent"}
    result = sglang.plan([MODEL], [A2, SUPERPOD], [CHAT, old, merged(BIG, {"namespace": "batch"})])
    assert [o["kind"] for o in result["objects"]] == ["ClusterBaseModel", "ClusterServingRuntime",
                                                      "ClusterServingRuntime", "InferenceService", "InferenceService"]
    assert result["absent"] == [{"apiVersion": "ome.io/v1beta1", "kind": "InferenceService",
                                 "metadata": {"name": "old-chat", "namespace": "inference"}}]
    assert result["applications"] == {
        "inference/chat": [{"apiVersion": "ome.io/v1beta1", "kind": "InferenceService",
                            "metadata": {"name": "chat", "namespace": "inference"}}],
        "inference/old-chat": result["absent"],
        "batch/big": [{"apiVersion": "ome.io/v1beta1", "kind": "InferenceService",
                       "metadata": {"name": "big", "namespace": "batch"}}],
    }
    assert result["namespaces"] == ["batch", "inference"]


def test_generation_leaves_the_input_alone_and_objects_independent():
    runtimes = [copy.deepcopy(A2), copy.deepcopy(A3)]
    before = copy.deepcopy(runtimes)
    objects = sglang.plan([MODEL], runtimes, [])["objects"]
    assert runtimes == before
    a2, a3 = runtime_named(objects, "srt-a2"), runtime_named(objects, "srt-a3")
    assert a2["spec"]["routerConfig"]["runner"]["resources"] is not a3["spec"]["routerConfig"]["runner"]["resources"]
    json.dumps(objects)  # plain data


# ------------------------------------------------------------------ the module
def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        sglang_plan.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def test_module_returns_the_plan(capsys):
    result = run_module({"models": [MODEL], "runtimes": [A2], "applications": [CHAT], "_ansible_check_mode": True},
                        capsys)
    assert result["_rc"] == 0 and result["changed"] is False and result["problems"] == []
    assert [o["kind"] for o in result["objects"]] == ["ClusterBaseModel", "ClusterServingRuntime", "InferenceService"]
    assert list(result["applications"]) == ["inference/chat"] and result["absent"] == []


def test_module_fails_listing_every_problem(capsys):
    result = run_module({"models": [MODEL], "runtimes": [merged(A2, {"sp_block": 16, "fault_retry_times": -1})],
                         "applications": [CHAT]}, capsys)
    assert result["_rc"] == 1 and result["failed"] is True
    assert result["problems"] == [
        "runtime srt-a2: fault_retry_times must be a positive integer, got -1",
        "runtime srt-a2: sp_block is only for accelerator_type module-a3-16-super-pod (Atlas 900 A3 SuperPoD), not "
        "'module-910b-8'"]
    assert result["msg"].startswith("2 problems in the SGLang settings: runtime srt-a2: fault_retry_times")
    assert "objects" not in result



def test_only_narrows_to_one_application_and_what_it_uses():
    other_model = merged(MODEL, {"name": "other-model", "path": "/data/k8s/models/other"})
    apps = [CHAT, {"name": "old", "namespace": "inference", "state": "absent"}]
    result = sglang.plan([MODEL, other_model], [A2, SUPERPOD], apps, only=["chat", "inference/old"])
    kinds = [(o["kind"], o["metadata"]["name"]) for o in result["objects"]]
    assert kinds == [("ClusterBaseModel", MODEL["name"]), ("ClusterServingRuntime", "srt-a2"),
                     ("InferenceService", "chat")]
    assert sorted(result["applications"]) == ["inference/chat", "inference/old"]
    assert [r["metadata"]["name"] for r in result["absent"]] == ["old"]


def test_only_with_an_unknown_application_is_a_problem():
    with pytest.raises(sglang.SGLangError) as error:
        sglang.plan([MODEL], [A2], [CHAT], only=["ghost"])
    assert "application ghost is not among the applications" in error.value.problems


def test_the_router_is_kept_off_npu_servers_unless_allowed():
    router = sglang.plan([MODEL], [A2], [CHAT])["objects"][1]["spec"]["routerConfig"]
    terms = router["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "accelerator-type", "operator": "DoesNotExist"}]}]
    allowed = sglang.plan([MODEL], [merged(A2, {"router_on_npu_nodes": True})], [CHAT])
    assert "affinity" not in allowed["objects"][1]["spec"]["routerConfig"]
    assert_problem(problems_of(runtime={"router_on_npu_nodes": "yes"}),
                   "runtime srt-a2: router_on_npu_nodes must be true or false, got 'yes'")
