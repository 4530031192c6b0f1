#!/usr/bin/env bash
# Data-parallel scaling of the trainer: 1, 2 and 4 trainer processes on loopback at 1 thread each,
# training Fashion-MNIST (Debian's dataset-fashion-mnist) for one epoch, at a per-worker batch of
# 32 (weak scaling: the global batch grows with the workers, as data-parallel training is usually
# reported) and at a fixed global batch of 64 (strong scaling). Each figure is the median of RUNS
# runs, the configurations taking turns so that a change in the machine's load hits all of them.
# Then the collective's bus bandwidth, 2(n-1)/n x bytes / time, for a gradient of the reference
# model, next to plain TCP streams carrying the same traffic over the same connections on the same
# machine, one process per rank (BenchmarkProcesses in trainer/collective), and the ceiling those
# streams put on weak scaling: n x t / (t + tcp), where t is one worker's time for a batch of 32 and
# tcp the plain streams' time to carry one all-reduce's bytes. With one worker per core no core is
# left to copy bytes while the others compute, so no fp32 all-reduce over TCP can do better.
#
#   hack/bench-ddp.sh            # RUNS=3
#   REPORT=FILE                  # also write the report there
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

hack/install-deps.sh dataset-fashion-mnist >/dev/null
data=/usr/share/datasets/fashion-mnist
CGO_ENABLED=0 go build -trimpath -o "$work/trainer" ./trainer/cmd/trainer

# A free loopback port for rank 0.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# run WORKERS BATCH: images/s of one epoch, as rank 0 reports it (all workers' images).
run() {
  local n=$1 batch=$2 rendezvous
  rendezvous=127.0.0.1:$(port)
  pids=()
  for ((r = 1; r < n; r++)); do
    KUBETRAIN_RANK=$r KUBETRAIN_WORLD_SIZE=$n KUBETRAIN_RENDEZVOUS=$rendezvous KUBETRAIN_TERMINATION_LOG=/dev/null \
      "$work/trainer" --dataset="file://$data" --dataset-format=idx --epochs=1 --batch-size="$batch" --threads=1 \
      --seed=1 --scratch-dir="$work" >"$work/rank$r.out" 2>"$work/rank$r.err" &
    pids+=($!)
  done
  KUBETRAIN_RANK=0 KUBETRAIN_WORLD_SIZE=$n KUBETRAIN_RENDEZVOUS=$rendezvous KUBETRAIN_TERMINATION_LOG=/dev/null \
    "$work/trainer" --dataset="file://$data" --dataset-format=idx --epochs=1 --batch-size="$batch" --threads=1 \
    --seed=1 --scratch-dir="$work" --log-format=json 2>"$work/rank0.err" |
    sed -n 's/.*"images_per_second":\([0-9.e+]*\).*/\1/p' | head -1
  for p in "${pids[@]}"; do wait "$p" || { echo "a worker failed:" >&2; cat "$work"/rank*.err >&2; exit 1; }; done
  pids=()
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A results
for ((i = 1; i <= RUNS; i++)); do
  for n in 1 2 4; do
    results[weak$n]+="$(run "$n" $((32 * n))) "
    results[strong$n]+="$(run "$n" 64) "
  done
done

report() {
  echo "# bench-ddp: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), median of $RUNS runs"
  echo
  echo "| workers | weak scaling (batch 32 per worker): images/s | speed-up | efficiency | strong scaling (global batch 64): images/s | speed-up | efficiency |"
  echo "|---|---|---|---|---|---|---|"
  local w1 s1
  w1=$(tr ' ' '\n' <<<"${results[weak1]}" | median)
  s1=$(tr ' ' '\n' <<<"${results[strong1]}" | median)
  for n in 1 2 4; do
    local w s
    w=$(tr ' ' '\n' <<<"${results[weak$n]}" | median)
    s=$(tr ' ' '\n' <<<"${results[strong$n]}" | median)
    awk -v n="$n" -v w="$w" -v s="$s" -v w1="$w1" -v s1="$s1" 'BEGIN {
      printf "| %d | %.0f | %.2fx | %.0f%% | %.0f | %.2fx | %.0f%% |\n", n, w, w / w1, 100 * w / w1 / n, s, s / s1, 100 * s / s1 / n }'
  done
  echo
  echo "Collective bus bandwidth against plain TCP streams over the same ring of connections, one process"
  echo "per rank with one Go processor, as the trainer's workers run (GB/s, median of 5):"
  echo
  local bench params
  # The gradient of the model trained above, as a worker's log names it.
  params=$(sed -n 's/.*(\([0-9]*\) parameters).*/\1/p' "$work/rank1.out" | head -1)
  bench=$(KT_COLLECTIVE_BENCH_FLOATS=$params go test -run '^$' -bench 'Processes' -benchtime 200x -count 5 ./trainer/collective/ |
    awk '/^Benchmark/ { sub(/-[0-9]+$/, "", $1); print $1, $5, $3 }')
  for name in $(cut -d' ' -f1 <<<"$bench" | sort -u); do
    echo "- $name: $(awk -v k="$name" '$1 == k { print $2 }' <<<"$bench" | median)"
  done
  echo
  echo "Ceiling on weak scaling set by the plain TCP streams alone, for a gradient of $params floats:"
  echo
  for n in 2 4; do
    ((n <= $(nproc))) || continue # with more workers than cores, a worker's compute no longer takes t
    local tcp
    tcp=$(awk -v k="BenchmarkProcesses/tcp/ranks=$n" '$1 == k { print $3 }' <<<"$bench" | median)
    awk -v n="$n" -v w1="$w1" -v tcp="$tcp" 'BEGIN {
      t = 32 / w1; c = tcp / 1e9
      printf "- %d workers: %.2fx (a batch of 32 takes %.2f ms, the streams %.2f ms)\n", n, n * t / (t + c), 1e3 * t, 1e3 * c }'
  done
}
report | tee "${REPORT:-/dev/null}"
