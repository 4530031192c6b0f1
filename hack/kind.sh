#!/usr/bin/env bash
# The demo and the e2e suite on kind, for machines with Docker (they cannot run where there is no
# Docker engine, as on our CI machines). They share hack/deploy.sh and test/e2e with the local
# cluster; only the images and the fake GPUs are set up differently.
#
#   hack/kind.sh demo|test-e2e        (KIND_CLUSTER=kubetrain, GPUS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?usage: hack/kind.sh demo|test-e2e}
NAME=${KIND_CLUSTER:-kubetrain}
GPUS=${GPUS:-1}
export KUBECTL=${KUBECTL:-kubectl}

for tool in docker kind "$KUBECTL"; do
  command -v "$tool" >/dev/null || { echo "kind: $tool is not installed" >&2; exit 1; }
done
kind get clusters | grep -qx "$NAME" || kind create cluster --name "$NAME" --wait 120s
export KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config}
"$KUBECTL" config use-context "kind-$NAME" >/dev/null

# The operator's images from the Dockerfile; the S3 server's as the local cluster builds it.
docker build --target manager -t kubetrain/manager:dev .
docker build --target trainer -t kubetrain/trainer:dev .
kind load docker-image --name "$NAME" kubetrain/manager:dev kubetrain/trainer:dev
go run ./hack/images -s3 -out bin/images s3
kind load image-archive --name "$NAME" bin/images/s3.tar
for node in $("$KUBECTL" get nodes -o name); do
  "$KUBECTL" patch "$node" --subresource=status --type=merge \
    -p "{\"status\":{\"capacity\":{\"nvidia.com/gpu\":\"$GPUS\"}}}" >/dev/null
done

case $cmd in
demo) DEMO_CLUSTER_READY=1 hack/demo.sh ;;
test-e2e)
  hack/deploy.sh
  go test -v -tags e2e -count=1 -timeout 40m ./test/e2e/ -ginkgo.v -ginkgo.label-filter='!local-cluster'
  ;;
*) echo "usage: hack/kind.sh demo|test-e2e" >&2; exit 2 ;;
esac
