# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Values from Ansible templating as plain Python, for filters that hand them to the pure module_utils."""

from __future__ import annotations

from collections.abc import Mapping


def plain(value):
    """Ansible's lazy containers and tagged strings to plain dicts, lists and scalars (recursively), so that
    they compare, copy and ``yaml.safe_dump`` like the data they stand for."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value
