#!/usr/bin/env bash
# Configures and builds meshlane into build/ (binaries in build/bin/).
# MESHLANE_TEST_HOOKS=ON compiles in the integration tests' MESHLANE_TEST_* knobs (scripts/test.sh
# sets it); the default OFF is the build to ship (docs/security.md, "Test knobs").
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DMESHLANE_TEST_HOOKS="${MESHLANE_TEST_HOOKS:-OFF}" >/dev/null
ninja -C build
