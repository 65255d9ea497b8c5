#!/usr/bin/python
# ruff: noqa: E402, E501 - Ansible module layout: DOCUMENTATION before the imports, YAML docs lines
# Copyright: m2mcloud contributors
# Apache-2.0
"""One lab VM: its qcow2 overlay, its keys and a daemonized qemu (start, clean poweroff, removal)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lab_vm_node
short_description: Create, start, power off or remove one qemu VM of the m2mcloud lab
description:
  - Keeps everything of one VM in I(node_dir) - the qcow2 overlay on the base image, its SSH host key
    (handed to the guest through qemu's fw_cfg, so Ansible can pin it before the first login), the
    qemu pidfile, QMP socket, serial console log and the SSH port forward it was given.
  - C(running) creates what is missing and starts qemu daemonized under nice; a VM that runs already
    is left alone (changed=false). C(stopped) powers the guest off over QMP (ACPI power button),
    waiting I(stop_timeout) seconds before quitting qemu. C(absent) stops it and deletes I(node_dir).
  - The guest's identity (hostname, machine-id, addresses, routes, authorized key) goes on the kernel
    command line; the base image applies it at every boot (files/m2m-vm-config).
options:
  name: {description: VM name (qemu -name and process name)., type: str, required: true}
  hostname: {description: Hostname of the guest (the inventory name)., type: str, required: true}
  state: {description: What the VM should be., type: str, default: running, choices: [running, stopped, absent]}
  node_dir: {description: The VM's own directory., type: path, required: true}
  image_dir: {description: Base image directory (root.raw, vmlinux, initrd.img)., type: path}
  accel: {description: kvm, or tcg (emulation)., type: str, default: tcg, choices: [kvm, tcg]}
  cpus: {description: Virtual CPUs., type: int, default: 2}
  memory_mb: {description: Guest memory in MiB., type: int, default: 2048}
  nice: {description: Niceness of the qemu process., type: int, default: 10}
  lab_ip: {description: Address on the lab network in CIDR notation., type: str}
  lab_gateway: {description: Default gateway on the lab network., type: str}
  mcast: {description: "Multicast group:port of the lab network (qemu socket netdev on 127.0.0.1).", type: str}
  seed: {description: Makes MAC addresses, machine-id and product UUID unique per lab and node., type: str, default: ""}
  authorized_key: {description: Public key allowed to log in as admin and root., type: str}
  mirror_hosts: {description: Host names the guest reaches through qemu's user network (the apt mirror)., type: list, elements: str, default: []}
  swap_mb: {description: Size of the swap file made at first boot (0 - none)., type: int, default: 0}
  forwards: {description: Guest TCP ports to forward from 127.0.0.1 besides SSH (e.g. 6443 for the API server)., type: list, elements: int, default: []}
  stop_timeout: {description: Seconds a clean poweroff may take before qemu is told to quit., type: int, default: 90}
  wait: {description: "With state stopped: wait until qemu is gone (false - only press the power button, so that several VMs power off at once).", type: bool, default: true}
"""

RETURN = r"""
ssh_port: {description: Port on 127.0.0.1 forwarded to the guest's sshd., type: int, returned: state is running}
forwards: {description: "Every forward, guest port -> port on 127.0.0.1 (22 and the forwards asked for).", type: dict, returned: state is running}
host_key: {description: Public SSH host key of the guest., type: str, returned: state is running}
pid: {description: qemu's pid., type: int, returned: state is running}
created: {description: Whether the overlay was created by this call., type: bool, returned: always}
started: {description: Whether qemu was started by this call., type: bool, returned: always}
console_log: {description: The guest's serial console log., type: str, returned: always}
stopped_by: {description: How a running VM was stopped (powerdown, quit, kill)., type: str, returned: when stopped}
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

PIDFILE = "qemu.pid"
QMP = "qmp.sock"
CONSOLE = "console.log"
DISK = "disk.qcow2"
HOSTKEY = "ssh_host_ed25519_key"
PORTFILE = "ports.json"
IMAGEFILE = "image"
IPFILE = "lab_ip"


def _derive(seed: str, what: str) -> bytes:
    return hashlib.sha256(f"{seed}/{what}".encode()).digest()


def _mac(seed: str, what: str) -> str:
    d = _derive(seed, what)
    return "52:54:00:%02x:%02x:%02x" % (d[0], d[1], d[2])


def _uuid(seed: str, name: str) -> str:
    h = _derive(seed, name + "/uuid").hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _alive(pid: int) -> bool:
    """A zombie counts as gone: PID 1 of this machine need not reap the daemonized qemu."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Node:
    def __init__(self, module: AnsibleModule) -> None:
        self.m = module
        self.p = module.params
        self.dir = os.path.realpath(self.p["node_dir"])
        self.name = self.p["name"]
        self.seed = self.p["seed"] or self.dir

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- process ---------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of this VM's qemu if it runs."""
        try:
            with open(self.path(PIDFILE)) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            return None
        try:  # qemu -daemonize moves to /: its own pidfile on its command line identifies it
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if self.path(PIDFILE).encode() not in f.read().split(b"\0"):
                    return None
        except OSError:
            return None
        return pid

    def qmp(self, *commands: str) -> None:
        """Send QMP commands on the VM's socket (relative path: unix socket paths are short)."""
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(QMP)
                f = s.makefile("rw")
                f.readline()  # greeting
                for cmd in ("qmp_capabilities", *commands):
                    f.write(json.dumps({"execute": cmd}) + "\n")
                    f.flush()
                    while True:  # skip events until the command's answer
                        line = f.readline()
                        if not line:
                            return
                        reply = json.loads(line)
                        if "return" in reply or "error" in reply:
                            break
        finally:
            os.chdir(cwd)

    def wait_gone(self, pid: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not _alive(pid):
                return True
            time.sleep(0.5)
        return not _alive(pid)

    def stop(self, pid: int) -> str:
        try:
            self.qmp("system_powerdown")
            if self.wait_gone(pid, self.p["stop_timeout"]):
                return "powerdown"
        except (OSError, ValueError):
            pass
        try:
            self.qmp("quit")
            if self.wait_gone(pid, 10):
                return "quit"
        except (OSError, ValueError):
            pass
        os.kill(pid, signal.SIGKILL)
        self.wait_gone(pid, 10)
        return "kill"

    # -- creation --------------------------------------------------------------------------------
    def create(self) -> bool:
        if os.path.exists(self.path(DISK)):
            return False
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        if not os.path.exists(self.path(HOSTKEY)):
            self.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.p["hostname"], "-f", self.path(HOSTKEY)])
        image = os.path.join(self.p["image_dir"], "root.raw")
        tmp = self.path(DISK + ".tmp")
        self.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image, tmp])
        os.rename(tmp, self.path(DISK))
        with open(self.path(IMAGEFILE), "w") as f:
            f.write(self.p["image_dir"] + "\n")
        return True

    def check_ip(self) -> None:
        """The address a VM was created with stays (a guest keeps it); warn when the node list moved it."""
        try:
            with open(self.path(IPFILE)) as f:
                had = f.read().strip()
        except OSError:
            had = ""
        if had and had != self.p["lab_ip"]:
            self.m.fail_json(
                msg=f"{self.name} was created with lab address {had}, and the node list now gives it "
                f"{self.p['lab_ip']} (addresses follow the order of lab_nodes): keep the order and add new "
                "nodes at the end, or remove the lab (state=absent) and create it again."
            )
        if not had:
            with open(self.path(IPFILE), "w") as f:
                f.write(self.p["lab_ip"] + "\n")

    def run(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, capture_output=True, text=True, **kw)
        if proc.returncode != 0:
            self.m.fail_json(
                msg=f"{self.name}: `{' '.join(argv)}` failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}",
                console_log=self.path(CONSOLE),
            )
        return proc

    # -- start -----------------------------------------------------------------------------------
    def recorded_ports(self) -> dict[int, int]:
        try:
            with open(self.path(PORTFILE)) as f:
                return {int(k): int(v) for k, v in json.load(f).items()}
        except (OSError, ValueError):
            return {}

    def choose_ports(self, avoid: set[int]) -> dict[int, int]:
        """A free port on 127.0.0.1 per forwarded guest port; the ones used before when still free."""
        had = self.recorded_ports()
        ports: dict[int, int] = {}
        for guest in [22, *self.p["forwards"]]:
            for candidate in (had.get(guest, 0), 0, 0, 0):
                if candidate and (candidate in avoid or candidate in ports.values()):
                    continue
                with socket.socket() as s:
                    try:
                        s.bind(("127.0.0.1", candidate))
                    except OSError:
                        continue
                    got = int(s.getsockname()[1])
                if got not in avoid and got not in ports.values():
                    ports[guest] = got
                    break
            else:
                self.m.fail_json(msg=f"{self.name}: no free port on 127.0.0.1 to forward guest port {guest}")
        return ports

    def resolve(self) -> list[tuple[str, str]]:
        entries = []
        for host in self.p["mirror_hosts"]:
            try:
                infos = socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:
                self.m.fail_json(
                    msg=f"{self.name}: the apt mirror host {host} does not resolve on this machine ({exc}); "
                    "the VMs reach the mirror through this machine. Set lab_vm_mirror to a mirror it can reach."
                )
            for ip in sorted({str(i[4][0]) for i in infos}):
                entries.append((host, ip))
        return entries

    def kernel_args(self) -> str:
        p = self.p
        mirrors = self.resolve()
        key = base64.b64encode(p["authorized_key"].strip().encode()).decode()
        args = [
            "root=/dev/vda", "rw", "console=ttyS0", "quiet", "mitigations=off",
            f"systemd.hostname={p['hostname']}",
            f"systemd.machine_id={_derive(self.seed, self.name + '/machine-id').hex()[:32]}",
            f"m2m_vm.lab_mac={_mac(self.seed, self.name + '/lab')}",
            f"m2m_vm.lab_ip={p['lab_ip']}",
            f"m2m_vm.user_mac={_mac(self.seed, self.name + '/user')}",
            f"m2m_vm.key={key}",
            f"m2m_vm.swap_mb={p['swap_mb']}",
        ]
        if p["lab_gateway"]:
            args.append(f"m2m_vm.lab_gw={p['lab_gateway']}")
        if mirrors:
            args.append("m2m_vm.routes=" + ",".join(sorted({ip for _, ip in mirrors})))
            args.append("m2m_vm.hosts=" + ",".join(f"{h}:{ip}" for h, ip in mirrors))
        if p["accel"] == "tcg":
            # Under emulation the TSC is a cheap helper call, HPET an emulated device (kernel 24 s -> 6 s).
            args += ["clocksource=tsc", "tsc=reliable"]
        return " ".join(args)

    def qemu_argv(self, ports: dict[int, int]) -> list[str]:
        p = self.p
        img = p["image_dir"]
        accel = (["-accel", "kvm", "-cpu", "host"] if p["accel"] == "kvm"
                 else ["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"])
        return [
            "nice", "-n", str(p["nice"]),
            "qemu-system-x86_64",
            "-name", f"{self.name},process={self.name}",
            "-machine", "q35", *accel,
            "-smp", str(p["cpus"]), "-m", str(p["memory_mb"]),
            "-uuid", _uuid(self.seed, self.name),
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
            "-kernel", os.path.join(img, "vmlinux"),
            "-initrd", os.path.join(img, "initrd.img"),
            "-append", self.kernel_args(),
            "-drive", f"file={self.path(DISK)},if=virtio,format=qcow2,discard=unmap",
            "-netdev", "user,id=user0," + ",".join(f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in ports.items()),
            "-device", f"virtio-net-pci,netdev=user0,mac={_mac(self.seed, self.name + '/user')},romfile=",
            "-netdev", f"socket,id=lab0,mcast={p['mcast']},localaddr=127.0.0.1",
            "-device", f"virtio-net-pci,netdev=lab0,mac={_mac(self.seed, self.name + '/lab')},romfile=",
            "-device", "virtio-rng-pci",
            "-fw_cfg", f"name=opt/m2m-vm/ssh_host_ed25519_key,file={self.path(HOSTKEY)}",
            "-chardev", f"file,id=console,path={self.path(CONSOLE)},append=on",
            "-serial", "chardev:console",
            "-qmp", f"unix:{QMP},server=on,wait=off",
            "-pidfile", self.path(PIDFILE),
            "-daemonize",
        ]

    def start(self) -> dict[int, int]:
        tried: set[int] = set()
        for _ in range(3):
            ports = self.choose_ports(tried)
            tried.update(ports.values())
            argv = self.qemu_argv(ports)
            with open(self.path("qemu.argv"), "w") as f:
                f.write(json.dumps(argv, indent=1) + "\n")
            proc = subprocess.run(argv, cwd=self.dir, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode == 0:
                with open(self.path(PORTFILE), "w") as f:
                    json.dump({str(k): v for k, v in ports.items()}, f)
                pid = self.pid()
                if pid is not None:
                    return ports
                self.m.fail_json(msg=f"{self.name}: qemu started but is gone; see {self.path(CONSOLE)}",
                                 console_log=self.path(CONSOLE))
            if "host forwarding" not in proc.stderr:
                break
        self.m.fail_json(
            msg=f"{self.name}: qemu did not start (exit {proc.returncode}): {proc.stderr.strip()}",
            argv=argv,
        )
        raise AssertionError

    def result(self, **kw: Any) -> dict[str, Any]:
        res: dict[str, Any] = {"console_log": self.path(CONSOLE), "created": False, "started": False}
        res.update(kw)
        return res


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "hostname": {"type": "str", "required": True},
            "state": {"type": "str", "default": "running", "choices": ["running", "stopped", "absent"]},
            "node_dir": {"type": "path", "required": True},
            "image_dir": {"type": "path"},
            "accel": {"type": "str", "default": "tcg", "choices": ["kvm", "tcg"]},
            "cpus": {"type": "int", "default": 2},
            "memory_mb": {"type": "int", "default": 2048},
            "nice": {"type": "int", "default": 10},
            "lab_ip": {"type": "str"},
            "lab_gateway": {"type": "str"},
            "mcast": {"type": "str"},
            "seed": {"type": "str", "default": ""},
            "authorized_key": {"type": "str", "no_log": False},
            "mirror_hosts": {"type": "list", "elements": "str", "default": []},
            "swap_mb": {"type": "int", "default": 0},
            "forwards": {"type": "list", "elements": "int", "default": []},
            "stop_timeout": {"type": "int", "default": 90},
            "wait": {"type": "bool", "default": True},
        },
        required_if=[("state", "running", ["image_dir", "lab_ip", "mcast", "authorized_key"])],
        supports_check_mode=True,
    )
    node = Node(module)
    state = module.params["state"]
    pid = node.pid()

    if state in ("stopped", "absent"):
        exists = os.path.isdir(node.dir)
        if module.check_mode:
            module.exit_json(changed=pid is not None or (state == "absent" and exists), **node.result())
        res = node.result()
        if pid is not None and state == "stopped" and not module.params["wait"]:
            try:
                node.qmp("system_powerdown")
            except (OSError, ValueError) as exc:
                module.warn(f"{node.name}: the power button did not answer ({exc}); it is stopped when waited for")
            module.exit_json(changed=True, stopped_by="powerdown requested", **res)
        if pid is not None:
            res["stopped_by"] = node.stop(pid)
        if state == "absent" and exists:
            shutil.rmtree(node.dir)
        module.exit_json(changed=pid is not None or (state == "absent" and exists), **res)

    if os.path.isdir(node.dir):
        node.check_ip()
    if pid is not None:
        res = node.result(pid=pid)
        ports = node.recorded_ports()
        if sorted(ports) != sorted([22, *module.params["forwards"]]):
            module.warn(f"{node.name} runs with the forwards {sorted(ports)}, not {sorted([22, *module.params['forwards']])}: "
                        "stop it (state=stopped) and start it again to change them.")
        res["ssh_port"] = ports[22]
        res["forwards"] = ports
        with open(node.path(HOSTKEY + ".pub")) as f:
            res["host_key"] = " ".join(f.read().split()[:2])
        try:
            with open(node.path(IMAGEFILE)) as f:
                if f.read().strip() != module.params["image_dir"]:
                    module.warn(f"{node.name} runs on an older base image; recreate it to use the new one "
                                "(playbooks/lab.yml -e lab_driver=vm -e state=absent, then again without).")
        except OSError:
            pass
        module.exit_json(changed=False, **res)

    if module.check_mode:
        module.exit_json(changed=True, **node.result(created=not os.path.exists(node.path(DISK)), started=True))
    created = node.create()
    node.check_ip()
    ports = node.start()
    with open(node.path(HOSTKEY + ".pub")) as f:
        host_key = " ".join(f.read().split()[:2])
    module.exit_json(changed=True, **node.result(created=created, started=True, ssh_port=ports[22], forwards=ports,
                                                 host_key=host_key, pid=node.pid()))


if __name__ == "__main__":
    main()
