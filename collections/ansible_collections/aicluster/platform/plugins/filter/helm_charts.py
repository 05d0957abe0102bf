# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Filters shared by the roles that install Helm charts from a repository: which of the wanted chart
versions a repository's index does not have (documented in helm_chart_index_problems.yml next to this
file). Checked before anything is installed, so a dry run names the missing version too."""

from __future__ import annotations

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.platform.plugins.module_utils.plain_data import plain


def _versions(index_text, name):
    try:
        index = yaml.safe_load(index_text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML ({str(exc).splitlines()[0]})") from None
    entries = (index.get("entries") or {}) if isinstance(index, dict) else {}
    return [str(entry.get("version")) for entry in entries.get(name) or [] if isinstance(entry, dict)]


def helm_chart_index_problems(answers, charts):
    """``answers``: results of ``ansible.builtin.uri`` GETs of ``<repo>/index.yaml`` (``item`` = the repo URL,
    ``status``, ``content``, ``msg``); ``charts``: ``[name, version, repo URL]`` triples. One sentence per chart
    whose version the repository does not list, or whose index cannot be read."""
    answers = plain(answers)
    by_repo = {}
    for answer in answers if isinstance(answers, list) else []:
        if isinstance(answer, dict) and "item" in answer:
            by_repo[str(answer["item"])] = answer
    problems = []
    for triple in plain(charts):
        if not isinstance(triple, (list, tuple)) or len(triple) != 3:
            raise AnsibleFilterError(f"helm_chart_index_problems: each chart is [name, version, repo], got {triple!r}")
        name, version, repo = (str(part) for part in triple)
        answer = by_repo.get(repo) or {}
        if answer.get("status") != 200:
            problems.append(f"cannot read the chart repository {repo}/index.yaml ({answer.get('msg') or 'no answer'})")
            continue
        try:
            versions = _versions(answer.get("content") or "", name)
        except ValueError as exc:
            problems.append(f"the chart repository index {repo}/index.yaml is {exc}")
            continue
        if version not in versions:
            have = ", ".join(sorted(versions, reverse=True)[:8]) or "no version of it"
            problems.append(f"chart {name} version {version} is not in the repository {repo} (it has {have})")
    return problems


class FilterModule:
    def filters(self):
        return {"helm_chart_index_problems": helm_chart_index_problems}
