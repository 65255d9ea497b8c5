"""tests/playout.py reads real ansible-playbook output: the e2e tests name the tasks that changed
when a second run is not idempotent, so the parser is checked on a real run here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.playout import changed_tasks, changed_total, recaps

BIN = Path(sys.executable).parent

PLAYBOOK = """
- name: One play
  hosts: all
  gather_facts: false
  tasks:
    - name: Nothing to do
      ansible.builtin.command: "true"
      changed_when: false
    - name: A change on every host
      ansible.builtin.command: "true"
      changed_when: true
      notify: Say so
    - name: Loop with a change on one item
      ansible.builtin.command: "echo {{ item }}"
      changed_when: item == 'b'
      loop: [a, b]
    - name: Delegated change [brackets] in the name
      ansible.builtin.command: "true"
      changed_when: inventory_hostname == 'two'
      delegate_to: one
  handlers:
    - name: Say so
      ansible.builtin.command: "true"
      changed_when: inventory_hostname == 'one'
- name: Second play
  hosts: one
  gather_facts: false
  tasks:
    - name: Once more
      ansible.builtin.command: "true"
      changed_when: true
"""


def test_changed_tasks_and_recaps_from_a_real_run(tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts").write_text(
        "one ansible_connection=local\ntwo ansible_connection=local\n"
        f"[all:vars]\nansible_python_interpreter={sys.executable}\n"
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "hosts", "play.yml"],
        cwd=tmp_path,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert changed_tasks(proc.stdout) == {
        "one": [
            "A change on every host",
            "Loop with a change on one item (b)",
            "Say so",
            "Once more",
        ],
        "two": [
            "A change on every host",
            "Loop with a change on one item (b)",
            "Delegated change [brackets] in the name",
        ],
    }
    counts = recaps(proc.stdout)
    assert counts["one"]["changed"] == 4 and counts["two"]["changed"] == 3, counts
    assert counts["one"]["ok"] == 6 and counts["two"]["ok"] == 5, counts
    assert changed_total(proc.stdout) == 7
