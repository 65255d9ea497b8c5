#!/usr/bin/python
# ruff: noqa: E402, E501 - Ansible module layout: DOCUMENTATION before the imports, YAML docs lines
# Copyright: m2mcloud contributors
# Apache-2.0
"""Verify a cached bundle against its manifest, record a component, or finalize the manifest."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: airgap_bundle_manifest
short_description: The offline bundle's manifest.json - verify the cache, record, finalize
description:
  - state=verify - for each wanted component (name -> recipe), why its cached copy cannot be used
    (not built, recipe changed, a file missing or not matching its sha256, an image archive not
    naming its digest). Read-only, never changed.
  - state=record - checksum a component's files (already in the bundle) and read its images'
    digests into the manifest (the download mode's counterpart of airgap_bundle_component).
  - state=final - drop components no longer wanted (prune also deletes their files), store the
    bundle facts and the pinned versions, write SHA256SUMS. Changed only when a file changes.
options:
  bundle_dir: {description: The bundle directory., type: path, required: true}
  state: {description: What to do., type: str, choices: [verify, record, final], default: verify}
  components: {description: Wanted components, name -> recipe (verify, final)., type: dict, default: {}}
  name: {description: Component to record (record)., type: str}
  recipe: {description: Its recipe (record)., type: dict, default: {}}
  files: {description: Its files, relative to bundle_dir (record)., type: list, elements: str, default: []}
  images: {description: Its images, name -> {ref, file} (record)., type: dict, default: {}}
  info: {description: Unverified facts about the build (record)., type: dict, default: {}}
  bundle: {description: Facts about the bundle (final)., type: dict, default: {}}
  versions: {description: The pinned versions (final)., type: dict, default: {}}
  prune: {description: Delete the files of components no longer wanted (final)., type: bool, default: false}
"""

RETURN = r"""
stale: {description: Component -> reasons it must be (re)built (verify)., type: dict, returned: state=verify}
cached: {description: Components the cache holds intact (verify)., type: list, returned: state=verify}
images: {description: Image name -> ref, file, digest (final)., type: dict, returned: state=final}
size: {description: Bytes of all files in the manifest (final)., type: int, returned: state=final}
"""

import os

from ansible.module_utils.airgap_bundle_manifest import (
    finalize,
    recipe_key,
    record_component,
    verify,
)
from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "bundle_dir": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["verify", "record", "final"], "default": "verify"},
            "components": {"type": "dict", "default": {}},
            "name": {"type": "str"},
            "recipe": {"type": "dict", "default": {}},
            "files": {"type": "list", "elements": "str", "default": []},
            "images": {"type": "dict", "default": {}},
            "info": {"type": "dict", "default": {}},
            "bundle": {"type": "dict", "default": {}},
            "versions": {"type": "dict", "default": {}},
            "prune": {"type": "bool", "default": False},
        },
        required_if=[("state", "record", ["name"])],
        supports_check_mode=True,
    )
    p = module.params
    bundle_dir = p["bundle_dir"]
    if p["state"] == "verify":
        wanted = {name: recipe_key(recipe) for name, recipe in p["components"].items()}
        problems = (
            verify(bundle_dir, wanted)
            if os.path.isdir(bundle_dir)
            else {name: ["no bundle yet"] for name in wanted}
        )
        stale = {name: reasons for name, reasons in problems.items() if reasons}
        module.exit_json(changed=False, stale=stale, cached=sorted(set(wanted) - set(stale)))
    if p["state"] == "record":
        if module.check_mode:
            module.exit_json(changed=True)
        try:
            changed, entry = record_component(
                bundle_dir, p["name"], p["recipe"], p["files"], p["images"], p["info"]
            )
        except (OSError, ValueError) as exc:
            module.fail_json(msg=f"component {p['name']}: {exc}")
        module.exit_json(changed=changed, entry=entry)
    try:
        result = finalize(
            bundle_dir,
            sorted(p["components"]),
            p["bundle"],
            p["versions"],
            p["prune"],
            write=not module.check_mode,
        )
    except ValueError as exc:
        if module.check_mode:
            module.exit_json(
                changed=True,
                msg=f"check mode: {exc} (they would be built)",
                images={},
                size=0,
                files=0,
            )
        module.fail_json(
            msg=f"The bundle in {bundle_dir} is incomplete: {exc}. Run playbooks/bundle.yml again."
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
