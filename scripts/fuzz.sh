#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) into build-fuzz/ and runs
# each one for a bounded time, starting from its checked-in seed corpus. Exits non-zero when
# a target crashes, leaks, trips a sanitizer or breaks one of its invariants; the input that
# did it is saved as build-fuzz/artifacts/<target>-crash-<sha1> (replay it with
# `build/bin/<target>_replay FILE`, or the fuzz binary itself with the file as argument).
#
# Usage: scripts/fuzz.sh [--unit-tests] [--build-only] [SECONDS_PER_TARGET]
#   SECONDS_PER_TARGET  default 20, or $FUZZ_SECONDS; 0 builds (and runs the unit tests) only
#   --unit-tests  also build every unit test in build-fuzz/ and run them before fuzzing:
#                 everything there is compiled with ASan and UBSan, so this is the sanitizer run
#                 of the unit tests (scripts/test.sh uses it: one clang build serves both)
#   --build-only  configure and build, run nothing
#   FUZZ_JOBS     targets fuzzed at the same time (default: the number of CPUs)
# New inputs found go to build-fuzz/corpus/<target>/, never into the checked-in seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

unit_tests=false
build_only=false
while [[ ${1:-} == --* ]]; do
  case $1 in
    --unit-tests) unit_tests=true ;;
    --build-only) build_only=true ;;
    *)
      echo "fuzz.sh: unknown option $1 (usage: scripts/fuzz.sh [--unit-tests] [--build-only] [SECONDS])" >&2
      exit 2
      ;;
  esac
  shift
done
seconds=${1:-${FUZZ_SECONDS:-20}}
targets=(fuzz_control_api fuzz_config fuzz_metrics_http fuzz_policy fuzz_cni)

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found: run scripts/deps.sh (it installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMESHLANE_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
build_targets=("${targets[@]}")
if $unit_tests; then
  build_targets+=(unit_tests "${targets[@]/%/_replay}")
fi
ninja -C build-fuzz -j"${FUZZ_BUILD_JOBS:-2}" "${build_targets[@]}"
$build_only && exit 0
if $unit_tests; then
  echo "fuzz.sh: unit tests with ASan+UBSan (build-fuzz/, clang)"
  (cd build-fuzz && ctest --output-on-failure -L unit -j2)
fi
[[ $seconds != 0 ]] || exit 0

mkdir -p build-fuzz/artifacts
# fuzz_one TARGET: one target for $seconds; its libFuzzer log in build-fuzz/TARGET.log.
fuzz_one() {
  local target=$1 work=build-fuzz/corpus/$1
  mkdir -p "$work"
  # -max_len: room for a request line over the fuzz target's 4 KiB frame limit.
  build-fuzz/bin/"$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -max_len=8192 -dict=tests/fuzz/"$target".dict -artifact_prefix=build-fuzz/artifacts/"$target"- \
    -print_final_stats=1 "$work" tests/fuzz/corpus/"$target" >build-fuzz/"$target".log 2>&1
}
# One target per CPU at a time (FUZZ_JOBS): each is single-threaded, so on a 2-CPU machine two
# at once halve the wall time and fuzz each as long.
jobs=${FUZZ_JOBS:-$(nproc)}
declare -A running=()
failed=""
# reap: waits for the first of the running targets to end and reports it.
reap() {
  local pid target
  wait -n -p pid "${!running[@]}" || {
    target=${running[$pid]}
    tail -n 60 build-fuzz/"$target".log >&2
    echo "fuzz.sh: $target FAILED; reproducer in build-fuzz/artifacts/ (log: build-fuzz/$target.log)" >&2
    failed+=" $target"
  }
  target=${running[$pid]}
  unset "running[$pid]"
  grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' build-fuzz/"$target".log |
    sed "s/^/fuzz.sh: $target /" || true
}
stop_fuzzers() {
  local pid
  for pid in "${!running[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_fuzzers EXIT
for target in "${targets[@]}"; do
  while ((${#running[@]} >= jobs)); do reap; done
  echo "fuzz.sh: $target for ${seconds}s"
  fuzz_one "$target" &
  running[$!]=$target
done
while ((${#running[@]} > 0)); do reap; done
trap - EXIT
if [[ -n $failed ]]; then
  echo "fuzz.sh: failed:$failed" >&2
  exit 1
fi
echo "fuzz.sh: every target ran ${seconds}s without a finding"
