"""The lab fleet: Debian systemd machines in podman with simulated NVIDIA GPUs / Ascend NPUs.

Lab fixture only; the product never imports this. Public API::

    up(profile="demo") -> list[Machine]     start the profile's machines (idempotent), write inventory
    down()                                  remove machines, network, inventory; nothing keeps running
    status() -> list[dict]                  name, address, accelerators, group, state
    add(name, model, count) -> Machine      one more machine in the running fleet
    remove(name)                            take one machine out of the running fleet
    ensure_image() -> str                   build/import the machine image if needed; its reference
    register_cli(subparsers)                `lab fleet up|down|status|add`

Every failure raises :class:`FleetError` whose message is one line.
"""

from __future__ import annotations

from .cli import register_cli
from .errors import FleetError
from .image import ensure_image
from .inventory import INVENTORY_PATH
from .models import Machine, load_profile
from .runtime import GATEWAY, KEY_PATH, NETWORK, SUBNET, add, down, remove, status, up

__all__ = [
    "GATEWAY", "INVENTORY_PATH", "KEY_PATH", "NETWORK", "SUBNET", "FleetError", "Machine", "add", "down",
    "ensure_image", "load_profile", "register_cli", "remove", "status", "up",
]
