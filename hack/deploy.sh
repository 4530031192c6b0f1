#!/usr/bin/env bash
# Deploys kubetrain and, for the demo and the e2e suite, an S3 server into the cluster of $KUBECONFIG,
# then uploads Fashion-MNIST (Debian's dataset-fashion-mnist) into s3://datasets/fashion-mnist,
# creates the bucket for checkpoints, and copies the credentials Secret into the namespace the sample
# is applied in (SAMPLE_NAMESPACE, default). The images must already be on the node (hack/local-cluster.sh
# loads them; on kind, `kind load`). Used by `make demo`, `make test-e2e` and the kind targets.
#
#   KUBECTL=kubectl hack/deploy.sh
#   S3_ACCESS_KEY_ID=... S3_SECRET_ACCESS_KEY=...   the S3 server's credentials instead of config/s3's
set -euo pipefail
cd "$(dirname "$0")/.."
k() { "${KUBECTL:-kubectl}" "$@"; }

k apply -k config/default >/dev/null
k apply -k config/s3 >/dev/null
if [[ -n ${S3_ACCESS_KEY_ID:-} ]]; then
  # Credentials of the caller's choosing (the e2e suite's canary) instead of config/s3's.
  k -n kubetrain-system create secret generic kubetrain-s3 --from-literal=AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" \
    --from-literal=AWS_SECRET_ACCESS_KEY="${S3_SECRET_ACCESS_KEY:?S3_SECRET_ACCESS_KEY goes with S3_ACCESS_KEY_ID}" \
    --dry-run=client -o yaml | k apply -f - >/dev/null
  k -n kubetrain-system rollout restart deploy/s3 >/dev/null
fi
k -n kubetrain-system rollout status deploy/kubetrain-controller-manager --timeout=180s
k -n kubetrain-system rollout status deploy/s3 --timeout=180s

# The S3 server's NodePort on the node's address: reachable from this machine on the local cluster
# (a veth pair) and on kind (Docker's bridge).
node_ip=$(k get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
port=$(k -n kubetrain-system get svc s3 -o jsonpath='{.spec.ports[0].nodePort}')
secret() { k -n kubetrain-system get secret kubetrain-s3 -o jsonpath="{.data.$1}" | base64 -d; }
AWS_ACCESS_KEY_ID=$(secret AWS_ACCESS_KEY_ID) AWS_SECRET_ACCESS_KEY=$(secret AWS_SECRET_ACCESS_KEY) \
  go run ./hack/s3put -endpoint "http://$node_ip:$port" -bucket datasets -prefix fashion-mnist -create checkpoints \
  /usr/share/datasets/fashion-mnist/*-ubyte.gz
k -n "${SAMPLE_NAMESPACE:-default}" create secret generic kubetrain-s3 \
  --from-literal=AWS_ACCESS_KEY_ID="$(secret AWS_ACCESS_KEY_ID)" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$(secret AWS_SECRET_ACCESS_KEY)" --dry-run=client -o yaml | k apply -f - >/dev/null
