#!/usr/bin/env bash
# A single-node Kubernetes cluster from real components, with no Docker, registry or download site:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy built from
# pinned Go modules (hack/kube-binaries.sh), and Debian's containerd, runc, CNI plugins and iptables.
#
#   hack/local-cluster.sh up|down|status [NAME]      (NAME: kubetrain by default)
#
# The node lives in a network namespace of its own, reached over a veth pair: the host end carries
# the API server's address, the node end the kubelet's. Names, namespace, subnet, ports and
# directories are per cluster, so a developer's demo and a CI run do not collide; `up` and `down`
# first clear what a killed run left. See ../shared/notes/offline-kubernetes.md for the facts this
# relies on (cgroup v1 settings, the oomScoreAdj wrapper, nsenter instead of ip netns exec).
#
# On top of the node: CoreDNS for the cluster zone only (hack/local-cluster/coredns.yaml), the images
# of hack/images loaded into containerd, and GPUS fake nvidia.com/gpu on the node.
set -euo pipefail

cmd=${1:-status}
NAME=${2:-kubetrain}
[[ $NAME =~ ^[a-z][a-z0-9]{0,9}$ ]] || { echo "local-cluster: name $NAME: want 1-10 lowercase letters and digits" >&2; exit 2; }
K8S_VERSION=${K8S_VERSION:-v1.37.2}
GPUS=${GPUS:-1}
CACHE=${KUBETRAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubetrain}
DIR=${KUBETRAIN_CLUSTER_DIR:-/var/lib/kubetrain-clusters}/$NAME
HACK=$(cd "$(dirname "$0")" && pwd)

# Per-cluster addresses: a /24 out of 10.250.0.0/16, pod and service ranges likewise, from an index
# derived from the name and moved on while another cluster holds it; `up` records it in $DIR/index.
# Loopback and these namespaces are all the cluster talks to.
cluster_index() {
  [[ -f $DIR/index ]] && { cat "$DIR/index"; return 0; }
  local i=$(( $(printf '%s' "$NAME" | cksum | cut -d' ' -f1) % 200 + 10 )) n
  for ((n = 0; n < 200; n++)); do
    if ! cat "$(dirname "$DIR")"/*/index 2>/dev/null | grep -qx "$i" &&
      ! ip -o -4 addr show 2>/dev/null | grep -qF " 10.250.$i.1/"; then
      echo "$i"
      return 0
    fi
    i=$(( (i - 9) % 200 + 10 ))
  done
  echo "local-cluster: no free subnet in 10.250.0.0/16" >&2
  exit 1
}
idx=$(cluster_index)
NETNS=kt-$NAME
HOST_IF=kt-$NAME-h
NODE_IF=kt-$NAME-n
HOST_IP=10.250.$idx.1
NODE_IP=10.250.$idx.2
POD_CIDR=10.244.$idx.0/24
SERVICE_CIDR=10.96.$idx.0/24
API_SERVICE_IP=10.96.$idx.1
DNS_IP=10.96.$idx.10
ETCD_PORT=$((23000 + idx * 2))
ETCD_PEER_PORT=$((23001 + idx * 2))

log() { echo "local-cluster[$NAME]: $*" >&2; }

# --- processes, each with a pid file ------------------------------------------------------------

start() { # start NAME [nsenter] CMD...
  local name=$1; shift
  local prefix=()
  if [[ $1 == nsenter ]]; then shift; prefix=(nsenter "--net=/var/run/netns/$NETNS"); fi
  "${prefix[@]}" "$@" >"$DIR/log/$name.log" 2>&1 &
  echo $! >"$DIR/run/$name.pid"
}

# stop_containers kills the pods' containers and their shims: containerd's children outlive it.
stop_containers() {
  local sock=$DIR/containerd/containerd.sock task pid
  if [[ -S $sock ]]; then
    for task in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
  fi
  # Shims of this cluster's containerd name its socket on their command line.
  for pid in $(grep -lsF -- "$sock" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    [[ $pid == "$$" ]] || kill -9 "$pid" 2>/dev/null || true
  done
}

# drain_pods lets the kubelet stop every pod while the cluster still runs: it tears down their
# sandboxes, and with them the network namespaces containerd made for them (cni-*), which nothing
# else would remove. The controllers go first, so nothing recreates the pods.
drain_pods() {
  local f
  [[ -f $DIR/run/kubelet.pid ]] && kill -0 "$(cat "$DIR/run/kubelet.pid")" 2>/dev/null || return 0
  for f in kube-controller-manager kube-scheduler; do
    [[ -f $DIR/run/$f.pid ]] && kill "$(cat "$DIR/run/$f.pid")" 2>/dev/null || true
  done
  kubectl_ delete pods --all -A --grace-period=1 --wait=false >/dev/null 2>&1 || return 0
  for _ in $(seq 1 30); do
    [[ -z $(kubectl_ get pods -A --no-headers 2>/dev/null) ]] && return 0
    sleep 1
  done
}

stop_all() {
  local f pid
  drain_pods
  stop_containers
  for f in "$DIR"/run/*.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  done
  sleep 2
  for f in "$DIR"/run/*.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$f"
  done
}

# --- certificates ---------------------------------------------------------------------------------

cert() { # cert NAME CN [O] [SANs]
  local name=$1 cn=$2 org=${3:-} sans=${4:-}
  local subj="/CN=$cn"
  [[ -n $org ]] && subj="/O=$org$subj"
  [[ -f $DIR/pki/$name.crt ]] && return 0
  openssl req -newkey rsa:2048 -nodes -keyout "$DIR/pki/$name.key" -subj "$subj" -out "$DIR/pki/$name.csr" 2>/dev/null
  local ext="$DIR/pki/$name.ext"
  echo "basicConstraints=CA:FALSE" >"$ext"
  echo "keyUsage=digitalSignature,keyEncipherment" >>"$ext"
  echo "extendedKeyUsage=serverAuth,clientAuth" >>"$ext"
  [[ -n $sans ]] && echo "subjectAltName=$sans" >>"$ext"
  openssl x509 -req -in "$DIR/pki/$name.csr" -CA "$DIR/pki/ca.crt" -CAkey "$DIR/pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$DIR/pki/$name.crt" 2>/dev/null
}

kubeconfig() { # kubeconfig NAME SERVER
  local name=$1 server=$2
  cat >"$DIR/$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: $NAME
  cluster:
    certificate-authority: $DIR/pki/ca.crt
    server: $server
users:
- name: $name
  user:
    client-certificate: $DIR/pki/$name.crt
    client-key: $DIR/pki/$name.key
contexts:
- name: $name
  context: {cluster: $NAME, user: $name}
current-context: $name
KC
}

pki() {
  mkdir -p "$DIR/pki"
  if [[ ! -f $DIR/pki/ca.crt ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$DIR/pki/ca.key" -out "$DIR/pki/ca.crt" \
      -subj "/CN=kubetrain-$NAME-ca" 2>/dev/null
    openssl genrsa -out "$DIR/pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$DIR/pki/sa.key" -pubout -out "$DIR/pki/sa.pub" 2>/dev/null
  fi
  cert apiserver kube-apiserver "" "IP:$HOST_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin kubernetes-admin system:masters
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kubelet "system:node:$NAME" system:nodes "IP:$NODE_IP,DNS:$NAME"
  cert kube-proxy system:kube-proxy
  local server=https://$HOST_IP:6443
  for k in admin controller-manager scheduler kubelet kube-proxy; do kubeconfig "$k" "$server"; done
}

# --- network --------------------------------------------------------------------------------------

net_up() {
  ip netns add "$NETNS" 2>/dev/null || true
  if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
    ip link add "$HOST_IF" type veth peer name "$NODE_IF"
    ip link set "$NODE_IF" netns "$NETNS"
    ip addr add "$HOST_IP/24" dev "$HOST_IF"
    ip link set "$HOST_IF" up
    ip netns exec "$NETNS" ip addr add "$NODE_IP/24" dev "$NODE_IF"
    ip netns exec "$NETNS" ip link set "$NODE_IF" up
    ip netns exec "$NETNS" ip link set lo up
    ip netns exec "$NETNS" ip route add default via "$HOST_IP"
  fi
  ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$NETNS" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
}

net_down() {
  ip link del "$HOST_IF" 2>/dev/null || true
  ip netns del "$NETNS" 2>/dev/null || true
}

# --- node runtime ---------------------------------------------------------------------------------

containerd_config() {
  mkdir -p "$DIR/containerd" "$DIR/cni/net.d" "$DIR/bin"
  # runc fails to set a negative oomScoreAdj without CAP_SYS_RESOURCE: raise it to 0 first.
  cat >"$DIR/bin/runc" <<'WRAP'
#!/usr/bin/env bash
bundle=
for ((i = 1; i <= $#; i++)); do
  if [[ ${!i} == --bundle || ${!i} == -b ]]; then j=$((i + 1)); bundle=${!j}; fi
done
if [[ -n $bundle && -f $bundle/config.json ]]; then
  python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
if c.get("process", {}).get("oomScoreAdj", 0) < 0:
    c["process"]["oomScoreAdj"] = 0
    json.dump(c, open(p, "w"))
PY
fi
exec /usr/sbin/runc "$@"
WRAP
  chmod +x "$DIR/bin/runc"
  cat >"$DIR/containerd/config.toml" <<TOML
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
[grpc]
  address = "$DIR/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # The pods' network namespaces under this cluster's directory, where down finds them even after
  # a crash, rather than among every cluster's in /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$DIR/bin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
TOML
  cat >"$DIR/cni/net.d/10-bridge.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "kubetrain",
  "plugins": [
    {"type": "bridge", "bridge": "kt0", "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "dataDir": "$DIR/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
}

kubelet_config() {
  cat >"$DIR/kubelet.yaml" <<KCFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /kubetrain-$NAME
podLogsDir: $DIR/pod-logs
containerRuntimeEndpoint: unix://$DIR/containerd/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $DIR/pki/kubelet.crt
tlsPrivateKeyFile: $DIR/pki/kubelet.key
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
failSwapOn: false
resolvConf: /etc/resolv.conf
enforceNodeAllocatable: []
cgroupsPerQOS: true
podCIDR: $POD_CIDR
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
serializeImagePulls: false
KCFG
}

# --- up, down, status ------------------------------------------------------------------------------

up() {
  [[ $(id -u) -eq 0 ]] || { log "must run as root (network namespaces, containerd)"; exit 1; }
  local need=()
  for pkg in containerd runc containernetworking-plugins iptables conntrack openssl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [[ ${#need[@]} -gt 0 ]]; then
    log "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  local assets bin
  assets=$("$HACK/kube-binaries.sh" envtest)
  bin=$("$HACK/kube-binaries.sh" kubelet kube-scheduler kube-controller-manager kube-proxy)
  # A fresh cluster every time: state left in etcd (a node that was Ready) would mislead the waits.
  down_quiet
  rm -rf "$DIR"
  mkdir -p "$DIR/log" "$DIR/run" "$DIR/etcd"
  echo "$idx" >"$DIR/index"
  # The images, built without Docker while the control plane starts; pods use them with
  # imagePullPolicy IfNotPresent.
  (cd "$HACK/.." && exec go run ./hack/images -sandbox -s3 -dns -out "$DIR/images") >"$DIR/log/images.log" 2>&1 &
  local images=$!
  pki
  net_up
  containerd_config
  kubelet_config

  start etcd "$assets/etcd" --data-dir "$DIR/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync
  start kube-apiserver "$assets/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$HOST_IP" --advertise-address "$HOST_IP" --secure-port 6443 \
    --service-cluster-ip-range "$SERVICE_CIDR" --client-ca-file "$DIR/pki/ca.crt" \
    --tls-cert-file "$DIR/pki/apiserver.crt" --tls-private-key-file "$DIR/pki/apiserver.key" \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file "$DIR/pki/sa.pub" --service-account-signing-key-file "$DIR/pki/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$DIR/pki/apiserver-kubelet-client.crt" --kubelet-client-key "$DIR/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$DIR/pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --allow-privileged=true
  wait_for "the API server" kubectl_ get --raw /readyz
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --service-account-private-key-file "$DIR/pki/sa.key" --root-ca-file "$DIR/pki/ca.crt" \
    --use-service-account-credentials --leader-elect=false --controllers '*,-nodeipam' --bind-address "$HOST_IP"
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$DIR/scheduler.kubeconfig" --leader-elect=false \
    --bind-address "$HOST_IP"
  # The kubelet's cgroup root, one per cluster, in every v1 hierarchy.
  for h in /sys/fs/cgroup/*/; do
    [[ $h == */unified/ ]] || mkdir -p "$h/kubetrain-$NAME"
  done
  start containerd nsenter containerd --config "$DIR/containerd/config.toml"
  wait_for "containerd" test -S "$DIR/containerd/containerd.sock"
  wait "$images" || { log "building the images failed: $DIR/log/images.log"; cat "$DIR/log/images.log" >&2; exit 1; }
  for tarball in "$DIR"/images/*.tar; do
    ctr --address "$DIR/containerd/containerd.sock" -n k8s.io images import "$tarball" >/dev/null
  done
  start kubelet nsenter "$bin/kubelet" --config "$DIR/kubelet.yaml" --kubeconfig "$DIR/kubelet.kubeconfig" \
    --root-dir "$DIR/kubelet" --cert-dir "$DIR/pki" --node-ip "$NODE_IP" --hostname-override "$NAME"
  start kube-proxy nsenter "$bin/kube-proxy" --kubeconfig "$DIR/kube-proxy.kubeconfig" --hostname-override "$NAME" \
    --cluster-cidr "$POD_CIDR" --proxy-mode iptables --conntrack-max-per-core 0
  wait_for "node $NAME to be Ready" kubectl_ wait --for=condition=Ready "node/$NAME" --timeout=5s
  # GPUs on a GPU-less node: advertise them, as GPU scheduling tests usually do.
  kubectl_ patch node "$NAME" --subresource=status --type=merge \
    -p "{\"status\":{\"capacity\":{\"nvidia.com/gpu\":\"$GPUS\"}}}" >/dev/null
  sed "s/DNS_SERVICE_IP/$DNS_IP/" "$HACK/local-cluster/coredns.yaml" | kubectl_ apply -f - >/dev/null
  kubectl_ -n kube-system rollout status deploy/coredns --timeout=120s >/dev/null
  log "up: export KUBECONFIG=$DIR/admin.kubeconfig"
}

kubectl_() { "$CACHE/envtest-$K8S_VERSION-etcd-${ETCD_VERSION:-v3.6.16}/kubectl" --kubeconfig "$DIR/admin.kubeconfig" "$@"; }

wait_for() { # wait_for WHAT CMD...
  local what=$1; shift
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "timed out waiting for $what; logs in $DIR/log"
  exit 1
}

down_quiet() {
  [[ -d $DIR ]] || { net_down; return 0; }
  stop_all
  # Containers whose shim was killed with the rest (a crashed run) live on in the pods' cgroups.
  local procs pid
  mapfile -t procs < <(find /sys/fs/cgroup/*/kubetrain-"$NAME" -name cgroup.procs 2>/dev/null)
  if [[ ${#procs[@]} -gt 0 ]]; then
    for pid in $(cat "${procs[@]}"); do kill -9 "$pid" 2>/dev/null || true; done
    # Until they are gone (or 5 s), so that their cgroups can be removed below.
    for _ in $(seq 1 50); do [[ -z $(cat "${procs[@]}" 2>/dev/null) ]] && break; sleep 0.1; done
  fi
  # Pods' sandboxes and mounts that containerd and the kubelet leave behind.
  { grep -o " $DIR/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  net_down
  # The cgroups the kubelet made, deepest first, once their processes are gone.
  find /sys/fs/cgroup/*/kubetrain-"$NAME" -depth -type d -exec rmdir {} \; 2>/dev/null || true
}

down() {
  down_quiet
  rm -rf "$DIR"
  log "down"
}

status() {
  local f pid
  [[ -d $DIR/run ]] || { echo "$NAME: not running"; return 0; }
  for f in "$DIR"/run/*.pid; do
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then echo "$(basename "$f" .pid): running ($pid)"; else echo "$(basename "$f" .pid): stopped"; fi
  done
  kubectl_ get nodes 2>/dev/null || true
}

# env prints the cluster's coordinates for scripts: eval "$(hack/local-cluster.sh env)".
env_() {
  echo "export KUBECONFIG=$DIR/admin.kubeconfig"
  echo "KUBECTL=$CACHE/envtest-$K8S_VERSION-etcd-${ETCD_VERSION:-v3.6.16}/kubectl"
  echo "NODE_IP=$NODE_IP"
}

case $cmd in
env) env_ ;;
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|down|status|env [NAME]" >&2; exit 2 ;;
esac
