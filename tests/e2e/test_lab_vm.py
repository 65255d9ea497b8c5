"""The vm lab driver (issue 6, part 2) and the NFS path on real kernels (issues 6 and 7).

qemu VMs (KVM where it works, TCG emulation here) made by `playbooks/lab.yml -e lab_driver=vm`,
into an inventory and a state directory of the test's own (a lab of the working tree stays
untouched): cp1 (control plane and NFS server) and M2M_E2E_VM_WORKERS workers (default 1: two VMs
are what fits on 2 cores under TCG; 2 gives the three-node lab). The lab comes up and a second run
changes nothing; the node roles prepare the VMs from the offline bundle; a worker mounts the
control plane's NFS export (NFSv4.2) and another node reads the file it wrote. Then the rest of the
cluster part of site.yml: every node Ready, the NFS provisioner the default StorageClass, a claim
written by a pod on one node and read by a pod on another; then playbooks/apps.yml: PostgreSQL on
a claim of the NFS class, its data directory on the NFS server, and readings the CSE stores and
serves over HTTP. Then a second run of the playbooks that changes nothing; last, a worker VM
added to the lab joins (cluster.yml limited to it and the control plane, which stays unchanged).
The lab is removed at the end, also when a test fails.

    M2M_E2E=1 pytest -m e2e tests/e2e/test_lab_vm.py -v -s     (figures: docs/lab-vm.md)

The tests run in file order on one lab and build on each other (playbooks split by tags: each
role runs once per pass). Under TCG on 2 cores this takes long; `-s` prints the time and load
average of every step. Leave out the re-run with
`--deselect tests/e2e/test_lab_vm.py::test_a_second_run_of_the_playbooks_changes_nothing`.
"""

from __future__ import annotations

import contextlib
import json
import os
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

from m2mcloud.devices.platform import count_stored
from tests.playout import changed_tasks, changed_total, recaps

# Hours under TCG, not the suite's 300 s a test (pyproject.toml); each playbook has its own timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(10800)]
Completed = subprocess.CompletedProcess[str]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKERS = int(os.environ.get("M2M_E2E_VM_WORKERS", "1"))
LAB_NODES = [{"name": "cp1", "groups": ["kube_control_plane", "nfs_server"]}] + [
    {"name": f"w{i}", "groups": ["kube_workers"]} for i in range(1, WORKERS + 1)
]
CP = "m2m-vm-cp1"
WORKER_HOSTS = [f"m2m-vm-w{i}" for i in range(1, WORKERS + 1)]
NODES = [CP, *WORKER_HOSTS]
W1 = WORKER_HOSTS[0] if WORKER_HOSTS else ""
# The node reading what W1 wrote: the second worker, else the control plane (its taint tolerated).
OTHER = WORKER_HOSTS[1] if WORKERS > 1 else CP
CP_ADDRESS = "10.77.0.11"
EXPORT = "/srv/nfs/kubernetes"
NODE_PREP_TAGS = "preflight,node_prep,containerd,kube_packages"
APPS_NAMESPACE = "m2m"


@dataclass
class Lab:
    inventory: Path
    state: Path
    timings: dict[str, float] = field(default_factory=dict)
    # Steps done, so that a later test runs only the rest of a playbook (--skip-tags).
    done: set[str] = field(default_factory=set)
    loads: dict[str, float] = field(default_factory=dict)

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
                # Per-task times in each step's log (the slowest tasks under TCG: docs/lab-vm.md).
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
            },
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.timings[step] = time.monotonic() - start
        self.loads[step] = os.getloadavg()[0]
        print(
            f"\n[lab-vm] {time.strftime('%H:%M:%S')} {step}: {self.timings[step]:.0f} s, "
            f"changed={changed_total(proc.stdout)}, load {self.loads[step]:.1f}"
        )
        log = self.state.parent / f"{step}.log"
        log.write_text(proc.stdout + proc.stderr)
        output = proc.stdout[-6000:] + proc.stderr[-2000:]
        assert proc.returncode == 0, f"{name} failed ({log}):\n{output}"
        return proc.stdout

    def lab(self, *extra: str, step: str, nodes: list[dict[str, Any]] = LAB_NODES) -> str:
        return self.playbook(
            "playbooks/lab.yml",
            "-e", "lab_driver=vm",
            "-e", f"lab_vm_inventory_dir={self.inventory}",
            "-e", f"lab_vm_state_dir={self.state}",
            "-e", json.dumps({"lab_nodes": nodes, "lab_vm_memory_mb": 3072}),
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

    def qemu_niceness(self) -> dict[str, int]:
        """VM name (qemu's -name) -> niceness of its qemu process."""
        found = {}
        for pid in self.qemu_pids():
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            name = argv[argv.index("-name") + 1].split(",")[0]
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", maxsplit=1)[1].split()
            found[name] = int(stat[16])  # field 19 of proc(5), counted after "pid (comm)"
        return found


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if WORKERS < 1:
        pytest.fail(f"M2M_E2E_VM_WORKERS is {WORKERS}: the lab needs at least one worker")
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
        print("[lab-vm] load: " + json.dumps({k: round(v, 1) for k, v in lab.loads.items()}))
        assert lab.qemu_pids() == [], "qemu processes of the test lab are left after state=absent"
        assert not (inventory / "generated.yml").exists()
        assert not lab.state.exists()


def test_lab_comes_up_once_and_a_second_run_changes_nothing(lab: Lab) -> None:
    hosts = lab.hosts()
    assert sorted(hosts) == sorted(NODES)
    generated = yaml.safe_load((lab.inventory / "generated.yml").read_text())
    groups = {g: sorted(v.get("hosts") or {}) for g, v in generated["all"]["children"].items()}
    assert groups == {"kube_control_plane": [CP], "kube_workers": WORKER_HOSTS, "nfs_server": [CP]}

    again = lab.lab(step="lab again")
    assert changed_total(again) == 0, changed_tasks(again)
    assert len(lab.qemu_pids()) == len(NODES)
    # The control plane's qemu gets the larger share of the cores (lab_vm_control_plane_nice).
    assert lab.qemu_niceness() == {CP: 5, **{w: 10 for w in WORKER_HOSTS}}

    seen: dict[str, set[str]] = {"machine-id": set(), "uuid": set()}
    for index, host in enumerate(NODES):
        out = lab.ssh(
            host,
            # swapon is in /usr/sbin, which is not on admin's PATH.
            "hostname; ip -4 route show default; cat /etc/machine-id; "
            "sudo cat /sys/class/dmi/id/product_uuid; "
            "/usr/sbin/swapon --noheadings --show=NAME; uname -r",
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
    assert all(len(values) == len(NODES) for values in seen.values()), seen

    # The lab network joins the VMs (and only them: it is qemu multicast on 127.0.0.1).
    others = [f"10.77.0.{11 + i}" for i, host in enumerate(NODES) if host != W1]
    lab.ssh(W1, " && ".join(f"ping -c 2 -W 5 {address}" for address in others))


def test_node_roles_prepare_the_vms(lab: Lab) -> None:
    lab.playbook("playbooks/cluster.yml", "--tags", NODE_PREP_TAGS, step="node preparation")
    lab.playbook("playbooks/storage.yml", "--tags", "nfs_server,nfs_client", step="nfs")
    lab.done.update({"node preparation", "nfs"})
    for host in NODES:
        out = lab.ssh(
            host,
            "cat /proc/swaps | wc -l; grep -c '^#.*swap' /etc/fstab; "
            "test -d /sys/module/br_netfilter && echo br_netfilter; "
            "/usr/sbin/sysctl -n net.ipv4.ip_forward; "
            "systemctl is-active containerd; kubelet --version",
        ).stdout.split("\n")
        assert out[0] == "1", f"{host}: swap still on"  # only the header line of /proc/swaps
        assert out[1] == "1", f"{host}: the swap line of /etc/fstab is not commented out"
        assert out[2:5] == ["br_netfilter", "1", "active"], f"{host}: {out}"
        assert out[5].startswith("Kubernetes v"), out[5]
    assert lab.ssh(CP, "systemctl is-active nfs-server").stdout.strip() == "active"
    assert "10.77.0.0/24" in lab.ssh(CP, "sudo exportfs -v").stdout


def test_a_worker_mounts_the_control_planes_export_and_another_node_reads_its_file(
    lab: Lab,
) -> None:
    token = secrets.token_hex(16)
    mount = (
        "sudo mkdir -p /mnt/m2m-e2e && "
        f"sudo mount -t nfs -o vers=4.2 {CP_ADDRESS}:{EXPORT} /mnt/m2m-e2e"
    )
    write = f"echo {token} | sudo tee /mnt/m2m-e2e/proof-{token} >/dev/null && sync"
    try:
        lab.ssh(W1, f"{mount} && {write}")
        options = lab.ssh(W1, "grep ' /mnt/m2m-e2e ' /proc/mounts").stdout
        assert " nfs4 " in options and "vers=4.2" in options, options
        read = lab.ssh(OTHER, f"{mount} && cat /mnt/m2m-e2e/proof-{token}").stdout.strip()
        assert read == token
        # On the server the file is a real file in the exported directory.
        assert lab.ssh(CP, f"sudo cat {EXPORT}/proof-{token}").stdout.strip() == token
    finally:
        for host in {W1, OTHER}:
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
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}],
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


def rest_of(lab: Lab, playbook: str, step: str, done: dict[str, str]) -> None:
    """Run `playbook`, skipping the tags an earlier step of this lab already ran (step -> tags)."""
    skip = [tags for earlier, tags in done.items() if earlier in lab.done]
    lab.playbook(playbook, *(["--skip-tags", ",".join(skip)] if skip else []), step=step)
    lab.done.add(step)


def test_cluster_on_the_vms_with_nfs_as_default_storageclass(lab: Lab) -> None:
    rest_of(lab, "playbooks/cluster.yml", "cluster", {"node preparation": NODE_PREP_TAGS})
    rest_of(lab, "playbooks/storage.yml", "storage", {"nfs": "nfs_server,nfs_client"})

    nodes = json.loads(kubectl(lab, "get", "nodes", "-o", "json"))["items"]
    ready = {
        n["metadata"]["name"]: any(
            c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
        )
        for n in nodes
    }
    assert ready == dict.fromkeys(NODES, True)

    classes = json.loads(kubectl(lab, "get", "storageclass", "-o", "json"))["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
    ]
    assert default == ["nfs"], classes
    # The provisioner's leader election uses the lab inventory's durations (a 15 s lease was lost
    # over and over under TCG): its Lease says so.
    generated = yaml.safe_load((lab.inventory / "generated.yml").read_text())
    election = generated["all"]["vars"].get("nfs_provisioner_leader_election", {})
    lease_name = "m2mcloud.io-nfs-subdir"  # the provisioner's name, "/" -> "-"
    lease = kubectl(lab, "-n", "nfs-provisioner", "get", "lease", lease_name, "-o", "json")
    lease = json.loads(lease)
    assert lease["spec"]["leaseDurationSeconds"] == election.get("lease_duration", 15), lease

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
        run_to_completion(lab, pod("reader", OTHER, "cat /data/proof"))
        assert kubectl(lab, "-n", "m2m-e2e-vm", "logs", "reader").strip() == token
        volume = json.loads(kubectl(lab, "-n", "m2m-e2e-vm", "get", "pvc", "proof", "-o", "json"))
        assert volume["status"]["phase"] == "Bound"
        assert volume["spec"]["storageClassName"] == "nfs"
        # The claim is a directory of the control plane's export, holding what the writer wrote.
        found = lab.ssh(CP, f"sudo grep -rl {token} {EXPORT}").stdout.strip()
        assert found.startswith(f"{EXPORT}/") and found.endswith("/proof"), found
    finally:
        kubectl(lab, "delete", "namespace", "m2m-e2e-vm", "--wait=true", "--timeout=600s")


# --- playbooks/apps.yml on the VMs: the CSE's PostgreSQL on an NFS volume (issue 7) -------------


@contextlib.contextmanager
def port_forward(lab: Lab, namespace: str, target: str, port: int) -> Iterator[str]:
    """`kubectl port-forward` to `target` on a free local port (no route into the lab network)."""
    versions = ROOT / "inventory/lab/group_vars/all/versions.yml"
    version = yaml.safe_load(versions.read_text())["kube_version"]
    binary = Path.home() / f".cache/m2mcloud/bundle/v{version}/kubernetes/v{version}/bin/kubectl"
    proc = subprocess.Popen(
        [
            str(binary), "--kubeconfig", str(lab.inventory / ".kube/admin.conf"),
            "-n", namespace, "port-forward", "--address", "127.0.0.1", target, f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:<local> -> <port>"
        found = re.search(r"127\.0\.0\.1:(\d+) ->", line)
        if found is None:
            proc.kill()
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"kubectl port-forward {namespace}/{target}: {line}{err}")
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_apps_on_the_vms_keep_the_database_on_an_nfs_volume(lab: Lab, tmp_path: Path) -> None:
    lab.playbook("playbooks/apps.yml", step="apps")
    lab.done.add("apps")

    def get(*args: str) -> dict[str, Any]:
        return dict(json.loads(kubectl(lab, "-n", APPS_NAMESPACE, "get", *args, "-o", "json")))

    assert get("statefulset", "cse-database")["status"].get("readyReplicas") == 1
    assert get("deployment", "cse")["status"].get("readyReplicas", 0) >= 1
    claim = get("pvc", "data-cse-database-0")
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "nfs", claim["spec"]
    volume = json.loads(kubectl(lab, "get", "pv", claim["spec"]["volumeName"], "-o", "json"))
    nfs = volume["spec"].get("nfs") or {}
    assert nfs.get("server") == CP_ADDRESS and nfs.get("path", "").startswith(f"{EXPORT}/"), nfs
    # PostgreSQL's data directory lies in that directory of the NFS server's export.
    pg_version = lab.ssh(CP, f"sudo cat {nfs['path']}/pgdata/PG_VERSION").stdout.strip()
    assert pg_version == "15", pg_version

    # Readings through the CSE's Service: stored (in PostgreSQL on NFS) and read back over HTTP.
    run_id = f"e2e-vm-{secrets.token_hex(3)}"
    report = tmp_path / "report.json"
    with port_forward(lab, APPS_NAMESPACE, "svc/cse", 8080) as cse_url:
        proc = subprocess.run(
            [
                sys.executable, "-m", "m2mcloud", "devices", "run", "--protocol", "http",
                "--cse-url", cse_url, "--devices", "2", "--duration", "5", "--rate", "2",
                "--timeout", "60", "--run-id", run_id, "--progress", "none", "--plot", "",
                "--report", str(report),
            ],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        totals = json.loads(report.read_text())["totals"]
        assert totals["acked"] == 10 and totals["errors"] == 0, totals
        assert count_stored(cse_url, run_id, timeout=60) == {"aes": 2, "stored": 10}


def test_a_second_run_of_the_playbooks_changes_nothing(lab: Lab) -> None:
    for name, step in [
        ("playbooks/cluster.yml", "cluster"),
        ("playbooks/storage.yml", "storage"),
        ("playbooks/apps.yml", "apps"),
    ]:
        if step in lab.done:
            out = lab.playbook(name, step=f"{step} again")
            assert changed_total(out) == 0, f"{name} changed: {changed_tasks(out)}"


def test_a_node_added_later_joins_and_the_others_are_left_alone(lab: Lab) -> None:
    if "cluster" not in lab.done:
        pytest.skip("the cluster step did not run on this lab")
    name = f"w{WORKERS + 1}"
    added = f"m2m-vm-{name}"
    lab.lab(step="lab add node", nodes=[*LAB_NODES, {"name": name, "groups": ["kube_workers"]}])
    assert sorted(lab.hosts()) == sorted([*NODES, added])
    # As docs/cluster.md tells an operator: the new node and the control plane, nobody else.
    out = lab.playbook(
        "playbooks/cluster.yml", "--limit", f"{added},kube_control_plane", step="add node"
    )
    counts = recaps(out)
    assert counts[CP].get("changed", 0) == 0, changed_tasks(out).get(CP)
    assert counts[added].get("changed", 0) > 0, out[-3000:]
    assert not set(counts) - {CP, added}, counts
    nodes = json.loads(kubectl(lab, "get", "nodes", "-o", "json"))["items"]
    ready = {
        n["metadata"]["name"]: any(
            c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
        )
        for n in nodes
    }
    assert ready == dict.fromkeys([*NODES, added], True)
    # Its kubelet serves a CA-signed certificate: the API server fetches its pods' logs over TLS.
    flannel = kubectl(
        lab,
        "-n",
        "kube-flannel",
        "get",
        "pods",
        "-o",
        "name",
        "--field-selector",
        f"spec.nodeName={added}",
    ).split()
    assert flannel and kubectl(lab, "-n", "kube-flannel", "logs", flannel[0], "--tail=1")
