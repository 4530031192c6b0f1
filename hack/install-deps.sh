#!/usr/bin/env bash
# Installs Debian packages when they are missing: by default what the tests need (the real
# Fashion-MNIST that the trainer's accuracy test reads from /usr/share/datasets/fashion-mnist, and
# the CA bundle the images carry),
# else the packages named (e.g. python3-torch for the side-by-side benchmark).
set -euo pipefail

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(dataset-fashion-mnist ca-certificates)
need=()
for pkg in "${want[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[[ ${#need[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing Debian packages ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
