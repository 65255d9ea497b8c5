"""A real kubeadm cluster on the container lab driver, end to end (issue 6).

bundle (cached) -> lab up (3 podman system-container nodes) -> cluster, storage and add-on plays
-> every node Ready, a Service name resolved by CoreDNS from a pod, pods reaching pods on other
nodes, a PVC bound and a file written by one pod read by another, `kubectl top nodes` figures
-> the same plays again change nothing -> a fourth node added later joins -> reset -> lab down.
The host's non-namespaced kernel settings must be the same at the end as at the start.

It runs a lab of its own (prefix m2m-lab-e2e, its own podman network and a copy of inventory/lab/
in a temporary directory), so the `m2m-lab` lab someone may be working on is left alone. Slow
(~15 min on 2 shared cores):

    M2M_E2E=1 pytest -m e2e tests/e2e/test_cluster_container.py -v -s

Timings are printed (docs/cluster.md records them); only correctness is asserted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.playout import changed_tasks, recaps

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("M2M_E2E") != "1",
        reason="builds a whole cluster (~15 min): "
        "M2M_E2E=1 pytest -m e2e tests/e2e/test_cluster_container.py",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PINS = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/versions.yml").read_text())
BUNDLE = Path.home() / ".cache/m2mcloud/bundle" / f"v{PINS['kube_version']}"
KUBECTL = BUNDLE / "kubernetes" / f"v{PINS['kube_version']}" / "bin" / "kubectl"
PREFIX = "m2m-lab-e2e"
SUBNET = "10.89.214.0/24"
THREE = ["cp1", "w1", "w2"]
CLUSTER_PLAYS = ["playbooks/cluster.yml", "playbooks/storage.yml", "playbooks/addons.yml"]
# Not namespaced: a lab node must never change them (roles/lab_container/files/rootfs).
HOST_SYSCTLS = [
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "kernel/pid_max",
]
NS = "m2m-e2e"
DEBIAN = "localhost/m2mcloud/debian-base:bookworm"


class Lab:
    """The test's own lab inventory: a copy of inventory/lab (groups, group_vars) in a temporary
    directory, where lab.yml writes generated.yml and kube_control_plane the kubeconfig."""

    def __init__(self, directory: Path) -> None:
        self.inventory = directory
        shutil.copy(ROOT / "inventory/lab/hosts.yml", directory / "hosts.yml")
        shutil.copytree(ROOT / "inventory/lab/group_vars", directory / "group_vars")
        self.kubeconfig = directory / ".kube/admin.conf"
        self.timings: dict[str, float] = {}

    def lab_vars(self, names: list[str] | None = None, state: str = "present") -> str:
        extra: dict[str, object] = {
            "state": state,
            "lab_container_prefix": PREFIX,
            "lab_container_subnet": SUBNET,
            "lab_container_inventory_dir": str(self.inventory),
        }
        if names is not None:
            extra["lab_nodes"] = [
                {
                    "name": n,
                    "groups": ["kube_control_plane" if n.startswith("cp") else "kube_workers"],
                }
                for n in names
            ]
        return json.dumps(extra)


LAB: Lab | None = None


def _lab() -> Lab:
    assert LAB is not None
    return LAB


def play(*args: str, timeout: int = 1800) -> tuple[str, float]:
    """ansible-playbook on the test's inventory: output and wall time; fails the test on rc != 0."""
    start = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(_lab().inventory), *args],
        cwd=ROOT,
        env=dict(
            os.environ,
            PATH=f"{BIN}:{os.environ.get('PATH', '')}",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
        ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - start
    assert proc.returncode == 0, (
        f"ansible-playbook {' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    )
    return proc.stdout, seconds


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(_lab().kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}{proc.stdout}"
    return proc.stdout


def host_sysctls() -> dict[str, str]:
    return {key: Path("/proc/sys", key).read_text().strip() for key in HOST_SYSCTLS}


def ready_nodes() -> list[str]:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    return sorted(
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    )


def run_pod(name: str, node: str, script: str, volume_claim: str | None = None) -> str:
    """Run a one-shot pod on a node, wait for it to finish, return its log."""
    spec: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": DEBIAN,
                    "imagePullPolicy": "Never",
                    "command": ["bash", "-c", script],
                }
            ],
        },
    }
    pod = spec["spec"]
    assert isinstance(pod, dict)
    if node:
        pod["nodeName"] = node
    if volume_claim:
        pod["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        pod["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": volume_claim}}]
    kubectl("apply", "-f", "-", stdin=json.dumps(spec))
    deadline = time.monotonic() + 240
    phase = ""
    while time.monotonic() < deadline:
        phase = kubectl("-n", NS, "get", "pod", name, "-o", "jsonpath={.status.phase}")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(2)
    log = kubectl("-n", NS, "logs", name, check=False)
    assert phase == "Succeeded", f"pod {name} on {node or 'any node'}: {phase}\n{log}"
    return log


def provisioner_controller_round_trip(directory: Path) -> None:
    """nfs_provisioner's manifest (rendered by Ansible), its NFS export swapped for an emptyDir."""
    values = {
        "_nfs_provisioner_namespace": "nfs-provisioner",
        "nfs_provisioner_image": (
            f"localhost/m2mcloud/nfs-subdir-provisioner:v{PINS['kube_nfs_provisioner_version']}"
        ),
        "nfs_provisioner_name": "m2mcloud.io/nfs-e2e",
        "nfs_provisioner_server": "192.0.2.10",
        "nfs_provisioner_path": "/srv/nfs/kubernetes",
        "nfs_provisioner_leader_election": {
            "lease_duration": 45, "renew_deadline": 30, "retry_period": 5,
        },
        "nfs_provisioner_class_name": "nfs-e2e",
        "nfs_provisioner_default_class": False,
        "nfs_provisioner_reclaim_policy": "Delete",
        "nfs_provisioner_mount_options": [],
    }  # fmt: skip
    rendered = directory / "nfs-provisioner.yml"
    (directory / "render.json").write_text(json.dumps({**values, "out": str(rendered)}))
    (directory / "render.yml").write_text(
        "- name: Render nfs_provisioner's manifest\n  hosts: localhost\n  connection: local\n"
        "  gather_facts: false\n  tasks:\n    - name: Render\n      ansible.builtin.template:\n"
        f"        src: {ROOT}/roles/nfs_provisioner/templates/nfs-provisioner.yml.j2\n"
        "        dest: '{{ out }}'\n        mode: '0600'\n"
    )
    play(str(directory / "render.yml"), "-e", f"@{directory / 'render.json'}")
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    volume = deployment["spec"]["template"]["spec"]["volumes"][0]
    assert volume["nfs"] == {"server": "192.0.2.10", "path": "/srv/nfs/kubernetes"}, volume
    volume.pop("nfs")
    volume["emptyDir"] = {}
    objects = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    kubectl("apply", "-f", "-", stdin=objects)
    try:
        kubectl("-n", "nfs-provisioner", "rollout", "status", "deployment/nfs-provisioner",
                "--timeout=180s")  # fmt: skip
        claim = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "nfs-claim", "namespace": "nfs-provisioner"},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs-e2e",
                     "resources": {"requests": {"storage": "1Mi"}}},
        }  # fmt: skip
        kubectl("apply", "-f", "-", stdin=json.dumps(claim))
        kubectl("-n", "nfs-provisioner", "wait", "pvc/nfs-claim",
                "--for=jsonpath={.status.phase}=Bound", "--timeout=120s")  # fmt: skip
        pvc = json.loads(kubectl("-n", "nfs-provisioner", "get", "pvc", "nfs-claim", "-o", "json"))
        name = pvc["spec"]["volumeName"]
        pv = json.loads(kubectl("get", "pv", name, "-o", "json"))
        assert pv["spec"]["nfs"] == {
            "server": "192.0.2.10",
            "path": f"/srv/nfs/kubernetes/nfs-provisioner-nfs-claim-{name}",
        }, pv["spec"]
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        lease = json.loads(
            kubectl("-n", "nfs-provisioner", "get", "lease", "m2mcloud.io-nfs-e2e", "-o", "json")
        )
        assert lease["spec"]["leaseDurationSeconds"] == 45, lease
        kubectl("-n", "nfs-provisioner", "delete", "pvc", "nfs-claim", "--wait=true")
        kubectl("wait", f"pv/{name}", "--for=delete", "--timeout=120s")
    finally:
        kubectl("delete", "-f", "-", "--wait=true", "--ignore-not-found", stdin=objects)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The test's lab from scratch; removed at the end whatever happened."""
    global LAB  # noqa: PLW0603 - the helpers above run against this one lab
    LAB = Lab(tmp_path_factory.mktemp("inventory"))
    play("playbooks/lab.yml", "-e", LAB.lab_vars(state="absent"))
    try:
        yield LAB
    finally:
        play("playbooks/lab.yml", "-e", LAB.lab_vars(state="absent"))
        left = subprocess.run(
            ["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name=^{PREFIX}-"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert left == [], f"lab containers left behind: {left}"
        print("\nTIMINGS " + json.dumps({k: round(v, 1) for k, v in LAB.timings.items()}))


@pytest.mark.timeout(5400)
def test_cluster_on_container_nodes(lab: Lab, tmp_path: Path) -> None:
    sysctls_before = host_sysctls()
    times = lab.timings

    _, times["bundle"] = play("playbooks/bundle.yml", timeout=3600)
    assert KUBECTL.is_file(), f"no kubectl in the bundle {BUNDLE}"

    _, times["lab_up"] = play("playbooks/lab.yml", "-e", lab.lab_vars(THREE))
    again, _ = play("playbooks/lab.yml", "-e", lab.lab_vars(THREE))
    assert recaps(again)["localhost"]["changed"] == 0, changed_tasks(again)

    # Bare nodes -> Ready 3-node cluster, then storage and add-ons.
    out, times["cluster_yml"] = play("playbooks/cluster.yml")
    assert ready_nodes() == [f"{PREFIX}-{n}" for n in THREE]
    out, times["storage_addons_yml"] = play("playbooks/storage.yml", "playbooks/addons.yml")

    kubectl("create", "namespace", NS)

    # CoreDNS answers a Service name from a pod (a Service of our own, and the API's).
    kubectl("-n", NS, "create", "service", "clusterip", "e2e-svc", "--tcp=80:80")
    cluster_ip = kubectl("-n", NS, "get", "service", "e2e-svc", "-o", "jsonpath={.spec.clusterIP}")
    log = run_pod(
        "dns",
        f"{PREFIX}-w1",
        f"getent hosts e2e-svc.{NS}.svc.cluster.local; getent hosts kubernetes.default",
    )
    assert cluster_ip in log, log
    assert "10.96.0.1" in log, log

    # Pod to pod across nodes: from each worker, over TCP, to a CoreDNS (port 53) or
    # metrics-server (port 10250) pod on another node.
    targets = []
    for selector, port in (("k8s-app=kube-dns", 53), ("k8s-app=metrics-server", 10250)):
        pods = json.loads(kubectl("-n", "kube-system", "get", "pods", "-l", selector, "-o", "json"))
        targets += [(p["status"]["podIP"], port, p["spec"]["nodeName"]) for p in pods["items"]]
    for worker in ("w1", "w2"):
        ip, port, node = next(t for t in targets if t[2] != f"{PREFIX}-{worker}")
        log = run_pod(
            f"reach-{worker}",
            f"{PREFIX}-{worker}",
            f"exec 3<>/dev/tcp/{ip}/{port} && echo reached {ip}:{port} on {node}",
        )
        assert f"reached {ip}:{port}" in log, log

    # A PVC binds (default StorageClass); one pod writes a file, another pod reads it.
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "e2e-data", "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(claim))
    token = f"written-{time.time_ns()}"
    run_pod("writer", "", f"echo {token} > /data/proof", volume_claim="e2e-data")
    phase = kubectl("-n", NS, "get", "pvc", "e2e-data", "-o", "jsonpath={.status.phase}")
    assert phase == "Bound"
    assert run_pod("reader", "", "cat /data/proof", volume_claim="e2e-data").strip() == token

    # kubectl top nodes: figures for every node, through metrics-server with verified kubelet TLS.
    top = [line.strip() for line in kubectl("top", "nodes", "--no-headers").splitlines()]
    assert sorted(line.split()[0] for line in top) == [f"{PREFIX}-{n}" for n in THREE], top
    assert all(re.match(r"^\S+\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%$", line) for line in top), top
    deployment = kubectl("-n", "kube-system", "get", "deployment", "metrics-server", "-o", "json")
    args = json.loads(deployment)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--kubelet-insecure-tls" not in args
    kubectl("delete", "namespace", NS, "--wait=true")

    # Our NFS provisioner's controller on this cluster (no NFS in this kernel: its export is an
    # emptyDir here and no pod mounts the volumes): a claim of its class gets an NFS volume under
    # the export, the claim's deletion removes it, and its leader election uses the durations given.
    provisioner_controller_round_trip(tmp_path)

    # The same plays again: nothing changes.
    out, times["rerun"] = play(*CLUSTER_PLAYS)
    changed = {host: counts.get("changed", 0) for host, counts in recaps(out).items()}
    assert all(v == 0 for v in changed.values()), (changed, changed_tasks(out))

    # A node added later joins; the nodes there already are left alone.
    _, _ = play("playbooks/lab.yml", "-e", lab.lab_vars([*THREE, "w3"]))
    out, times["add_node"] = play(
        "playbooks/cluster.yml", "--limit", f"{PREFIX}-w3,kube_control_plane"
    )
    counts = recaps(out)
    assert counts[f"{PREFIX}-cp1"]["changed"] == 0, changed_tasks(out).get(f"{PREFIX}-cp1")
    assert counts[f"{PREFIX}-w3"]["changed"] > 0
    assert ready_nodes() == [f"{PREFIX}-{n}" for n in [*THREE, "w3"]]
    # Its kubelet got a CA-signed serving certificate: the API server reaches it over TLS.
    on_w3 = f"spec.nodeName={PREFIX}-w3"
    flannel_w3 = kubectl(
        "-n", "kube-flannel", "get", "pods", "-o", "name", "--field-selector", on_w3
    ).split()
    assert flannel_w3 and kubectl("-n", "kube-flannel", "logs", flannel_w3[0], "--tail=1")

    # Reset: the cluster's state leaves every node; a second reset has nothing to do.
    _, times["reset"] = play("playbooks/reset.yml", "-e", "reset_confirm=yes")
    for node in [*THREE, "w3"]:
        probe = subprocess.run(
            ["podman", "exec", f"{PREFIX}-{node}", "ls", "/etc/kubernetes", "/etc/cni/net.d"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert "admin.conf" not in probe.stdout and "kubelet.conf" not in probe.stdout, probe.stdout
        assert "flannel" not in probe.stdout, probe.stdout
    again, _ = play("playbooks/reset.yml", "-e", "reset_confirm=yes")
    changed = {host: counts.get("changed", 0) for host, counts in recaps(again).items()}
    assert all(v == 0 for v in changed.values()), (changed, changed_tasks(again))
    assert not lab.kubeconfig.exists()

    assert host_sysctls() == sysctls_before
