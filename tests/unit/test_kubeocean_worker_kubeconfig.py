"""kubeocean_worker_kubeconfig: the syncer's token read in a worker cluster, the address probed over TLS with the
worker's CA, the kubeconfig Secret written into a manager cluster - two fake API servers (fake_kube.py) through
kubernetes.core's client for real, a third serving HTTPS as the worker's address, on a fake clock: nothing sleeps.
The kubeconfig and the token never appear in the module's output."""

from __future__ import annotations

import base64
import datetime
import json
import socket
import tempfile

import kubernetes.client
import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client, retry
from ansible_collections.aicluster.platform.plugins.modules import kubeocean_worker_kubeconfig as module_under_test
from ansible_collections.kubernetes.core.plugins.module_utils.k8s import client as k8s_core_client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fake_clock import FakeTime
from fake_kube import TOKEN, FakeKube

WORKER_NAME = "worker-api.example.test"  # resolved to 127.0.0.1 by the tests, covered by the server certificate
OTHER_NAME = "other-api.example.test"  # resolved to 127.0.0.1 too, not in the certificate
SECRET = ("kubeocean-system", "gpu-west-kubeconfig")
LABELS = {"app.kubernetes.io/managed-by": "aicluster-kubeocean", "aicluster.io/kubeocean-binding": "gpu-west"}


# ------------------------------------------------------------------ certificates
def _name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _ca(text):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(text)).issuer_name(_name(text))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The worker cluster's CA, the API server certificate it signed for WORKER_NAME, and another CA."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("worker-ca")
    _other_key, other_cert = _ca("other-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("kube-apiserver")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(WORKER_NAME)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    return {"ca": ca_cert.public_bytes(serialization.Encoding.PEM),
            "other_ca": other_cert.public_bytes(serialization.Encoding.PEM),
            "tls": (str(directory / "server.crt"), str(directory / "server.key"))}


# ------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True)
def clock(monkeypatch, tmp_path):
    """One module run per process in real life: fresh process-wide state for each test (kubernetes' default
    configuration, kubernetes.core's client pool, the temp dir), names of the worker's address resolved to
    127.0.0.1, a fake clock for the retries and the token wait."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(kubernetes.client.Configuration, "_default", None)
    monkeypatch.setattr(k8s_core_client, "_pool", {})
    for name in ("K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        return real("127.0.0.1" if host in (WORKER_NAME, OTHER_NAME) else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    fake = FakeTime()
    monkeypatch.setattr(retry, "time", fake)
    monkeypatch.setattr(module_under_test, "time", fake)
    return fake


def token_secret(pki, token=TOKEN, ca=None, filled=True):
    data = {"namespace": base64.b64encode(b"kubeocean-worker").decode()}
    if filled:
        data["token"] = base64.b64encode(token.encode()).decode()
        data["ca.crt"] = base64.b64encode(ca or pki["ca"]).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {"name": "kubeocean-syncer", "namespace": "kubeocean-worker",
                         "annotations": {"kubernetes.io/service-account.name": "kubeocean-syncer"}},
            "data": data}


@pytest.fixture
def worker(pki):
    """The worker cluster as the control host reaches it (plain HTTP, like the other module tests)."""
    with FakeKube(secrets={("kubeocean-worker", "kubeocean-syncer"): token_secret(pki)}) as server:
        yield server


@pytest.fixture
def address(pki):
    """The worker's API server at the address the manager uses (HTTPS, certificate for WORKER_NAME)."""
    with FakeKube(tls=pki["tls"]) as server:
        yield server


@pytest.fixture
def manager():
    with FakeKube(namespaces={"kubeocean-system", "default"}) as server:
        yield server


def server_of(address, name=WORKER_NAME):
    return address.url.replace("127.0.0.1", name)


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module_under_test.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    result["_rc"] = exit_info.value.code
    result["_out"] = out
    return result


def args_for(worker, manager, address, tmp_path, **more):
    return {"kubeconfig": worker.kubeconfig(tmp_path / "worker.json"),
            "manager_kubeconfig": manager.kubeconfig(tmp_path / "manager.json"),
            "binding": "gpu-west", "server": server_of(address), **more}


def stored_kubeconfig(manager):
    return yaml.safe_load(base64.b64decode(manager.secrets[SECRET]["data"]["kubeconfig"]))


def assert_no_secret_in(result):
    out = result["_out"]
    assert TOKEN not in out and base64.b64encode(TOKEN.encode()).decode() not in out
    assert "certificate-authority-data" not in out and "current-context" not in out


def probe_files(tmp_path):
    """What the module left in the temp dir besides kubernetes.core's discovery cache (k8srcp-*.json)."""
    return [p.name for p in (tmp_path / "tmp").iterdir() if not p.name.startswith("k8srcp-")]


def writes(server):
    return [r for r in server.requests if r[0] in ("POST", "PATCH", "PUT", "DELETE")]


# ------------------------------------------------------------------ creating, updating, leaving alone
def test_creates_the_secret_the_manager_reads(worker, manager, address, tmp_path, capsys, pki):
    result = run(args_for(worker, manager, address, tmp_path), capsys)
    assert result["_rc"] == 0, result["msg"]
    assert result["changed"] is True and result["action"] == "created"
    assert result["secret"] == {"namespace": "kubeocean-system", "name": "gpu-west-kubeconfig"}
    assert result["token_secret"] == {"namespace": "kubeocean-worker", "name": "kubeocean-syncer", "waited": 0.0}
    assert result["probe"] == {"checked": True, "from": "control host", "version": "v1.36.3"}
    secret = manager.secrets[SECRET]
    assert secret["type"] == "Opaque" and secret["metadata"]["labels"] == LABELS
    assert stored_kubeconfig(manager) == {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "gpu-west", "cluster": {"server": server_of(address),
                                                      "certificate-authority-data": base64.b64encode(pki["ca"])
                                                      .decode()}}],
        "users": [{"name": "gpu-west-kubeocean-syncer", "user": {"token": TOKEN}}],
        "contexts": [{"name": "gpu-west", "context": {"cluster": "gpu-west", "user": "gpu-west-kubeocean-syncer",
                                                      "namespace": "kubeocean-worker"}}],
        "current-context": "gpu-west", "preferences": {},
    }
    assert_no_secret_in(result)
    assert probe_files(tmp_path) == []  # the CA file of the probe is gone
    assert writes(worker) == [] and ("GET", "/version") in address.requests


def test_the_stored_kubeconfig_works(worker, manager, address, tmp_path, capsys):
    """What the Kubeocean manager does with the Secret: load the kubeconfig and talk to the worker."""
    assert run(args_for(worker, manager, address, tmp_path), capsys)["_rc"] == 0
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config_from_dict(stored_kubeconfig(manager), client_configuration=config)
    with kubernetes.client.ApiClient(config) as api_client:
        status, body = k8s_client.get_ok(api_client, "/version", 5)
    assert status == 200 and json.loads(body)["gitVersion"] == "v1.36.3"


def test_a_second_run_changes_nothing(worker, manager, address, tmp_path, capsys):
    args = args_for(worker, manager, address, tmp_path)
    assert run(args, capsys)["_rc"] == 0
    before = [r for r in manager.requests if r[0] != "GET"]
    result = run(args, capsys)
    assert result["_rc"] == 0 and result["changed"] is False and result["action"] == "unchanged"
    assert [r for r in manager.requests if r[0] != "GET"] == before


def test_updates_another_kubeconfig_and_keeps_other_keys(worker, manager, address, tmp_path, capsys):
    manager.secrets[SECRET] = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                               "metadata": {"name": SECRET[1], "namespace": SECRET[0], "labels": {"team": "ml"}},
                               "data": {"kubeconfig": base64.b64encode(b"apiVersion: v1\nkind: Config\n").decode(),
                                        "note": base64.b64encode(b"kept").decode()}}
    result = run({**args_for(worker, manager, address, tmp_path), "_ansible_diff": True}, capsys)
    assert result["_rc"] == 0, result["msg"]
    assert result["changed"] is True and result["action"] == "updated"
    assert writes(manager) == [("PATCH", "/api/v1/namespaces/kubeocean-system/secrets/gpu-west-kubeconfig")]
    secret = manager.secrets[SECRET]
    assert secret["metadata"]["labels"] == {"team": "ml", **LABELS}
    assert base64.b64decode(secret["data"]["note"]) == b"kept"
    assert stored_kubeconfig(manager)["users"][0]["user"]["token"] == TOKEN
    assert result["diff"]["before"]["data"] == {"kubeconfig": "<hidden>", "note": "<hidden>"}
    assert result["diff"]["after"]["data"] == {"kubeconfig": "<hidden> (changed)", "note": "<hidden>"}
    assert result["diff"]["after"]["metadata"]["labels"] == {"team": "ml", **LABELS}
    assert_no_secret_in(result)


def test_only_missing_labels_are_added(worker, manager, address, tmp_path, capsys):
    args = args_for(worker, manager, address, tmp_path)
    assert run(args, capsys)["_rc"] == 0
    manager.secrets[SECRET]["metadata"]["labels"] = {}
    result = run({**args, "_ansible_diff": True}, capsys)
    assert result["action"] == "updated"
    assert result["diff"]["after"]["data"] == {"kubeconfig": "<hidden>"}  # the kubeconfig itself did not change
    assert manager.secrets[SECRET]["metadata"]["labels"] == LABELS


def test_check_mode_reads_and_probes_but_writes_nothing(worker, manager, address, tmp_path, capsys):
    result = run({**args_for(worker, manager, address, tmp_path), "_ansible_check_mode": True,
                  "_ansible_diff": True}, capsys)
    assert result["_rc"] == 0 and result["changed"] is True and result["action"] == "created"
    assert manager.secrets == {} and writes(manager) == []
    assert ("GET", "/version") in address.requests
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"] == {
        "metadata": {"name": "gpu-west-kubeconfig", "namespace": "kubeocean-system", "labels": LABELS},
        "type": "Opaque", "data": {"kubeconfig": "<hidden> (changed)"}}
    assert_no_secret_in(result)


def test_secret_name_and_namespaces_are_options(worker, manager, address, tmp_path, capsys, pki):
    worker.secrets[("lent", "syncer-token")] = worker.secrets.pop(("kubeocean-worker", "kubeocean-syncer"))
    manager.namespaces.add("ocean")
    result = run({**args_for(worker, manager, address, tmp_path), "token_secret_namespace": "lent",
                  "token_secret_name": "syncer-token", "secret_namespace": "ocean", "secret_name": "west"}, capsys)
    assert result["_rc"] == 0, result["msg"]
    kubeconfig = yaml.safe_load(base64.b64decode(manager.secrets[("ocean", "west")]["data"]["kubeconfig"]))
    assert kubeconfig["contexts"][0]["context"]["namespace"] == "lent"


# ------------------------------------------------------------------ the token
def test_waits_for_the_token_controller(worker, manager, address, tmp_path, capsys, clock, pki):
    worker.secrets[("kubeocean-worker", "kubeocean-syncer")] = token_secret(pki, filled=False)

    def fill():
        if len(clock.sleeps) == 2:
            worker.secrets[("kubeocean-worker", "kubeocean-syncer")] = token_secret(pki)
    clock.on_sleep = fill
    result = run(args_for(worker, manager, address, tmp_path, token_wait_sleep=3), capsys)
    assert result["_rc"] == 0, result["msg"]
    assert clock.sleeps[:2] == [3, 3] and result["token_secret"]["waited"] == 6.0
    assert SECRET in manager.secrets


def test_a_token_that_never_comes(worker, manager, address, tmp_path, capsys, clock, pki):
    worker.secrets[("kubeocean-worker", "kubeocean-syncer")] = token_secret(pki, filled=False)
    result = run(args_for(worker, manager, address, tmp_path, token_wait_timeout=10), capsys)
    assert result["_rc"] == 1
    assert result["msg"] == ("reading the token Secret kubeocean-worker/kubeocean-syncer in the worker cluster: "
                             "after 10s: the token Secret has no token yet (the token controller fills it in); the "
                             "token Secret has no ca.crt yet (the token controller fills it in)")
    assert sum(clock.sleeps) <= 10
    assert manager.requests == [] and address.requests == []


def test_no_token_secret(worker, manager, address, tmp_path, capsys):
    worker.secrets.clear()
    result = run(args_for(worker, manager, address, tmp_path, token_wait_timeout=0), capsys)
    assert result["_rc"] == 1
    assert result["msg"].endswith("after 0s: the token Secret does not exist (is the kubeocean-worker chart "
                                  "installed?)")
    assert manager.requests == []


def test_a_secret_that_is_no_token_secret_fails_at_once(worker, manager, address, tmp_path, capsys, clock, pki):
    secret = token_secret(pki, filled=False)
    secret["type"] = "Opaque"
    worker.secrets[("kubeocean-worker", "kubeocean-syncer")] = secret
    result = run(args_for(worker, manager, address, tmp_path), capsys)
    assert result["_rc"] == 1 and clock.sleeps == []
    assert "its type is 'Opaque', not kubernetes.io/service-account-token" in result["msg"]


# ------------------------------------------------------------------ the probe: the manager cannot reach it
def test_an_address_nobody_answers_at(worker, manager, tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = f"https://{WORKER_NAME}:{port}"
    args = {"kubeconfig": worker.kubeconfig(tmp_path / "w"), "manager_kubeconfig": manager.kubeconfig(tmp_path / "m"),
            "binding": "gpu-west", "server": server, "probe_timeout": 5}
    result = run(args, capsys)
    assert result["_rc"] == 1
    assert result["msg"].startswith(f"probing {server}: the manager cannot reach {server} (probed from the control "
                                    f"host: GET {server}/version: no success within")
    assert "Connection refused" in result["msg"]
    assert manager.requests == [] and manager.secrets == {}  # nothing applied
    assert_no_secret_in(result)
    assert probe_files(tmp_path) == []


def test_an_address_the_certificate_is_not_for(worker, manager, address, tmp_path, capsys):
    result = run({**args_for(worker, manager, address, tmp_path), "server": server_of(address, OTHER_NAME)}, capsys)
    assert result["_rc"] == 1
    assert f"{server_of(address, OTHER_NAME)} presents a certificate the worker's CA (ca.crt of the token Secret) " \
           "does not accept for that address (" in result["msg"]
    assert "Hostname mismatch" in result["msg"]
    assert manager.requests == []


def test_an_address_of_another_cluster(worker, manager, address, tmp_path, capsys, pki):
    worker.secrets[("kubeocean-worker", "kubeocean-syncer")] = token_secret(pki, ca=pki["other_ca"])
    result = run(args_for(worker, manager, address, tmp_path), capsys)
    assert result["_rc"] == 1
    assert "presents a certificate the worker's CA (ca.crt of the token Secret) does not accept" in result["msg"]
    assert manager.requests == []


def test_an_address_that_refuses_the_token(worker, manager, address, tmp_path, capsys, pki):
    worker.secrets[("kubeocean-worker", "kubeocean-syncer")] = token_secret(pki, token="another-clusters-token")
    result = run(args_for(worker, manager, address, tmp_path), capsys)
    assert result["_rc"] == 1
    assert result["msg"] == (f"probing {server_of(address)}: {server_of(address)} refuses the syncer's token "
                             "(HTTP 401): it is not the API server of the worker cluster the token comes from")
    assert manager.requests == []
    assert "another-clusters-token" not in result["_out"]


def test_without_the_probe_the_address_is_not_contacted(worker, manager, address, tmp_path, capsys):
    result = run({**args_for(worker, manager, address, tmp_path), "probe": False}, capsys)
    assert result["_rc"] == 0 and result["probe"] == {"checked": False}
    assert address.requests == [] and SECRET in manager.secrets


@pytest.mark.parametrize(("server", "problem"), [
    ("https://127.0.0.1:6443", "server https://127.0.0.1:6443 is a loopback address: the manager cannot reach the "
                               "worker there..."),
    ("https://kubernetes.default.svc:443", "server https://kubernetes.default.svc:443 is an in-cluster service "
                                           "name..."),
    ("http://10.20.0.10:6443", "server http://10.20.0.10:6443 must be an https:// URL with a host (the kubeconfig "
                               "carries a token)"),
], ids=["loopback", "in-cluster", "http"])
def test_an_address_the_manager_cannot_reach_is_refused_before_any_call(worker, manager, address, tmp_path, capsys,
                                                                         server, problem):
    result = run({**args_for(worker, manager, address, tmp_path), "server": server}, capsys)
    assert result["_rc"] == 1
    if problem.endswith("..."):
        assert result["msg"].startswith(problem[:-3])
    else:
        assert result["msg"] == problem
    assert worker.requests == [] and manager.requests == [] and address.requests == []


# ------------------------------------------------------------------ the manager
def test_manager_without_the_kubeocean_namespace(worker, address, tmp_path, capsys):
    with FakeKube(namespaces={"default"}) as bare:
        result = run(args_for(worker, bare, address, tmp_path), capsys)
    assert result["_rc"] == 1
    assert result["msg"] == ("writing Secret kubeocean-system/gpu-west-kubeconfig in the manager cluster: namespace "
                             "kubeocean-system does not exist in the manager cluster (is the kubeocean chart "
                             "installed?)")


def test_manager_options_are_required(worker, address, tmp_path, capsys):
    result = run({"kubeconfig": worker.kubeconfig(tmp_path / "w"), "binding": "gpu-west",
                  "server": server_of(address)}, capsys)
    assert result["_rc"] == 1
    assert result["msg"] == "one of the following is required: manager_kubeconfig, manager_context, manager_host"


def test_manager_host_and_api_key_are_no_log(worker, manager, address, tmp_path, capsys):
    result = run({"kubeconfig": worker.kubeconfig(tmp_path / "w"), "manager_host": manager.url,
                  "manager_api_key": TOKEN, "binding": "gpu-west", "server": server_of(address)}, capsys)
    assert result["_rc"] == 0, result["msg"]
    assert SECRET in manager.secrets
    assert result["invocation"]["module_args"]["manager_api_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert_no_secret_in(result)


def test_k8s_auth_environment_is_the_workers_only(worker, manager, address, tmp_path, capsys, monkeypatch):
    """K8S_AUTH_* configure the worker connection (kubernetes.core's options); the manager gets only manager_*,
    so the Secret cannot land in the worker cluster by accident."""
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", worker.kubeconfig(tmp_path / "w"))
    result = run({"manager_kubeconfig": manager.kubeconfig(tmp_path / "m"), "binding": "gpu-west",
                  "server": server_of(address)}, capsys)
    assert result["_rc"] == 0, result["msg"]
    assert SECRET in manager.secrets and writes(worker) == []


def test_a_manager_context_selects_its_cluster(worker, manager, address, tmp_path, capsys):
    result = run({**args_for(worker, manager, address, tmp_path), "manager_context": "other", "request_timeout": 3},
                 capsys)
    assert result["_rc"] == 1
    assert result["msg"].startswith("writing Secret kubeocean-system/gpu-west-kubeconfig in the manager cluster: "
                                    "connecting to http://127.0.0.1:1: no success within")
    assert manager.requests == []


def test_one_cluster_as_worker_and_manager_is_warned_about(worker, address, tmp_path, capsys, monkeypatch):
    # Recorded at the call: where a warning goes depends on whether Ansible's controller code was imported.
    warned = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning, **kwargs: warned.append(warning))
    result = run({"kubeconfig": worker.kubeconfig(tmp_path / "w"),
                  "manager_kubeconfig": worker.kubeconfig(tmp_path / "m"),
                  "binding": "gpu-west", "server": server_of(address)}, capsys)
    assert result["_rc"] == 0
    assert f"the worker and the manager connections reach the same API server ({worker.url})" in warned


def test_manager_faults_are_retried(worker, manager, address, tmp_path, capsys):
    manager.fail("POST", "/api/v1/namespaces/kubeocean-system/secrets", 503, times=2)
    result = run(args_for(worker, manager, address, tmp_path), capsys)
    assert result["_rc"] == 0, result["msg"]
    assert manager.faults == [] and SECRET in manager.secrets


@pytest.mark.parametrize("key", ["request_timeout", "probe_timeout", "token_wait_sleep"])
def test_bad_timeouts_are_refused(worker, manager, address, tmp_path, capsys, key):
    result = run({**args_for(worker, manager, address, tmp_path), key: 0}, capsys)
    assert result["_rc"] == 1 and result["msg"] == f"{key} must be at least 1 second"
    assert worker.requests == []
