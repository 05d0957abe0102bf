"""The one exception the fleet raises: a single, clear line for the user."""

from __future__ import annotations


class FleetError(RuntimeError):
    """A fleet operation failed; ``str(err)`` is one line that says what and why."""
