#!/usr/bin/env bash
# Builds Kubernetes and etcd binaries from pinned Go modules and caches them outside the checkout,
# keyed by version, so a clean clone on the same machine reuses them in seconds.
#
#   hack/kube-binaries.sh envtest            # etcd, kube-apiserver, kubectl; prints their folder
#   hack/kube-binaries.sh COMPONENT...       # e.g. kubelet kube-scheduler; prints the bin folder
#   hack/kube-binaries.sh versitygw          # the S3 server the tests use; prints its path
#   hack/kube-binaries.sh kueue              # Kueue's manager, CRDs and webhooks; prints their folder
#
# No download site is reachable here (setup-envtest, release pages), only the Go module proxy.
# k8s.io/kubernetes replaces its staging modules with ./staging/..., so `go install` of it is
# refused; a small wrapper module that requires it and points every staging module at the same
# published version builds each command. etcd's server module is built the same way.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CACHE=${KUBETRAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubetrain}
staging_version=v0${K8S_VERSION#v1}   # v1.37.2 -> v0.37.2

log() { echo "kube-binaries: $*" >&2; }

# wrapper_module DIR MODULE VERSION REPLACE_PATTERN REPLACE_VERSION
# writes a go.mod in DIR that requires MODULE@VERSION and replaces each module its own go.mod
# maps to a local path with that module at REPLACE_VERSION.
wrapper_module() {
  local dir=$1 module=$2 version=$3 replace_version=$4
  [[ -f $dir/go.mod ]] && return 0
  mkdir -p "$dir"
  local modfile
  modfile=$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  [[ -f $modfile ]] || { log "cannot fetch go.mod of $module@$version"; exit 1; }
  {
    echo "module kubetrain.local/wrapper"
    echo
    echo "go 1.26"
    echo
    echo "require $module $version"
    echo
    echo "replace ("
    # Lines such as `k8s.io/api => ./staging/src/k8s.io/api` or `go.etcd.io/etcd/api/v3 => ../api`.
    awk '/=> *\.\.?\//{ for (i = 1; i <= NF; i++) if ($i == "=>") print $(i-1) }' "$modfile" |
      sort -u | while read -r m; do
        # A module at major version N >= 2 carries /vN in its path; the others (e.g. go.etcd.io/etcd
        # itself) cannot take that version and are not needed to build.
        case $replace_version in v0.* | v1.*) ;; *) [[ $m == */${replace_version%%.*} ]] || continue ;; esac
        echo "	$m => $m $replace_version"
      done
    echo ")"
  } >"$dir/go.mod.tmp"
  mv "$dir/go.mod.tmp" "$dir/go.mod"
}

build() { # build WRAPPER_DIR OUT PACKAGE LDFLAGS
  local dir=$1 out=$2 pkg=$3 ldflags=$4
  [[ -x $out ]] && return 0
  log "building $(basename "$out") from $pkg (minutes on a cold cache)"
  local start=$SECONDS
  (cd "$dir" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  log "built $(basename "$out") in $((SECONDS - start)) s"
}

k8s_bin=$CACHE/kubernetes-$K8S_VERSION/bin
etcd_bin=$CACHE/etcd-$ETCD_VERSION/bin

build_component() {
  local c=$1
  case $c in
  etcd)
    wrapper_module "$CACHE/etcd-$ETCD_VERSION/src" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION"
    build "$CACHE/etcd-$ETCD_VERSION/src" "$etcd_bin/etcd" go.etcd.io/etcd/server/v3 "-s -w"
    ;;
  kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kubectl | kube-proxy)
    local minor=${K8S_VERSION#v1.}
    minor=${minor%%.*}
    local ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean"
    done
    wrapper_module "$CACHE/kubernetes-$K8S_VERSION/src" k8s.io/kubernetes "$K8S_VERSION" "$staging_version"
    build "$CACHE/kubernetes-$K8S_VERSION/src" "$k8s_bin/$c" "k8s.io/kubernetes/cmd/$c" "$ldflags"
    ;;
  versitygw)
    # An S3 server with a POSIX backend, for tests and the local cluster, pinned with its
    # dependencies in hack/tools (go.mod and go.sum); the cache is keyed by those pins.
    local tools version pins out
    tools=$(cd "$(dirname "$0")/tools" && pwd)
    version=$(awk '$1 == "github.com/versity/versitygw" { print $2 }' "$tools/go.mod")
    pins=$(sha256sum "$tools/go.mod" "$tools/go.sum" | sha256sum | cut -c1-12)
    out=$CACHE/versitygw-$version-$pins/bin/versitygw
    if [[ ! -x $out ]]; then
      log "building versitygw $version"
      mkdir -p "$(dirname "$out")"
      (cd "$tools" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" github.com/versity/versitygw/cmd/versitygw)
      mv "$out.tmp" "$out"
    fi
    echo "$out"
    ;;
  kueue)
    # Kueue's manager at the version go.mod pins for its API (one source of truth), with the CRDs
    # and webhook configurations of that same module, for the suites that run a real Kueue
    # (internal/kueuetest). It builds in a copy of its module with its own go.mod and go.sum (its
    # k8s.io versions differ from ours), changed in one line: with its internal certificate
    # management off, Kueue reads the metrics server's certificate from /etc/kueue/metrics/certs
    # and exits without it, so the copy also takes the folder from KUEUE_METRICS_CERT_DIR.
    local root version dir src main
    root=$(cd "$(dirname "$0")/.." && pwd)
    version=$(awk '$1 == "sigs.k8s.io/kueue" { print $2 }' "$root/go.mod")
    [[ -n $version ]] || { log "go.mod does not require sigs.k8s.io/kueue"; exit 1; }
    dir=$CACHE/kueue-$version-certdir # keyed by the change below too
    if [[ ! -x $dir/bin/kueue || ! -f $dir/webhook/manifests.yaml ]]; then
      src=$(go mod download -json "sigs.k8s.io/kueue@$version" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
      [[ -d $src ]] || { log "cannot fetch sigs.k8s.io/kueue@$version"; exit 1; }
      rm -rf "$dir/src"
      mkdir -p "$dir"
      cp -R "$src" "$dir/src"
      chmod -R u+w "$dir/src" # the module cache is read-only
      main=$dir/src/cmd/kueue/main.go
      sed -i 's|^\(\s*metricsCertPath := "/etc/kueue/metrics/certs"\)$|\1; if d := os.Getenv("KUEUE_METRICS_CERT_DIR"); d != "" { metricsCertPath = d }|' "$main"
      grep -q KUEUE_METRICS_CERT_DIR "$main" || { log "kueue $version: metricsCertPath not found in cmd/kueue/main.go"; exit 1; }
      log "building kueue $version (minutes on a cold cache)"
      local start=$SECONDS
      mkdir -p "$dir/bin"
      (cd "$dir/src" && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$version" -o "$dir/bin/kueue.tmp" ./cmd/kueue)
      mv "$dir/bin/kueue.tmp" "$dir/bin/kueue"
      log "built kueue in $((SECONDS - start)) s"
      rm -rf "$dir/crd" "$dir/webhook"
      mkdir -p "$dir/crd" "$dir/webhook"
      cp "$dir/src"/config/components/crd/bases/*.yaml "$dir/crd/"
      cp "$dir/src/config/components/webhook/manifests.yaml" "$dir/webhook/"
      rm -rf "$dir/src"
    fi
    echo "$dir"
    ;;
  *)
    log "unknown component $c"
    exit 2
    ;;
  esac
}

[[ $# -gt 0 ]] || { echo "usage: $0 envtest | versitygw | kueue | COMPONENT..." >&2; exit 2; }
mkdir -p "$k8s_bin" "$etcd_bin"

if [[ $1 == envtest ]]; then
  for c in etcd kube-apiserver kubectl; do build_component "$c"; done
  # envtest wants the three binaries in one folder (KUBEBUILDER_ASSETS).
  assets=$CACHE/envtest-$K8S_VERSION-etcd-$ETCD_VERSION
  mkdir -p "$assets"
  ln -sf "$etcd_bin/etcd" "$assets/etcd"
  ln -sf "$k8s_bin/kube-apiserver" "$assets/kube-apiserver"
  ln -sf "$k8s_bin/kubectl" "$assets/kubectl"
  echo "$assets"
  exit 0
fi

if [[ $1 == versitygw || $1 == kueue ]]; then
  build_component "$1"
  exit 0
fi
for c in "$@"; do build_component "$c"; done
echo "$k8s_bin"
