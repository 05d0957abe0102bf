"""A clock for tests of code that retries or polls: monotonic() only moves when sleep() is called,
so nothing really sleeps. ``on_sleep`` lets a test change the world between two polls."""

from __future__ import annotations


class FakeTime:
    def __init__(self, start=0.0):
        self.now = start
        self.sleeps = []
        self.on_sleep = None

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep()
