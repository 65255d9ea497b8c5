"""kube_images picks per host which of the bundle's images to import: a real ansible-playbook run
of the role's own defaults and vars on two local hosts, a control plane and a worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IMAGES = ["coredns", "etcd", "flannel", "kube-apiserver", "kube-controller-manager",
          "kube-proxy", "kube-scheduler", "metrics-server", "pause"]  # fmt: skip

PLAY = """\
- name: Resolve the images each node imports
  hosts: all
  gather_facts: false
  tasks:
    - name: Load the role's defaults and vars
      ansible.builtin.include_vars:
        file: "{{ item }}"
      loop:
        - ROLE/defaults/main.yml
        - ROLE/vars/main.yml
    - name: Show them
      ansible.builtin.debug:
        msg: "{{ _kube_images_wanted | map(attribute='key') | sort }}"
"""


def wanted(tmp_path: Path, *extra: str) -> dict[str, list[str]]:
    manifest = {
        "images": {n: {"ref": f"r/{n}:1", "digest": "sha256:0", "file": f"{n}.tar"} for n in IMAGES}
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "hosts.yml").write_text(
        "all:\n  vars: {ansible_connection: local, ansible_python_interpreter: " + sys.executable
        + "}\n  children:\n    kube_control_plane: {hosts: {cp1: {}}}\n"
        "    kube_workers: {hosts: {w1: {}}}\n"
    )  # fmt: skip
    (tmp_path / "play.yml").write_text(PLAY.replace("ROLE", str(ROOT / "roles/kube_images")))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "play.yml"), "-e", f"kube_images_artifacts_dir={tmp_path}", *extra],
        env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    shown = next(t for t in tasks if t["task"]["name"] == "Show them")
    return {host: result["msg"] for host, result in shown["hosts"].items()}


def test_workers_leave_out_the_control_planes_images(tmp_path: Path) -> None:
    got = wanted(tmp_path)
    assert got["cp1"] == sorted(IMAGES)
    assert got["w1"] == ["coredns", "flannel", "kube-proxy", "metrics-server", "pause"]


def test_the_exclude_list_applies_to_every_node(tmp_path: Path) -> None:
    got = wanted(tmp_path, "-e", '{"kube_images_exclude": ["metrics-server"]}')
    assert "metrics-server" not in got["cp1"] and "etcd" in got["cp1"]
    assert got["w1"] == ["coredns", "flannel", "kube-proxy", "pause"]
