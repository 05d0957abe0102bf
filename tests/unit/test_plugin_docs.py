"""Every plugin in the collection documents itself in valid YAML, and each module's
documented options match its argument_spec (what ansible-doc and ansible-test sanity read)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

PLUGINS = Path(__file__).resolve().parents[2] / "collections/ansible_collections/aicluster/platform/plugins"
FILES = sorted([*PLUGINS.glob("modules/*.py"), *PLUGINS.glob("filter/*.py")])


def doc_blocks(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    blocks = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
                    blocks[target.id] = node.value.value
    return blocks


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_doc_blocks_are_valid_yaml(path):
    blocks = doc_blocks(path)
    if path.parent.name == "modules":
        assert set(blocks) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, f"{path.name} lacks a doc block"
    for _name, text in blocks.items():
        yaml.safe_load(text)


@pytest.mark.parametrize("path", sorted(PLUGINS.glob("modules/*.py")), ids=lambda p: p.stem)
def test_documented_options_match_the_code(path):
    documented = set(yaml.safe_load(doc_blocks(path)["DOCUMENTATION"]).get("options") or {})
    source = path.read_text()
    # Every documented option is named in the module source as an argument_spec key.
    missing = {o for o in documented if not re.search(rf"""["']{re.escape(o)}["']|\b{re.escape(o)}\s*=""", source)}
    assert not missing, f"{path.name}: documented but not in the code: {sorted(missing)}"


def filter_names():
    import importlib

    names = []
    for path in sorted(PLUGINS.glob("filter/*.py")):
        module = importlib.import_module(f"ansible_collections.aicluster.platform.plugins.filter.{path.stem}")
        names.extend(module.FilterModule().filters())
    return sorted(names)


@pytest.mark.parametrize("name", filter_names())
def test_every_filter_has_its_doc_file(name):
    """ansible-doc -t filter reads plugins/filter/<filter name>.yml (several filters share a .py file)."""
    doc = yaml.safe_load((PLUGINS / "filter" / f"{name}.yml").read_text())
    assert set(doc) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    assert doc["DOCUMENTATION"]["name"] == name
    assert "_input" in doc["DOCUMENTATION"]["options"] and "_value" in doc["RETURN"]


def test_rancher_doc_fragment_matches_the_argument_spec():
    from ansible_collections.aicluster.platform.plugins.doc_fragments.rancher import ModuleDocFragment
    from ansible_collections.aicluster.platform.plugins.module_utils.rancher_api import RANCHER_AUTH_ARGSPEC

    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    options = fragment["options"]
    assert set(options) == set(RANCHER_AUTH_ARGSPEC)
    for name, spec in RANCHER_AUTH_ARGSPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("default") == spec.get("default"), name
        assert options[name].get("required", False) == spec.get("required", False), name
    assert fragment["attributes"]["action_group"]["membership"] == ["aicluster.platform.rancher"]
