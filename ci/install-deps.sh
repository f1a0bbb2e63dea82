#!/usr/bin/env bash
# Installs what gwtest's tests need beyond Rust: kubectl (the tests drive the real kubectl
# against the embedded API server). Debian's `kubernetes-client` package when it is missing.
set -euo pipefail

need=()
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "ci/install-deps.sh: installing ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
