#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test: unit tests and the network-namespace
# integration tests (root required: they load BPF programs into a child cgroup of their own).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: run as root (sudo scripts/test.sh): the integration tests load BPF programs" >&2
  exit 1
fi

scripts/deps.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 "$@"
