"""module_utils/k8s_client.py: ``poll_until``, the wait of k8s_nodes_info and k8s_objects_gone, on a fake clock
(nothing sleeps). The client set-up, calls and raw GETs are tested through the modules against a fake API
server (test_k8s_modules_fake_server.py, test_k8s_nodes_info.py)."""

from __future__ import annotations

import pytest
from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client
from fake_clock import FakeTime


@pytest.fixture
def clock(monkeypatch):
    fake = FakeTime(start=1000.0)
    monkeypatch.setattr(k8s_client, "time", fake)  # the default clock
    return fake


def counter(done_at, clock, cost=0.0):
    """A poll returning how many times it was called; each call takes ``cost`` seconds of the clock."""
    lefts = []

    def poll(left):
        lefts.append(left)
        clock.now += cost
        return len(lefts)
    poll.lefts = lefts
    return poll, (lambda n: n >= done_at)


def test_polls_until_done_sleeping_between_polls(clock):
    poll, done = counter(3, clock)
    assert k8s_client.poll_until(poll, done, True, 30, 2) == (3, 3, False)
    assert clock.sleeps == [2, 2]
    assert poll.lefts == [30, 28, 26]  # what is left of the timeout, for the retries inside a poll


def test_done_at_once_does_not_sleep(clock):
    poll, done = counter(1, clock)
    assert k8s_client.poll_until(poll, done, True, 30, 2) == (1, 1, False)
    assert clock.sleeps == []


def test_without_wait_one_poll_whatever_it_returns(clock):
    poll, done = counter(5, clock)
    assert k8s_client.poll_until(poll, done, False, 30, 2) == (1, 1, False)
    assert clock.sleeps == []


def test_times_out_when_one_more_sleep_would_pass_the_deadline(clock):
    poll, done = counter(100, clock)
    result, polls, timed_out = k8s_client.poll_until(poll, done, True, 10, 3)
    assert timed_out and (result, polls) == (4, 4)  # polls at 0, 3, 6 and 9 s; 9 + 3 > 10
    assert clock.sleeps == [3, 3, 3]


def test_a_poll_gets_at_least_one_second(clock):
    poll, done = counter(100, clock, cost=4.0)
    _result, polls, timed_out = k8s_client.poll_until(poll, done, True, 5, 1)
    assert timed_out and polls == 2
    assert poll.lefts == [5, 1.0]  # the first poll took 4 s and the sleep 1 s: nothing left, 1 s anyway


def test_a_clock_can_be_given():
    fake = FakeTime()
    poll, done = counter(2, fake)
    assert k8s_client.poll_until(poll, done, True, 30, 5, fake) == (2, 2, False)
    assert fake.sleeps == [5]


def test_errors_of_a_poll_propagate(clock):
    def poll(left):
        raise k8s_client.K8sError("GET https://api:6443/api/v1/nodes: time is up")

    with pytest.raises(k8s_client.K8sError, match="time is up"):
        k8s_client.poll_until(poll, bool, True, 30, 2)
    assert clock.sleeps == []
