# kubetrain: the TrainingJob operator and its bundled trainer.
# `make demo` and `make test` are the two commands a new machine needs; `make help` lists the rest.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

# Pinned versions. K8S_VERSION follows the k8s.io/api minor in go.mod.
K8S_VERSION ?= v1.37.2
ETCD_VERSION ?= v3.6.16
CONTROLLER_TOOLS_VERSION ?= v0.23.0

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
# Kubernetes binaries are built once per version and cached outside the checkout, so a clean clone
# on the same machine reuses them.
export KUBETRAIN_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kubetrain
export K8S_VERSION ETCD_VERSION

# GEN_DIR is where `manifests` and `generate` run; the staleness test points it at a copy.
GEN_DIR ?= $(CURDIR)
GO_TEST_FLAGS ?= -count=1 -timeout 45m
FUZZ_SCALE ?= 1

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and the manager's ClusterRole from the markers.
	cd $(GEN_DIR) && $(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=true \
		paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods of the API types.
	cd $(GEN_DIR) && $(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet (the e2e suite included).
	go vet -tags e2e ./...

.PHONY: test
test: $(CONTROLLER_GEN) envtest s3server deps ## Run every test suite (unit, trainer, envtest, S3, generated files, e2e).
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh envtest)" KUEUE_ASSETS="$$(hack/kube-binaries.sh kueue)" CONTROLLER_GEN=$(CONTROLLER_GEN) \
		KUBETRAIN_VERSITYGW="$$(hack/kube-binaries.sh versitygw)" \
		go test $(GO_TEST_FLAGS) ./...
	# A short fuzz run (not only the seed corpora) of every reader of untrusted bytes and of the
	# checkpoint key layout.
	hack/fuzz.sh $(FUZZ_SCALE)
	# Last and alone, as it needs both cores: the e2e suite on a real local cluster.
	hack/test-e2e.sh

.PHONY: test-e2e
test-e2e: envtest ## The e2e suite on a local cluster (up, deploy, test, down; E2E_KEEP_CLUSTER=1 keeps it).
	hack/test-e2e.sh

.PHONY: test-e2e-kind
test-e2e-kind: ## The e2e suite on kind, for machines with Docker (docker build, kind load).
	hack/kind.sh test-e2e

.PHONY: scale-bench
scale-bench: envtest ## Create N TrainingJobs of 1 and of 4 workers against envtest; report time, API writes per job and memory (N=1000).
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh envtest)" go run ./test/scale $(SCALE_FLAGS)

.PHONY: bench-pytorch
bench-pytorch: ## Train the reference model with our trainer and PyTorch at its best, side by side (about 45 min).
	hack/install-deps.sh python3-torch libopenblas0-pthread dataset-fashion-mnist
	hack/bench-pytorch/run.sh

.PHONY: bench-ddp
bench-ddp: ## Data-parallel scaling: 1, 2 and 4 trainer processes on loopback, and the collective's bandwidth (about 5 min).
	hack/bench-ddp.sh

.PHONY: bench-pod
bench-pod: envtest ## The trainer in a pod of the local cluster against the same binary on the host (requests, CFS limits).
	hack/bench-pod.sh

.PHONY: bench
bench: ## Run the trainer's micro-benchmarks (conv, dense, a training step) and the FP32 peak.
	go test -run '^$$' -bench . ./trainer/gemm ./trainer/nn ./trainer/train ./trainer/optim
	go run ./hack/peak-flops

.PHONY: test-purego
test-purego: s3server deps ## Run the trainer's tests on the portable (non-SIMD) code path.
	KUBETRAIN_VERSITYGW="$$(hack/kube-binaries.sh versitygw)" go test $(GO_TEST_FLAGS) -tags purego ./trainer/...

##@ Build

.PHONY: build
build: ## Build the manager and the trainer into bin/.
	CGO_ENABLED=0 go build -o $(LOCALBIN)/manager ./cmd/manager
	CGO_ENABLED=0 go build -o $(LOCALBIN)/trainer ./trainer/cmd/trainer

# PLUGIN_DIR is where install-plugin puts kubectl-train: GOPATH's bin unless told otherwise.
PLUGIN_DIR ?= $(shell go env GOPATH)/bin

.PHONY: install-plugin
install-plugin: ## Install the kubectl plugin (`kubectl train`) as $(go env GOPATH)/bin/kubectl-train; PLUGIN_DIR=/usr/local/bin puts it there.
	mkdir -p $(PLUGIN_DIR)
	CGO_ENABLED=0 go build -o $(PLUGIN_DIR)/kubectl-train ./cmd/kubectl-train
	@echo "installed $(PLUGIN_DIR)/kubectl-train: with $(PLUGIN_DIR) on your PATH, run kubectl train --help"

.PHONY: images
images: ## Build the manager and trainer images as tarballs in bin/images, without Docker.
	go run ./hack/images -out $(LOCALBIN)/images

.PHONY: run
run: manifests generate ## Run the manager against the cluster of the current kubeconfig.
	go run ./cmd/manager --leader-elect=false

.PHONY: demo
demo: ## A local cluster, the operator and S3 in it, and the sample trained on Fashion-MNIST, with its progress.
	hack/demo.sh

.PHONY: kind-demo
kind-demo: ## The demo on kind, for machines with Docker (docker build, kind load).
	hack/kind.sh demo

##@ Dependencies

.PHONY: envtest
envtest: ## Build etcd, kube-apiserver and kubectl for envtest (cached by version).
	hack/kube-binaries.sh envtest >/dev/null

.PHONY: kueue
kueue: ## Build Kueue's manager at the version go.mod pins, with its CRDs and webhooks (cached by version).
	hack/kube-binaries.sh kueue >/dev/null

.PHONY: s3server
s3server: ## Build versitygw, the S3 server the tests start (cached by version).
	hack/kube-binaries.sh versitygw >/dev/null

.PHONY: deps
deps: ## Install the Debian packages the tests need (Fashion-MNIST, CA certificates).
	hack/install-deps.sh

$(CONTROLLER_GEN):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)
