"""The role conventions of STYLE.md, checked on every role under roles/.

Each role documents its inputs twice, in defaults/main.yml (with one comment line each) and in
meta/argument_specs.yml (with types): these tests keep the two in step, and the README with them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
ROLE_IDS = [r.name for r in ROLES]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _options(role: Path) -> dict[str, Any]:
    spec = _load(role / "meta" / "argument_specs.yml")
    return dict(spec["argument_specs"]["main"].get("options") or {})


def _defaults(role: Path) -> dict[str, Any]:
    return dict(_load(role / "defaults" / "main.yml") or {})


def test_there_are_roles() -> None:
    assert {"preflight", "node_prep", "containerd", "kube_packages", "nfs_server"} <= set(ROLE_IDS)


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_argument_specs_list_exactly_the_defaults(role: Path) -> None:
    assert set(_options(role)) == set(_defaults(role))


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_spec_defaults_match_the_role_defaults(role: Path) -> None:
    defaults = _defaults(role)
    for name, option in _options(role).items():
        if "default" in option:
            assert option["default"] == defaults[name], name
        else:
            # Only computed defaults (templated from inventory-wide variables or facts) may be left
            # out of the spec, and the description must say where they come from.
            assert "{{" in str(defaults[name]), (
                f"{name}: literal default missing from argument_specs"
            )
            assert re.search(
                r"[Dd]efault",
                option["description"]
                if isinstance(option["description"], str)
                else " ".join(option["description"]),
            ), name


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_inputs_are_role_prefixed_and_typed(role: Path) -> None:
    for name, option in _options(role).items():
        assert name.startswith(f"{role.name}_"), name
        assert option.get("type"), f"{name} has no type"
        assert option.get("description"), f"{name} has no description"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_every_default_has_one_comment_line(role: Path) -> None:
    lines = (role / "defaults" / "main.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^([a-z][a-z0-9_]*):", line)
        if match:
            assert i > 0 and lines[i - 1].startswith("# "), f"{match.group(1)} has no comment line"
            assert i < 2 or not lines[i - 2].startswith("#"), (
                f"{match.group(1)} has several comment lines"
            )


WITH_VARS = [r for r in ROLES if (r / "vars" / "main.yml").exists()]


@pytest.mark.parametrize("role", WITH_VARS, ids=[r.name for r in WITH_VARS])
def test_internal_vars_are_underscored(role: Path) -> None:
    for name in _load(role / "vars" / "main.yml") or {}:
        assert name.startswith(f"_{role.name}_"), name


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_main_is_a_table_of_contents_tagged_by_phase(role: Path) -> None:
    tasks = _load(role / "tasks" / "main.yml")
    assert tasks, "empty tasks/main.yml"
    for task in tasks:
        include = task.get("ansible.builtin.include_tasks")
        assert include, f"{task.get('name')}: main.yml holds only include_tasks"
        tags = task.get("tags") or []
        assert len(tags) == 1 and tags[0].startswith(f"{role.name}_"), task.get("name")
        assert include["apply"]["tags"] == tags, task.get("name")


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_readme_documents_every_input(role: Path) -> None:
    readme = (role / "README.md").read_text()
    for name in _options(role):
        assert f"`{name}`" in readme, f"README of {role.name} does not mention {name}"
    assert "```yaml" in readme, "README has no example play"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_templates_start_with_ansible_managed(role: Path) -> None:
    for template in (role / "templates").rglob("*.j2") if (role / "templates").exists() else []:
        assert template.read_text().startswith("{{ ansible_managed | comment }}"), template
