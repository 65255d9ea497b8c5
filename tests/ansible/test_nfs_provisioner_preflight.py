"""nfs_provisioner's preflight refuses leader-election durations that client-go's leader elector
would panic on inside the pod (lease > renew deadline > 1.2 x retry period), with a sentence naming
the variable, before anything is applied. The role's own preflight.yml runs with the real
ansible-playbook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ansible.bundle_bin import run_role_tasks


def preflight(tmp_path: Path, election: dict[str, object]) -> tuple[int, str]:
    (tmp_path / "admin.conf").write_text("apiVersion: v1\n")
    extra = {
        "nfs_provisioner_server": "192.0.2.10",
        "nfs_provisioner_kubeconfig": str(tmp_path / "admin.conf"),
        "nfs_provisioner_leader_election": election,
    }
    return run_role_tasks(tmp_path, "nfs_provisioner", "preflight.yml", extra)


@pytest.mark.parametrize(
    "election",
    [
        {"lease_duration": 15, "renew_deadline": 10, "retry_period": 2},
        {"lease_duration": 120, "renew_deadline": 90, "retry_period": 15},
    ],
)
def test_durations_the_elector_accepts_pass(tmp_path: Path, election: dict[str, object]) -> None:
    rc, out = preflight(tmp_path, election)
    assert rc == 0, out


@pytest.mark.parametrize(
    "election",
    [
        {"lease_duration": 15, "renew_deadline": 15, "retry_period": 2},
        {"lease_duration": 120, "renew_deadline": 90, "retry_period": 80},
        {"lease_duration": 120, "renew_deadline": 90, "retry_period": 0},
        {"lease_duration": 120, "renew_deadline": 90},
    ],
)
def test_durations_the_elector_refuses_stop_with_a_sentence(
    tmp_path: Path, election: dict[str, object]
) -> None:
    rc, out = preflight(tmp_path, election)
    assert rc == 2, out
    assert f"nfs_provisioner_leader_election is {json.dumps(election)}" in out, out
    assert "needs lease_duration > renew_deadline > 1.2 x retry_period > 0 seconds" in out, out
