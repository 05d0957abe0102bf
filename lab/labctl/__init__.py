"""Offline lab for the AI cluster project.

Everything here is a lab fixture: two real Kubernetes control planes (kwok-backed),
a fleet of systemd machines in podman, simulated accelerators, and service stand-ins.
The product (roles, playbooks, the aicluster.platform collection) never imports this package.
"""
