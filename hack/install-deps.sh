#!/usr/bin/env bash
# Installs the Debian packages the tests need, when they are missing: the real Fashion-MNIST that
# the trainer's accuracy test reads from /usr/share/datasets/fashion-mnist.
set -euo pipefail

need=()
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || need+=(dataset-fashion-mnist)
[[ ${#need[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing Debian packages ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
