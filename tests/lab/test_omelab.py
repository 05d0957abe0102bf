"""The OME/LWS stand-in's pure logic: OME's model label keys, which Nodes get them, certificates and
their SANs, the cert-manager contract (Ready only once the Secret exists), the webhook rewrite that
stands in for Service routing, and what a kubelet would run for the controllers' Deployments."""

from __future__ import annotations

import base64
import copy
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from labctl import omelab

# ---------------------------------------------------------------- model label keys (OME pkg/constants)
# Expected values: OME v0.1.5's own GetClusterBaseModelLabel / GetBaseModelLabel / GetModelConfigMapKey,
# copied verbatim into a standalone Go program and run.
GO_CLUSTER_LABELS = {
    "llama-3-2-1b-instruct": "models.ome.io/clusterbasemodel.llama-3-2-1b-instruct",
    "12345678901234567890123456789012": "models.ome.io/clusterbasemodel.12345678901234567890123456789012",
    "123456789012345678901234567890123": "models.ome.io/clusterbasemodel.39bf8cc9-12345678901234567890123",
    "a-very-long-model-name-that-exceeds-thirty-two-chars":
        "models.ome.io/clusterbasemodel.172b618e-xceeds-thirty-two-chars",
    "deepseek-r1-distill-qwen-32b-instruct-fp8": "models.ome.io/clusterbasemodel.918b9325-l-qwen-32b-instruct-fp8",
}
GO_BASE_LABELS = {
    ("default", "llama-3-2-1b-instruct"): "models.ome.io/default.basemodel.llama-3-2-1b-instruct",
    ("a-long-namespace-name", "llama-3-2-1b-instruct"): "models.ome.io/8d4c7d03.basemodel.llama-3-2-1b-instruct",
    ("default", "12345678901234567890123456789012"):
        "models.ome.io/default.basemodel.e1b85b27-1234567890123456789012",
    ("ns", "12345678901234567890123456789012"): "models.ome.io/ns.basemodel.12345678901234567890123456789012",
    ("a-long-namespace-name", "a-very-long-model-name-that-exceeds-thirty-two-chars"):
        "models.ome.io/8d4c7d03.basemodel.172b618e-eeds-thirty-two-chars",
    ("ns", "deepseek-r1-distill-qwen-32b-instruct-fp8"):
        "models.ome.io/ns.basemodel.918b9325-still-qwen-32b-instruct-fp8",
}


@pytest.mark.parametrize(("name", "label"), sorted(GO_CLUSTER_LABELS.items()))
def test_cluster_base_model_label_matches_ome(name, label):
    assert omelab.cluster_base_model_label(name) == label
    assert len(label.split("/", 1)[1]) <= 63


@pytest.mark.parametrize(("ns_name", "label"), sorted(GO_BASE_LABELS.items()))
def test_base_model_label_matches_ome(ns_name, label):
    assert omelab.base_model_label(*ns_name) == label


def test_model_configmap_keys_match_ome():
    long = "abcdefghij" * 30
    assert omelab.model_configmap_key("", "llama", True) == "clusterbasemodel.llama"
    assert omelab.model_configmap_key("team", "llama", False) == "team.basemodel.llama"
    assert omelab.model_configmap_key("", long, True) == "clusterbasemodel.49d53cf1-" + long[-227:]
    assert omelab.model_configmap_key("some-namespace-x", long, False) == "9a42c541.basemodel.49d53cf1-" + long[-225:]


# ---------------------------------------------------------------- which Nodes get which model labels
def _model(name, path="/data/k8s/models/m", namespace="", **storage):
    return omelab.Model(namespace, name, path, {"path": path, **storage})


def test_storage_selection_mirrors_the_agent():
    labels = {"gpu": "a100", "zone": "1"}
    assert omelab.storage_admits_node({}, "n1", labels)
    assert omelab.storage_admits_node({"nodeSelector": {"gpu": "a100"}}, "n1", labels)
    assert not omelab.storage_admits_node({"nodeSelector": {"gpu": "t4"}}, "n1", labels)
    assert not omelab.storage_admits_node({"storageUri": "pvc://models/llama"}, "n1", labels)
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["2"]}]},
        {"matchExpressions": [{"key": "metadata.name", "operator": "In", "values": ["n1"]},
                              {"key": "zone", "operator": "Gt", "values": ["0"]},
                              {"key": "missing", "operator": "DoesNotExist"}]}]}}}
    assert omelab.storage_admits_node(affinity, "n1", labels)
    assert not omelab.storage_admits_node(affinity, "n2", labels)


def test_labels_for_models_whose_directory_is_on_the_machine():
    models = [_model("here", "/data/k8s/models/here"), _model("gone", "/data/k8s/models/gone"),
              _model("nopath", None), _model("elsewhere", "/data/k8s/models/here", nodeSelector={"gpu": "t4"}),
              _model("team-model", "/data/k8s/models/here", namespace="team"),
              _model("flaky", "/data/k8s/models/flaky")]
    on_disk = {"/data/k8s/models/here": True, "/data/k8s/models/gone": False, "/data/k8s/models/flaky": None}
    desired, unknown = omelab.desired_model_labels("gpu-1", {"gpu": "a100"}, models, on_disk.get)
    assert set(desired) == {"models.ome.io/clusterbasemodel.here", "models.ome.io/team.basemodel.team-model"}
    assert unknown == {"models.ome.io/clusterbasemodel.flaky"}


def _node(labels=None, owned=None):
    annotations = {omelab.MODELS_ANNOTATION: json.dumps(sorted(owned))} if owned is not None else {}
    return {"metadata": {"name": "gpu-1", "labels": dict(labels or {}), "annotations": annotations}}


def _merge(obj, patch):
    """RFC 7386 merge patch (what the API server applies)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(obj) if isinstance(obj, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def test_node_patch_adds_removes_only_its_own_labels_and_is_idempotent():
    a, b, c = (f"models.ome.io/clusterbasemodel.{x}" for x in "abc")
    node = _node({"kubernetes.io/hostname": "gpu-1", b: "Ready", c: "Ready"}, owned={b})
    patch = omelab.plan_node_model_patch(node, {a}, unknown=())
    assert patch == {"metadata": {"labels": {a: "Ready", b: None},
                                  "annotations": {omelab.MODELS_ANNOTATION: json.dumps([a], separators=(",", ":"))}}}
    node = _merge(node, patch)
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": "gpu-1", a: "Ready", c: "Ready"}  # c: not ours
    assert omelab.plan_node_model_patch(node, {a}) is None
    # an unknown state (the check hung) keeps the label; nothing desired any more removes it and the annotation
    assert omelab.plan_node_model_patch(node, set(), unknown={a}) is None
    node = _merge(node, omelab.plan_node_model_patch(node, set()))
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": "gpu-1", c: "Ready"}
    assert omelab.MODELS_ANNOTATION not in node["metadata"]["annotations"]


def test_status_configmap_entries_are_the_agents_json():
    entries = omelab.model_status_entries([_model("llama"), _model("m", namespace="team")])
    assert entries == {"clusterbasemodel.llama": '{"name":"llama","status":"Ready"}',
                       "team.basemodel.m": '{"name":"m","status":"Ready"}'}


# ---------------------------------------------------------------- machines: paths inside a machine's root
def test_paths_resolve_inside_the_machine_root(tmp_path):
    root = tmp_path / "gpu-1"
    (root / "mnt" / "jfs" / "models" / "llama").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "k8s").symlink_to("/mnt/jfs")          # absolute: the machine's /mnt/jfs, not the host's
    assert omelab.resolve_in_root(root, "/data/k8s/models/llama") == root / "mnt" / "jfs" / "models" / "llama"
    assert omelab.resolve_in_root(root, "/data/k8s/../../etc") == root / "etc"   # never above the root
    fs = omelab.MachineFilesystems(tmp_path)
    try:
        assert fs.present("gpu-1", "/data/k8s/models/llama") is True
        assert fs.present("gpu-1", "/data/k8s/models/other") is False
        assert fs.present("not-a-machine", "/data/k8s/models/llama") is False
    finally:
        fs.close()


def test_fleet_machines_are_found_through_podman(monkeypatch):
    """Node name = machine name; its container's root is /proc/<pid>/root (here: this process's)."""
    from labctl.fleet import podman

    monkeypatch.setattr(omelab.shutil, "which", lambda name: "/usr/bin/podman")
    listed = []

    def ps(label):
        listed.append(label)
        return [{"Names": ["aicluster-lab-gpu-1"], "Labels": {"aicluster-lab.machine": "gpu-1"}, "State": "running",
                 "Pid": os.getpid()},
                {"Names": ["aicluster-lab-gpu-2"], "Labels": {"aicluster-lab.machine": "gpu-2"}, "State": "exited",
                 "Pid": 0}]

    monkeypatch.setattr(podman, "ps", ps)
    fs = omelab.MachineFilesystems()
    try:
        assert fs.root("gpu-1") == Path(f"/proc/{os.getpid()}/root")
        assert fs.present("gpu-1", str(Path(__file__).parent)) is True
        assert fs.present("gpu-2", "/") is False          # not running: no machine
        assert listed == ["aicluster-lab.fleet=1"]      # listed once, then cached
    finally:
        fs.close()


# ---------------------------------------------------------------- certificates
@pytest.fixture(scope="module")
def ca():
    return omelab.create_ca()


def test_certificate_sans_add_loopback_and_the_lab_host():
    dns, ips, uris, emails = omelab.certificate_sans({"dnsNames": ["ome-webhook-server-service.ome.svc"],
                                                      "ipAddresses": ["10.0.0.5", "127.0.0.1"]})
    assert dns == ["ome-webhook-server-service.ome.svc"]
    assert ips == ["10.0.0.5", "127.0.0.1", "10.77.0.1"]
    assert uris == [] and emails == []


def _cert(spec, generation=1, status=None):
    return {"metadata": {"name": "serving-cert", "namespace": "ome", "generation": generation},
            "spec": {"secretName": "ome-webhook-server-cert", "issuerRef": {"kind": "Issuer", "name": "selfsigned"},
                     **spec}, "status": status or {}}


def test_certificate_secret_is_signed_by_the_lab_ca_with_the_sans(ca):
    cert = _cert({"commonName": "ome-webhook-server-service.ome.svc",
                  "dnsNames": ["ome-webhook-server-service.ome.svc"]})
    secret, info = omelab.certificate_secret(cert, ca, None)
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert base64.b64decode(secret["data"]["ca.crt"]) == ca.cert_pem
    assert base64.b64decode(secret["data"]["tls.key"]).startswith(b"-----BEGIN RSA PRIVATE KEY")  # PKCS#1 default
    assert info.signed_by_ca and info.dns_names == ("ome-webhook-server-service.ome.svc",)
    assert set(info.ip_addresses) == {"127.0.0.1", "10.77.0.1"}
    assert timedelta(days=89) < info.not_after - info.not_before < timedelta(days=91)
    assert secret["metadata"]["annotations"]["cert-manager.io/certificate-name"] == "serving-cert"
    # current until the spec, the CA or the time changes
    assert omelab.certificate_secret_current(secret, cert["spec"], ca) is not None
    assert omelab.certificate_secret_current(secret, {**cert["spec"], "dnsNames": ["x"]}, ca) is None
    assert omelab.certificate_secret_current(secret, cert["spec"], omelab.create_ca()) is None
    assert omelab.certificate_secret_current(secret, cert["spec"], ca, now=info.not_after - timedelta(days=10)) is None
    # an existing Secret keeps its type (immutable)
    assert omelab.certificate_secret(cert, ca, {"type": "Opaque"})[0]["type"] == "Opaque"


def test_certificate_key_and_duration_options(ca):
    cert = _cert({"dnsNames": ["a"], "duration": "2h", "privateKey": {"algorithm": "ECDSA", "size": 384,
                                                                     "encoding": "PKCS8"}})
    secret, info = omelab.certificate_secret(cert, ca, None)
    assert base64.b64decode(secret["data"]["tls.key"]).startswith(b"-----BEGIN PRIVATE KEY")
    assert info.not_after - info.not_before == timedelta(hours=2, minutes=5)
    assert omelab.parse_duration("8760h0m0s", timedelta(0)) == timedelta(days=365)
    assert omelab.parse_duration("90m", timedelta(0)) == timedelta(minutes=90)
    assert omelab.parse_duration("soon", timedelta(days=1)) == timedelta(days=1)


def test_certificate_is_ready_only_once_its_secret_exists(ca):
    cert = _cert({"dnsNames": ["a"]})
    pending = omelab.certificate_status_patch(cert, None, "Pending", "Issuer not found")
    cond = pending["status"]["conditions"][-1]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Ready", "False", "Pending")
    cert = _merge(cert, pending)
    _, info = omelab.certificate_secret(cert, ca, None)
    ready = omelab.certificate_status_patch(cert, info, "Ready", "Certificate is up to date and has not expired", 1)
    cond = ready["status"]["conditions"][-1]
    assert (cond["status"], cond["observedGeneration"]) == ("True", 1)
    assert ready["status"]["revision"] == 1 and ready["status"]["notAfter"].endswith("Z")
    cert = _merge(cert, ready)
    assert omelab.certificate_status_patch(cert, info, "Ready", "Certificate is up to date and has not expired",
                                           1) is None


def test_issuers_become_ready_once():
    issuer = {"metadata": {"name": "selfsigned", "generation": 1}, "spec": {"selfSigned": {}}}
    patch = omelab.issuer_status_patch(issuer)
    assert patch["status"]["conditions"][0]["status"] == "True"
    assert omelab.issuer_status_patch(_merge(issuer, patch)) is None


# ---------------------------------------------------------------- webhook routing (the Service network)
def _webhook(name, service, path, ns="ome", ca_bundle="Cg=="):
    return {"name": name, "clientConfig": {"caBundle": ca_bundle, "service": {"name": service, "namespace": ns,
                                                                              "path": path}},
            "sideEffects": "None"}


CONFIG = {"metadata": {"name": "inferenceservice.ome.io", "resourceVersion": "7",
                       "annotations": {omelab.INJECT_CA_FROM: "ome/serving-cert"}},
          "webhooks": [_webhook("isvc.defaulter", "ome-webhook-server-service",
                                "/mutate-ome-io-v1beta1-inferenceservice"),
                       _webhook("pod-mutator", "ome-webhook-server-service", "/mutate-pods"),
                       _webhook("other", "someone-else", "/x")]}


def test_webhooks_go_to_the_running_process_and_back_to_the_service():
    route = omelab.Route("ome", "ome-webhook-server-service", 39443, "Q0E=")
    routes = {("ome", "ome-webhook-server-service"): route}
    patch = omelab.plan_webhook_configuration(CONFIG, routes, inject_ca="SU5K")
    assert patch["metadata"]["resourceVersion"] == "7"      # optimistic: a concurrent change makes it a 409
    routed = _merge(CONFIG, patch)
    first, second, other = routed["webhooks"]
    assert first["clientConfig"] == {"url": "https://127.0.0.1:39443/mutate-ome-io-v1beta1-inferenceservice",
                                     "caBundle": "Q0E="}
    assert second["clientConfig"]["url"] == "https://127.0.0.1:39443/mutate-pods"
    assert other["clientConfig"] == {"caBundle": "SU5K", "service": CONFIG["webhooks"][2]["clientConfig"]["service"]}
    assert first["sideEffects"] == "None"
    remembered = json.loads(routed["metadata"]["annotations"][omelab.ROUTED_ANNOTATION])
    assert remembered["pod-mutator"] == {"name": "ome-webhook-server-service", "namespace": "ome",
                                         "path": "/mutate-pods"}
    assert omelab.plan_webhook_configuration(routed, routes, inject_ca="SU5K") is None          # idempotent
    moved = omelab.plan_webhook_configuration(routed, {("ome", "ome-webhook-server-service"):
                                                       omelab.Route("ome", "ome-webhook-server-service", 40000,
                                                                    "Q0E=")}, "SU5K")
    assert _merge(routed, moved)["webhooks"][1]["clientConfig"]["url"] == "https://127.0.0.1:40000/mutate-pods"
    # the process stops: the Services come back, with the injected CA
    restored = _merge(routed, omelab.plan_webhook_configuration(routed, {}, inject_ca="SU5K"))
    assert [w["clientConfig"] for w in restored["webhooks"]] == [
        {"caBundle": "SU5K", "service": w["clientConfig"]["service"]} for w in CONFIG["webhooks"]]
    assert omelab.ROUTED_ANNOTATION not in restored["metadata"]["annotations"]
    assert omelab.plan_webhook_configuration(restored, {}, inject_ca="SU5K") is None


def test_other_namespaces_services_are_not_routed():
    routes = {("elsewhere", "ome-webhook-server-service"): omelab.Route("elsewhere", "ome-webhook-server-service",
                                                                         1, "x")}
    assert omelab.plan_webhook_configuration(CONFIG, routes) is None


def test_crd_conversion_webhook_is_routed_too():
    crd = {"metadata": {"name": omelab.LWS_CRD, "resourceVersion": "3"},
           "spec": {"conversion": {"strategy": "Webhook", "webhook": {
               "conversionReviewVersions": ["v1"],
               "clientConfig": {"service": {"name": "lws-webhook-service", "namespace": "lws-system",
                                            "path": "/convert"}}}}}}
    routes = {("lws-system", "lws-webhook-service"): omelab.Route("lws-system", "lws-webhook-service", 9555, "Q0E=")}
    patch = omelab.plan_crd_conversion(crd, routes)
    routed = _merge(crd, patch)
    webhook = routed["spec"]["conversion"]["webhook"]
    assert webhook == {"conversionReviewVersions": ["v1"],
                       "clientConfig": {"url": "https://127.0.0.1:9555/convert", "caBundle": "Q0E="}}
    assert omelab.plan_crd_conversion(routed, routes) is None
    restored = _merge(routed, omelab.plan_crd_conversion(routed, {}))
    assert restored["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["name"] == "lws-webhook-service"
    assert "url" not in restored["spec"]["conversion"]["webhook"]["clientConfig"]
    assert omelab.plan_crd_conversion({"spec": {"conversion": {"strategy": "None"}}}, routes) is None


# ---------------------------------------------------------------- kubelet: what runs for a Deployment
REPO_CHARTS = {"ome": Path.home() / "go/pkg/mod/github.com/sgl-project/ome@v0.1.5/charts/ome-resources",
               "lws": Path.home() / "go/pkg/mod/sigs.k8s.io/lws@v0.7.0/charts/lws"}


def _ome_deployment(args=None):
    return {"metadata": {"name": "ome-controller-manager", "namespace": "ome"},
            "spec": {"replicas": 1, "template": {"spec": {
                "containers": [{"name": "manager", "command": ["/manager"],
                                "args": args or ["--metrics-bind-address=:8080", "--leader-elect", "--webhook",
                                                 "--zap-encoder=console"],
                                "env": [{"name": "POD_NAMESPACE",
                                         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                        {"name": "SECRET_NAME", "value": "ome-webhook-server-cert"}],
                                "volumeMounts": [{"mountPath": "/tmp/k8s-webhook-server/serving-certs",
                                                  "name": "cert", "readOnly": True}]}],
                "volumes": [{"name": "cert", "secret": {"secretName": "ome-webhook-server-cert"}}]}}}}


LWS_CONFIG = "apiVersion: config.lws.x-k8s.io/v1alpha1\nkind: Configuration\nleaderElection:\n  leaderElect: true\n" \
             "internalCertManagement:\n  enable: true\n"


def _lws_deployment():
    return {"metadata": {"name": "lws-controller-manager", "namespace": "lws-system"},
            "spec": {"replicas": 1, "template": {"spec": {
                "containers": [{"name": "manager", "command": ["/manager"],
                                "args": ["--config=/controller_manager_config.yaml", "--zap-log-level=2"],
                                "volumeMounts": [{"name": "manager-config", "subPath": "controller_manager_config.yaml",
                                                  "mountPath": "/controller_manager_config.yaml"},
                                                 {"mountPath": "/tmp/k8s-webhook-server/serving-certs",
                                                  "name": "cert", "readOnly": True}]}],
                "volumes": [{"name": "manager-config", "configMap": {"name": "lws-manager-config"}},
                            {"name": "cert", "secret": {"secretName": "lws-webhook-server-cert"}}]}}}}


def _plan(spec, deployment, tmp_path, configmaps=None, secrets=None, crds=True):
    return omelab.plan_launch(spec, deployment, binary=Path("/bin/ctl"), kubeconfig=Path("/k/worker.yaml"),
                              workdir=tmp_path / spec.binary, port=39443,
                              get_configmap=lambda ns, n: (configmaps or {}).get((ns, n)),
                              get_secret=lambda ns, n: (secrets or {}).get((ns, n)),
                              crds_established=lambda name: crds, marker={"LAB_OMELAB_DIR": str(tmp_path)})


def test_ome_manager_runs_with_its_container_args_adapted_out_of_cluster(tmp_path):
    ome = omelab.CONTROLLERS[0]
    assert _plan(ome, _ome_deployment(), tmp_path, crds=False).reason.startswith("CRD inferenceservices.ome.io")
    assert "inferenceservice-config" in _plan(ome, _ome_deployment(), tmp_path).reason
    configmaps = {("ome", "inferenceservice-config"): {"data": {}}}
    assert "Secret ome/ome-webhook-server-cert" in _plan(ome, _ome_deployment(), tmp_path, configmaps).reason
    tls = {"data": {"tls.crt": base64.b64encode(b"CRT").decode(), "tls.key": base64.b64encode(b"KEY").decode(),
                    "ca.crt": "Q0E="}}
    launch = _plan(ome, _ome_deployment(), tmp_path, configmaps, {("ome", "ome-webhook-server-cert"): tls})
    assert launch.argv == ["/bin/ctl", "--webhook", "--zap-encoder=console", "--kubeconfig=/k/worker.yaml",
                           "--metrics-bind-address=0", "--health-probe-addr=0", "--leader-elect=false",
                           "--webhook-port=39443"]
    assert launch.env["POD_NAMESPACE"] == "ome" and launch.env["SECRET_NAME"] == "ome-webhook-server-cert"
    cert_dir = tmp_path / "ome-manager" / "tmp" / "k8s-webhook-server" / "serving-certs"
    assert launch.env["TMPDIR"] == str(tmp_path / "ome-manager" / "tmp")    # controller-runtime's default cert dir
    assert launch.files == {str(cert_dir / "tls.crt"): b"CRT", str(cert_dir / "tls.key"): b"KEY",
                            str(cert_dir / "ca.crt"): b"CA"}
    assert launch.webhook and launch.ca_bundle == "Q0E=" and launch.cert_secret == ("ome", "ome-webhook-server-cert")
    assert launch.env["LAB_OMELAB_DIR"] == str(tmp_path)
    # a port change alone is not a new pod; other args are
    again = _plan(ome, _ome_deployment(), tmp_path, configmaps, {("ome", "ome-webhook-server-cert"): tls})
    assert again.fingerprint == launch.fingerprint
    restarted = _ome_deployment()
    restarted["spec"]["template"]["metadata"] = {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}
    assert _plan(ome, restarted, tmp_path, configmaps, {("ome", "ome-webhook-server-cert"): tls}).fingerprint \
        != launch.fingerprint                                         # kubectl rollout restart
    no_webhook = _plan(ome, _ome_deployment(["--leader-elect"]), tmp_path, configmaps)
    assert not no_webhook.webhook and no_webhook.fingerprint != launch.fingerprint


def test_lws_controller_gets_the_charts_config_with_out_of_cluster_overrides(tmp_path):
    lws = omelab.CONTROLLERS[1]
    assert "lws-manager-config" in _plan(lws, _lws_deployment(), tmp_path).reason
    configmaps = {("lws-system", "lws-manager-config"): {"data": {"controller_manager_config.yaml": LWS_CONFIG}}}
    launch = _plan(lws, _lws_deployment(), tmp_path, configmaps)
    config_file = tmp_path / "lws-controller" / "config.yaml"
    assert launch.argv == ["/bin/ctl", "--zap-log-level=2", f"--config={config_file}", "--kubeconfig=/k/worker.yaml"]
    config = yaml.safe_load(launch.files[str(config_file)])
    assert config["leaderElection"]["leaderElect"] is False
    assert config["internalCertManagement"] == {"enable": False}
    assert config["webhook"] == {"host": "127.0.0.1", "port": 39443,
                                 "certDir": str(tmp_path / "lws-controller" / "certs")}
    assert config["metrics"] == {"bindAddress": "0"} and config["health"] == {"healthProbeBindAddress": "0"}
    # internal cert management: the stand-in plays its cert-controller (writes the Secret itself)
    assert launch.lab_cert and launch.cert_secret == ("lws-system", "lws-webhook-server-cert")
    assert launch.cert_dns == ("lws-webhook-service.lws-system.svc", "lws-webhook-service.lws-system.svc.cluster.local")
    # with the chart's enableCertManager the Certificate's Secret is waited for instead
    cm_mode = {("lws-system", "lws-manager-config"): {"data": {"controller_manager_config.yaml": LWS_CONFIG.replace(
        "enable: true", "enable: false")}}}
    assert "lws-webhook-server-cert" in _plan(lws, _lws_deployment(), tmp_path, cm_mode).reason


def test_flags_are_dropped_in_every_go_spelling():
    args = ["--metrics-bind-address", ":8080", "-leader-elect", "--webhook", "--kubeconfig=/x", "--zap-devel"]
    assert omelab._drop_flags(args, ("metrics-bind-address", "leader-elect", "kubeconfig")) == ["--webhook",
                                                                                                 "--zap-devel"]
    assert omelab._flag_true(["--webhook"], "webhook") and not omelab._flag_true(["--webhook=false"], "webhook")


def test_charts_render_what_the_stand_in_expects(tmp_path):
    """The real charts' Deployments, webhook Services and cert volumes are the names the stand-in knows."""
    helm = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "helm"
    if not helm.is_file() or not all(p.is_dir() for p in REPO_CHARTS.values()):
        pytest.skip("helm or the OME/LWS modules are not available")
    import subprocess

    for (name, chart), ns, spec in zip(REPO_CHARTS.items(), ("ome", "lws-system"), omelab.CONTROLLERS[:2],
                                                strict=True):
        out = subprocess.run([str(helm), "template", name, str(chart), "-n", ns], capture_output=True, text=True,
                             check=True, timeout=120).stdout
        docs = [d for d in yaml.safe_load_all(out) if d]
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        assert deployment["metadata"]["name"] == spec.deployment
        assert any(d["kind"] == "Service" and d["metadata"]["name"] == spec.service for d in docs)
        services = {(w["clientConfig"].get("service") or {}).get("name") for d in docs
                    if d["kind"].endswith("WebhookConfiguration") for w in d["webhooks"]}
        assert services == {spec.service}
        assert omelab._volume_at(deployment, omelab.WEBHOOK_CERT_DIR)[0] == "secret"


def _standin_chart_docs(chart: str, namespace: str) -> list[dict]:
    import subprocess

    from labctl.repos import charts

    helm = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "helm"
    if not helm.is_file():
        pytest.skip("helm is not built")
    try:
        repo = charts.ensure_built(log=lambda _m: None)
    except Exception as exc:  # no module proxy reachable: nothing to render
        pytest.skip(f"the lab chart repository cannot be built here: {exc}")
    archive = next(repo.glob(f"{chart}-[0-9]*.tgz"))
    out = subprocess.run([str(helm), "template", chart, str(archive), "-n", namespace], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _spec(binary: str) -> omelab.ControllerSpec:
    return next(s for s in omelab.CONTROLLERS if s.binary == binary)


def test_kuberay_operator_runs_with_its_chart_args_and_out_of_cluster_overrides(tmp_path):
    docs = _standin_chart_docs("kuberay-operator", "kuberay-system")
    spec = _spec("ray-operator")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["metadata"]["name"] == spec.deployment
    launch = omelab.plan_launch(spec, deployment, binary=Path("/bin/ray-operator"), kubeconfig=Path("/kc"),
                                workdir=tmp_path, port=1, get_configmap=lambda *a: None,
                                get_secret=lambda *a: None, crds_established=lambda name: True)
    assert launch.argv[0] == "/bin/ray-operator" and not launch.webhook
    assert "--feature-gates=RayClusterStatusConditions=true" in launch.argv      # the chart's own
    assert "--enable-leader-election=true" not in launch.argv
    assert launch.argv[-4:] == ["--kubeconfig=/kc", "--metrics-addr=0", "--health-probe-bind-address=0",
                                "--enable-leader-election=false"]
    waiting = omelab.plan_launch(spec, deployment, binary=Path("/b"), kubeconfig=Path("/kc"), workdir=tmp_path,
                                 port=1, get_configmap=lambda *a: None, get_secret=lambda *a: None,
                                 crds_established=lambda name: name != "rayservices.ray.io")
    assert waiting.reason == "CRD rayservices.ray.io not established"


def test_keda_operator_and_adapter_run_with_the_certificates_the_operator_writes(tmp_path):
    docs = _standin_chart_docs("keda", "keda")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    operator, adapter = _spec("keda-operator"), _spec("keda-adapter")
    assert set(deployments) == {operator.deployment, adapter.deployment}
    apiservice = next(d for d in docs if d["kind"] == "APIService")
    assert apiservice["spec"]["service"] == {"name": adapter.service, "namespace": "keda", "port": 443}
    secrets: dict = {}
    addresses: dict = {}

    def plan(spec):
        return omelab.plan_launch(spec, deployments[spec.deployment], binary=Path(f"/bin/{spec.binary}"),
                                  kubeconfig=Path("/kc"), workdir=tmp_path / spec.binary, port=40000,
                                  get_configmap=lambda *a: None, get_secret=lambda ns, n: secrets.get((ns, n)),
                                  crds_established=lambda name: True,
                                  service_address=lambda ns, n: addresses.get((ns, n)))

    # The operator starts before its own certificates exist (it writes them: cert rotation).
    launch = plan(operator)
    assert "--leader-elect" not in launch.argv and "--leader-elect=false" in launch.argv
    assert "--enable-cert-rotation=true" in launch.argv
    assert f"--cert-dir={tmp_path / 'keda-operator' / 'certs'}" in launch.argv
    assert "--metrics-service-bind-address=127.0.0.1:40000" in launch.argv
    assert launch.env["POD_NAMESPACE"] == "keda" and launch.env["KEDA_CLUSTER_OBJECT_NAMESPACE"] == "keda"
    assert launch.env["WATCH_NAMESPACE"] == "" and launch.files == {}
    # The adapter waits for them, then for the operator's gRPC service.
    assert "kedaorg-certs" in plan(adapter).reason
    pem = {k: omelab._b64(b"x") for k in ("ca.crt", "tls.crt", "tls.key")}
    secrets[("keda", "kedaorg-certs")] = {"data": pem}
    assert "keda-operator's metrics service" in plan(adapter).reason
    addresses[("keda", "keda-operator")] = "127.0.0.1:39999"
    launch = plan(adapter)
    certs = tmp_path / "keda-adapter" / "certs"
    assert {Path(p).name for p in launch.files} == {"ca.crt", "tls.crt", "tls.key"}
    assert launch.pod_ip == omelab.LAB_HOST_IP
    for flag in (f"--bind-address={omelab.LAB_HOST_IP}", "--secure-port=6443", "--port=40000",
                 f"--tls-cert-file={certs}/tls.crt", f"--client-ca-file={certs}/ca.crt",
                 "--metrics-service-address=127.0.0.1:39999", "--metrics-service-grpc-authority=keda-operator.keda.svc",
                 "--lister-kubeconfig=/kc", "--authentication-kubeconfig=/kc"):
        assert flag in launch.argv, flag
    assert not any(a.startswith("--cert-dir=/certs") for a in launch.argv)


# ---------------------------------------------------------------- the reconcile, against a fake API
class FakeApi:
    """Objects by path; GET/POST/PATCH (merge) as kube-apiserver answers them."""

    def __init__(self, objects):
        self.objects = {k: copy.deepcopy(v) for k, v in objects.items()}
        self.calls = []

    def request(self, api, method, path, query=None, body=None, content_type=None, timeout=None, stream=False):
        from kubernetes.client.exceptions import ApiException

        self.calls.append((method, path))
        if method == "GET":
            if path not in self.objects:
                raise ApiException(status=404)
            return copy.deepcopy(self.objects[path])
        if method == "POST":
            self.objects[f"{path}/{body['metadata']['name']}"] = copy.deepcopy(body)
            return body
        if method == "PATCH":
            target = path.removesuffix("/status")
            if target not in self.objects:
                raise ApiException(status=404)
            self.objects[target] = _merge(self.objects[target], body)
            return self.objects[target]
        raise AssertionError(method)


def _lab(tmp_path, monkeypatch, objects, machines=None):
    fake = FakeApi(objects)
    monkeypatch.setattr(omelab, "api_request", fake.request)
    lab = omelab.OmeLab(object(), tmp_path / "kc", tmp_path / "work", omelab.create_ca(),
                        omelab.MachineFilesystems(machines), log=lambda m: None)
    return lab, fake


def _fill(lab, name, items):
    cache = lab.caches[name]
    cache.items = {omelab._key(o): cache.transform(copy.deepcopy(o)) for o in items}
    cache.synced = cache.served = True


def test_reconcile_models_labels_only_nodes_running_the_agent(tmp_path, monkeypatch):
    machines = tmp_path / "machines"
    for node in ("gpu-1", "gpu-2", "gpu-3"):
        (machines / node / "data" / "k8s" / "models" / "llama").mkdir(parents=True)
    nodes = [{"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}} for n in ("gpu-1", "gpu-2", "gpu-3")]
    lab, fake = _lab(tmp_path, monkeypatch, {f"/api/v1/nodes/{n['metadata']['name']}": n for n in nodes}, machines)
    _fill(lab, "nodes", nodes)
    _fill(lab, "agentpods", [
        {"metadata": {"name": "agent-1", "namespace": "ome"}, "spec": {"nodeName": "gpu-1"},
         "status": {"phase": "Running"}},
        {"metadata": {"name": "agent-2", "namespace": "ome"}, "spec": {"nodeName": "gpu-2"},
         "status": {"phase": "Pending"}}])
    _fill(lab, "clusterbasemodels", [{"metadata": {"name": "llama"},
                                      "spec": {"storage": {"path": "/data/k8s/models/llama"}}}])
    lab.reconcile_models(recheck=True)
    label = "models.ome.io/clusterbasemodel.llama"
    assert fake.objects["/api/v1/nodes/gpu-1"]["metadata"]["labels"][label] == "Ready"
    assert label not in fake.objects["/api/v1/nodes/gpu-2"]["metadata"]["labels"]   # agent not running there
    assert label not in fake.objects["/api/v1/nodes/gpu-3"]["metadata"]["labels"]   # no agent at all
    cm = fake.objects["/api/v1/namespaces/ome/configmaps/gpu-1"]
    assert cm["metadata"]["labels"] == {"models.ome/basemodel-status": "true", "node": "gpu-1"}
    assert cm["data"] == {"clusterbasemodel.llama": '{"name":"llama","status":"Ready"}'}
    assert lab.model_labels == {"gpu-1": [label]}
    # the directory goes: so do the label and the status entry
    _fill(lab, "nodes", [fake.objects["/api/v1/nodes/gpu-1"]])
    (machines / "gpu-1" / "data" / "k8s" / "models" / "llama").rmdir()
    lab.reconcile_models(recheck=True)
    assert label not in fake.objects["/api/v1/nodes/gpu-1"]["metadata"]["labels"]
    assert fake.objects["/api/v1/namespaces/ome/configmaps/gpu-1"].get("data") == {}
    lab.machines.close()


def test_reconcile_certs_issues_then_marks_ready_and_injects_the_ca(tmp_path, monkeypatch):
    cert = {"metadata": {"name": "serving-cert", "namespace": "ome", "generation": 1},
            "spec": {"secretName": "ome-webhook-server-cert", "dnsNames": ["ome-webhook-server-service.ome.svc"],
                     "issuerRef": {"kind": "Issuer", "name": "selfsigned-issuer"}}}
    issuer = {"metadata": {"name": "selfsigned-issuer", "namespace": "ome", "generation": 1},
              "spec": {"selfSigned": {}}}
    cert_path = "/apis/cert-manager.io/v1/namespaces/ome/certificates/serving-cert"
    lab, fake = _lab(tmp_path, monkeypatch, {cert_path: cert,
                                             "/apis/cert-manager.io/v1/namespaces/ome/issuers/selfsigned-issuer":
                                                 issuer,
                                             "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                                             "inferenceservice.ome.io": CONFIG})
    _fill(lab, "certificates", [cert])
    lab.reconcile_certs()            # no Issuer yet: pending, no Secret
    assert fake.objects[cert_path]["status"]["conditions"][0]["status"] == "False"
    assert "/api/v1/namespaces/ome/secrets/ome-webhook-server-cert" not in fake.objects
    _fill(lab, "issuers", [issuer])
    _fill(lab, "certificates", [fake.objects[cert_path]])
    lab.reconcile_certs()
    secret = fake.objects["/api/v1/namespaces/ome/secrets/ome-webhook-server-cert"]
    assert fake.calls.index(("POST", "/api/v1/namespaces/ome/secrets")) < \
        max(i for i, c in enumerate(fake.calls) if c == ("PATCH", cert_path + "/status"))   # Secret, then Ready
    assert fake.objects[cert_path]["status"]["conditions"][0]["status"] == "True"
    assert lab.certificates == {"ome/serving-cert": "ome/ome-webhook-server-cert"}
    calls = len(fake.calls)
    _fill(lab, "certificates", [fake.objects[cert_path]])
    _fill(lab, "issuers", [fake.objects["/apis/cert-manager.io/v1/namespaces/ome/issuers/selfsigned-issuer"]])
    lab.reconcile_certs()            # nothing to do: one GET of the Secret, no writes
    assert [c[0] for c in fake.calls[calls:]] == ["GET"]
    _fill(lab, "validatingwebhookconfigurations", [CONFIG])
    lab.reconcile_routing(routes={})
    injected = fake.objects["/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                            "inferenceservice.ome.io"]
    assert {w["clientConfig"]["caBundle"] for w in injected["webhooks"]} == {secret["data"]["ca.crt"]}
    lab.machines.close()


def test_controller_process_restarts_with_back_off(tmp_path, monkeypatch):
    spec = omelab.ControllerSpec("fake", "fake", "fake-svc", (), "ome")
    proc = omelab.ControllerProcess(spec, tmp_path / "fake", log=lambda m: None)
    launch = omelab.Launch(["/bin/sh", "-c", "exit 3"], {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path / "t")}, {},
                           webhook=False, fingerprint="x")
    proc.start(launch)
    proc.proc.wait(10)
    assert proc.poll() is True and proc.restarts == 1 and proc.last_exit.startswith("exit 3")
    assert proc.backoff == 2 * omelab.BACKOFF_FIRST
    assert oct(os.stat(proc.log_path).st_mode & 0o777) == "0o600"
    launch.argv = ["/bin/sleep", "30"]
    proc.start(launch)
    assert proc.running
    proc.stop("test")
    assert not proc.running and proc.row()["pid"] is None
