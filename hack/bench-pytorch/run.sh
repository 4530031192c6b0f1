#!/usr/bin/env bash
# Side-by-side benchmark of the Go trainer and PyTorch on the reference model, in one run, on the
# same data and threads:
#   1. throughput on CIFAR-10-shaped input (the trainer's synthetic set written as CIFAR-10 files),
#      with 1 and with all threads;
#   2. Fashion-MNIST test accuracy after 1 and 3 epochs, for 3 seeds, and the medians.
# Needs: go, /usr/bin/python3 with python3-torch, dataset-fashion-mnist
#   apt-get install -y python3-torch dataset-fashion-mnist
# Knobs (environment): THREADS (default: nproc), CIFAR_TRAIN (training images, default 50000),
# SEEDS (default "1 2 3"), EPOCHS (Fashion-MNIST epochs, default 3), SKIP_ACCURACY=1.
set -euo pipefail
cd "$(dirname "$0")/../.."

THREADS=${THREADS:-$(nproc)}
CIFAR_TRAIN=${CIFAR_TRAIN:-50000}
SEEDS=${SEEDS:-1 2 3}
EPOCHS=${EPOCHS:-3}
FASHION=/usr/share/datasets/fashion-mnist
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/trainer" ./trainer/cmd/trainer
go run ./hack/bench-pytorch/gendata -dir "$work/cifar" -train "$CIFAR_TRAIN" -test 10000

ours() { "$work/trainer" --log-format=json --threads="$1" --seed="$2" --epochs="$3" --dataset="file://$4" --dataset-format="$5" | grep '"epoch"'; }
torch() { "$PY" hack/bench-pytorch/bench.py --threads="$1" --seed="$2" --epochs="$3" --dir="$4" --format="$5"; }
field() { "$PY" -c 'import json,sys; rows=[json.loads(l) for l in sys.stdin if l.startswith("{")]; print(rows[int(sys.argv[2])-1 if int(sys.argv[2]) > 0 else -1].get(sys.argv[1], ""))' "$@"; }

echo "CPU:            $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs, flags: $(grep -m1 -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | xargs)"
echo "PyTorch:        $("$PY" -c 'import torch; print(torch.__version__)'), CPU capability: $(torch 1 1 1 "$FASHION" idx --max-train 320 2>/dev/null | field cpu_capability 0)"
echo "Go trainer:     kernels $("$work/trainer" --help 2>&1 | grep -o 'picks the fastest ([a-z0-9]*)' | tr -d '()' | cut -d' ' -f4)"
echo
echo "== Throughput, CIFAR-10-shaped (32x32x3), batch 32, $CIFAR_TRAIN training images, 1 epoch =="
for t in 1 "$THREADS"; do
	o=$(ours "$t" 1 1 "$work/cifar" cifar10 | field images_per_second 1)
	p=$(torch "$t" 1 1 "$work/cifar" cifar10 | field images_per_second 1)
	printf 'threads %s: ours %8.0f images/s   pytorch %8.0f images/s   ratio %.2fx\n' "$t" "$o" "$p" "$("$PY" -c "print($o/$p)")"
	[ "$t" = "$THREADS" ] && break
done

if [ "${SKIP_ACCURACY:-}" = 1 ]; then exit 0; fi
echo
echo "== Fashion-MNIST test accuracy, batch 32, threads $THREADS =="
printf '%-6s %-10s %-10s %-10s %-10s %-12s %-12s\n' seed ours@1 torch@1 "ours@$EPOCHS" "torch@$EPOCHS" ours-img/s torch-img/s
o1s=() ; p1s=() ; o3s=() ; p3s=()
for s in $SEEDS; do
	ours "$THREADS" "$s" "$EPOCHS" "$FASHION" idx >"$work/o"
	torch "$THREADS" "$s" "$EPOCHS" "$FASHION" idx >"$work/p"
	o1=$(field test_accuracy 1 <"$work/o"); p1=$(field test_accuracy 1 <"$work/p")
	o3=$(field test_accuracy "$EPOCHS" <"$work/o"); p3=$(field test_accuracy "$EPOCHS" <"$work/p")
	oi=$(field images_per_second 1 <"$work/o"); pi=$(field images_per_second 1 <"$work/p")
	printf '%-6s %-10.4f %-10.4f %-10.4f %-10.4f %-12.0f %-12.0f\n' "$s" "$o1" "$p1" "$o3" "$p3" "$oi" "$pi"
	o1s+=("$o1"); p1s+=("$p1"); o3s+=("$o3"); p3s+=("$p3")
done
med() { "$PY" -c 'import statistics,sys; print("%.4f" % statistics.median(map(float, sys.argv[1:])))' "$@"; }
printf '%-6s %-10s %-10s %-10s %-10s\n' median "$(med "${o1s[@]}")" "$(med "${p1s[@]}")" "$(med "${o3s[@]}")" "$(med "${p3s[@]}")"
