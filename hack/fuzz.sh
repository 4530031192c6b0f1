#!/usr/bin/env bash
# Runs each fuzz target of the project for a short while (default 5s each): the readers of
# untrusted bytes (CIFAR-10 and IDX files, checkpoint manifests, trainer states, storage URIs) and
# the checkpoint key layout. `go test` alone only replays their seed corpora. A failure leaves the
# failing input under the package's testdata/fuzz/, to be committed with the fix.
set -euo pipefail
time=${1:-5s}
cd "$(dirname "$0")/.."
targets=(
	"FuzzCIFAR10File ./trainer/data/"
	"FuzzIDX ./trainer/data/"
	"FuzzLoadState ./trainer/train/"
	"FuzzRead ./internal/checkpoint/"
	"FuzzParse ./internal/blob/"
	"FuzzJobPrefix ./internal/contract/"
)
for t in "${targets[@]}"; do
	read -r name pkg <<<"$t"
	echo "fuzz: $name ($pkg) for $time"
	go test -run='^$' -fuzz="^$name\$" -fuzztime="$time" "$pkg"
done
