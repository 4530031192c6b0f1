#!/usr/bin/env bash
# make test-e2e: the local cluster up (hack/local-cluster.sh), kubetrain and the S3 server deployed
# into it (hack/deploy.sh), the e2e suite (test/e2e) against it, and the cluster down again.
#
#   E2E_CLUSTER=e2e          the cluster's name; the demo's is kubetrain, so both can run at once
#   E2E_KEEP_CLUSTER=1       leave the cluster up afterwards, to look around
#   E2E_FLAGS=...            more flags for go test (e.g. -ginkgo.focus=suspend)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${E2E_CLUSTER:-e2e}
start=$SECONDS

hack/install-deps.sh dataset-fashion-mnist ca-certificates
if [[ -z ${E2E_KEEP_CLUSTER:-} ]]; then trap 'hack/local-cluster.sh down "$NAME"' EXIT; fi
hack/local-cluster.sh up "$NAME"
eval "$(hack/local-cluster.sh env "$NAME")"
export KUBECTL
# The run's S3 credentials are a canary, random for the run: the suite checks at the end that they
# appear in no log, event, status, metric, pod argument or env value.
S3_ACCESS_KEY_ID="canary$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
S3_SECRET_ACCESS_KEY="canary$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
  hack/deploy.sh
up=$((SECONDS - start))
# shellcheck disable=SC2086 # E2E_FLAGS is a list of flags
E2E_LOCAL_CLUSTER=$NAME go test -v -tags e2e -count=1 -timeout 40m ./test/e2e/ -ginkgo.v ${E2E_FLAGS:-}
echo "e2e: cluster up and deployed in ${up} s; all in $((SECONDS - start)) s"
