"""Every playbook resolves project variables the same way, from the inventory.

A group_vars/ beside one playbook is read for that playbook only (and outranks the inventory's
group_vars), so `playbooks/preflight.yml` run alone used to fall back to role defaults while
`site.yml` did not. Project-wide values now live in inventory/<site>/group_vars/all/; this test
loads each playbook with Ansible's own variable manager against a copy of the sample inventory
that overrides a project variable, and requires every play of every playbook to see the site's
value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = [REPO / "site.yml", *sorted((REPO / "playbooks").glob("*.yml"))]

RESOLVE = r"""
import json, sys
from ansible import constants as C
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=C.COLLECTIONS_PATHS, scan_sys_paths=C.COLLECTIONS_SCAN_SYS_PATH)._install()
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook import Playbook
from ansible.vars.manager import VariableManager

inventory_dir, names = sys.argv[1], sys.argv[2].split(",")
out = {}
for path in sys.argv[3:]:
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[inventory_dir])
    manager = VariableManager(loader=loader, inventory=inventory)
    book = Playbook.load(path, variable_manager=manager, loader=loader)
    host = inventory.get_host("gpu-a100-01")
    seen = []
    for play in book.get_plays():
        values = manager.get_vars(play=play, host=host)
        seen.append({name: values.get(name, "<undefined>") for name in names})
    out[path] = seen
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def site_inventory(tmp_path_factory):
    inventory = tmp_path_factory.mktemp("inv") / "mysite"
    shutil.copytree(REPO / "inventory" / "sample", inventory)
    (inventory / "group_vars" / "all" / "project.yml").write_text(
        '---\naicluster_min_kubernetes_version: "1.29"\n')
    return inventory


def resolve(inventory: Path, names: list[str]) -> dict[str, list[dict]]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    result = subprocess.run([sys.executable, "-c", RESOLVE, str(inventory), ",".join(names),
                             *map(str, PLAYBOOKS)], cwd=REPO, env=env, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_group_vars_beside_any_playbook():
    for directory in {p.parent for p in PLAYBOOKS}:
        for name in ("group_vars", "host_vars"):
            assert not (directory / name).exists(), (
                f"{directory / name} would be read only by the playbooks in {directory} and outrank the "
                "inventory: put project-wide values in role defaults or inventory/<site>/group_vars/all/")


def test_every_play_of_every_playbook_sees_the_inventory_value(site_inventory):
    names = ["aicluster_min_kubernetes_version", "aicluster_clusters"]
    resolved = resolve(site_inventory, names)
    assert set(resolved) == {str(p) for p in PLAYBOOKS}
    clusters = {json.dumps(v["aicluster_clusters"], sort_keys=True) for plays in resolved.values() for v in plays}
    for path, plays in resolved.items():
        assert plays, f"{path} has no play"
        for values in plays:
            assert values["aicluster_min_kubernetes_version"] == "1.29", (path, values)
    assert len(clusters) == 1 and "<undefined>" not in clusters.pop()
