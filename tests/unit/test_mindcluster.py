"""module_utils/mindcluster, the mindcluster filters and the mindcluster_release_info module: component
names, release file names (MindCluster's build.sh, tag v26.0.1), a release directory, manifests, the
apply plan (batches, check mode, record) and the removal order. No cluster."""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.filter import mindcluster as filters
from ansible_collections.aicluster.platform.plugins.module_utils import mindcluster
from ansible_collections.aicluster.platform.plugins.modules import mindcluster_release_info

ALL = ["ascend-device-plugin", "volcano", "noded", "clusterd", "npu-exporter"]

# An excerpt of device-plugin-volcano-v26.0.1.yaml as the release ships it (comments, folded args, a DaemonSet
# whose pods carry name=ascend-device-plugin-ds), trimmed to what the tests read.
DEVICE_PLUGIN_RELEASE = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ascend-device-plugin-sa-910
  namespace: kube-system
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: pods-node-ascend-device-plugin-role-910
rules:
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "update", "watch", "patch"]
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: pods-node-ascend-device-plugin-rolebinding-910
subjects:
  - kind: ServiceAccount
    name: ascend-device-plugin-sa-910
    namespace: kube-system
roleRef:
  kind: ClusterRole
  name: pods-node-ascend-device-plugin-role-910
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ascend-device-plugin-daemonset-910
  namespace: kube-system
spec:
  selector:
    matchLabels:
      name: ascend-device-plugin-ds
  template:
    metadata:
      ##### For Kubernetes versions lower than 1.19, seccomp is used with annotations.
      annotations:
        scheduler.alpha.kubernetes.io/critical-pod: ""
        seccomp.security.alpha.kubernetes.io/pod: runtime/default
      labels:
        name: ascend-device-plugin-ds
    spec:
      ##### For Kubernetes version 1.19 and above, seccomp is used with securityContext:seccompProfile
#      securityContext:
#        seccompProfile:
#          type: RuntimeDefault
      nodeSelector:
        accelerator: huawei-Ascend910
      serviceAccountName: ascend-device-plugin-sa-910
      containers:
      - image: ascend-k8sdeviceplugin:v26.0.1
        name: device-plugin-01
        command: [ "/bin/bash", "-c", "--"]
        args: [ "device-plugin  -useAscendDocker=true -volcanoType=true -presetVirtualDevice=true
                 -logFile=/var/log/mindx-dl/devicePlugin/devicePlugin.log -logLevel=0" ]
"""
NODED_RELEASE = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: noded
  namespace: mindx-dl
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: noded
  namespace: mindx-dl
spec:
  selector:
    matchLabels:
      app: noded
  template:
    metadata:
      labels:
        app: noded
    spec:
      nodeSelector:
        workerselector: dls-worker-node
      containers:
        - name: noded
          image: noded:v26.0.1
"""


def obj(kind, name, namespace=None, api_version="v1", **extra):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


def ref(kind, name, namespace=None, api_version="v1"):
    return obj(kind, name, namespace, api_version)


def crd(group, kind, plural, scope="Namespaced"):
    return obj("CustomResourceDefinition", f"{plural}.{group}", api_version="apiextensions.k8s.io/v1",
               spec={"group": group, "scope": scope, "names": {"kind": kind, "plural": plural}})


def deployment(name, namespace, selector):
    return obj("Deployment", name, namespace, "apps/v1",
               spec={"template": {"spec": {"nodeSelector": selector, "containers": []}}})


# ------------------------------------------------------------------ components and settings


@pytest.mark.parametrize(("components", "problem"), [
    (["ascend-device-plugin", "hccl-controller"],
     "unknown MindCluster component(s) hccl-controller: mindcluster_components takes some of ascend-device-plugin, "
     "volcano, noded, clusterd, npu-exporter"),
    (["volcano", "volcano"], "mindcluster_components names volcano more than once"),
    ([], "mindcluster_components is empty: nothing to install (mindcluster_state: absent removes the components)"),
    ("volcano", "mindcluster_components must be a list of component names, got 'volcano'"),
])
def test_component_problems(components, problem):
    assert mindcluster.component_problems(components) == [problem]


def test_every_component_is_fine():
    assert mindcluster.component_problems(ALL) == []


@pytest.mark.parametrize(("settings", "problem"), [
    ({"version": "26.0 .1"}, "mindcluster_version must be a version such as 26.0.1, got '26.0 .1'"),
    ({"volcano_version": ""}, "mindcluster_volcano_version must be a version such as 26.0.1, got ''"),
    ({"release_files": {"hccl": "x.yaml"}}, "mindcluster_release_files: unknown component 'hccl'"),
    ({"release_files": {"noded": "sub/noded.yaml"}},
     "mindcluster_release_files[noded] must be a file name (no directory), got 'sub/noded.yaml'"),
    ({"node_selectors": {"clusterd": {}}}, "mindcluster_clusterd_node_selector must be a non-empty dict"),
    ({"node_selectors": {"npu-exporter": {"worker selector": "x"}}},
     "mindcluster_npu_exporter_node_selector: label 'worker selector':"),
    ({"node_selectors": {"noded": {"workerselector": "dls worker"}}},
     "mindcluster_noded_node_selector: label 'workerselector': value 'dls worker' must be empty or consist of"),
    ({"images": {"mindcluster_noded_image": "noded: v26"}},
     "mindcluster_noded_image must be an image reference without spaces, got 'noded: v26'"),
])
def test_settings_problems(settings, problem):
    problems = mindcluster.settings_problems(settings)
    assert any(p.startswith(problem) for p in problems), problems


def test_settings_of_the_role_defaults_are_fine():
    assert mindcluster.settings_problems({
        "components": ALL, "version": "26.0.1", "volcano_version": "v1.9.0", "release_files": {},
        "node_selectors": {"ascend-device-plugin": {"accelerator": "huawei-Ascend910"},
                           "clusterd": {"masterselector": "dls-master-node"}},
        "images": {"mindcluster_noded_image": "registry.example/ascendhub/noded:v26.0.1"}}) == []


def test_release_file_names_are_build_sh_names_in_install_order():
    assert mindcluster.release_file_names(["npu-exporter", "clusterd", "volcano", "noded", "ascend-device-plugin"],
                                          "26.0.1", "1.9.0") == {
        "ascend-device-plugin": "device-plugin-volcano-v26.0.1.yaml",
        "volcano": "volcano-v1.9.0.yaml",
        "noded": "noded-v26.0.1.yaml",
        "clusterd": "clusterd-v26.0.1.yaml",
        "npu-exporter": "npu-exporter-v26.0.1.yaml",
    }


def test_release_file_names_take_a_leading_v_and_overrides():
    names = mindcluster.release_file_names(["clusterd", "volcano"], "v26.0.1", "v1.12.0",
                                           {"clusterd": "clusterd-custom.yaml"})
    assert names == {"volcano": "volcano-v1.12.0.yaml", "clusterd": "clusterd-custom.yaml"}


def test_release_file_names_refuse_an_unknown_component():
    with pytest.raises(AnsibleFilterError, match="unknown MindCluster component"):
        filters.mindcluster_release_files(["resilience-controller"], "26.0.1", "1.9.0")


# ------------------------------------------------------------------ release directory


def make_release(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_release_files_are_found_in_the_zips_directories(tmp_path):
    make_release(tmp_path, {"Ascend-mindxdl-device-plugin_26.0.1_linux-x86_64/device-plugin-volcano-v26.0.1.yaml": "",
                            "Ascend-mindxdl-device-plugin_26.0.1_linux-x86_64/device-plugin-910-v26.0.1.yaml": "",
                            "noded-v26.0.1.yaml": ""})
    names = mindcluster.release_file_names(["ascend-device-plugin", "noded"], "26.0.1", "1.9.0")
    found, problems = mindcluster.locate_release_files(str(tmp_path), names)
    assert problems == []
    assert found == {
        "ascend-device-plugin": str(tmp_path / "Ascend-mindxdl-device-plugin_26.0.1_linux-x86_64"
                                    / "device-plugin-volcano-v26.0.1.yaml"),
        "noded": str(tmp_path / "noded-v26.0.1.yaml")}


def test_missing_release_files_are_all_named(tmp_path):
    make_release(tmp_path, {"volcano/volcano-v1.9.0.yaml": ""})
    names = mindcluster.release_file_names(ALL, "26.0.1", "1.9.0")
    found, problems = mindcluster.locate_release_files(str(tmp_path), names)
    assert found == {"volcano": str(tmp_path / "volcano" / "volcano-v1.9.0.yaml")}
    assert problems == [f"release directory {tmp_path} has no device-plugin-volcano-v26.0.1.yaml (component "
                        "ascend-device-plugin), noded-v26.0.1.yaml (component noded), clusterd-v26.0.1.yaml "
                        "(component clusterd), npu-exporter-v26.0.1.yaml (component npu-exporter)"]


def test_a_release_file_found_twice_is_a_problem(tmp_path):
    make_release(tmp_path, {"a/noded-v26.0.1.yaml": "", "b/noded-v26.0.1.yaml": ""})
    _, problems = mindcluster.locate_release_files(str(tmp_path), {"noded": "noded-v26.0.1.yaml"})
    assert problems == [f"release directory {tmp_path} has noded-v26.0.1.yaml 2 times "
                        f"({tmp_path}/a/noded-v26.0.1.yaml, {tmp_path}/b/noded-v26.0.1.yaml): keep one, "
                        "or name the file in mindcluster_release_files"]


def test_no_release_directory(tmp_path):
    _, problems = mindcluster.locate_release_files(str(tmp_path / "nope"), {"noded": "noded-v26.0.1.yaml"})
    assert problems == [f"release directory {tmp_path / 'nope'} does not exist or is not a directory"]


# ------------------------------------------------------------------ manifests


def test_release_yaml_parses_as_it_is():
    objects, problems = mindcluster.parse_manifests(DEVICE_PLUGIN_RELEASE, "device-plugin-volcano-v26.0.1.yaml")
    assert problems == []
    assert [mindcluster.describe(o) for o in objects] == [
        "ServiceAccount kube-system/ascend-device-plugin-sa-910",
        "ClusterRole pods-node-ascend-device-plugin-role-910",
        "ClusterRoleBinding pods-node-ascend-device-plugin-rolebinding-910",
        "DaemonSet kube-system/ascend-device-plugin-daemonset-910"]
    pod = objects[3]["spec"]["template"]
    assert pod["metadata"]["labels"] == {"name": "ascend-device-plugin-ds"}
    assert pod["spec"]["nodeSelector"] == {"accelerator": "huawei-Ascend910"}
    assert pod["spec"]["containers"][0]["args"] == [
        "device-plugin  -useAscendDocker=true -volcanoType=true -presetVirtualDevice=true "
        "-logFile=/var/log/mindx-dl/devicePlugin/devicePlugin.log -logLevel=0"]


def test_empty_documents_are_skipped_and_lists_unpacked():
    text = "---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n" \
           "  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: x}}\n" \
           "  - {apiVersion: v1, kind: ConfigMap, metadata: {name: b, namespace: x}}\n---\n"
    objects, problems = mindcluster.parse_manifests(text)
    assert problems == [] and [o["metadata"]["name"] for o in objects] == ["a", "b"]


@pytest.mark.parametrize(("text", "problem"), [
    ("kind: ConfigMap\nmetadata: {name: a}\n", "clusterd.yaml document 1: no apiVersion"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "clusterd.yaml document 1: ConfigMap without metadata.name"),
    ("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n- a list\n",
     "clusterd.yaml document 2: not a Kubernetes object (a list)"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ''}\n",
     "clusterd.yaml document 1: ConfigMap a: metadata.namespace must be a name"),
    ("apiVersion: v1\nkind: [\n", "clusterd.yaml: not valid YAML:"),
])
def test_bad_manifests_are_named(text, problem):
    _, problems = mindcluster.parse_manifests(text, "clusterd.yaml")
    assert problems and problems[0].startswith(problem), problems


def test_the_manifests_filter_fails_with_the_problems():
    with pytest.raises(AnsibleFilterError, match=r"noded\.yaml\.j2 document 1: no kind"):
        filters.mindcluster_manifests("apiVersion: v1\nmetadata: {name: a}\n", "noded.yaml.j2")


# ------------------------------------------------------------------ plan


def manifests():
    guide = [obj("Namespace", "mindx-dl"), obj("Namespace", "cluster-system")]
    volcano = [obj("Namespace", "volcano-system", labels={}),
               crd("scheduling.volcano.sh", "Queue", "queues", "Cluster"),
               obj("ServiceAccount", "volcano-scheduler", "volcano-system"),
               deployment("volcano-scheduler", "volcano-system", {"masterselector": "dls-master-node"}),
               obj("ClusterRole", "volcano-scheduler", api_version="rbac.authorization.k8s.io/v1"),
               obj("ConfigMap", "volcano-scheduler-configmap", "volcano-system")]
    noded, _ = mindcluster.parse_manifests(NODED_RELEASE)
    return {"namespaces": guide, "volcano": volcano, "noded": noded}


def test_plan_batches_namespaces_crds_then_the_rest_by_kind():
    plan = filters.mindcluster_plan(manifests(), ["volcano", "noded"], ["default", "kube-system"])
    assert plan["problems"] == []
    assert [mindcluster.describe(o) for o in plan["namespaces"]] == [
        "Namespace mindx-dl", "Namespace cluster-system", "Namespace volcano-system"]
    assert [mindcluster.describe(o) for o in plan["crds"]] == ["CustomResourceDefinition queues.scheduling.volcano.sh"]
    assert [mindcluster.describe(o) for o in plan["objects"]] == [
        "ServiceAccount volcano-system/volcano-scheduler", "ServiceAccount mindx-dl/noded",
        "ConfigMap volcano-system/volcano-scheduler-configmap", "ClusterRole volcano-scheduler",
        "DaemonSet mindx-dl/noded", "Deployment volcano-system/volcano-scheduler"]
    assert plan["deferred"] == []
    assert [mindcluster.describe(r) for r in plan["workloads"]] == [
        "DaemonSet mindx-dl/noded", "Deployment volcano-system/volcano-scheduler"]
    assert plan["placements"] == [
        {"workload": "DaemonSet mindx-dl/noded", "kind": "DaemonSet",
         "node_selector": {"workerselector": "dls-worker-node"}},
        {"workload": "Deployment volcano-system/volcano-scheduler", "kind": "Deployment",
         "node_selector": {"masterselector": "dls-master-node"}}]
    assert plan["refs"][0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mindx-dl"}}
    assert plan["refs"][-1] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                "metadata": {"name": "volcano-scheduler", "namespace": "volcano-system"}}
    assert len(plan["refs"]) == 3 + 1 + 6


def test_a_namespace_neither_existing_nor_created_is_a_problem():
    plan = mindcluster.plan({"noded": mindcluster.parse_manifests(NODED_RELEASE)[0]}, ["noded"], ["default"])
    assert plan["problems"] == [
        "ServiceAccount mindx-dl/noded (noded) is in namespace mindx-dl, which neither exists nor is created by the "
        "selected components",
        "DaemonSet mindx-dl/noded (noded) is in namespace mindx-dl, which neither exists nor is created by the "
        "selected components"]


def test_an_object_defined_twice_differently_is_a_problem_the_same_twice_is_not():
    same = obj("ConfigMap", "c", "kube-system", data={"a": "1"})
    other = obj("ConfigMap", "c", "kube-system", data={"a": "2"})
    assert mindcluster.plan({"noded": [same], "clusterd": [dict(same)]}, ["noded", "clusterd"])["problems"] == []
    assert mindcluster.plan({"noded": [same], "clusterd": [other]}, ["noded", "clusterd"])["problems"] == [
        "ConfigMap kube-system/c is defined twice, differently (noded and clusterd)"]


def test_a_components_namespace_object_replaces_the_guides_bare_one():
    labelled = obj("Namespace", "mindx-dl", metadata={"name": "mindx-dl", "labels": {"a": "b"}})
    plan = mindcluster.plan({"namespaces": [obj("Namespace", "mindx-dl")], "clusterd": [labelled]}, ["clusterd"])
    assert plan["problems"] == [] and plan["namespaces"] == [labelled]


def test_check_mode_defers_what_a_dry_run_cannot_create():
    sets = manifests()
    sets["volcano"].append(obj("Queue", "default", api_version="scheduling.volcano.sh/v1beta1"))
    first = mindcluster.plan(sets, ["volcano", "noded"], ["default", "kube-system"], check_mode=False)
    assert first["crds_used"] == ["queues.scheduling.volcano.sh"]
    plan = mindcluster.plan(sets, ["volcano", "noded"], ["default", "kube-system", "mindx-dl"], check_mode=True)
    assert [mindcluster.describe(o) for o in plan["deferred"]] == [
        "ServiceAccount volcano-system/volcano-scheduler", "ConfigMap volcano-system/volcano-scheduler-configmap",
        "Deployment volcano-system/volcano-scheduler", "Queue default"]
    assert "ServiceAccount mindx-dl/noded" in [mindcluster.describe(o) for o in plan["objects"]]
    known = mindcluster.plan(sets, ["volcano", "noded"], ["default", "kube-system", "mindx-dl", "volcano-system"],
                             check_mode=True, existing_crds=["queues.scheduling.volcano.sh"])
    assert known["deferred"] == []


def test_the_plan_filter_refuses_objects_that_are_not():
    with pytest.raises(AnsibleFilterError, match=r"mindcluster_plan: noded: ConfigMap without metadata\.name"):
        filters.mindcluster_plan({"noded": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}]})


# ------------------------------------------------------------------ removal


def test_removal_goes_workloads_first_namespaces_last_never_kube_system():
    recorded = [ref("Namespace", "mindx-dl"), ref("Namespace", "kube-system"),
                ref("CustomResourceDefinition", "queues.scheduling.volcano.sh", api_version="apiextensions.k8s.io/v1"),
                ref("ServiceAccount", "noded", "mindx-dl"),
                ref("ClusterRole", "pods-noded-role", api_version="rbac.authorization.k8s.io/v1"),
                ref("DaemonSet", "noded", "mindx-dl", "apps/v1"),
                ref("Deployment", "clusterd", "mindx-dl", "apps/v1"),
                ref("ConfigMap", "mindx-dl-deviceinfo-npu-910b-1", "kube-system"),
                ref("DaemonSet", "noded", "mindx-dl", "apps/v1")]
    assert [mindcluster.describe(r) for r in filters.mindcluster_removal_plan(recorded)] == [
        "Deployment mindx-dl/clusterd", "DaemonSet mindx-dl/noded",
        "ConfigMap kube-system/mindx-dl-deviceinfo-npu-910b-1", "ServiceAccount mindx-dl/noded",
        "ClusterRole pods-noded-role", "CustomResourceDefinition queues.scheduling.volcano.sh",
        "Namespace mindx-dl"]
    kept = filters.mindcluster_removal_plan(recorded, True)
    assert "Namespace mindx-dl" not in [mindcluster.describe(r) for r in kept]


def test_pruning_keeps_what_is_still_wanted_and_the_namespaces_it_lives_in():
    recorded = [ref("Namespace", "npu-exporter"), ref("Namespace", "mindx-dl"),
                ref("DaemonSet", "npu-exporter", "npu-exporter", "apps/v1"),
                ref("DaemonSet", "noded", "mindx-dl", "apps/v1")]
    wanted = [ref("DaemonSet", "noded", "mindx-dl", "apps/v1")]
    assert [mindcluster.describe(r) for r in mindcluster.removal_plan(recorded, exclude=wanted)] == [
        "DaemonSet npu-exporter/npu-exporter", "Namespace npu-exporter"]


def test_removal_matches_objects_whatever_their_api_version():
    recorded = [ref("Deployment", "clusterd", "mindx-dl", "apps/v1")]
    assert mindcluster.removal_plan(recorded, exclude=[ref("Deployment", "clusterd", "mindx-dl", "apps/v1beta2")]) == []
    assert mindcluster.removal_plan([{"kind": "broken"}, "nonsense"]) == []


def test_describe_a_list():
    assert filters.mindcluster_describe([ref("Namespace", "a"), ref("ConfigMap", "b", "a")]) == (
        "2 objects: Namespace a, ConfigMap a/b")


# ------------------------------------------------------------------ module mindcluster_release_info


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        mindcluster_release_info.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def test_module_reads_the_release_as_it_is(tmp_path, capsys):
    make_release(tmp_path, {"device-plugin/device-plugin-volcano-v26.0.1.yaml": DEVICE_PLUGIN_RELEASE,
                            "noded/noded-v26.0.1.yaml": NODED_RELEASE})
    result = run_module({"path": str(tmp_path), "components": ["noded", "ascend-device-plugin"], "version": "26.0.1",
                         "volcano_version": "1.9.0", "_ansible_check_mode": True}, capsys)
    assert result["_rc"] == 0 and result["changed"] is False
    assert result["files"] == {
        "ascend-device-plugin": str(tmp_path / "device-plugin/device-plugin-volcano-v26.0.1.yaml"),
        "noded": str(tmp_path / "noded/noded-v26.0.1.yaml")}
    assert result["manifests"]["noded"] == list(yaml.safe_load_all(NODED_RELEASE))
    assert len(result["manifests"]["ascend-device-plugin"]) == 4


def test_module_names_the_missing_file_and_applies_nothing(tmp_path, capsys):
    make_release(tmp_path, {"noded-v26.0.1.yaml": NODED_RELEASE})
    result = run_module({"path": str(tmp_path), "components": ["noded", "clusterd"], "version": "v26.0.1",
                         "volcano_version": "1.9.0"}, capsys)
    assert result["_rc"] == 1 and result["failed"] is True
    assert result["msg"] == (f"release directory {tmp_path} has no clusterd-v26.0.1.yaml (component clusterd); "
                             "nothing was applied")
    assert "manifests" not in result


def test_module_names_a_file_that_is_not_kubernetes_yaml(tmp_path, capsys):
    make_release(tmp_path, {"clusterd-v26.0.1.yaml": "apiVersion: v1\nkind: [\n", "noded-v26.0.1.yaml": "# empty\n"})
    result = run_module({"path": str(tmp_path), "components": ["clusterd", "noded"], "version": "26.0.1",
                         "volcano_version": "1.9.0"}, capsys)
    assert result["_rc"] == 1
    problems = sorted(result["problems"])
    assert problems[0].startswith(f"{tmp_path}/clusterd-v26.0.1.yaml: not valid YAML:")
    assert problems[1] == f"{tmp_path}/noded-v26.0.1.yaml (component noded) holds no Kubernetes object"


def test_module_refuses_an_unknown_component(tmp_path, capsys):
    result = run_module({"path": str(tmp_path), "components": ["noded", "nodeD"], "version": "26.0.1",
                         "volcano_version": "1.9.0"}, capsys)
    assert result["_rc"] == 1 and result["msg"].startswith("unknown MindCluster component(s) nodeD:")


def test_module_takes_other_file_names(tmp_path, capsys):
    make_release(tmp_path, {"my-noded.yaml": NODED_RELEASE})
    result = run_module({"path": str(tmp_path), "components": ["noded"], "version": "26.0.1",
                         "volcano_version": "1.9.0", "file_names": {"noded": "my-noded.yaml"}}, capsys)
    assert result["_rc"] == 0 and result["file_names"] == {"noded": "my-noded.yaml"}
