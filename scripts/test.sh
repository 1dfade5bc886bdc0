#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test: unit tests and the network-namespace
# integration tests (root required: they load BPF programs into a child cgroup of their own),
# the unit tests again under ASan+UBSan, and each fuzz target for a bounded time
# (FUZZ_SECONDS per target, default 20; 0 skips fuzzing, not the sanitizer run).
# Extra arguments go to the first ctest (e.g. -R netns.test_policy).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: run as root (sudo scripts/test.sh): the integration tests load BPF programs" >&2
  exit 1
fi

# phase NAME: how long the phase that just ended took (the run's profile, at a glance in CI logs).
phase_start=$SECONDS
phase() {
  echo "test.sh: $1 took $((SECONDS - phase_start)) s (total $SECONDS s)"
  phase_start=$SECONDS
}

scripts/deps.sh
phase "installing dependencies"
# What deps.sh installed, before anything else in PATH (a pyenv python3 shim, say): the tests
# start Python hundreds of times, and a shim makes each start seconds long on a busy machine.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
# With the MESHLANE_TEST_* knobs several integration tests need (docs/security.md, "Test knobs").
MESHLANE_TEST_HOOKS=ON scripts/build.sh
phase "the build"

# The sanitized clang build (build-fuzz/, for the ASan+UBSan unit tests and the fuzz targets)
# compiles while the tests below run, at idle priority: SCHED_IDLE gets only CPU time the tests
# leave unused, so it does not slow them; it just uses their waits instead of adding its own
# minutes after them. Its own process group, so that every exit path can stop it.
sanitized_log=$(mktemp /tmp/meshlane-build-fuzz.XXXXXX.log)
setsid chrt --idle 0 scripts/fuzz.sh --unit-tests --build-only >"$sanitized_log" 2>&1 &
sanitized_build=$!
stop_sanitized_build() {
  kill -TERM -- "-$sanitized_build" 2>/dev/null || true
  rm -f -- "$sanitized_log"
}
trap stop_sanitized_build EXIT

# -j2: the unit tests run two at a time; each integration test runs alone (RUN_SERIAL): they
# are isolated from each other, but two at once on a 2-CPU machine doubled the longest ones'
# time (test_fast_path went past its 600 s limit), so they would gain little and risk much.
(cd build && ctest --output-on-failure --timeout 900 -j2 "$@")
phase "ctest (unit, deploy and integration tests)"

echo "test.sh: waiting for the sanitized build (build-fuzz/)"
if ! wait "$sanitized_build"; then
  tail -n 80 "$sanitized_log" >&2
  echo "test.sh: the sanitized clang build failed (full log above: scripts/fuzz.sh --unit-tests --build-only)" >&2
  exit 1
fi
tail -n 1 "$sanitized_log"
phase "waiting for the sanitized build"

# The unit tests again under ASan and UBSan, then the parsers under libFuzzer for a bounded time
# (a crash or broken invariant fails the run).
scripts/fuzz.sh --unit-tests "${FUZZ_SECONDS:-20}"
phase "the sanitized unit tests and fuzzing"
