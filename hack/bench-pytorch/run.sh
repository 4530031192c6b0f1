#!/usr/bin/env bash
# Side-by-side benchmark of the Go trainer and PyTorch on the reference model, on the same files and
# thread counts, with PyTorch at its best: for every input and thread count it tries the settings a
# performance-minded user would (OpenMP threads, OpenBLAS threads, memory format) and is judged by
# the fastest. Prints:
#   1. the machine (CPU, SIMD flags, measured FMA peak) and what each side runs on;
#   2. throughput (training images/s, median of RUNS runs) on Fashion-MNIST and on CIFAR-shaped
#      synthetic data, with 1 and with THREADS threads: every configuration tried, then a summary
#      with the ratio and the fraction of the FMA peak;
#   3. Fashion-MNIST test accuracy after 1 and EPOCHS epochs for each seed, and the medians.
# It refuses to measure on a busy machine (1-minute load average above LOAD_MAX); FORCE=1 measures
# anyway and marks the report unreliable.
#
# Needs: go; /usr/bin/python3 with python3-torch; libopenblas0-pthread (else Debian's torch calls
# the slow reference BLAS); dataset-fashion-mnist. `make bench-pytorch` installs them.
#
# Knobs (environment):
#   THREADS        the larger thread count (default: nproc); 1 is always measured too
#   RUNS           runs per figure, the median is reported (default 3, at least 3 for a real report)
#   CIFAR_TRAIN    CIFAR-shaped training images (default 50000)
#   MAX_TRAIN      if set, train on at most this many images on both sides (quick checks)
#   SEEDS, EPOCHS  the accuracy part (default "1 2 3" and 3); SKIP_ACCURACY=1 skips it
#   LOAD_MAX       busiest 1-minute load average to measure under (default nproc/4)
#   LOAD_WAIT      seconds to wait for the load to drop before giving up (default 300)
#   FORCE=1        measure even when busy; the report says so, loudly
#   REPORT=path    also write the report there
set -euo pipefail
cd "$(dirname "$0")/../.."

THREADS=${THREADS:-$(nproc)}
RUNS=${RUNS:-3}
CIFAR_TRAIN=${CIFAR_TRAIN:-50000}
MAX_TRAIN=${MAX_TRAIN:-}
SEEDS=${SEEDS:-1 2 3}
EPOCHS=${EPOCHS:-3}
SKIP_ACCURACY=${SKIP_ACCURACY:-}
LOAD_MAX=${LOAD_MAX:-$(awk -v n="$(nproc)" 'BEGIN { print n / 4 }')}
LOAD_WAIT=${LOAD_WAIT:-300}
FORCE=${FORCE:-}
REPORT=${REPORT:-}
FASHION=/usr/share/datasets/fashion-mnist
# Debian's torch lives in the system interpreter; a python3 earlier on the PATH may lack it.
PY=/usr/bin/python3
HERE=hack/bench-pytorch

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
busy_measured=() # what was measured above LOAD_MAX under FORCE=1

# Report lines go to stdout (and REPORT); progress goes to stderr.
progress() { echo "bench-pytorch: $*" >&2; }
refuse() {
	echo "bench-pytorch: REFUSED: $*"
	exit 3
}

# The thread counts measured: 1 and THREADS, once each.
thread_counts() { if [[ $THREADS == 1 ]]; then echo 1; else echo "1 $THREADS"; fi; }

load1() { cut -d' ' -f1 /proc/loadavg; }
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

# Waits (up to LOAD_WAIT seconds) for the 1-minute load average to fall to LOAD_MAX before measuring
# $1; other work on the CPUs would slow either side by chance and make the comparison meaningless.
# The load our own previous runs leave decays within about a minute and a half.
quiet_or_refuse() {
	local what=$1 waited=0 load
	while load=$(load1) && gt "$load" "$LOAD_MAX"; do
		if [[ $FORCE == 1 ]]; then
			echo "!!! WARNING: load average $load > LOAD_MAX $LOAD_MAX before $what; measuring anyway (FORCE=1)"
			busy_measured+=("$what (load $load)")
			return
		fi
		if ((waited >= LOAD_WAIT)); then
			refuse "the machine is busy: 1-minute load average $load > LOAD_MAX $LOAD_MAX after waiting ${waited}s, before $what. Measure on a quiet machine, raise LOAD_MAX/LOAD_WAIT, or FORCE=1 to report anyway (marked unreliable)."
		fi
		((waited == 0)) && progress "load average $load > $LOAD_MAX, waiting up to ${LOAD_WAIT}s before $what"
		sleep 5
		waited=$((waited + 5))
	done
	echo "(load average $load before $what)"
}

# Sets the three thread pools PyTorch may use explicitly for the command that follows: OpenMP (its
# own kernels), OpenBLAS (Linear layers; unset, it adds a pool on top of OpenMP's), MKL (not in
# Debian's build, set anyway so that no library guesses).
with_threads() {
	local omp=$1 blas=$2
	shift 2
	OMP_NUM_THREADS=$omp OPENBLAS_NUM_THREADS=$blas MKL_NUM_THREADS=$omp "$@"
}

# ours THREADS SEED EPOCHS DIR FORMAT: the Go trainer's JSON lines.
ours() {
	"$work/trainer" --log-format=json --threads="$1" --seed="$2" --epochs="$3" \
		--dataset="file://$4" --dataset-format="$5" --scratch-dir="$work/scratch"
}

# torch OMP BLAS nchw|cl SEED EPOCHS DIR FORMAT: bench.py's JSON lines.
torch() {
	local cl=()
	[[ $3 == cl ]] && cl=(--channels-last)
	with_threads "$1" "$2" "$PY" "$HERE/bench.py" --threads="$1" --seed="$4" --epochs="$5" \
		--dir="$6" --format="$7" "${cl[@]}"
}

# The PyTorch configurations worth trying at T threads, as "OMP BLAS FORMAT": OpenMP on all T, and
# OpenBLAS on 1 (no oversubscription) or on T (faster Linear layers if they dominate), NCHW or
# channels-last. Which wins depends on the shape and the thread count, so all are measured.
torch_configs() {
	local t=$1 blas fmt
	for blas in $( ((t == 1)) && echo 1 || echo "1 $t"); do
		for fmt in nchw cl; do echo "$t $blas $fmt"; done
	done
}

build() {
	progress "building the trainer, gendata and peak-flops"
	go build -o "$work/trainer" ./trainer/cmd/trainer
	go build -o "$work/gendata" ./$HERE/gendata
	go build -o "$work/peak-flops" ./hack/peak-flops
	local train=$CIFAR_TRAIN
	[[ -n $MAX_TRAIN ]] && ((MAX_TRAIN < train)) && train=$MAX_TRAIN
	"$work/gendata" -dir "$work/cifar" -train "$train" -test 10000
	fashion=$FASHION
	if [[ -n $MAX_TRAIN ]]; then
		# The Go trainer has no such flag: both sides read the same truncated copy instead.
		fashion=$work/fashion
		"$PY" $HERE/report.py truncate-idx "$FASHION" "$fashion" "$MAX_TRAIN"
	fi
}

machine() {
	local flags f
	flags=$(grep -m1 '^flags' /proc/cpuinfo)
	echo "== Machine =="
	echo "CPU:         $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs"
	echo -n "SIMD flags:  "
	for f in avx2 fma avx512f; do
		if grep -qw "$f" <<<"$flags"; then echo -n "$f yes  "; else echo -n "$f no  "; fi
	done
	echo
	echo "Go trainer:  kernels $("$work/trainer" --help 2>&1 | sed -n 's/.*picks the fastest (\([a-z0-9]*\)).*/\1/p' | head -1)"
	echo "             (the fastest this CPU has; --kernel forces another)"
	echo "libblas.so.3 alternative: $(update-alternatives --query libblas.so.3-x86_64-linux-gnu | sed -n 's/^Value: //p')"
	echo "PyTorch (as run at $THREADS threads, OpenBLAS 1):"
	with_threads "$THREADS" 1 "$PY" $HERE/bench.py --info | sed 's/^/  /'
	echo
}

# The FMA peak at 1 and THREADS threads: the best of RUNS measurements.
peak() {
	quiet_or_refuse "the FMA peak"
	local i
	for ((i = 1; i <= RUNS; i++)); do GOMAXPROCS=$THREADS "$work/peak-flops" >>"$work/peak"; done
	echo "Measured FMA peak (hack/peak-flops, best ISA, best of $RUNS):"
	"$PY" $HERE/report.py peak "$work/peak"
	echo
}

# group INPUT DIR FORMAT T: every configuration at T threads, RUNS times each. The runs are
# interleaved (each round runs every configuration once) so that a slow spell of the machine
# spreads over all of them instead of sinking one.
group() {
	local input=$1 dir=$2 format=$3 t=$4 r cfg omp blas fmt out ips
	local gdir=$work/runs/$input-t$t
	local configs=("ours" $(torch_configs "$t" | tr ' ' ,))
	echo "== $input, $t thread(s): training images/s, $RUNS run(s) per configuration =="
	quiet_or_refuse "$input at $t thread(s)"
	for ((r = 1; r <= RUNS; r++)); do
		for cfg in "${configs[@]}"; do
			if [[ $cfg == ours ]]; then
				out=$gdir/ours
				mkdir -p "$out"
				ours "$t" 1 1 "$dir" "$format" >"$out/$r.jsonl"
			else
				IFS=, read -r omp blas fmt <<<"$cfg"
				out=$gdir/torch-omp$omp-blas$blas-$fmt
				mkdir -p "$out"
				torch "$omp" "$blas" "$fmt" 1 1 "$dir" "$format" >"$out/$r.jsonl"
			fi
			ips=$(grep -m1 -o '"images_per_second": *[0-9.]*' "$out/$r.jsonl" | grep -o '[0-9.]*$')
			progress "$input t$t run $r/$RUNS $(basename "$out"): ${ips%.*} images/s (load $(load1))"
		done
	done
	"$PY" $HERE/report.py group "$gdir"
	echo
}

throughput() {
	local t
	for t in $(thread_counts); do group fashion "$fashion" idx "$t"; done
	for t in $(thread_counts); do group cifar "$work/cifar" cifar10 "$t"; done
	echo "== Summary: training images/s, medians; PyTorch at its best configuration =="
	"$PY" $HERE/report.py summary "$work/runs" "$work/peak"
	echo
}

# Test accuracy on Fashion-MNIST at THREADS threads, PyTorch in its fastest configuration there.
accuracy() {
	local best omp blas fmt s
	best=$("$PY" $HERE/report.py best "$work/runs/fashion-t$THREADS")
	read -r omp blas fmt <<<"$best"
	echo "== Fashion-MNIST test accuracy after 1 and $EPOCHS epochs, batch 32, $THREADS thread(s) =="
	echo "(PyTorch: OMP $omp, OpenBLAS $blas, $([[ $fmt == cl ]] && echo channels-last || echo NCHW)," \
		"its fastest on Fashion-MNIST at $THREADS thread(s))"
	quiet_or_refuse "the accuracy runs"
	mkdir -p "$work/acc"
	for s in $SEEDS; do
		progress "accuracy seed $s"
		ours "$THREADS" "$s" "$EPOCHS" "$fashion" idx >"$work/acc/ours-seed$s.jsonl"
		torch "$omp" "$blas" "$fmt" "$s" "$EPOCHS" "$fashion" idx >"$work/acc/torch-seed$s.jsonl"
	done
	"$PY" $HERE/report.py accuracy "$work/acc" "$EPOCHS"
	echo
}

banner_if_forced() {
	((${#busy_measured[@]} == 0)) && return
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
	echo "!!! UNRELIABLE: FORCE=1 measured on a busy machine (LOAD_MAX $LOAD_MAX):"
	printf '!!!   %s\n' "${busy_measured[@]}"
	echo "!!! Do not quote these figures."
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
}

main() {
	((RUNS >= 1)) || refuse "RUNS=$RUNS"
	[[ $FORCE == 1 ]] && echo "!!! FORCE=1: figures measured above LOAD_MAX are kept, and flagged as unreliable !!!"
	((RUNS < 3)) && echo "!!! RUNS=$RUNS: fewer than 3 runs per figure, not a median worth quoting !!!"
	[[ -n $MAX_TRAIN ]] && echo "!!! MAX_TRAIN=$MAX_TRAIN: quick check on a truncated training set !!!"
	quiet_or_refuse "the start" # refuse a busy machine early, before spending the build on it
	build
	machine
	echo "Settings: THREADS $THREADS, RUNS $RUNS, CIFAR_TRAIN $CIFAR_TRAIN, MAX_TRAIN ${MAX_TRAIN:-none}, LOAD_MAX $LOAD_MAX"
	echo "Both sides: the reference model, batch 32, Adam, 1 epoch; images/s counts the training pass only."
	echo
	peak
	throughput
	[[ $SKIP_ACCURACY == 1 ]] || accuracy
	banner_if_forced
}

if [[ -n $REPORT ]]; then
	main | tee "$REPORT"
else
	main
fi
