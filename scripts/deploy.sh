#!/usr/bin/env bash
# The main job (README's first command): the whole platform on this machine's embedded lab, through
# the same `m2mcloud` CLI (ansible-runner) an operator uses on real machines:
#   1. what Ansible and the lab need (scripts/install-deps.sh),
#   2. the offline bundle (playbooks/bundle.yml: kubeadm, kubelet, images... built from the Go module
#      proxy; ~34 min the first time on 2 cores, seconds once cached in ~/.cache/m2mcloud/bundle),
#   3. the lab nodes (playbooks/lab.yml; M2M_LAB_DRIVER=vm for qemu VMs with real NFS),
#   4. site.yml on them (cluster, storage, add-ons, broker, database, CSE, HPA),
# then prints where the platform answers. Re-running it changes nothing that is already right.
# Other targets: M2M_INVENTORY=inventory/<site> skips the lab and deploys onto real machines.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export PATH=$PWD/.venv/bin:$PATH

inventory=${M2M_INVENTORY:-}
if [[ -z $inventory ]]; then
  m2mcloud bundle
  m2mcloud lab up --driver "${M2M_LAB_DRIVER:-container}"
  m2mcloud deploy
else
  m2mcloud deploy -i "$inventory"
fi

status=$(mktemp)
trap 'rm -f "$status"' EXIT
m2mcloud status ${inventory:+-i "$inventory"} --json >"$status"
python3 - "$status" <<'PY'
import json, sys
status = json.load(open(sys.argv[1]))
node = next((n["address"] for n in status["nodes"] if n["ready"]), None)
if node is None:
    sys.exit("no Ready node in `m2mcloud status`: the cluster is not healthy, see the run's log above")
cse = next((d for d in status["deployments"] if d["name"] == "cse"), None)
print(f"==> {len(status['nodes'])} nodes Ready; CSE replicas ready: {cse['ready'] if cse else 'none'}")
print(f"==> kubeconfig: {status['kubeconfig']}")
from kubernetes import client, config  # the node ports as deployed (inventory may change them)
config.load_kube_config(status["kubeconfig"])
for svc in client.CoreV1Api().list_service_for_all_namespaces(label_selector="app.kubernetes.io/part-of=m2mcloud").items:
    for port in svc.spec.ports or []:
        if port.node_port:
            print(f"==> {svc.metadata.namespace}/{svc.metadata.name} ({port.name}): {node}:{port.node_port}")
print("==> CSE admin originator CAdmin, CSEBase /cse-in; MQTT users in Secret m2m/mqtt-broker-credentials")
print("==> the flood and the autoscaler: m2mcloud load   (docs/apps.md)")
PY
