"""rancher_worker against the lab with bad input: one clear message, nothing changed.

Each case runs ansible-playbook with a temporary extra-vars file on two machines of the lab
fleet (RANCHER_WORKER_TEST_HOSTS), then checks that Rancher has no node for them and their
agent is not running. The mid-join case makes one machine's join fail (a regular file where the
installer creates /etc/rancher/agent, on that machine only): the other converges, a re-run
finishes the first; both are removed again through playbooks/remove_node.yml.
"""

from __future__ import annotations

import pytest
from rancher_worker_helpers import (
    PLAYBOOK,
    TEST_HOSTS,
    agent_states,
    on_hosts,
    rancher,
    rancher_nodes,
    recap,
    registration_tokens,
    remove,
    run_playbook,
)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module", autouse=True)
def clean_machines(tmp_path_factory):
    """Start and end with the test machines out of the cluster."""
    result = remove(tmp_path_factory.mktemp("pre"), TEST_HOSTS)
    assert result.returncode == 0, result.stdout[-3000:]
    yield
    result = remove(tmp_path_factory.mktemp("post"), TEST_HOSTS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert not set(TEST_HOSTS) & set(rancher_nodes())


def assert_nothing_joined():
    assert not set(TEST_HOSTS) & set(rancher_nodes()), "a test machine was registered in Rancher"
    states = agent_states(TEST_HOSTS)
    assert states and all(s != "active" for s in states.values()), states


BAD_INPUT = {
    "wrong API token": ({"rancher_api_token": "token-wrong:notthetoken"}, "Rancher rejected the API token"),
    "unknown cluster": ({"rancher_cluster_name": "no-such-cluster"},
                        "Rancher has no cluster named 'no-such-cluster'; clusters that exist: worker, worker-rke1"),
    "unreachable Rancher": ({"rancher_url": "https://10.77.0.1:1"}, "cannot reach Rancher at https://10.77.0.1:1"),
    "CA checksum mismatch": ({"rancher_ca_checksum": "0" * 64}, "CA checksum mismatch: https://10.77.0.1:8443/cacerts"),
    "flow does not match the cluster": ({"rancher_cluster_name": "worker-rke1"},
                                        "cluster worker-rke1 is an RKE cluster; set rancher_worker_flow: rke1"),
    "invalid taint": ({"rancher_worker_taints": ["no-effect"]}, "taint 'no-effect' is not key[=value]:NoSchedule"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_fails_clearly_and_changes_nothing(tmp_path, case):
    extra, message = BAD_INPUT[case]
    result = run_playbook(tmp_path, PLAYBOOK, TEST_HOSTS, extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert message in output, output[-3000:]
    assert all(r.get("changed", 0) == 0 for r in recap(output).values()), output[-2000:]
    assert rancher()["token"] not in output
    assert_nothing_joined()


BLOCKER = "/etc/rancher/agent"  # the installer's config directory; a regular file there makes it fail


def test_machine_failing_mid_join_then_rerun_finishes(tmp_path):
    bad, good = TEST_HOSTS[0], TEST_HOSTS[1]
    on_hosts([bad], "mkdir -p /etc/rancher")
    on_hosts([bad], f"touch {BLOCKER}")
    try:
        first = run_playbook(tmp_path, PLAYBOOK, TEST_HOSTS)
    finally:
        on_hosts([bad], f"find {BLOCKER} -maxdepth 0 -type f -delete")  # only the blocker, never a real directory
    output = first.stdout + first.stderr
    assert first.returncode != 0
    assert f"The registration of {bad} failed" in output, output[-3000:]
    assert BLOCKER in output  # the installer's own error reaches the message
    assert not any(token in output for token in registration_tokens())  # masked, never shown
    assert rancher()["token"] not in output
    rec = recap(output)
    assert rec[bad]["failed"] == 1 and rec[good]["failed"] == 0 and rec[good]["changed"] > 0
    nodes = rancher_nodes()
    assert good in nodes and bad not in nodes
    assert agent_states([bad])[bad] != "active"

    second = run_playbook(tmp_path, PLAYBOOK, TEST_HOSTS)
    rec = recap(second.stdout)
    assert second.returncode == 0, second.stdout[-3000:]
    assert rec[bad]["changed"] > 0 and rec[good]["changed"] == 0
    assert {bad, good} <= set(rancher_nodes())
    assert set(agent_states(TEST_HOSTS).values()) == {"active"}

