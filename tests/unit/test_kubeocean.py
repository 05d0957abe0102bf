"""module_utils/kubeocean and the kubeocean_plan module: every rule of Kubeocean's ClusterBinding and
ResourceLeasingPolicy fields and the referential rules (one test each), the objects of a valid configuration, the
time-zone judgement and the worker kubeconfig. No cluster."""

from __future__ import annotations

import base64
import copy
import datetime
import json

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import kubeocean
from ansible_collections.aicluster.platform.plugins.modules import kubeocean_plan
from plan_helpers import DROP, assert_problem, merged

API = "cloud.tencent.com/v1beta1"
ROLE = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubeocean.io/role", "operator": "In",
                                                     "values": ["worker"]}]}]}
NIGHTS = {"name": "nights", "force_reclaim": True, "graceful_period": 300,
          "time_windows": [{"start": "18:00", "end": "08:00", "days": ["Monday", "tuesday", "WEDNESDAY"]},
                           {"start": "00:00", "end": "23:59", "days": ["Saturday", "Sunday"]}],
          "resource_limits": [{"resource": "cpu", "quantity": "96", "percent": 90},
                              {"resource": "memory", "percent": 95},
                              {"resource": "nvidia.com/gpu", "quantity": 4}]}
WEST = {"name": "gpu-west", "cluster_id": "cls-gpu-west", "server": "https://10.20.0.10:6443",
        "node_selector": {"kubeocean.io/role": "worker"}, "policies": [NIGHTS]}
EAST = {"name": "gpu-east", "cluster_id": "cls-gpu-east", "server": "https://api.east.example:6443",
        "node_selector": {"kubeocean.io/role": ["worker", "lender"], "nvidia.com/gpu.present": "true"}}
ALWAYS = {"name": "east-always", "cluster": "gpu-east", "resource_limits": [{"resource": "cpu", "percent": 50}]}
ZONE = "Asia/Shanghai"


def problems_of(binding=None, policy=None, separate=None, time_zone=ZONE, observed=None):
    """Problems of the standard configuration with the binding gpu-west, its policy nights or the separate policy
    east-always changed."""
    west = merged(WEST, binding or {})
    if policy is not None:
        west["policies"] = [merged(NIGHTS, policy)]
    return kubeocean.problems([west, EAST], [merged(ALWAYS, separate or {})], time_zone, observed)


def test_the_standard_configuration_is_fine():
    assert problems_of() == []


# ------------------------------------------------------------------ bindings
@pytest.mark.parametrize(("change", "problem"), [
    ({"name": DROP}, "bindings[0]: name is required (the ClusterBinding's name)"),
    ({"name": "GPU_West"}, "binding GPU_West: name 'GPU_West' must be a DNS-1123 label..."),
    ({"cluster_id": DROP}, "binding gpu-west: cluster_id is required (Kubeocean's clusterID)"),
    ({"cluster_id": "Cls-GPU-West"}, "binding gpu-west: cluster_id 'Cls-GPU-West' must be lower-case letters, digits "
                                     "and '-', starting and ending with a letter or digit "
                                     "(^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)"),
    ({"cluster_id": "cls-gpu-west-datacenter-1"}, "binding gpu-west: cluster_id cls-gpu-west-datacenter-1 has 25 "
                                                  "characters, Kubeocean allows at most 24"),
    ({"cluster_id": "cls-gpu-west-"}, "binding gpu-west: cluster_id 'cls-gpu-west-' must be lower-case letters..."),
    ({"cluster_id": 42}, "binding gpu-west: cluster_id must be a string, got 42"),
    ({"server": DROP}, "binding gpu-west: server is required (the worker API server's https:// address, reachable "
                       "from the manager cluster's pods)"),
    ({"server": "http://10.20.0.10:6443"}, "binding gpu-west: server http://10.20.0.10:6443 must be an https:// URL "
                                           "with a host (the kubeconfig carries a token)"),
    ({"server": "10.20.0.10:6443"}, "binding gpu-west: server 10.20.0.10:6443 must be an https:// URL..."),
    ({"server": "https://127.0.0.1:6443"}, "binding gpu-west: server https://127.0.0.1:6443 is a loopback address: "
                                           "the manager cannot reach the worker there (give an address of the "
                                           "worker's API server reachable from the manager cluster's pods)"),
    ({"server": "https://localhost:6443"}, "binding gpu-west: server https://localhost:6443 is a loopback address..."),
    ({"server": "https://kubernetes.default.svc"}, "binding gpu-west: server https://kubernetes.default.svc is an "
                                                   "in-cluster service name: inside the manager's pods it names a "
                                                   "service of the manager cluster, not the worker's API server"),
    ({"server": "https://10.20.0.10:6443?x=1"}, "binding gpu-west: server https://10.20.0.10:6443?x=1 must not have "
                                                "a query or fragment"),
    ({"server": "https://10.20.0.10:99999"}, "binding gpu-west: server https://10.20.0.10:99999 is not a URL..."),
    ({"node_selector": DROP}, "binding gpu-west: node_selector is required (the worker Nodes to lend, e.g. "
                              "{kubeocean.io/role: worker})"),
    ({"node_selector": "kubeocean.io/role=worker"}, "binding gpu-west: node_selector must be a dict of label -> "
                                                    "value(s), or a Kubernetes NodeSelector with nodeSelectorTerms, "
                                                    "got 'kubeocean.io/role=worker'"),
    ({"node_selector": {"bad key!": "x"}}, "binding gpu-west: node_selector key 'bad key!': name part..."),
    ({"node_selector": {"gpu": True}}, "binding gpu-west: node_selector gpu: value True must be a string (quote "
                                       "numbers and booleans)"),
    ({"node_selector": {"gpu": []}}, "binding gpu-west: node_selector gpu: give at least one value"),
    ({"node_selector": {"nodeSelectorTerms": []}}, "binding gpu-west: node_selector nodeSelectorTerms must be a "
                                                   "non-empty list of terms, got []"),
    ({"node_selector": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Has"}]}]}},
     "binding gpu-west: node_selector nodeSelectorTerms[0] matchExpressions[0]: operator 'Has' is not one of In, "
     "NotIn, Exists, DoesNotExist, Gt, Lt"),
    ({"node_selector": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In"}]}]}},
     "binding gpu-west: node_selector nodeSelectorTerms[0] matchExpressions[0]: operator In needs at least one value"),
    ({"node_selector": {"nodeSelectorTerms": [{}]}}, "binding gpu-west: node_selector nodeSelectorTerms[0] must have "
                                                     "matchExpressions or matchFields"),
    ({"mount_namespace": "Kubeocean_Worker"}, "binding gpu-west: mount_namespace 'Kubeocean_Worker' must be a "
                                              "DNS-1123 label..."),
    ({"secret_name": "West Kubeconfig"}, "binding gpu-west: secret_name 'West Kubeconfig' must be a DNS-1123 "
                                         "subdomain..."),
    ({"service_namespaces": "default"}, "binding gpu-west: service_namespaces must be a list of namespaces, got "
                                        "'default'"),
    ({"service_namespaces": ["Default"]}, "binding gpu-west: service_namespaces: namespace 'Default' must be..."),
    ({"pod_priority_class_name": "Low"}, "binding gpu-west: pod_priority_class_name 'Low' must be a DNS-1123 "
                                         "subdomain..."),
    ({"direct_scheduling": "yes"}, "binding gpu-west: direct_scheduling must be true or false, got 'yes'"),
    ({"disable_node_default_taint": 1}, "binding gpu-west: disable_node_default_taint must be true or false, got 1"),
    ({"running_daemonset_by_default": "no"}, "binding gpu-west: running_daemonset_by_default must be true or false, "
                                             "got 'no'"),
    ({"clusterID": "cls-x"}, "binding gpu-west: unknown field clusterID (known: name, cluster_id, server, "
                             "node_selector, mount_namespace, secret_name, service_namespaces, "
                             "disable_node_default_taint, pod_priority_class_name, running_daemonset_by_default, "
                             "direct_scheduling, policies, worker_cluster)"),
    ({"policies": {"name": "nights"}}, "binding gpu-west: policies must be a list of leasing policies, got "
                                       "{'name': 'nights'}"),
], ids=["no-name", "bad-name", "no-cluster-id", "cluster-id-capitals", "cluster-id-over-24", "cluster-id-trailing-dash",
        "cluster-id-number", "no-server", "server-http", "server-no-scheme", "server-loopback", "server-localhost",
        "server-in-cluster", "server-query", "server-port", "no-node-selector", "node-selector-string",
        "node-selector-key", "node-selector-bool-value", "node-selector-no-values", "node-selector-no-terms",
        "node-selector-operator", "node-selector-in-without-values", "node-selector-empty-term",
        "mount-namespace", "secret-name", "service-namespaces-type", "service-namespaces-name", "priority-class",
        "direct-scheduling", "disable-taint", "running-daemonset", "unknown-field", "policies-type"])
def test_binding_rules(change, problem):
    assert_problem(problems_of(binding=change), problem)


def test_cluster_id_of_exactly_24_characters_is_fine():
    assert problems_of(binding={"cluster_id": "a" * 24}) == []


def test_a_binding_defined_twice():
    found = kubeocean.problems([WEST, merged(WEST, {"cluster_id": "cls-other", "server": "https://10.1.1.1:6443",
                                                    "policies": DROP})], [], ZONE)
    assert found == ["binding gpu-west is defined 2 times"]


def test_two_bindings_share_a_cluster_id():
    assert_problem(problems_of(binding={"cluster_id": "cls-gpu-east"}),
                   "bindings gpu-west, gpu-east share the cluster_id cls-gpu-east: Kubeocean rejects a clusterID used "
                   "by another binding")


def test_two_bindings_share_a_server():
    assert_problem(problems_of(binding={"server": EAST["server"]}),
                   "bindings gpu-west, gpu-east share the server https://api.east.example:6443: one worker cluster "
                   "bound twice would lend its Nodes twice")


def test_bindings_must_be_a_list():
    assert kubeocean.problems({"name": "x"}, []) == ["bindings must be a list, got {'name': 'x'}"]


def test_system_namespace_is_checked():
    assert_problem(kubeocean.problems([EAST], [], None, None, "Kubeocean"),
                   "system_namespace: namespace 'Kubeocean' must be a DNS-1123 label...")


# ------------------------------------------------------------------ leasing policies
W = "binding gpu-west policy nights"


@pytest.mark.parametrize(("change", "problem"), [
    ({"name": DROP}, "binding gpu-west policies[0]: name is required (the ResourceLeasingPolicy's name)"),
    ({"name": "Nights"}, f"{W.replace('nights', 'Nights')}: name 'Nights' must be a DNS-1123 subdomain..."),
    ({"timeWindows": []}, f"{W}: unknown field timeWindows (known: name, cluster, node_selector, time_windows, "
                          "resource_limits, force_reclaim, graceful_period)"),
    ({"node_selector": {"kubeocean.io/role": 1}}, f"{W}: node_selector kubeocean.io/role: value 1 must be a string "
                                                  "(quote numbers and booleans)"),
    ({"time_windows": {"start": "18:00"}}, f"{W}: time_windows must be a list of {{start, end, days}}, got "
                                           "{'start': '18:00'}"),
    ({"time_windows": ["18:00-08:00"]}, f"{W}: time_windows[0] must be a dict with start, end and days, got "
                                        "'18:00-08:00'"),
    ({"time_windows": [{"end": "08:00"}]}, f"{W}: time_windows[0]: start is required (\"HH:MM\")"),
    ({"time_windows": [{"start": "18:00"}]}, f"{W}: time_windows[0]: end is required (\"HH:MM\")"),
    ({"time_windows": [{"start": "25:00", "end": "08:00"}]},
     f"{W}: time_windows[0]: start '25:00' is not a time of day as \"HH:MM\" (00:00 to 23:59, two digits each)"),
    ({"time_windows": [{"start": "18:00", "end": "08:60"}]},
     f"{W}: time_windows[0]: end '08:60' is not a time of day as \"HH:MM\" (00:00 to 23:59, two digits each)"),
    ({"time_windows": [{"start": "8:00", "end": "18:00"}]},
     f"{W}: time_windows[0]: start '8:00' is not a time of day as \"HH:MM\" (00:00 to 23:59, two digits each)"),
    ({"time_windows": [{"start": 1080, "end": "08:00"}]},
     f"{W}: time_windows[0]: start must be a quoted \"HH:MM\" time, got 1080 (YAML reads an unquoted time as a "
     "base-60 number: quote it, \"18:00\")"),
    ({"time_windows": [{"start": "18:00", "end": 8.5}]},
     f"{W}: time_windows[0]: end must be a quoted \"HH:MM\" time, got 8.5"),
    ({"time_windows": [{"start": "08:00", "end": "08:00"}]},
     f"{W}: time_windows[0]: start and end are both 08:00: give a window that ends before it starts to cross "
     "midnight (e.g. 08:01 to 08:00 for the whole day), or no time_windows to lend at all times"),
    ({"time_windows": [{"start": "18:00", "end": "08:00", "days": "Monday"}]},
     f"{W}: time_windows[0]: days must be a list of day names (Monday to Sunday), got 'Monday'"),
    ({"time_windows": [{"start": "18:00", "end": "08:00", "days": ["Mon"]}]},
     f"{W}: time_windows[0]: days: 'Mon' is not a day name (Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, "
     "Sunday)"),
    ({"time_windows": [{"start": "18:00", "end": "08:00", "day": ["Monday"]}]},
     f"{W}: time_windows[0]: unknown field day (known: start, end, days)"),
    ({"resource_limits": {"cpu": 50}}, f"{W}: resource_limits must be a list of {{resource, quantity, percent}}, "
                                       "got {'cpu': 50}"),
    ({"resource_limits": [{"percent": 50}]}, f"{W}: resource_limits[0]: resource is required (e.g. cpu, memory, "
                                             "nvidia.com/gpu)"),
    ({"resource_limits": [{"resource": "nvidia.com/"}]}, f"{W}: resource_limits[0] (nvidia.com/): resource name "
                                                         "part must not be empty"),
    ({"resource_limits": [{"resource": "cpu"}]}, f"{W}: resource_limits[0] (cpu): give quantity, percent or both "
                                                 "(the smaller wins)"),
    ({"resource_limits": [{"resource": "memory", "quantity": "64 GB"}]},
     f"{W}: resource_limits[0] (memory): quantity '64 GB' is not a Kubernetes quantity (e.g. \"96\", \"500m\", "
     "\"256Gi\"; not negative)"),
    ({"resource_limits": [{"resource": "cpu", "quantity": "-4"}]},
     f"{W}: resource_limits[0] (cpu): quantity '-4' is not a Kubernetes quantity..."),
    ({"resource_limits": [{"resource": "nvidia.com/gpu", "quantity": "0.5"}]},
     f"{W}: resource_limits[0] (nvidia.com/gpu): quantity '0.5' must be a whole number: nvidia.com/gpu is an "
     "extended resource, counted in whole units"),
    ({"resource_limits": [{"resource": "nvidia.com/gpu", "percent": 150}]},
     f"{W}: resource_limits[0] (nvidia.com/gpu): percent 150 is over 100 (0 to 100)"),
    ({"resource_limits": [{"resource": "cpu", "percent": -5}]},
     f"{W}: resource_limits[0] (cpu): percent -5 is negative (0 to 100)"),
    ({"resource_limits": [{"resource": "cpu", "percent": "50%"}]},
     f"{W}: resource_limits[0] (cpu): percent must be a whole number from 0 to 100, got '50%' (a number without %)"),
    ({"resource_limits": [{"resource": "cpu", "percent": 12.5}]},
     f"{W}: resource_limits[0] (cpu): percent must be a whole number from 0 to 100, got 12.5"),
    ({"resource_limits": [{"resource": "cpu", "percent": 50}, {"resource": "cpu", "quantity": "8"}]},
     f"{W}: resource_limits lists cpu 2 times"),
    ({"resource_limits": [{"resource": "cpu", "percent": 50, "max": 3}]},
     f"{W}: resource_limits[0] (cpu): unknown field max (known: resource, quantity, percent)"),
    ({"force_reclaim": "true"}, f"{W}: force_reclaim must be true or false, got 'true'"),
    ({"graceful_period": -1}, f"{W}: graceful_period must be a number of seconds (0 or more), got -1"),
    ({"graceful_period": "5m"}, f"{W}: graceful_period must be a number of seconds (0 or more), got '5m'"),
    ({"force_reclaim": False}, f"{W}: graceful_period only delays forced reclaim: it has no effect without "
                               "force_reclaim: true"),
], ids=["no-name", "bad-name", "unknown-field", "node-selector", "windows-type", "window-type", "no-start", "no-end",
        "hour-25", "minute-60", "single-digit-hour", "unquoted-yaml-time", "float-time", "start-equals-end",
        "days-string", "unknown-day", "window-unknown-field", "limits-type", "no-resource", "bad-resource",
        "no-quantity-or-percent", "bad-quantity", "negative-quantity", "fractional-gpu", "percent-over-100",
        "negative-percent", "percent-with-sign", "fractional-percent", "duplicate-resource", "limit-unknown-field",
        "force-reclaim-type", "negative-grace", "grace-type", "grace-without-force"])
def test_policy_rules(change, problem):
    assert_problem(problems_of(policy=change), problem)


def test_an_unquoted_late_time_is_explained():
    # what Ansible's YAML loader makes of `end: 23:59`
    assert yaml.safe_load("end: 23:59") == {"end": 1439}
    assert_problem(problems_of(policy={"time_windows": [{"start": "18:00", "end": 1439}]}),
                   f"{W}: time_windows[0]: end must be a quoted \"HH:MM\" time, got 1439 (YAML reads an unquoted time "
                   "as a base-60 number: quote it, \"23:59\")")


def test_a_window_crossing_midnight_and_any_case_days_are_fine():
    windows = [{"start": "22:00", "end": "06:00", "days": ["friday", "SATURDAY"]}, {"start": "00:00", "end": "23:59"}]
    assert problems_of(policy={"time_windows": windows}) == []


def test_quantity_and_percent_alone_or_together_are_fine():
    limits = [{"resource": "cpu", "quantity": "500m"}, {"resource": "memory", "quantity": "256Gi", "percent": 0},
              {"resource": "nvidia.com/gpu", "quantity": 8, "percent": 100}, {"resource": "ephemeral-storage",
                                                                              "percent": 100}]
    assert problems_of(policy={"resource_limits": limits}) == []


def test_a_policy_naming_a_cluster_that_is_not_bound():
    assert_problem(problems_of(separate={"cluster": "gpu-north"}),
                   "policy east-always: cluster 'gpu-north' is not bound (bindings: gpu-west, gpu-east)")


def test_a_policy_naming_the_cluster_id_instead_of_the_binding_name():
    assert_problem(problems_of(separate={"cluster": "cls-gpu-east"}),
                   "policy east-always: cluster cls-gpu-east is the cluster_id of binding gpu-east; Kubeocean matches "
                   "the ClusterBinding's name: cluster: gpu-east")


def test_a_separate_policy_needs_its_cluster():
    assert_problem(problems_of(separate={"cluster": DROP}),
                   "policy east-always: cluster is required (the name of the binding whose worker it lends)")


def test_a_nested_policy_naming_another_cluster():
    assert_problem(problems_of(policy={"cluster": "gpu-east"}),
                   f"{W}: cluster 'gpu-east' is not the name of the binding it sits under (gpu-west); leave it out")


def test_a_nested_policy_may_repeat_its_binding_name():
    assert problems_of(policy={"cluster": "gpu-west"}) == []


def test_two_policies_of_one_binding_with_one_name():
    found = problems_of(separate={"name": "nights", "cluster": "gpu-west",
                                  "node_selector": {"nvidia.com/gpu.present": "true"}})
    assert found == ["policy nights: binding gpu-west has two policies named nights (one worker cluster)"]


def test_one_policy_name_in_two_bindings_is_fine():
    assert problems_of(separate={"name": "nights"}) == []


def test_two_policies_of_one_binding_selecting_the_same_nodes():
    found = problems_of(policy={"node_selector": DROP}, separate={"cluster": "gpu-west"})
    assert found == ["policy east-always: selects the same Nodes as policy nights of binding gpu-west; Kubeocean "
                     "applies only the earliest-created policy to a Node"]


def test_label_selectors_in_another_order_select_the_same_nodes():
    found = problems_of(policy={"node_selector": {"b": ["2", "1"], "a": "x"}},
                        separate={"cluster": "gpu-west", "node_selector": {"a": "x", "b": ["1", "2"]}})
    assert_problem(found, "policy east-always: selects the same Nodes as policy nights of binding gpu-west...")


def test_a_policy_must_be_a_dict():
    found = kubeocean.problems([EAST], ["east-always"])
    assert found == ["policies[0] must be a dict, got 'east-always'"]


# ------------------------------------------------------------------ time zone
def test_time_zone_is_required_with_time_windows():
    assert_problem(problems_of(time_zone=None),
                   "time_zone is required: Kubeocean evaluates the time windows in the manager Nodes' local time, "
                   "give it as an IANA name (e.g. Asia/Shanghai)")


def test_time_zone_is_optional_without_time_windows():
    assert kubeocean.problems([EAST], [ALWAYS]) == []


@pytest.mark.parametrize("zone", ["CST", "UTC+8", "Asia/Peking", "../etc/passwd", "+08:00"])
def test_time_zone_must_be_an_iana_name(zone):
    assert_problem(problems_of(time_zone=zone), f"time_zone {zone!r} is not an IANA time zone name (e.g. "
                                                "Asia/Shanghai, Europe/Berlin, UTC)")


def test_a_manager_node_in_another_time_zone_is_refused():
    found = problems_of(observed={"mgr-1": "Asia/Shanghai", "mgr-2": "Europe/Berlin"})
    assert found == ["manager Node mgr-2 runs in time zone Europe/Berlin, not time_zone Asia/Shanghai: Kubeocean "
                     "evaluates the time windows in the manager Nodes' local time (the syncer mounts the host's "
                     "/etc/localtime)"]


def test_other_names_of_the_same_clock_and_link_targets_are_accepted():
    observed = {"mgr-1": "/usr/share/zoneinfo/Asia/Chongqing", "mgr-2": "../usr/share/zoneinfo/posix/Asia/Shanghai",
                "mgr-3": "PRC", "mgr-4": ""}
    assert problems_of(observed=observed) == []
    assert kubeocean.time_zone_problems("UTC", {"mgr-1": "Etc/UTC", "mgr-2": "Etc/Universal"}) == []


def test_a_zone_with_other_daylight_saving_rules_is_another_clock():
    # Same offset in January, not in July.
    winter = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    found = kubeocean.time_zone_problems("Europe/London", {"mgr-1": "Africa/Abidjan"}, now=winter)
    assert_problem(found, "manager Node mgr-1 runs in time zone Africa/Abidjan, not time_zone Europe/London...")


def test_an_abbreviation_cannot_be_compared():
    assert_problem(problems_of(observed={"mgr-1": "CST"}),
                   "manager Node mgr-1: its time zone 'CST' is not an IANA time zone name (e.g. Asia/Shanghai, "
                   "Europe/Berlin, UTC), so it cannot be compared with time_zone Asia/Shanghai")


def test_observed_time_zones_must_be_a_dict():
    assert_problem(problems_of(observed=["Asia/Shanghai"]),
                   "observed_time_zones must map manager Nodes to their time zones, got ['Asia/Shanghai']")


def test_zone_name_of_what_hosts_say():
    assert kubeocean.zone_name("/usr/share/zoneinfo/Europe/Berlin\n") == "Europe/Berlin"
    assert kubeocean.zone_name("/usr/share/zoneinfo/right/UTC") == "UTC"
    assert kubeocean.zone_name("America/New_York") == "America/New_York"


# ------------------------------------------------------------------ objects
def test_objects_of_a_valid_configuration():
    result = kubeocean.plan([WEST, merged(EAST, {"mount_namespace": "lent", "secret_name": "east-kc",
                                                 "service_namespaces": ["default"], "direct_scheduling": True,
                                                 "disable_node_default_taint": False,
                                                 "running_daemonset_by_default": True,
                                                 "pod_priority_class_name": "lent-low"})],
                            [ALWAYS], ZONE, {"mgr-1": "Asia/Shanghai"})
    west, east = result["bindings"]
    assert west["name"] == "gpu-west" and west["cluster_id"] == "cls-gpu-west"
    assert west["server"] == "https://10.20.0.10:6443"
    assert west["secret"] == {"namespace": "kubeocean-system", "name": "gpu-west-kubeconfig"}
    assert west["manager_objects"] == [{
        "apiVersion": API, "kind": "ClusterBinding",
        "metadata": {"name": "gpu-west", "labels": {"app.kubernetes.io/managed-by": "aicluster-kubeocean"},
                     "annotations": {"aicluster.io/kubeocean-worker-cluster": "worker"}},
        "spec": {"clusterID": "cls-gpu-west", "secretRef": {"name": "gpu-west-kubeconfig",
                                                            "namespace": "kubeocean-system"},
                 "nodeSelector": ROLE, "mountNamespace": "kubeocean-worker"},
    }]
    assert west["worker_objects"] == [{
        "apiVersion": API, "kind": "ResourceLeasingPolicy",
        "metadata": {"name": "nights",
                     "labels": {"app.kubernetes.io/managed-by": "aicluster-kubeocean",
                                "aicluster.io/kubeocean-binding": "gpu-west"},
                     "annotations": {"aicluster.io/kubeocean-time-zone": "Asia/Shanghai"}},
        "spec": {"cluster": "gpu-west",
                 "timeWindows": [{"start": "18:00", "end": "08:00", "days": ["Monday", "Tuesday", "Wednesday"]},
                                 {"start": "00:00", "end": "23:59", "days": ["Saturday", "Sunday"]}],
                 "resourceLimits": [{"resource": "cpu", "quantity": "96", "percent": 90},
                                    {"resource": "memory", "percent": 95},
                                    {"resource": "nvidia.com/gpu", "quantity": "4"}],
                 "forceReclaim": True, "gracefulReclaimPeriodSeconds": 300},
    }]
    assert east["secret"] == {"namespace": "kubeocean-system", "name": "east-kc"}
    assert east["manager_objects"][0]["spec"] == {
        "clusterID": "cls-gpu-east", "secretRef": {"name": "east-kc", "namespace": "kubeocean-system"},
        "nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubeocean.io/role", "operator": "In", "values": ["worker", "lender"]},
            {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]},
        "mountNamespace": "lent", "serviceNamespaces": ["default"], "disableNodeDefaultTaint": False,
        "runningDaemonsetByDefault": True, "directScheduling": True, "podPriorityClassName": "lent-low"}
    # No windows: always lent, no time-zone annotation; lists and forceReclaim given so that a re-apply clears them.
    assert east["worker_objects"] == [{
        "apiVersion": API, "kind": "ResourceLeasingPolicy",
        "metadata": {"name": "east-always", "labels": {"app.kubernetes.io/managed-by": "aicluster-kubeocean",
                                                       "aicluster.io/kubeocean-binding": "gpu-east"}},
        "spec": {"cluster": "gpu-east", "timeWindows": [], "resourceLimits": [{"resource": "cpu", "percent": 50}],
                 "forceReclaim": False},
    }]
    # Apply order: every policy (worker clusters), then the ClusterBindings (manager, after their Secrets).
    assert [(o["kind"], o["metadata"]["name"]) for o in result["objects"]] == [
        ("ResourceLeasingPolicy", "nights"), ("ResourceLeasingPolicy", "east-always"),
        ("ClusterBinding", "gpu-west"), ("ClusterBinding", "gpu-east")]
    assert result["time_zone"] == "Asia/Shanghai"


def test_a_policy_names_the_binding_not_its_cluster_id():
    result = kubeocean.plan([WEST], [], ZONE)
    assert result["bindings"][0]["worker_objects"][0]["spec"]["cluster"] == "gpu-west"


def test_a_node_selector_given_as_kubernetes_node_selector_is_kept():
    raw = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu-count", "operator": "Gt", "values": ["3"]}]},
                                 {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w-1"]}]}]}
    binding = merged(WEST, {"node_selector": raw, "policies": [merged(NIGHTS, {"node_selector": raw})]})
    result = kubeocean.plan([binding], [], ZONE)
    assert result["bindings"][0]["manager_objects"][0]["spec"]["nodeSelector"] == raw
    assert result["bindings"][0]["worker_objects"][0]["spec"]["nodeSelector"] == raw


def test_null_fields_mean_the_default():
    binding = merged(WEST, {"mount_namespace": None, "secret_name": None, "direct_scheduling": None,
                            "policies": [merged(NIGHTS, {"node_selector": None})]})
    result = kubeocean.plan([binding], [], ZONE)
    assert result["bindings"][0]["manager_objects"][0]["spec"]["mountNamespace"] == "kubeocean-worker"
    assert "directScheduling" not in result["bindings"][0]["manager_objects"][0]["spec"]


def test_plan_raises_with_every_problem_and_generates_nothing():
    with pytest.raises(kubeocean.KubeoceanError) as error:
        kubeocean.plan([merged(WEST, {"cluster_id": "CLS"})], [merged(ALWAYS, {"cluster": "gpu-north"})], ZONE)
    assert error.value.problems == [
        "binding gpu-west: cluster_id 'CLS' must be lower-case letters, digits and '-', starting and ending with a "
        "letter or digit (^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)",
        "policy east-always: cluster 'gpu-north' is not bound (bindings: gpu-west)"]


# ------------------------------------------------------------------ worker kubeconfig
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
TOKEN_DATA = {"token": base64.b64encode(b"eyJhbGciOi.syncer.token").decode(),
              "ca.crt": base64.b64encode(CA_PEM).decode(), "namespace": base64.b64encode(b"kubeocean-worker").decode()}


def test_worker_kubeconfig_from_the_token_secret():
    text = kubeocean.worker_kubeconfig(TOKEN_DATA, "https://10.20.0.10:6443", "gpu-west")
    assert yaml.safe_load(text) == {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "gpu-west", "cluster": {"server": "https://10.20.0.10:6443",
                                                      "certificate-authority-data": TOKEN_DATA["ca.crt"]}}],
        "users": [{"name": "gpu-west-kubeocean-syncer", "user": {"token": "eyJhbGciOi.syncer.token"}}],
        "contexts": [{"name": "gpu-west", "context": {"cluster": "gpu-west", "user": "gpu-west-kubeocean-syncer",
                                                      "namespace": "kubeocean-worker"}}],
        "current-context": "gpu-west", "preferences": {},
    }
    assert text == kubeocean.worker_kubeconfig(copy.deepcopy(TOKEN_DATA), "https://10.20.0.10:6443", "gpu-west")


@pytest.mark.parametrize(("data", "problem"), [
    ({}, "the token Secret has no token yet (the token controller fills it in)"),
    ({"token": TOKEN_DATA["token"]}, "the token Secret has no ca.crt yet (the token controller fills it in)"),
    (None, "the token Secret has no data yet (the token controller fills it in)"),
    ({**TOKEN_DATA, "token": "not base64!"}, "the token Secret's token is not base64"),
    ({**TOKEN_DATA, "ca.crt": base64.b64encode(b"hello").decode()}, "the token Secret's ca.crt is not a PEM "
                                                                     "certificate"),
    ({**TOKEN_DATA, "token": base64.b64encode(b"two words").decode()}, "the token Secret's token is empty or "
                                                                       "contains spaces"),
], ids=["no-token", "no-ca", "no-data", "token-not-base64", "ca-not-pem", "token-with-space"])
def test_worker_kubeconfig_needs_a_filled_token_secret(data, problem):
    with pytest.raises(kubeocean.KubeoceanError) as error:
        kubeocean.worker_kubeconfig(data, "https://10.20.0.10:6443")
    assert problem in error.value.problems
    assert "syncer.token" not in str(error.value)


def test_worker_kubeconfig_refuses_an_unreachable_server():
    with pytest.raises(kubeocean.KubeoceanError) as error:
        kubeocean.worker_kubeconfig(TOKEN_DATA, "https://127.0.0.1:6443")
    assert error.value.problems[0].startswith("server https://127.0.0.1:6443 is a loopback address")


def test_same_kubeconfig_ignores_formatting():
    text = kubeocean.worker_kubeconfig(TOKEN_DATA, "https://10.20.0.10:6443", "gpu-west")
    assert kubeocean.same_kubeconfig(text, json.dumps(yaml.safe_load(text)))
    assert not kubeocean.same_kubeconfig(text, text.replace("10.20.0.10", "10.20.0.11"))
    assert not kubeocean.same_kubeconfig(text, "{not: [yaml")


# ------------------------------------------------------------------ the module
def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        kubeocean_plan.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def test_module_returns_the_plan(capsys):
    result = run_module({"bindings": [WEST, EAST], "policies": [ALWAYS], "time_zone": ZONE,
                         "observed_time_zones": {"mgr-1": "Asia/Shanghai"}, "_ansible_check_mode": True}, capsys)
    assert result["_rc"] == 0 and result["changed"] is False and result["problems"] == []
    assert [b["name"] for b in result["bindings"]] == ["gpu-west", "gpu-east"]
    assert result["objects"] == kubeocean.plan([WEST, EAST], [ALWAYS], ZONE)["objects"]
    assert result["time_zone"] == ZONE


def test_module_fails_listing_every_problem(capsys):
    bad = merged(WEST, {"cluster_id": "Cls-West", "policies": [merged(NIGHTS, {
        "time_windows": [{"start": "25:00", "end": "08:00", "days": ["Someday"]},
                         {"start": "09:00", "end": "09:00"}],
        "resource_limits": [{"resource": "nvidia.com/gpu", "percent": 101}]})]})
    result = run_module({"bindings": [bad], "policies": [merged(ALWAYS, {"cluster": "gpu-east"})],
                         "time_zone": ZONE, "observed_time_zones": {"mgr-1": "America/New_York"}}, capsys)
    assert result["_rc"] == 1 and result["changed"] is False
    assert len(result["problems"]) == 7, result["problems"]
    assert result["msg"].startswith("7 problems in the Kubeocean settings: binding gpu-west: cluster_id 'Cls-West'")
    assert "objects" not in result and "bindings" not in result
    for text in ("start '25:00'", "'Someday' is not a day name", "start and end are both 09:00", "percent 101 is over "
                 "100", "cluster 'gpu-east' is not bound", "manager Node mgr-1 runs in time zone America/New_York"):
        assert text in result["msg"], text


def test_worker_cluster_defaults_to_worker_and_is_returned():
    result = kubeocean.plan([WEST, merged(EAST, {"worker_cluster": "edge"})], [ALWAYS], ZONE,
                            clusters=["worker", "manager", "edge"])
    assert [b["worker_cluster"] for b in result["bindings"]] == ["worker", "edge"]


def test_worker_cluster_must_be_a_cluster_of_the_inventory():
    found = kubeocean.problems([merged(WEST, {"worker_cluster": "wrker"}), EAST], [ALWAYS], ZONE,
                               clusters=["worker", "manager"])
    assert found == ["binding gpu-west: worker_cluster wrker is not a cluster of the inventory "
                     "(aicluster_clusters: worker, manager)"]


def test_worker_cluster_not_checked_without_the_cluster_list():
    assert kubeocean.problems([merged(WEST, {"worker_cluster": "anything"}), EAST], [ALWAYS], ZONE) == []
