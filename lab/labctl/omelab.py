"""Controller stand-in (lab fixture; OME, LeaderWorkerSet, KubeRay, KEDA): for the lab's ``worker`` cluster,
the parts of a real cluster that cannot run here, so that the REAL ``ome-manager``, ``lws-controller``,
``ray-operator``, ``keda-operator`` and ``keda-adapter`` binaries (built from their Go modules,
:mod:`labctl.controllers`) do their real work out of cluster.

The roles install OME's real chart ``ome-resources`` (namespace ``ome``) and LWS's real chart
``charts/lws`` (namespace ``lws-system``). In the lab kwok fakes every pod: nothing runs in them, no
kubelet mounts a volume, no kube-proxy routes a Service, no cert-manager issues a Certificate and
OME's model agent downloads nothing. This stand-in plays those parts, and only those:

a) **kubelet for the controller Deployments.** While Deployment ``ome-controller-manager`` (any
   namespace, normally ``ome``) exists with replicas > 0, ONE ``ome-manager`` process runs on the lab
   host with the container's own args and env (``POD_NAMESPACE`` from the Deployment's namespace,
   ``SECRET_NAME`` ...), except what out of cluster must differ: ``--kubeconfig`` (the cluster's admin
   kubeconfig), ``--metrics-bind-address=0``, ``--health-probe-addr=0``, ``--leader-elect=false``
   (one process only) and ``--webhook-port=<free port>``. OME gives its webhook server no host option,
   so it listens on every address of the host, on that port. The Secret volume mounted at the
   webhook cert dir (``/tmp/k8s-webhook-server/serving-certs``) is synced into a private directory
   (``TMPDIR`` points the process there) the way a kubelet keeps a Secret volume up to date. It starts
   only once what its pod would wait for exists: ConfigMap ``inferenceservice-config``, the ``ome.io``
   CRDs it watches, and its cert Secret. Same for ``lws-controller-manager`` / ``lws-controller``,
   whose ``--config`` file is the chart's ConfigMap with the out-of-cluster settings overridden
   (``internalCertManagement.enable: false``, webhook ``host: 127.0.0.1``/port/certDir,
   ``leaderElection.leaderElect: false``, metrics and health ``"0"``). A process that exits is started
   again after a bounded back-off (1 s doubling to 60 s, reset after 2 min of running); a change of
   the container spec or the config restarts it (a rollout); the Deployment going stops it. Logs:
   ``lab/state/omelab/<cluster>/<binary>.log`` (0600).
b) **cert-manager.** :func:`install_cert_manager_crds` makes the API serve ``cert-manager.io/v1``
   Certificate, Issuer and ClusterIssuer (minimal CRDs from cert-manager's documented fields, in
   ``omelab_fixtures/``). For each Certificate whose issuer exists, the stand-in writes its Secret
   (``kubernetes.io/tls``: ``tls.crt``, ``tls.key``, ``ca.crt``) signed by the lab CA (whatever the
   issuer type: self-signed and CA issuers alike), with the Certificate's dnsNames/ipAddresses/uris
   plus the IP SANs ``127.0.0.1`` and ``10.77.0.1`` (the lab host), so that the out-of-cluster webhook
   server can be reached by address; only then does the Certificate get ``Ready=True`` (the real
   contract). Spec changes and the renewal window re-issue. Issuers are marked Ready. The cainjector
   part: webhook configurations and CRDs annotated ``cert-manager.io/inject-ca-from: <ns>/<cert>``
   (or ``inject-ca-from-secret`` with the Secret's ``cert-manager.io/allow-direct-injection``) get the
   Secret's ``ca.crt`` as their ``caBundle``.
c) **the Service network.** No kube-proxy runs, so kube-apiserver cannot reach a webhook behind a
   Service. While a controller process runs and its webhook port serves a cert that verifies for
   ``127.0.0.1`` against the CA (the moment its pod would become a ready endpoint), every webhook
   whose ``clientConfig.service`` names that controller's Service (``ome-webhook-server-service``,
   ``lws-webhook-service`` in the Deployment's namespace) and the LWS CRD's conversion webhook get
   ``clientConfig.url: https://127.0.0.1:<port><path>`` instead (path kept) with the ``caBundle`` of
   the serving cert. This
   rewrite is the lab's substitute for Service routing; the original Service reference is kept in
   the annotation ``lab.aicluster.io/omelab-routed`` and put back when the process stops (no ready
   endpoint: calls fail as they would against a Service without endpoints). For LWS the stand-in
   also plays the cert-controller LWS runs in its pod (internal cert management): it writes the
   Secret ``lws-webhook-server-cert`` with a serving cert (service DNS names + the IP SANs) from the
   lab CA; with the chart's ``enableCertManager`` the Certificate's Secret is used instead.
d) **the model agent.** OME's model-agent DaemonSet labels a Node
   ``models.ome.io/clusterbasemodel.<name>=Ready`` (``models.ome.io/<ns>.basemodel.<name>`` for a
   BaseModel; long names truncated with a hash exactly as ``pkg/constants``
   ``GetClusterBaseModelLabel``/``GetBaseModelLabel`` do) once the model is on that node, and writes
   the per-node status ConfigMap (``<agent ns>/<node>``, label ``models.ome/basemodel-status=true``,
   key ``clusterbasemodel.<name>`` -> ``{"name": ..., "status": "Ready"}``) that OME's BaseModel
   controller turns into model status. Here: on a Node where a model-agent pod
   (``app.kubernetes.io/component=ome-model-agent-daemonset``) is Running, a model counts as present
   when its ``spec.storage.path`` is a directory on that Node's lab machine (Node name = machine name;
   the machine is the podman container ``aicluster-lab-<name>``, checked from the host through
   ``/proc/<pid>/root``, i.e. inside its mount namespace, where ``/data/k8s`` is mounted) and the
   model's ``storage.nodeSelector``/``nodeAffinity`` admit the Node (PVC storage is skipped, as the
   agent does). The label goes when the model or the directory goes. Labels the stand-in set are
   recorded in the Node annotation ``lab.aicluster.io/omelab-models``; it never touches others. On a
   Node without a running agent pod nothing is changed (a stopped agent leaves its labels, too).

e) **KubeRay and KEDA** (the same kubelet part, a), for more Deployments). While ``kuberay-operator`` exists,
   the real ``ray-operator`` runs with the chart's args plus ``--kubeconfig``, ``--metrics-addr=0``,
   ``--health-probe-bind-address=0``, ``--enable-leader-election=false`` (no webhooks: the chart enables
   none). While ``keda-operator`` exists, the real ``keda-operator`` runs with its args plus ``--kubeconfig``,
   ``--leader-elect=false``, metrics and probes off, its gRPC metrics service on
   ``127.0.0.1:<free port>`` and ``--cert-dir`` a private directory kept in sync with the Secret the chart
   mounts at ``/certs`` (``kedaorg-certs``, which the operator itself writes and rotates, injecting its CA into
   the APIService); env ``KEDA_CLUSTER_OBJECT_NAMESPACE`` = the Deployment's namespace (read in a pod from
   the ServiceAccount mount). While ``keda-operator-metrics-apiserver`` exists and that Secret has its
   certificates, the real ``keda-adapter`` serves ``external.metrics.k8s.io`` on
   ``10.77.0.1:<the chart's --secure-port>`` with those certificates, asks the operator over gRPC at its
   loopback port (authority ``keda-operator.<ns>.svc``, a name in the operator's certificate) and
   authenticates kube-apiserver's proxied requests through the cluster's request-header configuration. For
   the Service network, the stand-in does what a kubelet does for a pod: it reports the pod's address,
   ``status.podIP`` = ``10.77.0.1`` (where the process listens) on the adapter's pods, so the endpoint slice
   of the chart's Service leads to the process and kube-apiserver, with ``--enable-aggregator-routing``
   (:mod:`labctl.clusters`), proxies the APIService there, checking the serving cert against the
   APIService's caBundle for ``keda-operator-metrics-apiserver.<ns>.svc`` as in a cluster. The HPA that KEDA
   makes then reads the cron scaler's metric through the real aggregation layer.

Not emulated: model downloads (a model is "on the node" when its directory exists), the agent's
metadata parsing (put ``modelFormat``/``modelArchitecture``/... in the model spec), leader election,
metrics and probes, cert-manager ACME/Vault semantics (every issuer signs with the lab CA), the
``Updating``/``Failed`` model states. OME detects optional APIs (LWS, KEDA, ...) once at start-up, as
it does in a cluster: install LWS before OME, or restart it (``kubectl rollout restart``: any change of
the pod template restarts the process).

One stand-in process per cluster (a Python client; its children are the two controllers), started
and stopped like the other stand-ins (pid file, log and state under ``lab/state/omelab/``)::

    install_cert_manager_crds(cluster="worker")   serve cert-manager.io/v1 (call before up)
    up(cluster="worker")    start it in the background (no-op if running); waits for its first sync
    down(cluster=None)      stop it and its controller processes (all clusters by default)
    status()                what runs: controllers (pid, port, ready, restarts), certificates, labels
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import copy
import hashlib
import ipaddress
import json
import os
import posixpath
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from labctl import paths
from labctl.standin import StandIn, WatchCache, api_request, cli_log, error_line, foreground_log
from labctl.standin import object_key as _key
from labctl.standin import status_of as _status_of

FIXTURES = Path(__file__).resolve().parent / "omelab_fixtures"
CERT_MANAGER_CRDS = FIXTURES / "cert-manager-crds.yaml"

LAB_HOST_IP = "10.77.0.1"           # the lab host on the fleet network (labctl.fleet.runtime.GATEWAY)
LOOPBACK = "127.0.0.1"
EXTRA_IP_SANS = (LOOPBACK, LAB_HOST_IP)

ROUTED_ANNOTATION = "lab.aicluster.io/omelab-routed"
MODELS_ANNOTATION = "lab.aicluster.io/omelab-models"
ISSUED_ANNOTATION = "lab.aicluster.io/omelab-issued"
INJECT_CA_FROM = "cert-manager.io/inject-ca-from"
INJECT_CA_FROM_SECRET = "cert-manager.io/inject-ca-from-secret"  # noqa: S105 (an annotation name)
ALLOW_DIRECT_INJECTION = "cert-manager.io/allow-direct-injection"
FIELD_MANAGER = "lab-omelab"

# OME pkg/constants (v0.1.5)
MODEL_LABEL_DOMAIN = "models.ome.io"
CLUSTER_BASE_MODEL_TYPE = "clusterbasemodel"
BASE_MODEL_TYPE = "basemodel"
MAX_LABEL_NAME_LENGTH = 49          # 63 - len("models.ome.io") - 1
MAX_CONFIGMAP_KEY_LENGTH = 253
HASH_PREFIX_LENGTH = 8
MODEL_STATUS_CONFIGMAP_LABEL = "models.ome/basemodel-status"
MODEL_AGENT_SELECTOR = "app.kubernetes.io/component=ome-model-agent-daemonset"
MODEL_READY = "Ready"

WEBHOOK_CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"   # controller-runtime's default ($TMPDIR/...)
OME_CRDS = tuple(f"{p}.ome.io" for p in ("inferenceservices", "servingruntimes", "clusterservingruntimes",
                                          "basemodels", "clusterbasemodels", "benchmarkjobs", "acceleratorclasses"))
LWS_CRD = "leaderworkersets.leaderworkerset.x-k8s.io"
RAY_CRDS = tuple(f"{p}.ray.io" for p in ("rayclusters", "rayjobs", "rayservices"))
KEDA_CRDS = ("scaledobjects.keda.sh", "scaledjobs.keda.sh", "triggerauthentications.keda.sh",
             "clustertriggerauthentications.keda.sh")
KEDA_GRPC_PORT = 9666               # the operator's metrics service (the adapter's gRPC peer)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 45.0                 # the stand-in stops its controllers (SIGTERM, 10 s, SIGKILL) first
CHILD_STOP_TIMEOUT = 10.0
RESYNC_SECONDS = 10.0               # everything is reconciled this often without events
MODEL_POLL_SECONDS = 3.0            # model directories are checked this often
PATH_CHECK_TIMEOUT = 5.0
MISSING_API_RETRY = 5.0             # an API that is not served yet (CRDs not installed) is listed again
BACKOFF_FIRST, BACKOFF_MAX, BACKOFF_RESET = 1.0, 60.0, 120.0
MERGE_PATCH = "application/merge-patch+json"


class OmeLabError(RuntimeError):
    """One clear line about what went wrong with the OME/LWS stand-in."""


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except ValueError:
        return b""


def _meta(obj: Mapping) -> dict:
    return obj.get("metadata") or {}


# ------------------------------------------------------------------ d) model labels: OME pkg/constants
def _truncate_with_hash(original: str, max_length: int) -> str:
    """OME ``truncateWithHash``: ``{sha256[:8]}-{suffix}`` when longer than ``max_length``."""
    if len(original) <= max_length:
        return original
    prefix = hashlib.sha256(original.encode()).hexdigest()[:HASH_PREFIX_LENGTH]
    suffix_length = max_length - HASH_PREFIX_LENGTH - 1
    if suffix_length <= 0:
        return prefix[:max_length]
    return f"{prefix}-{original[len(original) - suffix_length:]}"


def cluster_base_model_label(name: str) -> str:
    """``GetClusterBaseModelLabel``: ``models.ome.io/clusterbasemodel.<name>``, the name truncated to 32."""
    return f"{MODEL_LABEL_DOMAIN}/{CLUSTER_BASE_MODEL_TYPE}." \
           f"{_truncate_with_hash(name, MAX_LABEL_NAME_LENGTH - len(CLUSTER_BASE_MODEL_TYPE) - 1)}"


def _split_space(namespace: str, available: int) -> tuple[int, int]:
    min_length = 8
    if available < min_length * 2:
        ns_max = available // 2
        return ns_max, available - ns_max
    ns_max = len(namespace) if len(namespace) <= min_length else min_length
    return ns_max, available - ns_max


def base_model_label(namespace: str, name: str) -> str:
    """``GetBaseModelLabel``: ``models.ome.io/<ns>.basemodel.<name>``, both truncated to fit 49 characters."""
    available = MAX_LABEL_NAME_LENGTH - (len(BASE_MODEL_TYPE) + 1) - 1
    if len(namespace) + len(name) <= available:
        return f"{MODEL_LABEL_DOMAIN}/{namespace}.{BASE_MODEL_TYPE}.{name}"
    ns_max, name_max = _split_space(namespace, available)
    return f"{MODEL_LABEL_DOMAIN}/{_truncate_with_hash(namespace, ns_max)}.{BASE_MODEL_TYPE}." \
           f"{_truncate_with_hash(name, name_max)}"


def model_configmap_key(namespace: str, name: str, cluster_scoped: bool) -> str:
    """``GetModelConfigMapKey``: the model's key in a node status ConfigMap."""
    if cluster_scoped:
        return f"{CLUSTER_BASE_MODEL_TYPE}." \
               f"{_truncate_with_hash(name, MAX_CONFIGMAP_KEY_LENGTH - len(CLUSTER_BASE_MODEL_TYPE) - 1)}"
    available = MAX_CONFIGMAP_KEY_LENGTH - (len(BASE_MODEL_TYPE) + 1) - 1
    if len(namespace) + len(name) <= available:
        return f"{namespace}.{BASE_MODEL_TYPE}.{name}"
    ns_max, name_max = _split_space(namespace, available)
    return f"{_truncate_with_hash(namespace, ns_max)}.{BASE_MODEL_TYPE}.{_truncate_with_hash(name, name_max)}"


@dataclass(frozen=True)
class Model:
    """A ClusterBaseModel (namespace "") or BaseModel, as far as the model agent cares."""

    namespace: str
    name: str
    path: str | None
    storage: Mapping = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_object(cls, obj: Mapping) -> Model:
        storage = (obj.get("spec") or {}).get("storage") or {}
        return cls(_meta(obj).get("namespace") or "", _meta(obj).get("name") or "", storage.get("path") or None,
                   storage)

    @property
    def cluster_scoped(self) -> bool:
        return not self.namespace

    @property
    def label(self) -> str:
        return cluster_base_model_label(self.name) if self.cluster_scoped else base_model_label(self.namespace,
                                                                                                 self.name)

    @property
    def configmap_key(self) -> str:
        return model_configmap_key(self.namespace, self.name, self.cluster_scoped)

    def describe(self) -> str:
        return f"ClusterBaseModel {self.name}" if self.cluster_scoped else f"BaseModel {self.namespace}/{self.name}"


def _expression_matches(expr: Mapping, node_name: str, labels: Mapping[str, str]) -> bool:
    """The agent's ``nodeMatchesExpression`` (labels, then the field ``metadata.name``)."""
    key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
    if key in labels:
        value = labels[key]
    elif key == "metadata.name":
        value = node_name
    else:
        return op == "DoesNotExist"
    if op == "In":
        return value in values
    if op == "NotIn":
        return value not in values
    if op == "Exists":
        return True
    if op in ("Gt", "Lt") and values:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            a, b = value, values[0]  # type: ignore[assignment]
        return a > b if op == "Gt" else a < b
    return False


def storage_admits_node(storage: Mapping, node_name: str, labels: Mapping[str, str]) -> bool:
    """Whether the model agent on this Node handles a model (``shouldDownloadModelCommon``): not PVC
    storage, ``storage.nodeSelector`` all equal, one of ``nodeAffinity``'s required terms matching."""
    uri = str(storage.get("storageUri") or "")
    if uri.startswith("pvc://"):
        return False
    for key, value in (storage.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((storage.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if terms and not any(all(_expression_matches(e, node_name, labels)
                             for e in (t.get("matchExpressions") or []) + (t.get("matchFields") or []))
                         for t in terms):
        return False
    return True


def desired_model_labels(node_name: str, node_labels: Mapping[str, str], models: Iterable[Model],
                         present: Callable[[str], bool | None]) -> tuple[dict[str, Model], set[str]]:
    """(label -> model) that a Node running the model agent should carry, and the labels whose state
    is unknown (the directory check failed: keep what is there). ``present(path)`` checks the Node's
    machine."""
    desired: dict[str, Model] = {}
    unknown: set[str] = set()
    for model in models:
        if not model.path or not storage_admits_node(model.storage, node_name, node_labels):
            continue
        here = present(model.path)
        if here is None:
            unknown.add(model.label)
        elif here:
            desired[model.label] = model
    return desired, unknown - set(desired)


def owned_model_labels(node: Mapping) -> set[str]:
    raw = (_meta(node).get("annotations") or {}).get(MODELS_ANNOTATION)
    try:
        data = json.loads(raw) if raw else []
    except ValueError:
        data = []
    return {str(x) for x in data} if isinstance(data, list) else set()


def plan_node_model_patch(node: Mapping, desired: Iterable[str], unknown: Iterable[str] = ()) -> dict | None:
    """Merge patch putting ``desired`` labels (value ``Ready``) on a Node and removing the ones the
    stand-in set before that are no longer desired (nor unknown); None when nothing changes."""
    meta = _meta(node)
    labels = meta.get("labels") or {}
    desired, unknown = set(desired), set(unknown)
    owned = owned_model_labels(node)
    patch_labels: dict[str, str | None] = {k: MODEL_READY for k in sorted(desired) if labels.get(k) != MODEL_READY}
    patch_labels.update({k: None for k in sorted(owned - desired - unknown) if k in labels})
    keep = sorted(desired | (owned & unknown))
    annotation = json.dumps(keep, separators=(",", ":")) if keep else None
    current = (meta.get("annotations") or {}).get(MODELS_ANNOTATION)
    if not patch_labels and annotation == current:
        return None
    patch: dict[str, Any] = {}
    if patch_labels:
        patch["labels"] = patch_labels
    if annotation != current:
        patch["annotations"] = {MODELS_ANNOTATION: annotation}
    return {"metadata": patch}


def model_status_entries(models: Iterable[Model]) -> dict[str, str]:
    """The node status ConfigMap data the agent writes for these (Ready) models."""
    return {m.configmap_key: json.dumps({"name": m.name, "status": MODEL_READY}, separators=(",", ":"))
            for m in models}


# ------------------------------------------------------------------ b) PKI: the lab CA and certificates
@dataclass(frozen=True)
class LabCA:
    cert_pem: bytes
    key_pem: bytes

    @property
    def bundle(self) -> str:
        """``caBundle`` value (base64 of the PEM)."""
        return _b64(self.cert_pem)

    def cert(self):
        from cryptography import x509

        return x509.load_pem_x509_certificate(self.cert_pem)

    def key(self):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return load_pem_private_key(self.key_pem, None)


def create_ca(common_name: str = "aicluster lab cert-manager stand-in CA") -> LabCA:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aicluster lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return LabCA(cert.public_bytes(serialization.Encoding.PEM),
                 key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def load_or_create_ca(directory: Path) -> LabCA:
    """The lab CA of the stand-in (``ca.crt``/``ca.key`` in ``directory``, 0600), created once."""
    crt, key = Path(directory) / "ca.crt", Path(directory) / "ca.key"
    try:
        return LabCA(crt.read_bytes(), key.read_bytes())
    except OSError:
        pass
    paths.private_dir(Path(directory))
    ca = create_ca()
    paths.write_private(key, ca.key_pem.decode())
    paths.write_private(crt, ca.cert_pem.decode())
    return ca


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


def parse_duration(text: str | None, default: timedelta) -> timedelta:
    """A Go duration (``2160h``, ``8760h0m0s``, ``90m``) as cert-manager takes it; ``default`` if unparsable."""
    if not text:
        return default
    parts = _DURATION.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return default
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    seconds = sum(float(n) * scale[u] for n, u in parts)
    return timedelta(seconds=seconds) if seconds > 0 else default


DEFAULT_DURATION = timedelta(days=90)     # cert-manager's default
MIN_DURATION = timedelta(hours=1)


def certificate_sans(spec: Mapping) -> tuple[list[str], list[str], list[str], list[str]]:
    """(dnsNames, ipAddresses, uris, emails) of a Certificate's Secret: the Certificate's own plus the
    lab's IP SANs (loopback and the lab host), so that out-of-cluster servers are reachable by address."""
    dns = [str(d) for d in spec.get("dnsNames") or []]
    ips = [str(i) for i in spec.get("ipAddresses") or []]
    for ip in EXTRA_IP_SANS:
        if ip not in ips:
            ips.append(ip)
    return dns, ips, [str(u) for u in spec.get("uris") or []], [str(e) for e in spec.get("emailAddresses") or []]


_USAGES = {"digital signature": "digital_signature", "key encipherment": "key_encipherment",
           "content commitment": "content_commitment", "data encipherment": "data_encipherment",
           "key agreement": "key_agreement", "cert sign": "key_cert_sign", "crl sign": "crl_sign"}


def issue_certificate(ca: LabCA, *, common_name: str | None = None, dns_names: Iterable[str] = (),
                      ip_addresses: Iterable[str] = (), uris: Iterable[str] = (), emails: Iterable[str] = (),
                      duration: timedelta = DEFAULT_DURATION, is_ca: bool = False, usages: Iterable[str] = (),
                      key_algorithm: str = "RSA", key_size: int | None = None,
                      key_encoding: str = "PKCS1") -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) signed by ``ca``; key and usages as cert-manager's ``privateKey``/``usages``
    (defaults: RSA 2048 PKCS#1; digital signature + key encipherment, server auth)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    algorithm = (key_algorithm or "RSA").upper()
    if algorithm == "ECDSA":
        curve = {384: ec.SECP384R1(), 521: ec.SECP521R1()}.get(int(key_size or 256), ec.SECP256R1())
        key: Any = ec.generate_private_key(curve)
    elif algorithm == "ED25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=max(int(key_size or 2048), 2048))
    san: list[Any] = [x509.DNSName(d) for d in dns_names]
    san += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses]
    san += [x509.UniformResourceIdentifier(u) for u in uris] + [x509.RFC822Name(e) for e in emails]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    now = _now()
    usages = [u.lower() for u in usages] or ["digital signature", "key encipherment", "server auth"]
    if is_ca:
        usages += ["cert sign"]
    flags = {v: False for v in _USAGES.values()}
    flags.update({_USAGES[u]: True for u in usages if u in _USAGES})
    if algorithm != "RSA":
        flags["key_encipherment"] = False
    ext_usages = [oid for u, oid in (("server auth", ExtendedKeyUsageOID.SERVER_AUTH),
                                     ("client auth", ExtendedKeyUsageOID.CLIENT_AUTH)) if u in usages]
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.cert().subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + duration)
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(encipher_only=False, decipher_only=False, **flags), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=not common_name)
    if ext_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ext_usages), critical=False)
    cert = builder.sign(ca.key(), hashes.SHA256())
    if algorithm == "ED25519" or (key_encoding or "PKCS1").upper() == "PKCS8":
        key_format = serialization.PrivateFormat.PKCS8
    else:
        key_format = serialization.PrivateFormat.TraditionalOpenSSL
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, key_format, serialization.NoEncryption()))


@dataclass(frozen=True)
class CertInfo:
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    signed_by_ca: bool


def inspect_certificate(cert_pem: bytes, ca: LabCA | None = None) -> CertInfo | None:
    """SANs, validity and whether ``ca`` signed it; None when it is not a certificate."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(i) for i in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    signed = False
    if ca is not None:
        with contextlib.suppress(Exception):
            cert.verify_directly_issued_by(ca.cert())
            signed = True
    return CertInfo(dns, ips, cert.not_valid_before_utc, cert.not_valid_after_utc, signed)


def renewal_due(info: CertInfo, renew_before: timedelta | None = None, now: datetime | None = None) -> bool:
    """In cert-manager's renewal window (default: the last third of the validity)."""
    lifetime = info.not_after - info.not_before
    before = renew_before if renew_before and renew_before < lifetime else lifetime / 3
    return (now or _now()) >= info.not_after - before


# ------------------------------------------------------------------ b) cert-manager: Certificates -> Secrets
def certificate_fingerprint(spec: Mapping) -> str:
    """What of a Certificate's spec the issued Secret depends on (a change re-issues)."""
    relevant = {k: spec.get(k) for k in ("commonName", "dnsNames", "ipAddresses", "uris", "emailAddresses",
                                         "duration", "isCA", "usages", "privateKey", "subject", "issuerRef")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def certificate_secret_current(secret: Mapping | None, spec: Mapping, ca: LabCA,
                               now: datetime | None = None) -> CertInfo | None:
    """The Secret's certificate if it is the one this stand-in issued for this spec, signed by ``ca``
    and not due for renewal; None when the Certificate must be (re-)issued."""
    if not secret:
        return None
    data = secret.get("data") or {}
    if not (data.get("tls.crt") and data.get("tls.key")):
        return None
    if (_meta(secret).get("annotations") or {}).get(ISSUED_ANNOTATION) != certificate_fingerprint(spec):
        return None
    info = inspect_certificate(_unb64(data.get("tls.crt")), ca)
    if info is None or not info.signed_by_ca:
        return None
    renew = parse_duration(spec.get("renewBefore"), timedelta(0)) or None
    return None if renewal_due(info, renew, now) else info


def certificate_secret(cert_obj: Mapping, ca: LabCA, existing: Mapping | None) -> tuple[dict, CertInfo]:
    """Issue the Certificate: the Secret to write (merge into ``existing`` when there is one) and its cert."""
    spec = cert_obj.get("spec") or {}
    ns, name = _key(cert_obj)
    dns, ips, uris, emails = certificate_sans(spec)
    private_key = spec.get("privateKey") or {}
    duration = max(parse_duration(spec.get("duration"), DEFAULT_DURATION), MIN_DURATION)
    cert_pem, key_pem = issue_certificate(
        ca, common_name=spec.get("commonName"), dns_names=dns, ip_addresses=ips, uris=uris, emails=emails,
        duration=duration, is_ca=bool(spec.get("isCA")), usages=spec.get("usages") or (),
        key_algorithm=private_key.get("algorithm") or "RSA", key_size=private_key.get("size"),
        key_encoding=private_key.get("encoding") or "PKCS1")
    issuer = spec.get("issuerRef") or {}
    template = spec.get("secretTemplate") or {}
    annotations = dict(template.get("annotations") or {})
    annotations.update({
        "cert-manager.io/certificate-name": name, "cert-manager.io/issuer-name": issuer.get("name", ""),
        "cert-manager.io/issuer-kind": issuer.get("kind") or "Issuer",
        "cert-manager.io/issuer-group": issuer.get("group") or "cert-manager.io",
        "cert-manager.io/common-name": spec.get("commonName") or "", "cert-manager.io/alt-names": ",".join(dns),
        "cert-manager.io/ip-sans": ",".join(ips), "cert-manager.io/uri-sans": ",".join(uris),
        ISSUED_ANNOTATION: certificate_fingerprint(spec)})
    labels = dict(template.get("labels") or {})
    labels["controller.cert-manager.io/fao"] = "true"
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": spec.get("secretName"), "namespace": ns, "annotations": annotations,
                           "labels": labels},
              "type": (existing or {}).get("type") or "kubernetes.io/tls",   # a Secret's type is immutable
              "data": {"tls.crt": _b64(cert_pem), "tls.key": _b64(key_pem), "ca.crt": ca.bundle}}
    info = inspect_certificate(cert_pem, ca)
    assert info is not None
    return secret, info


def _condition(status: str, reason: str, message: str, generation: int | None, previous: Mapping | None) -> dict:
    cond = {"type": "Ready", "status": status, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    same = previous and previous.get("status") == status
    cond["lastTransitionTime"] = previous.get("lastTransitionTime") if same and previous \
        else _rfc3339(_now())
    return cond


def ready_condition(obj: Mapping) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)


def certificate_status_patch(cert_obj: Mapping, info: CertInfo | None, reason: str, message: str,
                             revision: int | None = None) -> dict | None:
    """Status merge patch (None: already so): Ready=True with the cert's times once its Secret exists,
    else Ready=False with ``reason``."""
    meta, status = _meta(cert_obj), cert_obj.get("status") or {}
    previous = ready_condition(cert_obj)
    generation = meta.get("generation")
    want_status = "True" if info is not None else "False"
    new: dict[str, Any] = {}
    if not previous or any(previous.get(k) != v for k, v in (("status", want_status), ("reason", reason),
                                                             ("message", message),
                                                             ("observedGeneration", generation))):
        others = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
        new["conditions"] = [*others, _condition(want_status, reason, message, generation, previous)]
    if info is not None:
        spec = cert_obj.get("spec") or {}
        renew = parse_duration(spec.get("renewBefore"), timedelta(0))
        lifetime = info.not_after - info.not_before
        renew = renew if renew and renew < lifetime else lifetime / 3
        times = {"notBefore": _rfc3339(info.not_before), "notAfter": _rfc3339(info.not_after),
                 "renewalTime": _rfc3339(info.not_after - renew)}
        new.update({k: v for k, v in times.items() if status.get(k) != v})
        if revision is not None and status.get("revision") != revision:
            new["revision"] = revision
    return {"status": new} if new else None


def issuer_status_patch(issuer: Mapping) -> dict | None:
    previous = ready_condition(issuer)
    message = "lab stand-in: signs with the lab CA"
    generation = _meta(issuer).get("generation")
    if previous and previous.get("status") == "True" and previous.get("message") == message \
            and previous.get("observedGeneration") == generation:
        return None
    others = [c for c in (issuer.get("status") or {}).get("conditions") or [] if c.get("type") != "Ready"]
    return {"status": {"conditions": [*others, _condition("True", "IsReady", message, generation, previous)]}}


def serving_secret_current(secret: Mapping | None, dns_names: Iterable[str], ca: LabCA,
                           now: datetime | None = None) -> bool:
    """A serving-cert Secret the lab can use: signed by ``ca``, with the IP SANs and ``dns_names``, not due."""
    data = (secret or {}).get("data") or {}
    if not (data.get("tls.crt") and data.get("tls.key")):
        return False
    info = inspect_certificate(_unb64(data.get("tls.crt")), ca)
    return bool(info and info.signed_by_ca and set(EXTRA_IP_SANS) <= set(info.ip_addresses)
                and set(dns_names) <= set(info.dns_names) and not renewal_due(info, now=now))


# ------------------------------------------------------------------ c) the Service network: webhook routing
@dataclass(frozen=True)
class Route:
    """A webhook Service whose pod (a controller process) is ready: reached at ``https://host:port``."""

    namespace: str
    service: str
    port: int
    ca_bundle: str
    host: str = LOOPBACK

    def url(self, path: str | None) -> str:
        path = path or ""
        if path and not path.startswith("/"):
            path = "/" + path
        return f"https://{self.host}:{self.port}{path}"


def _routed(meta: Mapping) -> dict:
    raw = (meta.get("annotations") or {}).get(ROUTED_ANNOTATION)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _route_client_config(cc: dict, original: Mapping | None, routes: Mapping[tuple[str, str], Route],
                         inject_ca: str | None) -> Mapping | None:
    """Rewrite one clientConfig in place; return the Service reference while it is routed."""
    if inject_ca:
        cc["caBundle"] = inject_ca
    if not original:
        return None
    route = routes.get((original.get("namespace") or "", original.get("name") or ""))
    if route is not None:
        cc.pop("service", None)
        cc["url"] = route.url(original.get("path"))
        cc["caBundle"] = route.ca_bundle
        return original
    if "service" not in cc:   # routed before, its process is gone: the Service again
        cc.pop("url", None)
        cc["service"] = dict(original)
    return None


def _routing_patch(meta: Mapping, routed: dict, new_routed: dict) -> dict:
    value = json.dumps(new_routed, sort_keys=True, separators=(",", ":")) if new_routed else None
    patch: dict[str, Any] = {"resourceVersion": meta.get("resourceVersion")}
    if value != (meta.get("annotations") or {}).get(ROUTED_ANNOTATION):
        patch["annotations"] = {ROUTED_ANNOTATION: value}
    return patch


def plan_webhook_configuration(config: Mapping, routes: Mapping[tuple[str, str], Route],
                               inject_ca: str | None = None) -> dict | None:
    """Merge patch for a Mutating/ValidatingWebhookConfiguration (None: nothing to change): webhooks
    behind a routed Service go to the process's URL (the Service remembered in an annotation), webhooks
    routed earlier whose process is gone get their Service back; ``inject_ca`` is the cainjector's CA."""
    meta = _meta(config)
    routed = _routed(meta)
    webhooks = copy.deepcopy(list(config.get("webhooks") or []))
    new_routed: dict[str, Any] = {}
    for webhook in webhooks:
        cc = webhook.setdefault("clientConfig", {})
        name = webhook.get("name") or ""
        kept = _route_client_config(cc, cc.get("service") or routed.get(name), routes, inject_ca)
        if kept is not None:
            new_routed[name] = dict(kept)
    meta_patch = _routing_patch(meta, routed, new_routed)
    if webhooks == list(config.get("webhooks") or []) and "annotations" not in meta_patch:
        return None
    return {"metadata": meta_patch, "webhooks": webhooks}


def plan_crd_conversion(crd: Mapping, routes: Mapping[tuple[str, str], Route],
                        inject_ca: str | None = None) -> dict | None:
    """The same for a CRD's conversion webhook (``spec.conversion.webhook.clientConfig``)."""
    conversion = (crd.get("spec") or {}).get("conversion") or {}
    if conversion.get("strategy") != "Webhook":
        return None
    meta = _meta(crd)
    routed = _routed(meta)
    new_conversion = copy.deepcopy(dict(conversion))
    cc = new_conversion.setdefault("webhook", {}).setdefault("clientConfig", {})
    kept = _route_client_config(cc, cc.get("service") or routed.get("conversion"), routes, inject_ca)
    new_routed = {"conversion": dict(kept)} if kept is not None else {}
    meta_patch = _routing_patch(meta, routed, new_routed)
    if new_conversion == conversion and "annotations" not in meta_patch:
        return None
    old_cc = (conversion.get("webhook") or {}).get("clientConfig") or {}
    cc_patch = dict(cc)
    cc_patch.update({k: None for k in old_cc if k not in cc})
    return {"metadata": meta_patch, "spec": {"conversion": {"webhook": {"clientConfig": cc_patch}}}}


def _describe_targets(client_configs: Iterable[Mapping]) -> str:
    """``https://127.0.0.1:39443/mutate-pods, Service ome/x/path (caBundle set)`` for a log line."""
    targets, bundles = set(), True
    for cc in client_configs:
        service = cc.get("service") or {}
        where = f"Service {service.get('namespace')}/{service.get('name')}{service.get('path') or ''}"
        targets.add(cc.get("url") or where)
        bundles = bundles and bool(cc.get("caBundle"))
    return ", ".join(sorted(targets)) + (" (caBundle set)" if bundles else "")


# ------------------------------------------------------------------ a) kubelet: controller Deployments -> processes
@dataclass(frozen=True)
class ControllerSpec:
    binary: str                 # the process's name (log, state); labctl.controllers output of that name
    deployment: str             # the chart's Deployment (any namespace)
    service: str                # the chart's Service in front of it (webhook routing / the adapter's gRPC peer)
    crds: tuple[str, ...]       # Established before the process starts
    flavour: str                # how its command line is built: ome | lws | kuberay | keda-operator | keda-adapter
    controller: str = ""        # the labctl.controllers build it comes from (default: binary)


CONTROLLERS = (
    ControllerSpec("ome-manager", "ome-controller-manager", "ome-webhook-server-service", OME_CRDS, "ome"),
    ControllerSpec("lws-controller", "lws-controller-manager", "lws-webhook-service", (LWS_CRD,), "lws"),
    ControllerSpec("ray-operator", "kuberay-operator", "kuberay-operator", RAY_CRDS, "kuberay"),
    ControllerSpec("keda-operator", "keda-operator", "keda-operator", KEDA_CRDS, "keda-operator", "keda"),
    ControllerSpec("keda-adapter", "keda-operator-metrics-apiserver", "keda-operator-metrics-apiserver", KEDA_CRDS,
                   "keda-adapter", "keda"),
)


@dataclass
class Launch:
    """How to run a controller for its Deployment (what a kubelet would make of the pod template)."""

    argv: list[str]
    env: dict[str, str]
    files: dict[str, bytes]             # path (in the work dir) -> content, 0600, kept in sync
    webhook: bool
    fingerprint: str                    # a change restarts the process (container spec, config)
    cert_dir: str = ""                  # where the process reads tls.crt/tls.key (on this host)
    cert_secret: tuple[str, str] | None = None   # Secret the serving cert comes from
    lab_cert: bool = False              # the stand-in writes that Secret itself (LWS's cert-controller)
    cert_dns: tuple[str, ...] = ()
    ca_bundle: str | None = None
    pod_ip: str = ""                    # the address its pods report (where the process serves the Service)


@dataclass(frozen=True)
class Waiting:
    reason: str


def _container(deployment: Mapping) -> dict:
    containers = ((((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    return next((c for c in containers if c.get("name") == "manager"), containers[0] if containers else {})


def _pod_spec(deployment: Mapping) -> dict:
    return (((deployment.get("spec") or {}).get("template") or {}).get("spec")) or {}


def _volume_at(deployment: Mapping, path: str) -> tuple[str, str, str | None] | None:
    """(kind ``secret``|``configMap``, name, key or None for a directory) mounted at ``path`` (a file or
    a directory) in the controller's container."""
    volumes = {v.get("name"): v for v in _pod_spec(deployment).get("volumes") or []}
    path = posixpath.normpath(path)
    for mount in _container(deployment).get("volumeMounts") or []:
        volume = volumes.get(mount.get("name")) or {}
        for kind, name_key in (("secret", "secretName"), ("configMap", "name")):
            source = volume.get(kind)
            if not source or not source.get(name_key):
                continue
            mount_path = posixpath.normpath(mount.get("mountPath") or "")
            if mount_path == path:
                return kind, source[name_key], mount.get("subPath") or None
            if mount_path == posixpath.dirname(path) and not mount.get("subPath"):
                base = posixpath.basename(path)
                item = next((i.get("key") for i in source.get("items") or [] if i.get("path") == base), base)
                return kind, source[name_key], item
    return None


def container_env(deployment: Mapping) -> dict[str, str]:
    """The container's env as a kubelet resolves it (values and the downward API's metadata fields)."""
    meta = _meta(deployment)
    env: dict[str, str] = {}
    for item in _container(deployment).get("env") or []:
        name = item.get("name")
        if not name:
            continue
        if "valueFrom" not in item:    # the API drops an empty value: the variable is still set, to ""
            env[name] = str(item.get("value") or "")
            continue
        field_path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if field_path == "metadata.namespace":
            env[name] = meta.get("namespace") or "default"
        elif field_path == "metadata.name":
            env[name] = f"{meta.get('name')}-lab"
        elif field_path in ("spec.nodeName", "status.hostIP", "status.podIP"):
            env[name] = LOOPBACK if field_path != "spec.nodeName" else socket.gethostname()
    return env


def _drop_flags(args: Iterable[str], flags: Iterable[str]) -> list[str]:
    """``args`` without ``--flag``, ``--flag=value`` or ``-flag...`` for the given names (Go flag syntax)."""
    names = set(flags)
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        bare = arg.lstrip("-")
        name = bare.split("=", 1)[0]
        if arg.startswith("-") and name in names:
            # a value given as the next word: only for non-boolean flags written without '='
            skip = "=" not in bare and name not in ("leader-elect", "webhook")
            continue
        out.append(str(arg))
    return out


def _flag_true(args: Iterable[str], name: str) -> bool:
    value = None
    for arg in args:
        bare = arg.lstrip("-")
        if arg.startswith("-") and bare.split("=", 1)[0] == name:
            value = bare.split("=", 1)[1] if "=" in bare else "true"
    return str(value).lower() in ("true", "1", "t")


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _secret_files(secret: Mapping, directory: str) -> dict[str, bytes]:
    return {posixpath.join(directory, k): _unb64(v) for k, v in sorted((secret.get("data") or {}).items())
            if k in ("tls.crt", "tls.key", "ca.crt")}


def plan_launch(spec: ControllerSpec, deployment: Mapping, *, binary: Path, kubeconfig: Path, workdir: Path,
                port: int, get_configmap: Callable[[str, str], Mapping | None],
                get_secret: Callable[[str, str], Mapping | None], crds_established: Callable[[str], bool],
                marker: Mapping[str, str] | None = None,
                service_address: Callable[[str, str], str | None] = lambda ns, name: None) -> Launch | Waiting:
    """What a kubelet would run for the Deployment's pod, out of cluster; or why it cannot start yet.
    ``service_address(ns, service)`` is where a Service's process serves (``127.0.0.1:<port>``), if it runs."""
    ns = _meta(deployment).get("namespace") or "default"
    container = _container(deployment)
    args = [str(a) for a in container.get("args") or []]
    env = container_env(deployment)
    missing = [c for c in spec.crds if not crds_established(c)]
    if missing:
        return Waiting(f"CRD {missing[0]} not established" + (f" (+{len(missing) - 1} more)" if len(missing) > 1
                                                                 else ""))
    tmpdir = workdir / "tmp"
    base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(tmpdir), **(marker or {})}
    files: dict[str, bytes] = {}
    internal = False                 # LWS's internal cert management (its in-pod cert-controller)
    if spec.flavour in ("kuberay", "keda-operator", "keda-adapter"):
        return _plan_operator_launch(spec, deployment, args=args, env=env, base_env=base_env, binary=binary,
                                     kubeconfig=kubeconfig, workdir=workdir, port=port, get_secret=get_secret,
                                     service_address=service_address)
    if spec.flavour == "ome":
        own_ns = env.get("POD_NAMESPACE") or "ome"      # where ome-manager reads its configuration
        if get_configmap(own_ns, "inferenceservice-config") is None:
            return Waiting(f"ConfigMap {own_ns}/inferenceservice-config does not exist")
        webhook = _flag_true(args, "webhook")
        cert_dir = WEBHOOK_CERT_DIR
        config_text = ""
        argv = [str(binary), *_drop_flags(args, ("kubeconfig", "metrics-bind-address", "health-probe-addr",
                                                 "leader-elect", "webhook-port")),
                f"--kubeconfig={kubeconfig}", "--metrics-bind-address=0", "--health-probe-addr=0",
                "--leader-elect=false", f"--webhook-port={port}"]
        local_cert_dir = str(tmpdir / posixpath.relpath(cert_dir, "/tmp"))
    else:
        config_path = next((a.split("=", 1)[1] for a in args if a.lstrip("-").startswith("config=")), None)
        cfg: dict = {}
        config_text = ""
        if config_path:
            source = _volume_at(deployment, config_path)
            if source is None:
                return Waiting(f"--config {config_path} is not mounted from a ConfigMap or Secret")
            kind, name, key = source
            obj = get_configmap(ns, name) if kind == "configMap" else get_secret(ns, name)
            if obj is None:
                return Waiting(f"{kind} {ns}/{name} (--config) does not exist")
            raw = (obj.get("data") or {}).get(key or "")
            config_text = raw if kind == "configMap" else _unb64(raw).decode(errors="replace")
            if config_text is None:
                return Waiting(f"{kind} {ns}/{name} has no key {key!r} (--config)")
            try:
                cfg = yaml.safe_load(config_text) or {}
            except yaml.YAMLError as exc:
                return Waiting(f"--config {config_path}: {str(exc).splitlines()[0]}")
            if not isinstance(cfg, dict):
                return Waiting(f"--config {config_path}: not a mapping")
        cfg.setdefault("apiVersion", "config.lws.x-k8s.io/v1alpha1")
        cfg.setdefault("kind", "Configuration")
        internal = (cfg.get("internalCertManagement") or {}).get("enable", True) is not False
        webhook = env.get("ENABLE_WEBHOOKS", "true").lower() != "false"
        cert_dir = (cfg.get("webhook") or {}).get("certDir") or WEBHOOK_CERT_DIR
        local_cert_dir = str(workdir / "certs")
        cfg["leaderElection"] = {**(cfg.get("leaderElection") or {}), "leaderElect": False}
        cfg["internalCertManagement"] = {**(cfg.get("internalCertManagement") or {}), "enable": False}
        cfg["webhook"] = {**(cfg.get("webhook") or {}), "host": LOOPBACK, "port": port, "certDir": local_cert_dir}
        cfg["metrics"] = {**(cfg.get("metrics") or {}), "bindAddress": "0"}
        cfg["health"] = {**(cfg.get("health") or {}), "healthProbeBindAddress": "0"}
        lab_config = workdir / "config.yaml"
        files[str(lab_config)] = yaml.safe_dump(cfg, sort_keys=False).encode()
        argv = [str(binary), *_drop_flags(args, ("kubeconfig", "config", "leader-elect", "metrics-bind-address",
                                                 "health-probe-bind-address")),
                f"--config={lab_config}", f"--kubeconfig={kubeconfig}"]
    launch = Launch(argv, {**base_env, **env, "TMPDIR": str(tmpdir)}, files, webhook,
                    _fingerprint(str(binary), args, env, config_text, container.get("command"),
                                 ((deployment.get("spec") or {}).get("template") or {}).get("metadata")),
                    local_cert_dir)
    if not webhook:
        return launch
    source = _volume_at(deployment, cert_dir)
    service_dns = (f"{spec.service}.{ns}.svc", f"{spec.service}.{ns}.svc.cluster.local")
    if source is not None and source[0] == "secret":
        launch.cert_secret = (ns, source[1])
    if spec.flavour == "lws" and internal:
        # LWS's cert-controller (in its pod) would write the Secret and inject the caBundle: the stand-in does.
        launch.lab_cert, launch.cert_dns = True, service_dns
        return launch
    if launch.cert_secret is None:
        launch.lab_cert, launch.cert_dns = True, service_dns     # no Secret volume: a lab cert in the dir only
        return launch
    secret = get_secret(*launch.cert_secret)
    data = (secret or {}).get("data") or {}
    if not (data.get("tls.crt") and data.get("tls.key")):
        return Waiting(f"Secret {launch.cert_secret[0]}/{launch.cert_secret[1]} (webhook serving cert) "
                       f"{'has no tls.crt/tls.key' if secret else 'does not exist'}")
    launch.files.update(_secret_files(secret or {}, local_cert_dir))
    launch.ca_bundle = data.get("ca.crt") or None
    return launch


def _mounted_secret_files(deployment: Mapping, mount_path: str, local_dir: str,
                          get_secret: Callable[[str, str], Mapping | None]) -> tuple[dict[str, bytes], str | None]:
    """The files a kubelet would put in the Secret volume mounted at ``mount_path`` (tls.crt, tls.key,
    ca.crt), in ``local_dir``; with the Secret's namespace/name (None when nothing is mounted there)."""
    source = _volume_at(deployment, mount_path)
    if source is None or source[0] != "secret":
        return {}, None
    ns = _meta(deployment).get("namespace") or "default"
    secret = get_secret(ns, source[1]) or {}
    return _secret_files(secret, local_dir), f"{ns}/{source[1]}"


def _plan_operator_launch(spec: ControllerSpec, deployment: Mapping, *, args: list[str], env: dict[str, str],
                          base_env: dict[str, str], binary: Path, kubeconfig: Path, workdir: Path, port: int,
                          get_secret: Callable[[str, str], Mapping | None],
                          service_address: Callable[[str, str], str | None]) -> Launch | Waiting:
    """KubeRay's operator and KEDA's operator and metrics API server, out of cluster (see the module doc):
    the container's args and env, with what out of cluster must differ."""
    ns = _meta(deployment).get("namespace") or "default"
    files: dict[str, bytes] = {}
    cert_dir = str(workdir / "certs")
    pod_ip = ""
    if spec.flavour == "kuberay":
        argv = [str(binary), *_drop_flags(args, ("kubeconfig", "metrics-addr", "health-probe-bind-address",
                                                 "enable-leader-election")),
                f"--kubeconfig={kubeconfig}", "--metrics-addr=0", "--health-probe-bind-address=0",
                "--enable-leader-election=false"]
    elif spec.flavour == "keda-operator":
        # The operator writes its own certificates (cert rotation) into the Secret mounted at --cert-dir (optional
        # there): it starts without them, and the files follow the Secret as a kubelet's Secret volume does.
        mount = next((a.split("=", 1)[1] for a in args if a.startswith("--cert-dir=")), "/certs")
        files, _ = _mounted_secret_files(deployment, mount, cert_dir, get_secret)
        env = {**env, "KEDA_CLUSTER_OBJECT_NAMESPACE": env.get("KEDA_CLUSTER_OBJECT_NAMESPACE") or ns}
        argv = [str(binary), *_drop_flags(args, ("kubeconfig", "leader-elect", "metrics-bind-address",
                                                 "health-probe-bind-address", "metrics-service-bind-address",
                                                 "cert-dir")),
                f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--metrics-bind-address=0",
                "--health-probe-bind-address=0", f"--metrics-service-bind-address={LOOPBACK}:{port}",
                f"--cert-dir={cert_dir}"]
    else:   # keda-adapter: serves external.metrics.k8s.io for kube-apiserver, asks the operator over gRPC
        files, secret = _mounted_secret_files(deployment, "/certs", cert_dir, get_secret)
        if not secret:
            return Waiting("no Secret volume at /certs (the chart mounts the operator's kedaorg-certs there)")
        if not all(posixpath.join(cert_dir, k) in files for k in ("ca.crt", "tls.crt", "tls.key")):
            return Waiting(f"Secret {secret} has no ca.crt/tls.crt/tls.key yet (keda-operator writes it)")
        operator = service_address(ns, "keda-operator")
        if operator is None:
            return Waiting(f"keda-operator's metrics service ({ns}/keda-operator:{KEDA_GRPC_PORT}) does not run")
        secure_port = next((a.split("=", 1)[1] for a in args if a.startswith("--secure-port=")), "6443")
        pod_ip = LAB_HOST_IP
        argv = [str(binary), *_drop_flags(args, ("kubeconfig", "lister-kubeconfig", "authentication-kubeconfig",
                                                 "authorization-kubeconfig", "bind-address", "secure-port", "port",
                                                 "cert-dir", "client-ca-file", "tls-cert-file", "tls-private-key-file",
                                                 "metrics-service-address", "metrics-service-grpc-authority")),
                f"--kubeconfig={kubeconfig}", f"--lister-kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={LAB_HOST_IP}", f"--secure-port={secure_port}", f"--port={port}",
                f"--cert-dir={cert_dir}", f"--client-ca-file={cert_dir}/ca.crt",
                f"--tls-cert-file={cert_dir}/tls.crt", f"--tls-private-key-file={cert_dir}/tls.key",
                f"--metrics-service-address={operator}",
                f"--metrics-service-grpc-authority=keda-operator.{ns}.svc"]
    launch = Launch(argv, {**base_env, **env}, files, False,
                    _fingerprint(str(binary), argv, env, ((deployment.get("spec") or {}).get("template") or {})
                                 .get("metadata"), sorted(files) if spec.flavour == "keda-adapter" else None),
                    cert_dir)
    launch.pod_ip = pod_ip
    return launch


def _private_dirs(path: Path) -> None:
    """``path`` and the parents it needs, each created 0700 (certs and configs live there)."""
    missing = [d for d in (path, *path.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        d.chmod(0o700)


def _write_file(path: Path, content: bytes) -> bool:
    """Write 0600 when different; True if written."""
    try:
        if path.read_bytes() == content:
            return False
    except OSError:
        pass
    _private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    os.replace(tmp, path)
    return True


def free_port(preferred: int | None = None) -> int:
    from labctl.procs import port_free

    # ome-manager's webhook server listens on every address: the port must be free on all of them
    if preferred and port_free("0.0.0.0", preferred):  # noqa: S104
        return preferred
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))  # noqa: S104
        return s.getsockname()[1]


def webhook_answers(port: int, ca_bundle: str, host: str = LOOPBACK, timeout: float = 1.0) -> str | None:
    """None when a TLS server on ``host:port`` presents a cert that verifies against ``ca_bundle`` for
    ``host`` (what kube-apiserver checks when it calls the webhook URL); else why not."""
    import ssl

    try:
        context = ssl.create_default_context(cadata=_unb64(ca_bundle).decode())
    except (ssl.SSLError, ValueError) as exc:
        return f"unusable caBundle: {exc}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                context.wrap_socket(sock, server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as exc:
        return f"its serving cert does not verify for {host}: {exc.verify_message}"
    except OSError as exc:
        return f"not answering ({exc.__class__.__name__})"


class ControllerProcess:
    """One controller process (the "container"), restarted with back-off when it exits."""

    def __init__(self, spec: ControllerSpec, workdir: Path, log: Callable[[str], None]) -> None:
        self.spec = spec
        self.workdir = workdir
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.fingerprint: str | None = None
        self.launch: Launch | None = None
        self.started_at = 0.0
        self.next_start = 0.0
        self.backoff = BACKOFF_FIRST
        self.restarts = 0
        self.last_exit: str | None = None
        self.waiting: str | None = "no Deployment"
        self.deployment: tuple[str, str] | None = None
        self.ready = False
        self.not_ready: str | None = None
        self.wake_for_restart = False

    @property
    def log_path(self) -> Path:
        return self.workdir.parent / f"{self.spec.binary}.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, launch: Launch) -> None:
        _private_dirs(self.workdir)
        _private_dirs(Path(launch.env["TMPDIR"]))
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as logfh:
            logfh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} lab omelab: {' '.join(launch.argv)}\n".encode())
            logfh.flush()
            self.proc = subprocess.Popen(launch.argv, cwd=self.workdir, env=launch.env, stdin=subprocess.DEVNULL,
                                         stdout=logfh, stderr=subprocess.STDOUT, start_new_session=True)
        self.launch, self.fingerprint = launch, launch.fingerprint
        self.started_at = time.monotonic()
        self.ready, self.not_ready = False, None
        self.waiting = None
        self.log(f"{self.spec.binary}: started (pid {self.proc.pid}"
                 f"{f', webhooks on port {self.port}' if launch.webhook else ''}; log {self.log_path})")

    def poll(self) -> bool:
        """Notice an exit and a webhook port that starts answering; True when something changed."""
        if self.proc is None:
            return False
        code = self.proc.poll()
        if code is None:
            if not self.ready and self.launch is not None:
                if self.launch.webhook and self.port:
                    self.not_ready = webhook_answers(self.port, self.launch.ca_bundle or "")
                    if self.not_ready and time.monotonic() - self.started_at > 30 and \
                            not self.not_ready.startswith("not answering"):
                        self.log(f"{self.spec.binary}: webhook server on port {self.port}: {self.not_ready}")
                        self.started_at = time.monotonic()     # say it again in 30 s, not every round
                elif time.monotonic() - self.started_at > 2:
                    self.not_ready = None
                if self.not_ready is None and (self.launch.webhook or time.monotonic() - self.started_at > 2):
                    self.ready = True
                    self.log(f"{self.spec.binary}: ready after {time.monotonic() - self.started_at:.1f}s"
                             + (f" (webhooks verified on https://{LOOPBACK}:{self.port})" if self.launch.webhook
                                else ""))
                    return True
            return False
        ran = time.monotonic() - self.started_at
        self.proc = None
        self.ready = False
        if ran >= BACKOFF_RESET:
            self.backoff = BACKOFF_FIRST
        self.next_start = time.monotonic() + self.backoff
        self.last_exit = f"exit {code} after {ran:.0f}s"
        self.log(f"{self.spec.binary}: {self.last_exit}; starting again in {self.backoff:g}s (log {self.log_path})")
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        self.restarts += 1
        self.wake_for_restart = True
        return True

    def stop(self, why: str, timeout: float = CHILD_STOP_TIMEOUT) -> None:
        proc, self.proc = self.proc, None
        self.ready = False
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        self.log(f"{self.spec.binary}: stopped ({why})")

    def row(self) -> dict:
        return {"pid": self.proc.pid if self.running and self.proc else None, "running": self.running,
                "ready": self.ready, "port": self.port if self.running else None, "restarts": self.restarts,
                "last_exit": self.last_exit, "waiting": None if self.running else self.waiting,
                "not_ready": self.not_ready if self.running and not self.ready else None,
                "deployment": "/".join(self.deployment) if self.deployment else None, "log": str(self.log_path)}


# ------------------------------------------------------------------ d) machines: is a path on a Node's machine
def resolve_in_root(root: Path, path: str, max_links: int = 40) -> Path | None:
    """``path`` inside the filesystem tree at ``root`` (a machine's ``/proc/<pid>/root``), following
    symlinks as the machine would (absolute targets from ``root``, not from the host's ``/``)."""
    parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
    current = Path(root)
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            done = done[:-1]
            current = Path(root).joinpath(*done)
            continue
        candidate = current / part
        if candidate.is_symlink():
            links += 1
            if links > max_links:
                return None
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p and p != "."] + parts
            if target.startswith("/"):
                done = []
                current = Path(root)
            continue
        done.append(part)
        current = candidate
    return current


class MachineFilesystems:
    """Checks for a path on a lab machine: ``machines_dir/<node>`` when given (tests), else the
    podman container ``aicluster-lab-<node>`` through ``/proc/<pid>/root``. Unknown machine: absent;
    a check that fails or hangs (a stuck FUSE mount) within ``PATH_CHECK_TIMEOUT``: unknown (None)."""

    def __init__(self, machines_dir: Path | None = None) -> None:
        self.machines_dir = Path(machines_dir) if machines_dir else None
        self._pids: dict[str, int] = {}
        self._pids_at = -1e9
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pathcheck")

    def _refresh_pids(self) -> None:
        self._pids_at = time.monotonic()
        pids: dict[str, int] = {}
        if shutil.which("podman"):
            from labctl.fleet import podman
            from labctl.fleet.runtime import LABEL, PREFIX

            with contextlib.suppress(Exception):
                for c in podman.ps(f"{LABEL}=1"):
                    name = (c.get("Labels") or {}).get("aicluster-lab.machine") or \
                        (c.get("Names") or [""])[0].removeprefix(PREFIX)
                    if c.get("State") == "running" and c.get("Pid"):
                        pids[name] = int(c["Pid"])
        self._pids = pids

    def root(self, node: str) -> Path | None:
        if self.machines_dir is not None:
            d = self.machines_dir / node
            return d if d.is_dir() else None
        from labctl.procs import alive

        pid = self._pids.get(node)
        if (pid is None or not alive(pid)) and time.monotonic() - self._pids_at > 10:
            self._refresh_pids()
            pid = self._pids.get(node)
        return Path(f"/proc/{pid}/root") if pid else None

    def present(self, node: str, path: str) -> bool | None:
        root = self.root(node)
        if root is None:
            return False

        def check() -> bool:
            target = resolve_in_root(root, path)
            return target is not None and target.is_dir()

        future = self._pool.submit(check)
        try:
            return future.result(timeout=PATH_CHECK_TIMEOUT)
        except concurrent.futures.TimeoutError:
            return None
        except OSError:
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------ API access: raw requests, list+watch caches
class Cache(WatchCache):
    """List, then watch one resource path; keeps its objects (transformed) by (namespace, name) and
    calls ``on_change(self)``. An API that is not served (404: CRDs not installed) is an empty list,
    listed again every ``MISSING_API_RETRY`` seconds."""

    not_served_retry = MISSING_API_RETRY

    def __init__(self, api, name: str, path: str, on_change: Callable[[Cache], None], log: Callable[[str], None],
                 stop: threading.Event, selector: str | None = None,
                 transform: Callable[[dict], dict] | None = None) -> None:
        super().__init__(api, name, path, log, stop, selector, transform)
        self.on_change = on_change

    def _request(self, query: dict, **options):
        return api_request(self.api, "GET", self.path, query, **options)

    def _changed(self) -> None:
        self.on_change(self)

    def _failed(self, exc: Exception, backoff: float) -> None:
        self.log(f"watch {self.name}: {error_line(exc)}; retrying in {backoff:g}s")


def _slim_crd(obj: dict) -> dict:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    established = any(c.get("type") == "Established" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    return {"metadata": {k: meta.get(k) for k in ("name", "resourceVersion", "annotations")},
            "spec": {"group": spec.get("group"), "conversion": spec.get("conversion")},
            "status": {"established": established}}


def _slim_node(obj: dict) -> dict:
    meta = _meta(obj)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k == MODELS_ANNOTATION}
    return {"metadata": {"name": meta.get("name"), "labels": meta.get("labels") or {}, "annotations": annotations}}


def _slim_pod(obj: dict) -> dict:
    meta = _meta(obj)
    return {"metadata": {k: meta.get(k) for k in ("name", "namespace", "deletionTimestamp")},
            "spec": {"nodeName": (obj.get("spec") or {}).get("nodeName")},
            "status": {"phase": (obj.get("status") or {}).get("phase")}}


def _slim_model(obj: dict) -> dict:
    meta = _meta(obj)
    return {"metadata": {k: meta.get(k) for k in ("name", "namespace", "deletionTimestamp")},
            "spec": {"storage": (obj.get("spec") or {}).get("storage") or {}}}


# ------------------------------------------------------------------ the stand-in
AREAS = ("certs", "controllers", "routing", "models")

WATCHES: tuple[tuple[str, str, str | None, Callable[[dict], dict] | None, tuple[str, ...]], ...] = (
    ("deployments", "/apis/apps/v1/deployments", None, None, ("controllers",)),
    ("certificates", "/apis/cert-manager.io/v1/certificates", None, None, ("certs", "routing", "controllers")),
    ("issuers", "/apis/cert-manager.io/v1/issuers", None, None, ("certs",)),
    ("clusterissuers", "/apis/cert-manager.io/v1/clusterissuers", None, None, ("certs",)),
    ("mutatingwebhookconfigurations", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", None,
     None, ("routing",)),
    ("validatingwebhookconfigurations", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
     None, None, ("routing",)),
    ("crds", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", None, _slim_crd, ("routing", "controllers")),
    ("nodes", "/api/v1/nodes", None, _slim_node, ("models",)),
    ("agentpods", "/api/v1/pods", MODEL_AGENT_SELECTOR, _slim_pod, ("models",)),
    ("clusterbasemodels", "/apis/ome.io/v1beta1/clusterbasemodels", None, _slim_model, ("models",)),
    ("basemodels", "/apis/ome.io/v1beta1/basemodels", None, _slim_model, ("models",)),
)


class OmeLab:
    """The watches, the controller processes and the reconcile of the four parts (see the module doc)."""

    def __init__(self, api, kubeconfig: Path, workdir: Path, ca: LabCA, machines: MachineFilesystems,
                 log: Callable[[str], None] = print, binaries: Mapping[str, Path] | None = None,
                 on_change: Callable[[], None] | None = None, stop: threading.Event | None = None) -> None:
        self.api = api
        self.kubeconfig = Path(kubeconfig)
        self.workdir = Path(workdir)
        self.ca = ca
        self.machines = machines
        self.log = log
        self.binaries = dict(binaries or {})
        self.on_change = on_change or (lambda: None)
        self.stop = stop or threading.Event()
        self._cond = threading.Condition()
        self._dirty: set[str] = set(AREAS)
        self.caches = {name: Cache(api, name, path, self._changed(areas), log, self.stop, selector, transform)
                       for name, path, selector, transform, areas in WATCHES}
        self.processes = [ControllerProcess(spec, self.workdir / spec.binary, log) for spec in CONTROLLERS]
        self.certificates: dict[str, str] = {}       # ns/name -> Secret (issued)
        self.model_labels: dict[str, list[str]] = {}  # node -> labels set
        self._said: dict[str, str] = {}
        self._presence: dict[tuple[str, str], bool | None] = {}
        self._status_cms: dict[str, dict[str, str]] = {}

    # --- plumbing
    def _changed(self, areas: Iterable[str]) -> Callable[[Cache], None]:
        areas = tuple(areas)

        def mark(_cache: Cache) -> None:
            self.mark(*areas)
        return mark

    def mark(self, *areas: str) -> None:
        with self._cond:
            self._dirty.update(areas)
            self._cond.notify()

    def say_once(self, key: str, message: str) -> None:
        if self._said.get(key) != message:
            self._said[key] = message
            self.log(message)

    def is_synced(self) -> bool:
        return all(c.synced for c in self.caches.values())

    def _get(self, path: str) -> dict | None:
        try:
            return api_request(self.api, "GET", path)
        except Exception as exc:
            if _status_of(exc) == 404:
                return None
            raise

    def get_secret(self, ns: str, name: str) -> dict | None:
        return self._get(f"/api/v1/namespaces/{ns}/secrets/{name}")

    def get_configmap(self, ns: str, name: str) -> dict | None:
        return self._get(f"/api/v1/namespaces/{ns}/configmaps/{name}")

    def patch(self, path: str, body: dict) -> dict:
        return api_request(self.api, "PATCH", path, body=body, content_type=MERGE_PATCH,
                           query={"fieldManager": FIELD_MANAGER})

    def crd_established(self, name: str) -> bool:
        crd = self.caches["crds"].get("", name)
        return bool(crd and crd["status"]["established"])

    # --- b) cert-manager
    def reconcile_certs(self) -> None:
        issuers = {_key(i) for i in self.caches["issuers"].values()}
        cluster_issuers = {_key(i)[1] for i in self.caches["clusterissuers"].values()}
        for kind, cache in (("issuers", self.caches["issuers"]), ("clusterissuers", self.caches["clusterissuers"])):
            for issuer in cache.values():
                body = issuer_status_patch(issuer)
                if body:
                    ns, name = _key(issuer)
                    path = f"/apis/cert-manager.io/v1/{f'namespaces/{ns}/' if ns else ''}{kind}/{name}/status"
                    self._try(f"{kind} {ns}/{name}", lambda p=path, b=body: self.patch(p, b))
        issued = {}
        for cert in self.caches["certificates"].values():
            ns, name = _key(cert)
            if _meta(cert).get("deletionTimestamp"):
                continue
            spec = cert.get("spec") or {}
            ref = spec.get("issuerRef") or {}
            kind = ref.get("kind") or "Issuer"
            path = f"/apis/cert-manager.io/v1/namespaces/{ns}/certificates/{name}/status"
            if (ref.get("group") or "cert-manager.io") != "cert-manager.io":
                self.say_once(f"cert {ns}/{name}", f"certificate {ns}/{name}: external issuer group "
                              f"{ref.get('group')}: not issued by the lab")
                continue
            if (kind == "ClusterIssuer" and ref.get("name") not in cluster_issuers) or \
                    (kind != "ClusterIssuer" and (ns, ref.get("name")) not in issuers):
                message = f'Referenced "{kind}" not found: {kind.lower()}.cert-manager.io "{ref.get("name")}" not found'
                body = certificate_status_patch(cert, None, "Pending", message)
                if body:
                    self._try(f"certificate {ns}/{name}", lambda p=path, b=body: self.patch(p, b))
                continue
            secret_name = spec.get("secretName")
            if not secret_name:
                continue

            def issue(cert=cert, ns=ns, name=name, secret_name=secret_name, path=path, spec=spec) -> None:
                existing = self.get_secret(ns, secret_name)
                info = certificate_secret_current(existing, spec, self.ca)
                revision = (cert.get("status") or {}).get("revision")
                if info is None:
                    secret, info = certificate_secret(cert, self.ca, existing)
                    if existing is None:
                        api_request(self.api, "POST", f"/api/v1/namespaces/{ns}/secrets", body=secret,
                                    query={"fieldManager": FIELD_MANAGER})
                    else:
                        self.patch(f"/api/v1/namespaces/{ns}/secrets/{secret_name}",
                                   {"metadata": {k: secret["metadata"][k] for k in ("annotations", "labels")},
                                    "data": secret["data"]})
                    revision = int(revision or 0) + 1
                    self.log(f"certificate {ns}/{name}: issued Secret {ns}/{secret_name} "
                             f"(DNS {','.join(info.dns_names) or '-'}; IP {','.join(info.ip_addresses)})")
                    self.mark("routing", "controllers")
                body = certificate_status_patch(cert, info, "Ready", "Certificate is up to date and has not expired",
                                                int(revision or 1))
                if body:
                    self.patch(path, body)

            if self._try(f"certificate {ns}/{name}", issue):
                issued[f"{ns}/{name}"] = f"{ns}/{secret_name}"
        self.certificates = issued

    def _try(self, what: str, action: Callable[[], Any]) -> bool:
        try:
            action()
            self._said.pop(f"err {what}", None)
            return True
        except Exception as exc:
            if _status_of(exc) == 409:       # changed meanwhile: the watch brings the new version
                self.mark(*AREAS)
                return False
            text = str(exc).splitlines()[0][:300] if str(exc) else ""
            body = getattr(exc, "body", None)
            if body:
                with contextlib.suppress(Exception):
                    text = f"{text} {json.loads(body).get('message', '')[:300]}"
            self.say_once(f"err {what}", f"{what}: {exc.__class__.__name__}: {text}")
            return False

    # --- cainjector
    def injected_ca(self, obj: Mapping, secrets: dict) -> str | None:
        annotations = _meta(obj).get("annotations") or {}
        ref = annotations.get(INJECT_CA_FROM)
        direct = annotations.get(INJECT_CA_FROM_SECRET)
        if ref and "/" in ref:
            ns, name = ref.split("/", 1)
            cert = self.caches["certificates"].get(ns, name)
            if cert is None or not (cert.get("spec") or {}).get("secretName"):
                return None
            key = (ns, cert["spec"]["secretName"])
        elif direct and "/" in direct:
            key = tuple(direct.split("/", 1))  # type: ignore[assignment]
        else:
            return None
        if key not in secrets:
            secrets[key] = self.get_secret(*key)
        secret = secrets[key]
        if secret is None:
            return None
        if not ref and (_meta(secret).get("annotations") or {}).get(ALLOW_DIRECT_INJECTION) != "true":
            return None
        return (secret.get("data") or {}).get("ca.crt") or None

    # --- c) routing
    def routes(self) -> dict[tuple[str, str], Route]:
        routes = {}
        for proc in self.processes:
            if proc.running and proc.ready and proc.launch and proc.launch.webhook and proc.port and proc.deployment:
                routes[(proc.deployment[0], proc.spec.service)] = Route(proc.deployment[0], proc.spec.service,
                                                                        proc.port, proc.launch.ca_bundle or "")
        return routes

    def reconcile_routing(self, routes: Mapping[tuple[str, str], Route] | None = None) -> None:
        routes = self.routes() if routes is None else routes
        secrets: dict = {}
        for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            for config in self.caches[kind].values():
                name = _key(config)[1]
                body = plan_webhook_configuration(config, routes, self.injected_ca(config, secrets))
                if body:
                    path = f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}"
                    if self._try(f"{kind} {name}", lambda p=path, b=body: self.patch(p, b)):
                        targets = _describe_targets(w.get("clientConfig") or {} for w in body["webhooks"])
                        self.log(f"{kind} {name}: {targets}")
        for crd in self.caches["crds"].values():
            conversion = (crd.get("spec") or {}).get("conversion") or {}
            if conversion.get("strategy") != "Webhook":
                continue
            body = plan_crd_conversion(crd, routes, self.injected_ca(crd, secrets))
            if body:
                name = _key(crd)[1]
                path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
                if self._try(f"crd {name}", lambda p=path, b=body: self.patch(p, b)):
                    cc = body["spec"]["conversion"]["webhook"]["clientConfig"]
                    self.log(f"crd {name}: conversion webhook {_describe_targets([cc])}")

    # --- a) controllers
    def binary(self, spec: ControllerSpec) -> tuple[Path | None, str | None]:
        name = spec.binary
        if name in self.binaries:
            path = Path(self.binaries[name])
        else:
            try:
                from labctl import controllers
            except ImportError as exc:
                return None, f"labctl.controllers not available ({exc})"
            try:
                path = Path(controllers.binary(spec.controller or name, name))
            except Exception as exc:
                return None, f"{exc.__class__.__name__}: {exc}"
        if not (path.is_file() and os.access(path, os.X_OK)):
            return None, f"{path} is not built"
        return path, None

    def _deployment_for(self, spec: ControllerSpec) -> dict | None:
        found = sorted((d for d in self.caches["deployments"].values() if _meta(d).get("name") == spec.deployment),
                       key=_key)
        for dep in found:
            replicas = (dep.get("spec") or {}).get("replicas")
            if not _meta(dep).get("deletionTimestamp") and (replicas is None or int(replicas) > 0):
                return dep
        return None

    def _lab_cert(self, proc: ControllerProcess, launch: Launch) -> None:
        """LWS's cert-controller (or a Deployment without a cert Secret): a serving cert from the lab CA."""
        cert_dir = launch.cert_dir
        if launch.cert_secret is not None:
            ns, name = launch.cert_secret
            secret = self.get_secret(ns, name)
            if not serving_secret_current(secret, launch.cert_dns, self.ca):
                cert_pem, key_pem = issue_certificate(self.ca, common_name=launch.cert_dns[0],
                                                      dns_names=launch.cert_dns, ip_addresses=EXTRA_IP_SANS,
                                                      key_algorithm="ECDSA", duration=timedelta(days=365))
                data = {"tls.crt": _b64(cert_pem), "tls.key": _b64(key_pem), "ca.crt": self.ca.bundle}
                body = {"metadata": {"annotations": {ISSUED_ANNOTATION: f"{proc.spec.binary} serving cert"}},
                        "data": data}
                if secret is None:
                    api_request(self.api, "POST", f"/api/v1/namespaces/{ns}/secrets",
                                body={"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                      "metadata": {"name": name, "namespace": ns, **body["metadata"]}, "data": data},
                                query={"fieldManager": FIELD_MANAGER})
                else:
                    self.patch(f"/api/v1/namespaces/{ns}/secrets/{name}", body)
                self.log(f"{proc.spec.binary}: wrote serving cert Secret {ns}/{name} (its cert-controller's job)")
                secret = {"data": data}
            launch.files.update(_secret_files(secret or {}, cert_dir))
        else:
            crt, key = Path(cert_dir) / "tls.crt", Path(cert_dir) / "tls.key"
            current = {"data": {"tls.crt": _b64(crt.read_bytes()), "tls.key": "x"}} if crt.is_file() and key.is_file() \
                else None
            if serving_secret_current(current, launch.cert_dns, self.ca):
                launch.files[str(crt)], launch.files[str(key)] = crt.read_bytes(), key.read_bytes()
            else:
                cert_pem, key_pem = issue_certificate(self.ca, common_name=launch.cert_dns[0],
                                                      dns_names=launch.cert_dns, ip_addresses=EXTRA_IP_SANS,
                                                      key_algorithm="ECDSA", duration=timedelta(days=365))
                launch.files[str(crt)], launch.files[str(key)] = cert_pem, key_pem
        launch.ca_bundle = self.ca.bundle

    def reconcile_controller(self, proc: ControllerProcess) -> None:
        spec = proc.spec
        dep = self._deployment_for(spec)
        if dep is None:
            if proc.running:
                proc.stop("Deployment gone")
                self.mark("routing")
            proc.deployment, proc.waiting = None, f"no Deployment {spec.deployment}"
            proc.backoff, proc.next_start = BACKOFF_FIRST, 0.0
            return
        proc.deployment = _key(dep)
        binary, why = self.binary(spec)
        if binary is None:
            proc.waiting = f"binary {spec.binary}: {why}"
            self.say_once(f"bin {spec.binary}", f"{spec.binary}: not started: {why}")
            return
        marker = {"LAB_OMELAB_DIR": str(self.workdir)}
        if not proc.running:
            proc.port = free_port(proc.port)     # the same port again when it is free
        port = proc.port or 0
        launch = plan_launch(spec, dep, binary=binary, kubeconfig=self.kubeconfig, workdir=proc.workdir, port=port,
                             get_configmap=self.get_configmap, get_secret=self.get_secret,
                             crds_established=self.crd_established, marker=marker,
                             service_address=self.service_address)
        if isinstance(launch, Waiting):
            if not proc.running:
                proc.waiting = launch.reason
                self.say_once(f"wait {spec.binary}", f"{spec.binary}: waiting: {launch.reason}")
            return
        if launch.webhook and launch.lab_cert:
            self._lab_cert(proc, launch)
        elif launch.webhook and launch.cert_secret:
            crt = next((c for p, c in launch.files.items() if p.endswith("/tls.crt")), b"")
            info = inspect_certificate(crt)
            if info is not None and LOOPBACK not in info.ip_addresses:
                self.say_once(f"san {spec.binary}", f"{spec.binary}: warning: the serving cert in Secret "
                              f"{'/'.join(launch.cert_secret)} has no IP SAN {LOOPBACK}: kube-apiserver will refuse it")
        launch.ca_bundle = launch.ca_bundle or self.ca.bundle
        for path, content in launch.files.items():
            _write_file(Path(path), content)
        if proc.running:
            if launch.fingerprint != proc.fingerprint:
                proc.stop("its Deployment or config changed")
                proc.next_start = 0.0
                self.mark("routing")
            else:
                proc.launch = launch
                if proc.ready and launch.pod_ip:
                    self.report_pod_ip(dep, launch.pod_ip)
                return
        if time.monotonic() < proc.next_start:
            proc.waiting = f"back-off ({proc.last_exit})"
            return
        self._said.pop(f"wait {spec.binary}", None)
        try:
            proc.start(launch)
        except OSError as exc:
            proc.waiting = f"cannot start: {exc}"
            self.say_once(f"start {spec.binary}", f"{spec.binary}: cannot start: {exc}")

    def service_address(self, ns: str, service: str) -> str | None:
        """Where a Service's controller process serves (its port on the loopback), while it runs and is ready."""
        for proc in self.processes:
            if proc.spec.service == service and proc.deployment and proc.deployment[0] == ns and proc.running \
                    and proc.ready and proc.port:
                return f"{LOOPBACK}:{proc.port}"
        return None

    def report_pod_ip(self, deployment: Mapping, pod_ip: str) -> None:
        """A kubelet reports the address its pod serves on: the pods of ``deployment`` get ``pod_ip`` (the lab
        host, where the process listens) as status.podIP, so the Service's endpoints lead to the process."""
        ns = _meta(deployment).get("namespace") or "default"
        labels = (((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
        if not labels:
            return
        pods = api_request(self.api, "GET", f"/api/v1/namespaces/{ns}/pods",
                           query={"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))})
        for pod in pods.get("items") or []:
            status = pod.get("status") or {}
            if status.get("phase") != "Running" or _meta(pod).get("deletionTimestamp") or \
                    status.get("podIP") == pod_ip:
                continue
            name = _meta(pod).get("name")
            body = {"status": {"podIP": pod_ip, "podIPs": [{"ip": pod_ip}]}}
            if self._try(f"pod {ns}/{name} status", lambda n=name, b=body: api_request(
                    self.api, "PATCH", f"/api/v1/namespaces/{ns}/pods/{n}/status", body=b,
                    content_type=MERGE_PATCH, query={"fieldManager": FIELD_MANAGER})):
                self.log(f"pod {ns}/{name}: podIP {pod_ip} (its process serves there)")

    def poll_processes(self) -> None:
        for proc in self.processes:
            if proc.poll():
                self.mark("routing", "controllers")
                self.on_change()
            if proc.wake_for_restart and time.monotonic() >= proc.next_start:
                proc.wake_for_restart = False      # its back-off is over: start it again now
                self.mark("controllers")

    # --- d) model agent
    def reconcile_models(self, recheck: bool) -> None:
        agents: dict[str, str] = {}
        for pod in self.caches["agentpods"].values():
            node = (pod.get("spec") or {}).get("nodeName")
            if node and (pod.get("status") or {}).get("phase") == "Running" and not _meta(pod).get("deletionTimestamp"):
                agents[node] = _meta(pod).get("namespace") or "ome"
        models = [Model.from_object(m) for cache in ("clusterbasemodels", "basemodels")
                  for m in self.caches[cache].values() if not _meta(m).get("deletionTimestamp")]
        if recheck:
            self._presence = {}
        labelled: dict[str, list[str]] = {}
        for node in self.caches["nodes"].values():
            name = _meta(node).get("name") or ""
            if name not in agents:
                continue

            def present(path: str, node_name: str = name) -> bool | None:
                key = (node_name, path)
                if key not in self._presence:
                    self._presence[key] = self.machines.present(node_name, path)
                return self._presence[key]

            desired, unknown = desired_model_labels(name, _meta(node).get("labels") or {}, models, present)
            labelled[name] = sorted(desired)
            body = plan_node_model_patch(node, desired, unknown)
            if body and self._try(f"node {name}", lambda n=name, b=body: self.patch(f"/api/v1/nodes/{n}", b)):
                changes = body["metadata"].get("labels") or {}
                added = sorted(k for k, v in changes.items() if v)
                removed = sorted(k for k, v in changes.items() if v is None)
                if added or removed:
                    self.log(f"node {name}: model labels" + (f" +{','.join(added)}" if added else "")
                             + (f" -{','.join(removed)}" if removed else ""))
            self._sync_status_configmap(agents[name], name, desired.values(), recheck)
        if labelled != self.model_labels:
            self.model_labels = labelled
            self.on_change()

    def _sync_status_configmap(self, ns: str, node: str, models: Iterable[Model], force: bool) -> None:
        """The agent's node status ConfigMap (``<ns>/<node>``): an entry per model Ready on the node."""
        want = model_status_entries(models)
        if not force and self._status_cms.get(node) == want:
            return

        def sync() -> None:
            path = f"/api/v1/namespaces/{ns}/configmaps/{node}"
            current = self.get_configmap(ns, node)
            if current is None:
                api_request(self.api, "POST", f"/api/v1/namespaces/{ns}/configmaps", query={"fieldManager":
                                                                                              FIELD_MANAGER},
                            body={"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": node, "namespace": ns,
                                               "labels": {MODEL_STATUS_CONFIGMAP_LABEL: "true", "node": node},
                                               "annotations": {"models.ome.io/node-name": node,
                                                               "models.ome.io/managed-by": "model-agent"}},
                                  "data": want})
            else:
                data = current.get("data") or {}
                diff: dict[str, str | None] = {k: v for k, v in want.items() if data.get(k) != v}
                diff.update({k: None for k in data if k not in want})
                if diff:
                    self.patch(path, {"data": diff})
            self._status_cms[node] = want

        self._try(f"configmap {ns}/{node}", sync)

    # --- the loop
    def _reconcile_controllers(self) -> None:
        for proc in self.processes:
            try:
                self.reconcile_controller(proc)
            except Exception as exc:
                self.say_once(f"err ctl {proc.spec.binary}", f"{proc.spec.binary}: {exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}")
                self.mark("controllers")
        self.on_change()

    def reconcile(self, areas: set[str], recheck_models: bool) -> None:
        """The dirty areas, in dependency order (certs before the controllers that mount them, the
        controllers before the routes to them). An API error (kube-apiserver restarting) is retried."""
        steps = (("certs", self.reconcile_certs), ("controllers", self._reconcile_controllers),
                 ("routing", self.reconcile_routing), ("models", lambda: self.reconcile_models(recheck_models)))
        failed = False
        for area, step in steps:
            if area not in areas or self.stop.is_set():
                continue
            try:
                step()
                self._said.pop(f"err area {area}", None)
            except Exception as exc:
                failed = True
                self.say_once(f"err area {area}", f"{area}: {exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}; retrying")
                self.mark(area)
        if failed:
            self.stop.wait(1.0)

    def run(self) -> None:
        for cache in self.caches.values():
            threading.Thread(target=cache.run, name=f"watch-{cache.name}", daemon=True).start()
        last_resync = last_models = time.monotonic()
        reported_synced = False
        try:
            while not self.stop.is_set():
                self.poll_processes()
                now = time.monotonic()
                recheck = now - last_models >= MODEL_POLL_SECONDS
                if recheck:
                    last_models = now
                    self.mark("models")
                if now - last_resync >= RESYNC_SECONDS:
                    last_resync = now
                    self.mark(*AREAS)
                with self._cond:
                    if not self._dirty or not self.is_synced():
                        self._cond.wait(0.5)
                    if not self.is_synced():
                        continue
                    areas, self._dirty = set(self._dirty), set()
                if areas:
                    self.reconcile(areas, recheck)
                if self.is_synced() != reported_synced:
                    reported_synced = self.is_synced()
                    self.on_change()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the controllers (concurrently), then give their webhooks their Services back."""
        self.stop.set()
        threads = [threading.Thread(target=p.stop, args=("the stand-in stops",)) for p in self.processes if p.running]
        for t in threads:
            t.start()
        for t in threads:
            t.join(CHILD_STOP_TIMEOUT + 10)
        if any(c.synced for c in self.caches.values()):
            with contextlib.suppress(Exception):
                self.reconcile_routing(routes={})
        self.machines.close()

    def state(self) -> dict:
        return {"synced": self.is_synced(), "controllers": {p.spec.binary: p.row() for p in self.processes},
                "certificates": dict(self.certificates), "model_labels": dict(self.model_labels),
                "apis_not_served": sorted(c.path for c in self.caches.values() if c.synced and not c.served)}


# ------------------------------------------------------------------ b) installing the cert-manager CRDs
def cert_manager_crds() -> list[dict]:
    return [d for d in yaml.safe_load_all(CERT_MANAGER_CRDS.read_text()) if d]


def install_cert_manager_crds(cluster: str = "worker", kubeconfig: Path | None = None, timeout: float = 60.0,
                              log=None) -> list[str]:
    """Make the cluster serve ``cert-manager.io/v1`` Certificate, Issuer and ClusterIssuer (server-side
    apply of the lab's minimal CRDs, idempotent) and wait until they are Established. Returns their names."""
    from kubernetes import config as k8s_config

    from labctl.waiting import WaitTimeout, wait_for

    kubeconfig = Path(kubeconfig or paths.kubeconfig_path(cluster))
    if not kubeconfig.is_file():
        raise OmeLabError(f"cert-manager CRDs: no kubeconfig at {kubeconfig} (is the cluster up?)")
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    names = []
    try:
        for crd in cert_manager_crds():
            name = crd["metadata"]["name"]
            try:
                api_request(api, "PATCH", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
                            body=crd, content_type="application/apply-patch+yaml",
                            query={"fieldManager": FIELD_MANAGER, "force": "true"})
            except Exception as exc:
                raise OmeLabError(f"cert-manager CRD {name}: {exc.__class__.__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
            names.append(name)

        def established() -> bool:
            for name in names:
                crd = api_request(api, "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                if not _slim_crd(crd)["status"]["established"]:
                    return False
            return True

        try:
            wait_for(established, timeout, "the cert-manager CRDs to be Established", interval=0.2)
        except WaitTimeout as exc:
            raise OmeLabError(str(exc)) from None
    finally:
        api.close()
    if log:
        log(f"omelab: cert-manager.io/v1 CRDs served in {cluster} ({', '.join(names)})")
    return names


# ------------------------------------------------------------------ process: state files, run, up/down/status
def state_dir() -> Path:
    return STANDIN.state_dir()


def _files(cluster: str, base: Path | None = None) -> dict[str, Path]:
    """The stand-in's files (:meth:`StandIn.files`) and ``work``: its controllers' work dirs and logs."""
    return {**STANDIN.files(cluster, base), "work": Path(base or state_dir()) / cluster}


def _children_of(workdir: Path) -> list[int]:
    """Controller processes started for ``workdir`` (marked in their environment), by any stand-in run."""
    marker = f"LAB_OMELAB_DIR={workdir}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
    return pids


def _stop_children(workdir: Path, say: Callable[[str], None]) -> None:
    from labctl.procs import alive, cmdline, stop

    for pid in _children_of(workdir):
        if alive(pid):
            say(f"stopping a controller left running: pid {pid} ({cmdline(pid)[:120]})")
            stop(pid, "controller", CHILD_STOP_TIMEOUT)


def _status_fields(state: dict) -> dict:
    return {"controllers": state.get("controllers") or {}, "certificates": state.get("certificates") or {},
            "model_labels": state.get("model_labels") or {}, "apis_not_served": state.get("apis_not_served") or []}


STANDIN = StandIn(name="omelab", what="omelab", title="OME/LWS stand-in", up_title="OME/LWS stand-in",
                  error=OmeLabError, stop_timeout=STOP_TIMEOUT, status_fields=_status_fields,
                  after_stop=lambda cluster, say: _stop_children(_files(cluster)["work"], say), private_files=True)


def run(cluster: str = "worker", kubeconfig: Path | None = None, machines_dir: Path | None = None,
        binaries: Mapping[str, Path] | None = None, base: Path | None = None, write_state_file: bool = False,
        stop: threading.Event | None = None, log: Callable[[str], None] | None = None) -> None:
    """The stand-in for one cluster, in the foreground, until ``stop`` is set (SIGTERM/SIGINT for the
    background process); stops its controllers on the way out. ``base``: its state directory
    (default ``lab/state/omelab``: the lab CA, the controllers' work dirs and logs, the state file)."""
    from kubernetes import config as k8s_config

    kubeconfig = Path(kubeconfig or paths.kubeconfig_path(cluster))

    say = foreground_log(log)
    base = Path(base or state_dir())
    files = _files(cluster, base)
    state_file = files["state"] if write_state_file else None
    workdir = paths.private_dir(files["work"])
    _stop_children(workdir, say)
    ca = load_or_create_ca(base)
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    lab: OmeLab
    write_state = STANDIN.state_writer(state_file, lambda: {"pid": os.getpid(), "cluster": cluster,
                                                            "kubeconfig": str(kubeconfig), **lab.state()})
    lab = OmeLab(api, kubeconfig, workdir, ca, MachineFilesystems(machines_dir), say, binaries, write_state, stop)
    say(f"OME/LWS stand-in for cluster {cluster} ({kubeconfig}); machines: "
        f"{machines_dir or 'podman containers of the lab fleet'}")
    STANDIN.run_until_stopped(lab.run, write_state, api, say)


def parse_binaries(items: Iterable[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, _, path = item.partition("=")
        if name not in {s.binary for s in CONTROLLERS} or not path:
            raise OmeLabError(f"--binary {item!r}: expected NAME=PATH with NAME one of "
                              f"{', '.join(s.binary for s in CONTROLLERS)}")
        out[name] = Path(path).resolve()
    return out


def up(cluster: str = "worker", kubeconfig: Path | None = None, machines_dir: Path | None = None,
       binaries: Mapping[str, Path] | None = None, timeout: float = START_TIMEOUT, log=None) -> dict:
    """Start the stand-in for ``cluster`` in the background (no-op if it runs) and wait until it has
    listed the cluster once. The controllers start when their Deployments appear. Returns its status row."""
    kubeconfig = Path(kubeconfig or paths.kubeconfig_path(cluster))
    options = []
    if machines_dir:
        options += ["--machines-dir", str(Path(machines_dir).resolve())]
    for name, path in (binaries or {}).items():
        options += ["--binary", f"{name}={path}"]
    return STANDIN.up(cluster, kubeconfig, options, timeout, log)


def down(cluster: str | None = None, log=None) -> None:
    """Stop the stand-in of ``cluster`` (all by default): it stops its controller processes and gives
    the webhooks their Services back; any controller it left behind is stopped too."""
    STANDIN.down(cluster, log)


def status() -> list[dict]:
    return STANDIN.status()


# ------------------------------------------------------------------ CLI
def _cmd_install_crds(args: argparse.Namespace) -> int:
    install_cert_manager_crds(args.cluster, args.kubeconfig, log=cli_log)
    return 0


def _up_options(p_up: argparse.ArgumentParser) -> None:
    p_up.add_argument("--machines-dir", type=Path, default=None,
                      help="machine root filesystems as DIR/<node> (default: the fleet's podman containers)")
    p_up.add_argument("--binary", action="append", metavar="NAME=PATH",
                      help="use this ome-manager / lws-controller binary (default: labctl.controllers)")


def register_cli(subparsers) -> None:
    """Add ``omelab up|down|status|install-crds`` to an argparse subparsers object (``func(args) -> int``)."""
    sub = STANDIN.register_cli(
        subparsers, "the OME/LWS stand-in: kubelet for their controllers, cert-manager, Service routing for "
        "webhooks, OME model agent (lab fixture)", _up_options,
        lambda args, say: up(args.cluster, args.kubeconfig, args.machines_dir, parse_binaries(args.binary or ()),
                             log=say),
        down_help="stop the stand-in and its controllers (every cluster unless --cluster)")
    p_crds = sub.add_parser("install-crds", help="serve cert-manager.io/v1 Certificate/Issuer/ClusterIssuer")
    p_crds.add_argument("--cluster", default="worker")
    p_crds.add_argument("--kubeconfig", type=Path, default=None)
    p_crds.set_defaults(func=STANDIN.guard(_cmd_install_crds))


def _run_options(p_run: argparse.ArgumentParser) -> None:
    p_run.add_argument("--machines-dir", type=Path, default=None)
    p_run.add_argument("--binary", action="append", default=[])


def _run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    run(args.cluster, args.kubeconfig, args.machines_dir, parse_binaries(args.binary), args.state_dir,
        write_state_file=True, stop=stop_event)


def main(argv: list[str] | None = None) -> int:
    """``python -m labctl.omelab run ...``: the background process."""
    return STANDIN.main(argv, _run_options, _run)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CONTROLLERS", "LabCA", "Model", "OmeLab", "OmeLabError", "Route", "base_model_label",
           "certificate_sans", "cluster_base_model_label", "desired_model_labels", "down",
           "install_cert_manager_crds", "issue_certificate", "plan_crd_conversion", "plan_launch",
           "plan_node_model_patch", "plan_webhook_configuration", "register_cli", "run", "status", "up"]
