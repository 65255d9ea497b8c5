"""The vm lab driver (issue 6, part 2) and the NFS path on real kernels.

Three qemu VMs (KVM where it works, TCG emulation here) made by `playbooks/lab.yml -e
lab_driver=vm`, into an inventory and a state directory of the test's own (a lab of the working
tree stays untouched): the lab comes up and a second run changes nothing; the node roles prepare
the VMs from the offline bundle; a worker mounts the control plane's NFS export (NFSv4.2) and
another worker reads the file the first one wrote. With the cluster roles present, the whole
cluster part of site.yml follows: every node Ready, the NFS provisioner the default StorageClass, a
claim written by a pod on one worker and read by a pod on the other, and a second run that changes
nothing. The lab is removed at the end, also when a test fails.

    M2M_E2E=1 pytest -m e2e tests/e2e/test_lab_vm.py -v -s     (figures: docs/lab-vm.md)

Under TCG on 2 shared cores this takes long (the lab ~2 min, node preparation ~15 min, the
cluster much more); `-s` prints the time of every step.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e
Completed = subprocess.CompletedProcess[str]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CP, W1, W2 = "m2m-vm-cp1", "m2m-vm-w1", "m2m-vm-w2"
EXPORT = "/srv/nfs/kubernetes"
NODE_PREP_TAGS = "preflight,node_prep,containerd,kube_packages"


def changed(output: str) -> int:
    tail = output.rsplit("PLAY RECAP", maxsplit=1)[-1]
    return sum(int(n) for n in re.findall(r"\bchanged=(\d+)", tail))


@dataclass
class Lab:
    inventory: Path
    state: Path
    timings: dict[str, float] = field(default_factory=dict)

    def playbook(self, name: str, *extra: str, step: str, timeout: int = 7200) -> str:
        start = time.monotonic()
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", str(self.inventory), name, *extra],
            cwd=ROOT,
            env={
                "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": str(Path.home()),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
            },
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.timings[step] = time.monotonic() - start
        print(f"\n[lab-vm] {step}: {self.timings[step]:.0f} s, changed={changed(proc.stdout)}")
        log = self.state.parent / f"{step}.log"
        log.write_text(proc.stdout + proc.stderr)
        output = proc.stdout[-6000:] + proc.stderr[-2000:]
        assert proc.returncode == 0, f"{name} failed ({log}):\n{output}"
        return proc.stdout

    def lab(self, *extra: str, step: str) -> str:
        return self.playbook(
            "playbooks/lab.yml",
            "-e", "lab_driver=vm",
            "-e", f"lab_vm_inventory_dir={self.inventory}",
            "-e", f"lab_vm_state_dir={self.state}",
            *extra,
            step=step,
        )  # fmt: skip

    def hosts(self) -> dict[str, Any]:
        generated = yaml.safe_load((self.inventory / "generated.yml").read_text())
        return dict(generated["all"]["hosts"])

    def ssh(self, host: str, command: str, *, check: bool = True) -> Completed:
        port = self.hosts()[host]["ansible_port"]
        proc = subprocess.run(
            [
                "ssh", "-i", str(self.state / "id_ed25519"), "-p", str(port),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.state / 'known_hosts'}",
                "-o", f"HostKeyAlias={host}", "admin@127.0.0.1", command,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )  # fmt: skip
        if check:
            assert proc.returncode == 0, f"{host}: `{command}` failed: {proc.stderr}{proc.stdout}"
        return proc

    def qemu_pids(self) -> list[int]:
        """qemu processes of this lab (their pidfile lies in its state directory)."""
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmdline and str(self.state).encode() in cmdline:
                pids.append(int(proc.name))
        return pids


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    for tool in ("qemu-system-x86_64", "qemu-img", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/install-deps.sh (it installs qemu)")
    base = tmp_path_factory.mktemp("lab-vm")
    inventory = base / "inventory"
    inventory.mkdir()
    shutil.copy(ROOT / "inventory/lab/hosts.yml", inventory / "hosts.yml")
    shutil.copytree(ROOT / "inventory/lab/group_vars", inventory / "group_vars")
    lab = Lab(inventory=inventory, state=base / "state")
    try:
        # The offline bundle the roles install from (cached by version: seconds when built).
        lab.playbook("playbooks/bundle.yml", step="bundle")
        lab.lab(step="lab up")
        yield lab
    finally:
        lab.lab("-e", "state=absent", step="lab absent")
        print("\n[lab-vm] timings: " + json.dumps({k: round(v) for k, v in lab.timings.items()}))
        assert lab.qemu_pids() == [], "qemu processes of the test lab are left after state=absent"
        assert not (inventory / "generated.yml").exists()
        assert not lab.state.exists()


def test_lab_comes_up_once_and_a_second_run_changes_nothing(lab: Lab) -> None:
    hosts = lab.hosts()
    assert sorted(hosts) == [CP, W1, W2]
    generated = yaml.safe_load((lab.inventory / "generated.yml").read_text())
    groups = {g: sorted(v.get("hosts") or {}) for g, v in generated["all"]["children"].items()}
    assert groups == {"kube_control_plane": [CP], "kube_workers": [W1, W2], "nfs_server": [CP]}

    assert changed(lab.lab(step="lab again")) == 0
    assert len(lab.qemu_pids()) == 3

    seen: dict[str, set[str]] = {"machine-id": set(), "uuid": set()}
    for index, host in enumerate([CP, W1, W2]):
        out = lab.ssh(
            host,
            "hostname; ip -4 route show default; cat /etc/machine-id; "
            "sudo cat /sys/class/dmi/id/product_uuid; swapon --noheadings --show=NAME; uname -r",
        ).stdout.split("\n")
        name, route, machine_id, uuid, swap = out[:5]
        assert name == host
        address = f"10.77.0.{11 + index}"
        assert hosts[host]["lab_node_address"] == address
        # The default route is the lab network's: what kubeadm, the kubelet and Flannel pick.
        assert route.startswith("default via 10.77.0.1 "), route
        assert swap == "/swapfile"  # a fresh server's swap, for node_prep to turn off
        seen["machine-id"].add(machine_id)
        seen["uuid"].add(uuid)
    assert all(len(values) == 3 for values in seen.values()), seen

    # The lab network joins the VMs (and only them: it is qemu multicast on 127.0.0.1).
    lab.ssh(W1, "ping -c 2 -W 5 10.77.0.11 && ping -c 2 -W 5 10.77.0.13")


def test_node_roles_prepare_the_vms(lab: Lab) -> None:
    lab.playbook("playbooks/cluster.yml", "--tags", NODE_PREP_TAGS, step="node preparation")
    lab.playbook("playbooks/storage.yml", "--tags", "nfs_server,nfs_client", step="nfs")
    for host in (CP, W1, W2):
        out = lab.ssh(
            host,
            "cat /proc/swaps | wc -l; grep -c '^#.*swap' /etc/fstab; "
            "test -d /sys/module/br_netfilter && echo br_netfilter; sysctl -n net.ipv4.ip_forward; "
            "systemctl is-active containerd; kubelet --version",
        ).stdout.split("\n")
        assert out[0] == "1", f"{host}: swap still on"  # only the header line of /proc/swaps
        assert out[1] == "1", f"{host}: the swap line of /etc/fstab is not commented out"
        assert out[2:5] == ["br_netfilter", "1", "active"], f"{host}: {out}"
        assert out[5].startswith("Kubernetes v"), out[5]
    assert lab.ssh(CP, "systemctl is-active nfs-server").stdout.strip() == "active"
    assert "10.77.0.0/24" in lab.ssh(CP, "sudo exportfs -v").stdout


def test_a_worker_mounts_the_control_planes_export_and_another_reads_its_file(lab: Lab) -> None:
    token = secrets.token_hex(16)
    mount = (
        "sudo mkdir -p /mnt/m2m-e2e && "
        f"sudo mount -t nfs -o vers=4.2 10.77.0.11:{EXPORT} /mnt/m2m-e2e"
    )
    write = f"echo {token} | sudo tee /mnt/m2m-e2e/proof-{token} >/dev/null && sync"
    try:
        lab.ssh(W1, f"{mount} && {write}")
        options = lab.ssh(W1, "grep ' /mnt/m2m-e2e ' /proc/mounts").stdout
        assert " nfs4 " in options and "vers=4.2" in options, options
        read = lab.ssh(W2, f"{mount} && cat /mnt/m2m-e2e/proof-{token}").stdout.strip()
        assert read == token
        # On the server the file is a real file in the exported directory.
        assert lab.ssh(CP, f"sudo cat {EXPORT}/proof-{token}").stdout.strip() == token
    finally:
        for host in (W1, W2):
            lab.ssh(host, "sudo umount /mnt/m2m-e2e", check=False)
        lab.ssh(CP, f"sudo rm -f {EXPORT}/proof-{token}", check=False)


# --- the cluster part of site.yml on the VMs, with NFS as the default StorageClass -------------


def kubectl(lab: Lab, *args: str, stdin: str | None = None) -> str:
    versions = ROOT / "inventory/lab/group_vars/all/versions.yml"
    version = yaml.safe_load(versions.read_text())["kube_version"]
    binary = Path.home() / f".cache/m2mcloud/bundle/v{version}/kubernetes/v{version}/bin/kubectl"
    proc = subprocess.run(
        [str(binary), "--kubeconfig", str(lab.inventory / ".kube/admin.conf"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def pod(name: str, node: str, command: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "m2m-e2e-vm"},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [
                {
                    "name": "main",
                    "image": "localhost/m2mcloud/debian-base:bookworm",
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", command],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "proof"}}],
        },
    }


def run_to_completion(lab: Lab, manifest: dict[str, Any]) -> None:
    kubectl(lab, "apply", "-f", "-", stdin=json.dumps(manifest))
    name = manifest["metadata"]["name"]
    succeeded = "--for=jsonpath={.status.phase}=Succeeded"
    kubectl(lab, "-n", "m2m-e2e-vm", "wait", f"pod/{name}", succeeded, "--timeout=600s")


@pytest.mark.skipif(
    not (ROOT / "roles/kube_control_plane/tasks/main.yml").is_file(), reason="no cluster roles yet"
)
def test_cluster_on_the_vms_with_nfs_as_default_storageclass(lab: Lab) -> None:
    lab.playbook("playbooks/cluster.yml", step="cluster")
    lab.playbook("playbooks/storage.yml", step="storage")

    nodes = json.loads(kubectl(lab, "get", "nodes", "-o", "json"))["items"]
    ready = {
        n["metadata"]["name"]: any(
            c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
        )
        for n in nodes
    }
    assert ready == {CP: True, W1: True, W2: True}

    classes = json.loads(kubectl(lab, "get", "storageclass", "-o", "json"))["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
    ]
    assert default == ["nfs"], classes

    token = secrets.token_hex(16)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "proof", "namespace": "m2m-e2e-vm"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Mi"}}},
    }
    kubectl(lab, "create", "namespace", "m2m-e2e-vm")
    try:
        kubectl(lab, "apply", "-f", "-", stdin=json.dumps(claim))
        run_to_completion(lab, pod("writer", W1, f"echo {token} > /data/proof"))
        run_to_completion(lab, pod("reader", W2, "cat /data/proof"))
        assert kubectl(lab, "-n", "m2m-e2e-vm", "logs", "reader").strip() == token
        volume = json.loads(kubectl(lab, "-n", "m2m-e2e-vm", "get", "pvc", "proof", "-o", "json"))
        assert volume["status"]["phase"] == "Bound"
        # The claim is a directory of the control plane's export, holding what the writer wrote.
        found = lab.ssh(CP, f"sudo grep -rl {token} {EXPORT}").stdout.strip()
        assert found.startswith(f"{EXPORT}/") and found.endswith("/proof"), found
    finally:
        kubectl(lab, "delete", "namespace", "m2m-e2e-vm", "--wait=true", "--timeout=600s")

    assert changed(lab.playbook("playbooks/cluster.yml", step="cluster again")) == 0
    assert changed(lab.playbook("playbooks/storage.yml", step="storage again")) == 0
