"""The mindcluster role run by Ansible itself on localhost against a cluster that cannot be reached (its
kubeconfig points at a closed port): what its templates render (names, selectors, images, pod labels as the
release YAMLs of MindCluster 26.0.1 have them, and as the lab's device-manager stand-in recognises), what a
release directory gives, and the bad input refused before the first API call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from labctl.devicemanager import ASCEND_PLUGIN, pod_roles

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
FIRST_API_CALL = "Read the cluster's namespaces"
MANAGED_BY = {"app.kubernetes.io/managed-by": "aicluster-mindcluster"}

# The objects of each release YAML of MindCluster v26.0.1 (component/*/build/*.yaml at the tag; Volcano v1.9.0),
# written out by hand: the templates must create the same ones.
RELEASE_OBJECTS = {
    "ascend-device-plugin": [
        "ServiceAccount kube-system/ascend-device-plugin-sa-910", "ClusterRole pods-node-ascend-device-plugin-role-910",
        "ClusterRoleBinding pods-node-ascend-device-plugin-rolebinding-910",
        "DaemonSet kube-system/ascend-device-plugin-daemonset-910"],
    "volcano": [
        "Namespace volcano-system", "CustomResourceDefinition jobs.batch.volcano.sh",
        "CustomResourceDefinition commands.bus.volcano.sh", "CustomResourceDefinition podgroups.scheduling.volcano.sh",
        "CustomResourceDefinition queues.scheduling.volcano.sh",
        "CustomResourceDefinition numatopologies.nodeinfo.volcano.sh",
        "CustomResourceDefinition jobtemplates.flow.volcano.sh", "CustomResourceDefinition jobflows.flow.volcano.sh",
        "ServiceAccount volcano-system/volcano-controllers", "ClusterRole volcano-controllers",
        "ClusterRoleBinding volcano-controllers-role", "Deployment volcano-system/volcano-controllers",
        "ServiceAccount volcano-system/volcano-scheduler", "ConfigMap volcano-system/volcano-scheduler-configmap",
        "ClusterRole volcano-scheduler", "ClusterRoleBinding volcano-scheduler-role",
        "Service volcano-system/volcano-scheduler-service", "Deployment volcano-system/volcano-scheduler"],
    "noded": ["ServiceAccount mindx-dl/noded", "ClusterRole pods-noded-role",
              "ClusterRoleBinding pods-noded-rolebinding", "DaemonSet mindx-dl/noded"],
    "clusterd": ["ConfigMap cluster-system/clusterd-config-cm", "ServiceAccount mindx-dl/clusterd",
                 "ClusterRole pods-clusterd-role", "ClusterRoleBinding pods-clusterd-rolebinding",
                 "Deployment mindx-dl/clusterd", "Service mindx-dl/clusterd-grpc-svc"],
    "npu-exporter": ["Namespace npu-exporter", "NetworkPolicy npu-exporter/exporter-network-policy",
                     "DaemonSet npu-exporter/npu-exporter"],
}


def describe(obj):
    meta = obj["metadata"]
    return f"{obj['kind']} {meta['namespace'] + '/' if meta.get('namespace') else ''}{meta['name']}"


def run_role(tmp_path: Path, extra: dict) -> dict[str, dict]:
    """Task name -> result of the role's run (the last one of a name wins)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "closed",
        "clusters": [{"name": "closed", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "closed", "context": {"cluster": "closed", "user": "u"}}]}))
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars": {"aicluster_clusters": {"worker": {"kubeconfig": str(kubeconfig)}}},
             "roles": [{"role": "mindcluster"}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps(extra),
                           str(tmp_path / "play.yml")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    assert "{" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    start = 0 if proc.stdout.startswith("{") else proc.stdout.index("\n{\n") + 1
    out, _ = json.JSONDecoder().raw_decode(proc.stdout[start:])
    results = {}
    for task in out["plays"][0]["tasks"]:
        name = task["task"]["name"].split(" : ", 1)[-1]
        results[name] = task["hosts"]["localhost"]
    return results


def failed_task(results):
    failed = [name for name, result in results.items() if result.get("failed")]
    assert len(failed) == 1, failed
    return failed[0], results[failed[0]]["msg"]


def manifests_of(results):
    return results["Take the objects from the role's templates, or from the release"]["ansible_facts"][
        "__mindcluster_manifests"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    results = run_role(tmp_path_factory.mktemp("default"), {})
    assert failed_task(results)[0] == FIRST_API_CALL  # everything before it ran without a cluster
    return manifests_of(results)


def by_name(objects):
    return {describe(o): o for o in objects}


def test_templates_create_the_release_objects(rendered):
    # (the json callback sorts keys; the plan applies the components in mindcluster_components' order)
    assert set(rendered) == {"namespaces", "ascend-device-plugin", "volcano", "noded", "clusterd", "npu-exporter"}
    assert [describe(o) for o in rendered["namespaces"]] == ["Namespace mindx-dl", "Namespace cluster-system"]
    for component, names in RELEASE_OBJECTS.items():
        assert [describe(o) for o in rendered[component]] == names, component
    for objects in rendered.values():
        for obj in objects:
            assert obj["metadata"]["labels"].items() >= MANAGED_BY.items(), describe(obj)


def test_device_plugin_is_the_910_volcano_daemonset_the_lab_stand_in_recognises(rendered):
    ds = by_name(rendered["ascend-device-plugin"])["DaemonSet kube-system/ascend-device-plugin-daemonset-910"]
    pod = ds["spec"]["template"]
    assert ds["spec"]["selector"]["matchLabels"] == {"name": "ascend-device-plugin-ds"} == pod["metadata"]["labels"]
    assert pod["spec"]["nodeSelector"] == {"accelerator": "huawei-Ascend910"}
    assert pod["spec"]["serviceAccountName"] == "ascend-device-plugin-sa-910"
    container = pod["spec"]["containers"][0]
    assert container["image"] == "ascend-k8sdeviceplugin:v26.0.1"
    assert "-volcanoType=true" in container["args"][0] and "-presetVirtualDevice=true" in container["args"][0]
    volumes = {v["name"]: v["hostPath"] for v in pod["spec"]["volumes"]}
    assert volumes["vnpucfg"] == {"path": "/etc/vnpu.cfg", "type": "File"}
    assert "docker-sock" not in volumes and volumes["containerd"] == {"path": "/run/containerd"}
    assert pod_roles({"metadata": {"labels": pod["metadata"]["labels"]}, "spec": pod["spec"]}) == {ASCEND_PLUGIN}


def test_volcano_runs_on_the_management_node_with_the_ascend_plugin(rendered):
    objects = by_name(rendered["volcano"])
    for name in ("volcano-controllers", "volcano-scheduler"):
        pod = objects[f"Deployment volcano-system/{name}"]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"masterselector": "dls-master-node"}
    images = [objects[f"Deployment volcano-system/{n}"]["spec"]["template"]["spec"]["containers"][0]["image"]
              for n in ("volcano-controllers", "volcano-scheduler")]
    assert images == ["volcanosh/vc-controller-manager:v1.9.0", "volcanosh/vc-scheduler:v1.9.0"]
    conf = yaml.safe_load(objects["ConfigMap volcano-system/volcano-scheduler-configmap"]["data"][
        "volcano-scheduler.conf"])
    assert [p["name"] for p in conf["tiers"][0]["plugins"]] == [
        "priority", "gang", "conformance", "volcano-npu_v26.0.1"]
    assert conf["configurations"] == [{"name": "init-params", "arguments": {
        "grace-over-time": "900", "presetVirtualDevice": "true", "nslb-version": "1.0", "shared-tor-num": "2",
        "useClusterInfoManager": "true", "self-maintain-available-card": "true", "super-pod-size": "48",
        "reserve-nodes": "2", "forceEnqueue": "true"}}]
    queues = objects["CustomResourceDefinition queues.scheduling.volcano.sh"]["spec"]
    assert queues["scope"] == "Cluster" and queues["names"]["shortNames"] == ["q", "queue-v1beta1"]
    assert queues["versions"][0]["name"] == "v1beta1" and queues["versions"][0]["subresources"] == {"status": {}}


def test_clusterd_noded_and_exporter_selectors(rendered):
    clusterd = by_name(rendered["clusterd"])["Deployment mindx-dl/clusterd"]["spec"]["template"]["spec"]
    assert clusterd["nodeSelector"] == {"masterselector": "dls-master-node"}
    assert clusterd["containers"][0]["image"] == "clusterd:v26.0.1"
    noded = by_name(rendered["noded"])["DaemonSet mindx-dl/noded"]["spec"]["template"]["spec"]
    assert noded["nodeSelector"] == {"workerselector": "dls-worker-node"} and noded["hostNetwork"] is True
    exporter = by_name(rendered["npu-exporter"])["DaemonSet npu-exporter/npu-exporter"]["spec"]["template"]["spec"]
    assert exporter["nodeSelector"] == {"workerselector": "dls-worker-node"}
    assert exporter["containers"][0]["args"][0].endswith("-containerMode=containerd")
    assert exporter["containers"][0]["ports"] == [{"name": "http", "containerPort": 8082, "protocol": "TCP"}]


def test_registry_version_docker_nodes_and_selectors(tmp_path):
    results = run_role(tmp_path, {"mindcluster_image_registry": "registry.example/ascendhub/",
                                  "mindcluster_version": "v26.0.2", "rancher_worker_flow": "rke1",
                                  "mindcluster_components": ["ascend-device-plugin", "npu-exporter", "volcano"],
                                  "mindcluster_device_plugin_node_selector": {"accelerator": "huawei-Ascend910",
                                                                              "accelerator-type": "module-910b-8"},
                                  "mindcluster_volcano_crds": False})
    rendered = manifests_of(results)
    assert set(rendered) == {"namespaces", "ascend-device-plugin", "npu-exporter", "volcano"}
    pod = by_name(rendered["ascend-device-plugin"])["DaemonSet kube-system/ascend-device-plugin-daemonset-910"][
        "spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example/ascendhub/ascend-k8sdeviceplugin:v26.0.2"
    assert pod["nodeSelector"] == {"accelerator": "huawei-Ascend910", "accelerator-type": "module-910b-8"}
    assert {"docker-sock", "docker-dir", "containerd"} <= {v["name"] for v in pod["volumes"]}
    exporter = by_name(rendered["npu-exporter"])["DaemonSet npu-exporter/npu-exporter"]["spec"]["template"]["spec"]
    assert exporter["containers"][0]["args"][0].endswith("-containerMode=docker")
    volcano = by_name(rendered["volcano"])
    assert not [o for o in volcano if o.startswith("CustomResourceDefinition")]
    scheduler = volcano["Deployment volcano-system/volcano-scheduler"]["spec"]["template"]["spec"]["containers"][0]
    assert scheduler["image"] == "registry.example/ascendhub/volcanosh/vc-scheduler:v1.9.0"
    conf = yaml.safe_load(volcano["ConfigMap volcano-system/volcano-scheduler-configmap"]["data"][
        "volcano-scheduler.conf"])
    assert conf["tiers"][0]["plugins"][-1] == {"name": "volcano-npu_v26.0.2"}


def test_release_directory_objects_are_applied_as_they_are(tmp_path):
    release = tmp_path / "release"
    noded = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "noded", "namespace": "mindx-dl"}},
             {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "noded", "namespace": "mindx-dl"},
              "spec": {"template": {"spec": {"nodeSelector": {"workerselector": "dls-worker-node"}}}}}]
    (release / "noded").mkdir(parents=True)
    (release / "noded" / "noded-v26.0.1.yaml").write_text("# NodeD\n" + yaml.safe_dump_all(noded))
    results = run_role(tmp_path, {"mindcluster_release_dir": str(release), "mindcluster_components": ["noded"]})
    assert failed_task(results)[0] == FIRST_API_CALL
    rendered = manifests_of(results)
    assert rendered["noded"] == noded
    assert [describe(o) for o in rendered["namespaces"]] == ["Namespace mindx-dl", "Namespace cluster-system"]


# ------------------------------------------------------------------ bad input, refused before the first API call


def test_release_directory_missing_a_components_yaml(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    (release / "noded-v26.0.1.yaml").write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: noded}\n")
    task, msg = failed_task(run_role(tmp_path, {"mindcluster_release_dir": str(release),
                                                "mindcluster_components": ["noded", "clusterd", "volcano"]}))
    assert task == "Read the release directory's YAMLs"
    assert msg == (f"release directory {release} has no volcano-v1.9.0.yaml (component volcano), "
                   "clusterd-v26.0.1.yaml (component clusterd); nothing was applied")


def test_unknown_component_name(tmp_path):
    task, msg = failed_task(run_role(tmp_path, {"mindcluster_components": ["ascend-device-plugin", "hccl-controller"],
                                                "mindcluster_noded_node_selector": {"workerselector": "a b"}}))
    assert task == "Check the settings"
    assert msg == ("unknown MindCluster component(s) hccl-controller: mindcluster_components takes some of "
                   "ascend-device-plugin, volcano, noded, clusterd, npu-exporter; mindcluster_noded_node_selector: "
                   "label 'workerselector': value 'a b' must be empty or consist of alphanumerics, '-', '_' or '.', "
                   "and must start and end with an alphanumeric; nothing was applied")


@pytest.mark.parametrize(("extra", "error"), [
    ({"mindcluster_state": "installed"}, "value of mindcluster_state must be one of: present, absent, got: installed"),
    ({"mindcluster_image_pull_policy": "always"},
     "value of mindcluster_image_pull_policy must be one of: Always, IfNotPresent, Never, got: always"),
    ({"mindcluster_container_runtime": "cri-o"},
     "value of mindcluster_container_runtime must be one of: containerd, docker, got: cri-o"),
    ({"mindcluster_components": "volcano"}, None),
])
def test_argument_spec_errors(tmp_path, extra, error):
    results = run_role(tmp_path, extra)
    task, msg = failed_task(results)
    if error is None:  # the argument spec takes a bare string for a list of one; the role's own check does not
        assert (task, msg) == ("Check the settings", "mindcluster_components must be a list of component names, "
                                                     "got 'volcano'; nothing was applied")
        return
    assert task.startswith("Validating arguments against arg spec 'main'")
    assert error in results[task]["argument_errors"]


@pytest.mark.parametrize(("state", "ending"), [("present", "nothing was applied"), ("absent", "nothing was deleted")])
def test_a_cluster_aicluster_clusters_does_not_name(tmp_path, state, ending):
    task, msg = failed_task(run_role(tmp_path, {"mindcluster_cluster": "nosuch", "mindcluster_state": state}))
    assert task in ("Check the settings", "Check the cluster setting")
    assert msg == f'mindcluster_cluster "nosuch" is not a key of aicluster_clusters (worker); {ending}'
