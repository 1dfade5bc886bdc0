#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test: unit tests and the network-namespace
# integration tests (root required: they load BPF programs into a child cgroup of their own),
# the unit tests again under ASan+UBSan, and each fuzz target for a bounded time
# (FUZZ_SECONDS per target, default 20; 0 skips fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: run as root (sudo scripts/test.sh): the integration tests load BPF programs" >&2
  exit 1
fi

scripts/deps.sh
scripts/build.sh
(cd build && ctest --output-on-failure --timeout 900 "$@")

# The controller's unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
echo "test.sh: unit tests with ASan+UBSan (build-sanitize/)"
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMESHLANE_SANITIZERS=ON >/dev/null
ninja -C build-sanitize unit_tests fuzz_control_api_replay fuzz_config_replay fuzz_metrics_http_replay fuzz_policy_replay >/dev/null
(cd build-sanitize && ctest --output-on-failure -L unit -j2)

# The parsers under libFuzzer for a bounded time; a crash or broken invariant fails the run.
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi
