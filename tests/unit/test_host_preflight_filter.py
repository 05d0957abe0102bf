"""host_problems and hostinfo.measure: what keeps a machine from joining, one sentence per problem."""

from __future__ import annotations

from ansible_collections.aicluster.platform.plugins.filter.host_preflight import host_problems
from ansible_collections.aicluster.platform.plugins.module_utils.hostinfo import measure

GIB = 1024**3
SPACE = {"/": {"measured": "/", "free_bytes": 50 * GIB}, "/var/lib": {"measured": "/var/lib", "free_bytes": 5 * GIB}}
FACTS = {"distribution": "Debian", "python_version": "3.11.2", "date_time": {"epoch": "1000"}}


def test_fit_machine_has_no_problems():
    assert host_problems(FACTS, SPACE, {"/": 10}, ["Debian"], "3.9", 1005, 30) == []


def test_each_problem_is_named():
    facts = dict(FACTS, distribution="Gentoo", python_version="3.6.8", date_time={"epoch": "900"})
    problems = host_problems(facts, SPACE, {"/var/lib": 20, "/srv": 1}, ["Debian"], "3.9", 1000, 30)
    assert problems[0].startswith("unsupported distribution Gentoo")
    assert problems[1] == "Python 3.6.8 is older than 3.9"
    assert problems[2] == "free space of /srv was not measured"
    assert problems[3] == "/var/lib has 5.0 GiB free, needs 20 GiB"
    assert problems[4].startswith("clock is 100s off the control host")
    assert len(problems) == 5


def test_python_versions_compare_numerically():
    assert host_problems(dict(FACTS, python_version="3.10.1"), SPACE, {}, None, "3.9") == []


def test_skew_not_checked_without_control_clock():
    assert host_problems(dict(FACTS, date_time={"epoch": "0"}), SPACE, {}, None, "3.9", None, 30) == []


def test_measure_walks_up_to_an_existing_parent(tmp_path):
    result = measure(str(tmp_path / "not" / "yet" / "there"))
    assert result["measured"] == str(tmp_path)
    assert result["free_bytes"] > 0 and result["total_bytes"] >= result["free_bytes"]
