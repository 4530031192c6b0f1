#!/usr/bin/env bash
# make demo: a local cluster, the operator and an S3 server deployed into it, Fashion-MNIST in a
# bucket, and the sample TrainingJob trained to the end, its progress read from its status.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${DEMO_CLUSTER:-kubetrain}
start=$SECONDS
say() { printf '\n== %s\n' "$*"; }

say "Debian packages (Fashion-MNIST)"
hack/install-deps.sh dataset-fashion-mnist ca-certificates
if [[ -z ${DEMO_CLUSTER_READY:-} ]]; then
  say "local cluster $NAME (first run builds Kubernetes from the Go module proxy: many minutes)"
  hack/local-cluster.sh up "$NAME"
  eval "$(hack/local-cluster.sh env "$NAME")"
else
  # hack/kind.sh: a cluster of $KUBECONFIG with the images loaded.
  KUBECTL=${KUBECTL:-kubectl}
fi
k() { "$KUBECTL" "$@"; }

say "operator and S3 server; Fashion-MNIST into s3://datasets/fashion-mnist"
KUBECTL=$KUBECTL hack/deploy.sh

say "the sample TrainingJob (config/samples/), under the restricted Pod Security Standard"
k label namespace default pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
k delete trainingjob fashion-mnist --ignore-not-found >/dev/null
k apply -f config/samples/

say "progress (from the TrainingJob's status)"
last=""
phase=""
for _ in $(seq 1 450); do
  line=$(k get trainingjob fashion-mnist -o jsonpath='{.status.phase}|{.status.progress.epoch}/{.status.progress.epochs}|{.status.progress.loss}|{.status.progress.testAccuracy}|{.status.progress.imagesPerSecond}')
  IFS='|' read -r phase epoch loss acc ips <<<"$line" || true
  if [[ -n $phase && $line != "$last" ]]; then
    if [[ -n ${loss:-} ]]; then
      printf '%-10s epoch %-6s loss %.4f  test accuracy %.4f  %6.0f images/s\n' "$phase" "$epoch" "$loss" "$acc" "$ips"
    else
      printf '%-10s %s\n' "$phase" "$(k get trainingjob fashion-mnist -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')"
    fi
    last=$line
  fi
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 2
done

say "result"
k get trainingjob fashion-mnist
echo "model:             $(k get trainingjob fashion-mnist -o jsonpath='{.status.modelURI}')"
echo "latest checkpoint: $(k get trainingjob fashion-mnist -o jsonpath='{.status.latestCheckpoint.uri}')"

say "training curves (kubectl train plot, from the job's status.history)"
go build -o bin/kubectl-train ./cmd/kubectl-train
bin/kubectl-train plot fashion-mnist -o bin/fashion-mnist-curves.png
echo "training curves: $PWD/bin/fashion-mnist-curves.png"
look="eval \"\$(hack/local-cluster.sh env $NAME)\""
down="hack/local-cluster.sh down $NAME"
if [[ -n ${DEMO_CLUSTER_READY:-} ]]; then look="KUBECTL=kubectl"; down="kind delete cluster --name ${KIND_CLUSTER:-kubetrain}"; fi
cat <<MSG

Look around:
  $look
  \$KUBECTL get trainingjob fashion-mnist -o yaml        # status: conditions, history, checkpoints
  \$KUBECTL get events --field-selector involvedObject.name=fashion-mnist
  \$KUBECTL logs fashion-mnist-w0-a0                      # the trainer's JSON lines
  bin/kubectl-train history fashion-mnist                # or make install-plugin, then kubectl train
Tear down: $down
Demo wall time: $((SECONDS - start)) s
MSG
[[ $phase == Succeeded ]] || { echo "demo: the job did not succeed (phase $phase)" >&2; exit 1; }
