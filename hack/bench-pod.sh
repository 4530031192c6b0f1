#!/usr/bin/env bash
# The trainer in a pod of the local cluster against the same binary on the host, at the same thread
# count, so that what running in a pod costs shows: the CPU request without a limit (as the operator
# creates workers), a CFS limit, the pod's cgroup. Same data (the built-in synthetic CIFAR-10-shaped
# set), seed and epochs on both sides; each figure is the median images/s over RUNS runs x EPOCHS
# epochs, the two sides taking turns so that a change in the machine's load hits both.
#
#   hack/bench-pod.sh                        # brings the cluster "bench" up, and down at the end
#   BENCH_CLUSTER=NAME BENCH_KEEP_CLUSTER=1  # another cluster name; leave it up
#   RUNS=3 EPOCHS=3                          # runs per figure, epochs per run
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${BENCH_CLUSTER:-bench}
RUNS=${RUNS:-3}
EPOCHS=${EPOCHS:-3}
NS=kubetrain-bench
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  [[ -n ${BENCH_KEEP_CLUSTER:-} ]] || hack/local-cluster.sh down "$NAME"
}
trap cleanup EXIT

hack/local-cluster.sh up "$NAME"
eval "$(hack/local-cluster.sh env "$NAME")"
k() { "$KUBECTL" "$@"; }

# The host's binary is built as hack/images builds the image's (Go builds are reproducible).
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/trainer" ./trainer/cmd/trainer
args=(--dataset=synthetic://cifar10 --epochs="$EPOCHS" --seed=1 --log-format=json)

# images_per_second of every epoch line on stdin, one a line.
ips() { sed -n 's/.*"images_per_second":\([0-9.e+]*\).*/\1/p'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

host() { # host THREADS
  mkdir -p "$work/scratch"
  "$work/trainer" "${args[@]}" --threads="$1" --scratch-dir="$work/scratch" | ips
}

pod() { # pod THREADS REQUEST [LIMIT]
  local threads=$1 request=$2 limit=${3:-} name=bench-$RANDOM
  local limits=""
  [[ -n $limit ]] && limits="limits: {cpu: \"$limit\", memory: 1Gi}"
  k apply -n "$NS" -f - >/dev/null <<POD
apiVersion: v1
kind: Pod
metadata: {name: $name}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: trainer
    image: kubetrain/trainer:dev
    imagePullPolicy: Never
    args: [$(printf '"%s", ' "${args[@]}")"--threads=$threads", "--scratch-dir=/scratch"]
    resources:
      requests: {cpu: "$request", memory: 512Mi}
      $limits
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {sizeLimit: 1Gi}}]
POD
  k wait -n "$NS" --for=jsonpath='{.status.phase}'=Succeeded "pod/$name" --timeout=600s >/dev/null
  k logs -n "$NS" "$name" | ips
  k delete -n "$NS" pod "$name" --wait=false >/dev/null
}

k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
k label namespace "$NS" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
k wait -n "$NS" --for=jsonpath='{.metadata.name}'=default serviceaccount/default --timeout=60s >/dev/null

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs; kernel $("$work/trainer" --help 2>&1 | grep -o 'picks the fastest ([a-z0-9]*)' | tr -d '()' | cut -d' ' -f4)"
echo "node allocatable CPU: $(k get nodes -o jsonpath='{.items[0].status.allocatable.cpu}')"
printf '%-44s %10s %10s %8s\n' case host pod pod/host
fail=0
# case: name, threads, request, limit
while IFS=, read -r what threads request limit; do
  : >"$work/h"
  : >"$work/p"
  for _ in $(seq "$RUNS"); do
    host "$threads" >>"$work/h"
    pod "$threads" "$request" "$limit" >>"$work/p"
  done
  h=$(median <"$work/h")
  p=$(median <"$work/p")
  ratio=$(awk -v p="$p" -v h="$h" 'BEGIN { printf "%.3f", p / h }')
  printf '%-44s %10.0f %10.0f %8s\n' "$what" "$h" "$p" "$ratio"
  awk -v r="$ratio" 'BEGIN { exit !(r < 0.9) }' && fail=1
done <<CASES
1 thread; request 1 CPU; no limit,1,1,
1 thread; request 1 CPU; CFS limit 1 CPU,1,1,1
2 threads; request 1.5 CPU; CFS limit 2 CPUs,2,1500m,2
CASES
if [[ $fail == 1 ]]; then
  echo "bench-pod: the pod is more than 10% slower than the host in some case" >&2
  exit 1
fi
