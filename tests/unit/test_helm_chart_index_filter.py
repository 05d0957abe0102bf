"""helm_chart_index_problems: which wanted chart versions a repository index lacks (pure)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.platform.plugins.filter.helm_charts import helm_chart_index_problems

REPO = "http://10.77.0.1:8380/charts"
INDEX = """
apiVersion: v1
entries:
  lws:
    - {name: lws, version: 0.1.0}
  ome-resources:
    - {name: ome-resources, version: 0.1.0}
    - {name: ome-resources, version: 0.0.9}
"""


def answer(status=200, content=INDEX, msg="OK"):
    return [{"item": REPO, "status": status, "content": content, "msg": msg}]


def test_all_versions_listed():
    assert helm_chart_index_problems(answer(), [["lws", "0.1.0", REPO], ["ome-resources", "0.0.9", REPO]]) == []


def test_missing_version_names_what_the_repository_has():
    assert helm_chart_index_problems(answer(), [["ome-resources", "0.1.5", REPO]]) == [
        f"chart ome-resources version 0.1.5 is not in the repository {REPO} (it has 0.1.0, 0.0.9)"]


def test_unknown_chart():
    assert helm_chart_index_problems(answer(), [["ome-crd", "0.1.0", REPO]]) == [
        f"chart ome-crd version 0.1.0 is not in the repository {REPO} (it has no version of it)"]


def test_unreadable_repository():
    assert helm_chart_index_problems(answer(status=-1, content="", msg="Connection refused"),
                                     [["lws", "0.1.0", REPO]]) == [
        f"cannot read the chart repository {REPO}/index.yaml (Connection refused)"]


def test_index_that_is_not_yaml():
    problems = helm_chart_index_problems(answer(content="entries: [unclosed"), [["lws", "0.1.0", REPO]])
    assert len(problems) == 1 and problems[0].startswith(f"the chart repository index {REPO}/index.yaml is not YAML")


def test_malformed_chart_entry_is_an_error():
    with pytest.raises(AnsibleFilterError, match="each chart is"):
        helm_chart_index_problems(answer(), [["lws", "0.1.0"]])
