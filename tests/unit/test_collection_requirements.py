"""The collections installed from the pinned `ansible` package satisfy collections/requirements.yml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())["collections"]


def installed_version(name: str) -> str:
    import ansible_collections

    namespace, collection = name.split(".")
    for root in ansible_collections.__path__:
        manifest = Path(root) / namespace / collection / "MANIFEST.json"
        if manifest.is_file():
            return json.loads(manifest.read_text())["collection_info"]["version"]
    pytest.fail(f"collection {name} is not installed")


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=[r["name"] for r in REQUIREMENTS])
def test_installed_collection_satisfies_range(requirement):
    version = installed_version(requirement["name"])
    wanted = SpecifierSet(requirement["version"])
    assert version in wanted, f"{requirement['name']} {version} does not satisfy {wanted}"


def test_every_fqcn_used_in_roles_is_required():
    """A role using a collection not listed in requirements.yml would break a Galaxy install."""
    listed = {r["name"] for r in REQUIREMENTS} | {"ansible.builtin", "aicluster.platform"}
    used = set()
    for path in [*REPO.glob("roles/**/*.yml"), *REPO.glob("playbooks/**/*.yml"), *REPO.glob("molecule/**/*.yml")]:
        for line in path.read_text().splitlines():
            stripped = line.strip().lstrip("- ")
            head = stripped.split(":", 1)[0].removeprefix("group/")  # module_defaults action groups too
            if head.count(".") == 2 and ":" in stripped and " " not in head:
                used.add(".".join(head.split(".")[:2]))
    assert used <= listed, f"collections used but not in requirements.yml: {sorted(used - listed)}"
