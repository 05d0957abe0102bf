"""k8s_objects_gone: one wait for many deleted objects (pure poll loop on a fake clock: nothing sleeps)."""

from __future__ import annotations

import pytest
from ansible_collections.aicluster.platform.plugins.modules import k8s_objects_gone as gone
from fake_clock import FakeTime

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mindx-dl"}}
DS = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "plugin", "namespace": "kube-system"}}


def test_references_are_distinct_and_ordered():
    refs = gone.references([DS, NS, dict(DS, spec={"x": 1})])
    assert refs == [("apps/v1", "DaemonSet", "kube-system", "plugin"), ("v1", "Namespace", "", "mindx-dl")]


def test_an_object_without_a_name_is_refused():
    with pytest.raises(ValueError, match=r"objects\[1\] needs apiVersion, kind and metadata.name"):
        gone.references([NS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}])


def test_polls_only_what_is_left_until_all_are_gone():
    refs = gone.references([DS, NS])
    present = {refs[0]: 1, refs[1]: 3}  # polls each object stays for
    reads = []

    def read(ref):
        reads.append(ref)
        present[ref] -= 1
        return {"terminating": True, "finalizers": []} if present[ref] >= 0 else None

    clock = FakeTime()
    remaining, polls, timed_out = gone.poll_until_gone(read, refs, True, 30, 1, clock)
    assert (remaining, timed_out) == ({}, False)
    assert polls == 4
    assert reads.count(refs[0]) == 2 and reads.count(refs[1]) == 4
    assert clock.sleeps == [1, 1, 1]


def test_timeout_names_what_is_still_there_and_its_finalizers():
    refs = gone.references([NS])
    clock = FakeTime()
    remaining, polls, timed_out = gone.poll_until_gone(
        lambda ref: {"terminating": True, "finalizers": ["kubernetes"]}, refs, True, 5, 2, clock)
    assert timed_out and polls == 3
    assert [gone.describe(r, s) for r, s in remaining.items()] == [
        "Namespace/mindx-dl (terminating; finalizers: kubernetes)"]


def test_without_wait_one_poll_reports_what_exists():
    refs = gone.references([DS])
    remaining, polls, timed_out = gone.poll_until_gone(lambda ref: {"terminating": False}, refs, False, 5, 1,
                                                       FakeTime())
    assert (polls, timed_out) == (1, False)
    assert [gone.describe(r, s) for r, s in remaining.items()] == ["DaemonSet/kube-system/plugin"]


def test_a_selector_lasts_until_nothing_matches():
    refs = gone.selector_refs([{"api_version": "v1", "kind": "Pod", "namespace": "inference",
                                "label_selector": "ome.io/inferenceservice=chat"}])
    pod = ("v1", "Pod", "inference", "chat-engine-0")
    answers = [{pod: {"terminating": True, "finalizers": []}}, {}]
    remaining, polls, timed_out = gone.poll_until_gone(lambda ref: answers.pop(0), refs, True, 30, 1, FakeTime())
    assert (remaining, polls, timed_out) == ({}, 2, False)
