#!/usr/bin/env bash
# Runs each fuzz target of the project for a fixed number of inputs: the readers of untrusted bytes
# (CIFAR-10 and IDX files, checkpoint manifests, trainer states, storage URIs, the frames peers send
# in a collective) and the checkpoint key layout. `go test` alone only replays their seed corpora.
# Counts, not durations: a time limit can end a run while a worker is mid-input, which go test
# reports as a failure ("context deadline exceeded"). Each count is a few seconds on a 2-core
# machine; SCALE (the first argument, default 1) multiplies them. A failure leaves the failing input
# under the package's testdata/fuzz/, to be committed with the fix.
set -euo pipefail
scale=${1:-1}
cd "$(dirname "$0")/.."
targets=(
	"FuzzCIFAR10File ./trainer/data/ 5000"
	"FuzzIDX ./trainer/data/ 5000"
	"FuzzLoadState ./trainer/train/ 5000"
	"FuzzRead ./internal/checkpoint/ 5000"
	"FuzzParse ./internal/blob/ 20000"
	"FuzzJobPrefix ./internal/contract/ 20000"
	"FuzzFrames ./trainer/collective/ 20000"
)
for t in "${targets[@]}"; do
	read -r name pkg count <<<"$t"
	n=$((count * scale))
	echo "fuzz: $name ($pkg), $n inputs"
	go test -run='^$' -fuzz="^$name\$" -fuzztime="${n}x" "$pkg"
done
