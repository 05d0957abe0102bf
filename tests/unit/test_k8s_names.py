"""module_utils/k8s_names.py: the one place for Kubernetes name syntax (labels, DNS-1123 names, taints)."""

import pytest
from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names

# --- label keys and values ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "key",
    [
        "gpu", "gpu-type", "nvidia.com/gpu.present", "node-role.kubernetes.io/worker", "a", "A_b.c-d",
        "x" * 63, ("p" * 253) + "/n", "aicluster.io/managed-labels",
    ],
)
def test_valid_keys(key):
    assert k8s_names.validate_label_key(key) == []


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("", "key must not be empty"),
        ("x" * 64, "name part must be no more than 63 characters (has 64)"),
        ("-gpu", "must start and end with an alphanumeric"),
        ("gpu-", "must start and end with an alphanumeric"),
        ("gpu type", "must consist of alphanumerics"),
        ("a/b/c", "at most one '/'"),
        ("/gpu", "prefix part must not be empty"),
        ("nvidia.com/", "name part must not be empty"),
        ("Nvidia.com/gpu", "must be a DNS-1123 subdomain"),
        ("nvidia_com/gpu", "must be a DNS-1123 subdomain"),
        ("nvidia..com/gpu", "must be a DNS-1123 subdomain"),
        (("a" * 254) + "/gpu", "prefix part must be no more than 253 characters (has 254)"),
        ("gpu$", "must consist of alphanumerics"),
        ("ünicode", "must consist of alphanumerics"),
        (42, "key must be a string, got int"),
    ],
)
def test_invalid_keys(key, fragment):
    errors = k8s_names.validate_label_key(key)
    assert errors, key
    assert any(fragment in error for error in errors), errors


@pytest.mark.parametrize("value", ["", "true", "A100", "huawei-Ascend910", "module-910b-8", "v" * 63, "1.2_3-x"])
def test_valid_values(value):
    assert k8s_names.validate_label_value(value) == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("v" * 64, "no more than 63 characters (has 64)"),
        ("-x", "must start and end with an alphanumeric"),
        ("x.", "must start and end with an alphanumeric"),
        ("a b", "must be empty or consist of alphanumerics"),
        ("a/b", "must be empty or consist of alphanumerics"),
        ("a,b", "must be empty or consist of alphanumerics"),
        (True, "value must be a string, got bool"),
        (None, "value must be a string, got NoneType"),
        (8, "value must be a string, got int"),
    ],
)
def test_invalid_values(value, fragment):
    errors = k8s_names.validate_label_value(value)
    assert any(fragment in error for error in errors), errors


def test_validate_labels_names_the_key():
    problems = k8s_names.validate_labels({"ok": "true", "bad key": "true", "gpu": "a b"})
    assert [key for key, _ in problems] == ["bad key", "gpu"]


# --- DNS-1123 names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gpu-1", "a", "gpu-a100-01.lab", "x" * 63, "1abc", ".".join(["a" * 63] * 3)])
def test_valid_node_names(name):
    assert k8s_names.validate_node_name(name) == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("GPU_1", "Node name 'GPU_1' must be a DNS-1123 subdomain"),
        ("-gpu", "must be a DNS-1123 subdomain"),
        ("gpu.", "must be a DNS-1123 subdomain"),
        ("", "must be a DNS-1123 subdomain"),
        ("a" * 254, "Node name must be no more than 253 characters (has 254)"),
        (None, "Node name must be a string, got NoneType"),
    ],
)
def test_invalid_node_names(name, fragment):
    assert any(fragment in error for error in k8s_names.validate_node_name(name)), k8s_names.validate_node_name(name)


def test_dns1123_label_has_no_dots_and_63_characters():
    assert k8s_names.validate_dns1123_label("worker-1") == []
    assert "must be a DNS-1123 label" in k8s_names.validate_dns1123_label("worker.1")[0]
    assert "no more than 63 characters (has 64)" in k8s_names.validate_dns1123_label("a" * 64)[0]


# --- taints ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("taint", "parsed"),
    [
        ("nvidia.com/gpu=present:NoSchedule", ("nvidia.com/gpu", "present", "NoSchedule")),
        ("dedicated:NoExecute", ("dedicated", "", "NoExecute")),
        ("k=:PreferNoSchedule", ("k", "", "PreferNoSchedule")),
    ],
)
def test_valid_taints(taint, parsed):
    assert k8s_names.parse_taint(taint) == parsed
    assert k8s_names.validate_taint(taint) == []


@pytest.mark.parametrize(
    ("taint", "fragment"),
    [
        ("no-effect", "must be written key[=value]:Effect"),
        (":NoSchedule", "must be written key[=value]:Effect"),
        ("k=v:Sometimes", "effect 'Sometimes' must be one of NoSchedule, PreferNoSchedule, NoExecute"),
        ("bad key=v:NoSchedule", "name part 'bad key' must consist of alphanumerics"),
        ("k=a b:NoSchedule", "value 'a b' must be empty or consist of alphanumerics"),
        (7, "must be written key[=value]:Effect"),
    ],
)
def test_invalid_taints(taint, fragment):
    errors = k8s_names.validate_taint(taint)
    assert any(fragment in error for error in errors), errors
