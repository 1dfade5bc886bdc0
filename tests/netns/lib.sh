# Shared helpers for the meshlane integration tests (tests/netns/test_*.sh). Source it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Environment: MESHLANE_BIN (directory holding meshlaned and ml_xfer; default
# $MESHLANE_SRC/build/bin), MESHLANE_SRC (source tree; default: two levels above this file),
# BPFTOOL (default /usr/sbin/bpftool), ML_KEEP_LOGS=1 keeps the work directory.
#
# The cgroup, netns, process and cleanup helpers themselves (host_*) are scripts/lib/host.sh,
# shared with scripts/bench, scripts/demo.sh and scripts/soak.sh; this file adds the tests'
# conventions on top.
#
# Safety rules every test follows through these helpers:
#   - nothing is ever attached to the cgroup v2 root: tests make their own child cgroup
#     (ml_make_cgroup), run their processes in it and point daemon.cgroup at it;
#   - traffic stays inside network namespaces the test creates (ml_make_netns);
#   - everything made is undone by a cleanup stack run from an EXIT trap, in reverse order:
#     background processes are killed by PID, `meshlaned --cleanup` removes the pins and
#     attachments, namespaces are deleted, cgroups are emptied and removed.
#
# Failures print "FAIL: <test>: <why>" on stderr and exit 1; ml_pass prints "PASS: <test>".
#
# Timing: the tests must pass on a slow or loaded machine. Nothing waits a fixed time for
# something to be ready (a server listening, a daemon answering, a counter moving): it polls for
# the condition, and the bound (ML_WAIT_S, default 60 s) only guards against a hang. Background
# load runs until the test stops it (`ml_connrate client --duration 0`, ml_connrate_stop), never
# for a fixed time that the steps in between must fit in.
#
# Blocking sockets are not spliced by default: the kernel's sockmap receive path can return
# EAGAIN to a blocking recv(), so the datapath only splices a client socket that is O_NONBLOCK
# when it connects and a server socket whose listener was O_NONBLOCK at listen() (recorded when
# listen() is called, or by the daemon's listener scan for listeners opened before it); the
# others are counted in sockets_skipped_blocking (acceleration.splice_blocking_sockets = true
# turns this off).
# Traffic that a test expects to be spliced therefore runs `ml_xfer --nonblocking` on both
# sides; test_blocking_guard.sh checks the guard itself.

set -eEuo pipefail

# Debian's interpreter and tools first: scripts/deps.sh installs what the tests use there, and a
# python3 shim earlier in PATH (pyenv's is a shell script that runs pyenv) costs 1 to 3 s per
# call on a loaded 2-CPU machine, where Debian's python3 starts in 0.1 to 0.6 s.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# The test is named after the script run (the last of the files sourcing this one, directly or
# through mesh_lib.sh, rel_lib.sh or control_lib.sh): test_foo.sh -> "foo".
ML_TEST_NAME=$(basename "${BASH_SOURCE[-1]:-$0}" .sh)
ML_TEST_NAME=${ML_TEST_NAME#test_}
MESHLANE_SRC=${MESHLANE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/host.sh"
# shellcheck disable=SC2034  # host.sh's warnings name the test
HOST_WHO="[$ML_TEST_NAME]"
MESHLANE_BIN=${MESHLANE_BIN:-$MESHLANE_SRC/build/bin}
MESHLANED=${MESHLANED:-$MESHLANE_BIN/meshlaned}
ML_XFER=${ML_XFER:-$MESHLANE_BIN/ml_xfer}
ML_CONNRATE=${ML_CONNRATE:-$MESHLANE_BIN/ml_connrate}
ML_SOCKSTATE=${ML_SOCKSTATE:-$MESHLANE_BIN/ml_sockstate}
BPFTOOL=${BPFTOOL:-/usr/sbin/bpftool}
# A short tag unique to this test run, used in names of namespaces, cgroups and pins.
ML_TAG="${ML_TEST_NAME//_/-}-$$"

ML_WORKDIR=""
ML_DAEMON_PID=""
ML_DAEMON_LOG=""
ML_CONFIG=""
ML_BPFFS_DIR=""
ML_CG=""
ML_CG_REL=""

ml_log() { echo "--- [$ML_TEST_NAME] $*" >&2; }

ml_fail() {
  echo "FAIL: $ML_TEST_NAME: $*" >&2
  exit 1
}

ml_pass() { echo "PASS: $ML_TEST_NAME"; }

# At exit (host_trap_exit): the cleanup stack of host_defer, then the work directory.
ml__run_cleanup() {
  local rc=$1
  host_run_deferred
  if [[ -n $ML_WORKDIR && -d $ML_WORKDIR ]]; then
    if [[ $rc -ne 0 || ${ML_KEEP_LOGS:-0} == 1 ]]; then
      echo "--- [$ML_TEST_NAME] logs kept in $ML_WORKDIR" >&2
    else
      rm -rf -- "$ML_WORKDIR"
    fi
  fi
}
host_trap_exit ml__run_cleanup
# A command failing outside any check still says where, instead of ending the test silently.
trap 'echo "FAIL: $ML_TEST_NAME: unexpected failure (status $?) at ${BASH_SOURCE[0]}:$LINENO: $BASH_COMMAND" >&2' ERR

ml_require_root() {
  [[ $(id -u) -eq 0 ]] || ml_fail "must run as root (needs netns, cgroups and BPF)"
}

# ml_require_cmd CMD...: every CMD must be executable (a path or a name on PATH).
ml_require_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || ml_fail "required command not found: $c"
  done
}

# ml_make_cgroup [SUFFIX]: creates <cgroup2 mount>/meshlane-test-<tag>[-SUFFIX] and sets ML_CG
# (absolute path), ML_CG_REL (path below the mount) and ML_CG_MOUNT. Removed at exit.
ml_make_cgroup() {
  local suffix=${1:+-$1}
  ML_CG_REL="meshlane-test-$ML_TAG$suffix"
  host_make_cgroup ML_CG "$ML_CG_REL" || ml_fail "cannot make the test cgroup (above)"
  # shellcheck disable=SC2034  # for the tests
  ML_CG_MOUNT=${ML_CG%/*}
  host_defer host_remove_cgroup "$ML_CG"
  ml_log "cgroup $ML_CG"
}

# ml_make_netns VAR [SUFFIX]: creates a network namespace with lo up, stores its name in VAR.
# Deleted at exit (after the processes still in it are killed).
ml_make_netns() {
  ML__NS="ml-$ML_TAG-${2:-ns}"
  host_make_netns "$ML__NS" || ml_fail "cannot make netns $ML__NS (above)"
  host_defer host_delete_netns "$ML__NS"
  printf -v "$1" '%s' "$ML__NS"
}

# ml_bg VAR OUTFILE ERRFILE CGROUP NETNS CMD [ARGS...]: CMD in CGROUP and NETNS (host_argv),
# in the background; the PID goes to VAR and the process is killed at exit if still running.
ml_bg() {
  local var=$1 out=$2 err=$3
  shift 3
  host_argv "$@"
  "${HOST_ARGV[@]}" >"$out" 2>"$err" </dev/null &
  ML__BG_PID=$!
  host_defer host_kill_pid "$ML__BG_PID"
  printf -v "$var" '%s' "$ML__BG_PID"
}

# ml_wait_file FILE PID [SECONDS]: waits (default ML_WAIT_S) for FILE to exist while PID lives.
ml_wait_file() {
  local file=$1 pid=$2 end=$((SECONDS + ${3:-$ML_WAIT_S}))
  while :; do
    [[ -e $file ]] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    ((SECONDS < end)) || return 1
    sleep 0.05
  done
}

# ml_setup: common start of every test: root, tools, work directory.
ml_setup() {
  ml_require_root
  ml_require_cmd ip bash grep sed awk
  ML_WORKDIR=$(mktemp -d "/tmp/meshlane-test-$ML_TAG.XXXXXX")
}

ml_require_meshlane() {
  [[ -x $MESHLANED ]] || ml_fail "meshlaned not found at $MESHLANED (set MESHLANE_BIN)"
  [[ -x $ML_XFER ]] || ml_fail "ml_xfer not found at $ML_XFER (set MESHLANE_BIN)"
}

# ml_require_test_hooks: for tests that set MESHLANE_TEST_* knobs, which only a build with
# -DMESHLANE_TEST_HOOKS=ON reads (scripts/test.sh's; `meshlaned --version` says so).
ml_require_test_hooks() {
  ml_require_meshlane
  "$MESHLANED" --version | grep -q 'MESHLANE_TEST_\* knobs compiled in' ||
    ml_fail "$MESHLANED was built without the MESHLANE_TEST_* knobs this test needs:" \
      "build with MESHLANE_TEST_HOOKS=ON scripts/build.sh (or cmake -DMESHLANE_TEST_HOOKS=ON)"
}

# ---------------------------------------------------------------------------------------------
# The daemon

# ml_write_config FILE [EXTRA_LINE...]: a config for this test: unique bpffs_dir, the test
# cgroup, daemon.inbound_steering from ML_INBOUND_STEERING when set ("tc", "sk_lookup"; unset:
# the default, "sk_lookup"), and EXTRA_LINEs appended
# inside [acceleration] (start one with "[table]" to move on).
ml_write_config() {
  local file=$1
  shift
  [[ -n $ML_CG_REL ]] || ml_fail "ml_write_config before ml_make_cgroup"
  ML_BPFFS_DIR=${ML_BPFFS_DIR:-/sys/fs/bpf/meshlane-test-$ML_TAG}
  {
    echo "# generated by tests/netns/lib.sh for $ML_TEST_NAME"
    echo "[daemon]"
    echo "bpffs_dir = \"$ML_BPFFS_DIR\""
    echo "cgroup = \"$ML_CG_REL\""
    echo "log_level = \"debug\""
    echo "socket = \"$ML_WORKDIR/meshlane.sock\""
    echo "state_dir = \"$ML_WORKDIR/state\""
    # ML_INBOUND_STEERING=tc runs a test with tc steering instead of the socket lookup.
    [[ -z ${ML_INBOUND_STEERING:-} ]] || echo "inbound_steering = \"$ML_INBOUND_STEERING\""
    echo ""
    echo "[acceleration]"
    echo "enabled = true"
    local l
    for l in "$@"; do echo "$l"; done
  } >"$file"
}

# ml_daemon_start [EXTRA_LINE...]: writes $ML_WORKDIR/meshlane-N.toml (see ml_write_config),
# starts `meshlaned --config` in the background and waits (ML_WAIT_S at most) for "meshlaned
# ready".
# Sets ML_CONFIG, ML_DAEMON_PID, ML_DAEMON_LOG. At exit: the daemon is killed and
# `meshlaned --cleanup` is run.
ML_DAEMON_SEQ=0
ml_daemon_start() {
  ml_require_meshlane
  ML_DAEMON_SEQ=$((ML_DAEMON_SEQ + 1))
  local config="$ML_WORKDIR/meshlane-$ML_DAEMON_SEQ.toml"
  ml_write_config "$config" "$@"
  ml_daemon_start_with_config "$config"
}

# ml_daemon_start_with_config CONFIG_FILE [CLEANUP_CONFIG]: starts `meshlaned --config
# CONFIG_FILE` (an existing file) in the background and waits (ML_WAIT_S at most) for
# "meshlaned ready".
# Sets ML_CONFIG (CONFIG_FILE), ML_DAEMON_PID and ML_DAEMON_LOG
# ($ML_WORKDIR/meshlaned-$ML_DAEMON_SEQ.log: callers bump ML_DAEMON_SEQ first). At exit: the
# daemon is killed and `meshlaned --cleanup` is run on CLEANUP_CONFIG (default CONFIG_FILE).
ml_daemon_start_with_config() {
  ml_daemon_exec "$@"
  local ready=0
  host_daemon_wait_ready "$ML_DAEMON_PID" "$ML_WAIT_S" "$ML_DAEMON_LOG" || ready=$?
  if [[ $ready -eq 1 ]]; then
    local rc=0
    wait "$ML_DAEMON_PID" || rc=$?
    ml_dump_daemon_log
    ml_fail "meshlaned exited with status $rc before logging 'meshlaned ready'"
  elif [[ $ready -ne 0 ]]; then
    ml_dump_daemon_log
    ml_fail "meshlaned did not log 'meshlaned ready' within $ML_WAIT_S s"
  fi
  ml_log "meshlaned ready (pid $ML_DAEMON_PID, config $ML_CONFIG)"
}

# ml_daemon_exec CONFIG_FILE [CLEANUP_CONFIG]: starts `meshlaned --config CONFIG_FILE` in the
# background without waiting for it (ml_daemon_start_with_config waits for "meshlaned ready",
# rel_start_timed for the control socket). Sets ML_CONFIG, ML_DAEMON_PID and ML_DAEMON_LOG
# ($ML_WORKDIR/meshlaned-$ML_DAEMON_SEQ.log). At exit: the daemon is killed and `meshlaned
# --cleanup` is run on CLEANUP_CONFIG (default CONFIG_FILE).
ml_daemon_exec() {
  local config=$1 cleanup_config=${2:-$1}
  ml_require_meshlane
  ML_CONFIG=$config
  ML_DAEMON_LOG="$ML_WORKDIR/meshlaned-$ML_DAEMON_SEQ.log"
  host_defer ml_daemon_cleanup_quiet "$cleanup_config"
  "$MESHLANED" --config "$ML_CONFIG" >"$ML_DAEMON_LOG" 2>&1 </dev/null &
  ML_DAEMON_PID=$!
  host_defer host_kill_pid "$ML_DAEMON_PID"
}

ml_dump_daemon_log() {
  [[ -n $ML_DAEMON_LOG && -f $ML_DAEMON_LOG ]] || return 0
  echo "----- meshlaned log ($ML_DAEMON_LOG) -----" >&2
  tail -n 60 "$ML_DAEMON_LOG" >&2
  echo "----- end of meshlaned log -----" >&2
}

# ml_daemon_stop: SIGTERM to the daemon, waits for it to exit (ML_WAIT_S at most), sets
# ML_DAEMON_RC to its exit status.
ml_daemon_stop() {
  local pid=$ML_DAEMON_PID
  [[ -n $pid ]] || ml_fail "ml_daemon_stop: no daemon running"
  if ! host_stop_pid "$pid"; then
    ml_dump_daemon_log
    ml_fail "meshlaned (pid $pid) still running $ML_WAIT_S s after SIGTERM"
  fi
  ML_DAEMON_RC=$HOST_RC
  ML_DAEMON_PID=""
}

# ml_daemon_cleanup [CONFIG]: `meshlaned --config CONFIG --cleanup`; fails the test on error.
# shellcheck disable=SC2120  # CONFIG defaults to ML_CONFIG
ml_daemon_cleanup() {
  local cfg=${1:-$ML_CONFIG} rc=0
  host_daemon_cleanup "$MESHLANED" "$cfg" "$ML_WORKDIR/cleanup.out" || rc=$?
  if [[ $rc -ne 0 ]]; then
    cat "$ML_WORKDIR/cleanup.out" >&2
    ml_fail "meshlaned --cleanup exited with status $rc"
  fi
}

# At exit: never fails, but says when the daemon left its bpffs directory behind, and then
# removes it (it is unique to this test run).
ml_daemon_cleanup_quiet() {
  local cfg=$1 dir
  [[ -x $MESHLANED ]] && host_daemon_cleanup "$MESHLANED" "$cfg"
  dir=$(sed -n 's/^bpffs_dir = "\(.*\)"$/\1/p' "$cfg" 2>/dev/null | sed -n 1p)
  if [[ -n $dir && $dir == /sys/fs/bpf/meshlane-test-* && -e $dir ]]; then
    echo "WARN: [$ML_TEST_NAME] $dir still exists after meshlaned --cleanup; removing it" >&2
    rm -rf -- "$dir"
  fi
}

# ml_sighup LABEL: SIGHUP to the daemon; waits (ML_WAIT_S at most) for its verdict on the reload
# and leaves the log lines written since in RELOAD_LINES. The daemon must still run.
ml__sighup_verdict() {  # LABEL START
  RELOAD_LINES=$(tail -n "+$(($2 + 1))" "$ML_DAEMON_LOG")
  grep -qE 'reload: [0-9]+ workload\(s\) applied|reload rejected' <<<"$RELOAD_LINES" && return 0
  kill -0 "$ML_DAEMON_PID" 2>/dev/null || {
    ml_dump_daemon_log
    ml_fail "$1: meshlaned exited after SIGHUP"
  }
  return 1
}
ml_sighup() {
  local label=$1 start
  kill -0 "$ML_DAEMON_PID" 2>/dev/null || ml_fail "$label: meshlaned is not running"
  start=$(wc -l <"$ML_DAEMON_LOG")
  kill -HUP "$ML_DAEMON_PID"
  host_wait_for "$ML_WAIT_S" ml__sighup_verdict "$label" "$start" || {
    ml_dump_daemon_log
    ml_fail "$label: meshlaned logged neither 'reload: N workload(s) applied' nor 'reload rejected' within $ML_WAIT_S s of SIGHUP"
  }
  sleep 0.2 # the lines that follow the verdict, and a daemon that would die of it
  RELOAD_LINES=$(tail -n "+$((start + 1))" "$ML_DAEMON_LOG")
  kill -0 "$ML_DAEMON_PID" 2>/dev/null || {
    ml_dump_daemon_log
    ml_fail "$label: meshlaned exited after SIGHUP"
  }
  ml_log "$label: daemon after SIGHUP:"$'\n'"$RELOAD_LINES"
}

# ml_restart_daemon [EXTRA_LINE...]: stop (SIGTERM, must exit 0), --cleanup, start anew.
ml_restart_daemon() {
  ml_daemon_stop
  [[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
  ml_daemon_cleanup
  ml_daemon_start "$@"
}

# ---------------------------------------------------------------------------------------------
# Counters

# ml_stats_json: prints the one-line JSON object of `meshlaned --stats -o json`.
ml_stats_json() {
  local out rc=0
  out=$("$MESHLANED" --config "$ML_CONFIG" --stats -o json 2>"$ML_WORKDIR/stats.err") || rc=$?
  if [[ $rc -ne 0 ]]; then
    cat "$ML_WORKDIR/stats.err" >&2
    ml_fail "meshlaned --stats -o json exited with status $rc"
  fi
  # Flatten: the object may be pretty-printed over several lines.
  printf '%s' "$out" | tr -d '\n'
  echo
}

# ml_json_int JSON KEY: the integer value of "KEY" in a flat JSON object.
ml_json_int() {
  # A bash regex, not grep and sed: tests call this hundreds of times, and on a loaded 2-CPU
  # machine each forked process costs tens of milliseconds.
  local json=$1 re="\"$2\"[[:space:]]*:[[:space:]]*(-?[0-9]+)"
  [[ $json =~ $re ]] || ml_fail "no integer field \"$2\" in JSON: $json"
  echo "${BASH_REMATCH[1]}"
}

# ml_json_field JSON KEY: the raw value of "KEY" (string without quotes, or true/false/number).
ml_json_field() {
  local json=$1 key=$2
  printf '%s\n' "$json" | sed -n "s/.*\"$key\"[[:space:]]*:[[:space:]]*\(\"\([^\"]*\)\"\|\([^,}]*\)\).*/\2\3/p" |
    sed -n 1p
}

# (--stats -o json has more counters; these are the ones the tests check.)
ML_COUNTERS="sockets_added sockets_add_failed sockets_skipped_by_port sockets_skipped_blocking messages_redirected bytes_redirected redirect_failed redirect_reader_behind redirect_reader_spinning redirect_peer_left sockets_skipped_peer sockets_skipped_short"

# ml_snapshot PREFIX: stores every counter in variables PREFIX_<counter>.
ml_snapshot() {
  # ml__ names: ml_stats_json runs in this function's scope (bash scoping is dynamic).
  local ml__json ml__name ml__value
  local -A ml__found=()
  ml__json=$(ml_stats_json) || exit 1
  # Every "name": integer pair in one pass (the counters object is flat), without a process per
  # counter: snapshots are taken around every step of every test.
  while read -r ml__name ml__value; do
    ml__found[$ml__name]=$ml__value
  done < <(printf '%s\n' "$ml__json" |
    grep -o '"[A-Za-z0-9_]*"[[:space:]]*:[[:space:]]*-\{0,1\}[0-9]\{1,\}' |
    sed 's/^"\([^"]*\)"[[:space:]]*:[[:space:]]*/\1 /')
  for ml__name in $ML_COUNTERS; do
    [[ -n ${ml__found[$ml__name]+set} ]] || ml_fail "no integer field \"$ml__name\" in JSON: $ml__json"
    printf -v "${1}_$ml__name" '%s' "${ml__found[$ml__name]}"
  done
}

# ml_delta A B COUNTER: prints B_COUNTER - A_COUNTER.
ml_delta() {
  local a="${1}_$3" b="${2}_$3"
  echo $((${!b} - ${!a}))
}

# ml_show_delta A B: one line with every counter's change.
ml_show_delta() {
  local c a b line=""
  for c in $ML_COUNTERS; do
    a="${1}_$c" b="${2}_$c"
    line+=" $c=+$((${!b} - ${!a}))"
  done
  ml_log "counters:$line"
}

# ml_monitor_slot KEY: slot KEY of the daemon's ml_monitor_v1, read from the kernel: 0 the event
# types the datapath emits now (the gate, bit 1 << ML_EVENT_*), 1 the events lost because the
# ring buffer was full.
ml_monitor_slot() {
  "$BPFTOOL" -j map lookup pinned "$ML_BPFFS_DIR/ml_monitor_v1" key "$1" 0 0 0 |
    python3 -c '
import json, sys
j = json.load(sys.stdin)
if "formatted" in j:
    print(j["formatted"]["value"])
else:
    print(int.from_bytes(bytes(int(b, 16) for b in j["value"]), "little"))'
}

# ---------------------------------------------------------------------------------------------
# Traffic

# ml_xfer_server_bg VAR CGROUP NETNS LABEL ARGS...: starts `ml_xfer server ARGS` and waits until
# it listens. PID in VAR; stdout/stderr in $ML_WORKDIR/LABEL.server.{out,err}.
ml_xfer_server_bg() {
  local var=$1 cg=$2 ns=$3 label=$4
  shift 4
  local ready="$ML_WORKDIR/$label.ready"
  rm -f "$ready"
  ml_bg ML__SERVER_PID "$ML_WORKDIR/$label.server.out" "$ML_WORKDIR/$label.server.err" \
    "$cg" "$ns" "$ML_XFER" server --ready-file "$ready" "$@"
  if ! ml_wait_file "$ready" "$ML__SERVER_PID"; then
    cat "$ML_WORKDIR/$label.server.err" >&2
    ml_fail "$label: ml_xfer server did not start listening"
  fi
  printf -v "$var" '%s' "$ML__SERVER_PID"
}

# ml__xfer_result LABEL ROLE RC: checks the exit status and final JSON line of one side.
# Prints that line to stderr; on success adds its bytes_sent to ML_XFER_WIRE and returns 0,
# otherwise sets ML__XFER_ERR and returns 1.
ml__xfer_result() {
  local label=$1 role=$2 rc=$3
  local out="$ML_WORKDIR/$label.$role.out" err="$ML_WORKDIR/$label.$role.err"
  local last
  last=$(tail -n1 "$out" 2>/dev/null || true)
  echo "    $label $role (exit $rc): $last" >&2
  if [[ $rc -ne 0 || $(ml_json_field "$last" ok) != true ]]; then
    echo "----- $label $role stderr -----" >&2
    tail -n 20 "$err" >&2
    ML__XFER_ERR="ml_xfer $role exited with status $rc: $(ml_json_field "$last" error)"
    return 1
  fi
  local sent
  sent=$(ml_json_int "$last" bytes_sent) || exit 1
  ML_XFER_WIRE=$((ML_XFER_WIRE + sent))
}

# ml_xfer_last LABEL ROLE: the final JSON line of one side of transfer LABEL.
ml_xfer_last() { tail -n1 "$ML_WORKDIR/$1.$2.out" 2>/dev/null || true; }

# ml_xfer_assert_mode LABEL ROLE true|false: that side ran with "nonblocking" as given.
ml_xfer_assert_mode() {
  local got
  got=$(ml_json_field "$(ml_xfer_last "$1" "$2")" nonblocking)
  [[ $got == "$3" ]] || ml_fail "$1: ml_xfer $2 reports nonblocking=$got, expected $3"
}

# ml_xfer_wait_server PID LABEL: waits for a server started by ml_xfer_server_bg; sets
# ML__SERVER_RC.
ml_xfer_wait_server() {
  ML__SERVER_RC=0
  wait "$1" || ML__SERVER_RC=$?
}

# ml_xfer_client CGROUP NETNS LABEL ARGS...: runs `ml_xfer client ARGS` in the foreground;
# sets ML__CLIENT_RC.
ml_xfer_client() {
  local cg=$1 ns=$2 label=$3
  shift 3
  ML__CLIENT_RC=0
  host_in "$cg" "$ns" "$ML_XFER" client "$@" >"$ML_WORKDIR/$label.client.out" \
    2>"$ML_WORKDIR/$label.client.err" </dev/null || ML__CLIENT_RC=$?
}

# ml_xfer_check LABEL CLIENT_RC SERVER_RC: checks both sides of a transfer (both reported),
# fails the test if either failed. Sets ML_XFER_WIRE to the bytes both sides sent.
ml_xfer_check() {
  local label=$1 errs=""
  ML_XFER_WIRE=0
  ml__xfer_result "$label" client "$2" || errs+=" [client] $ML__XFER_ERR"
  ml__xfer_result "$label" server "$3" || errs+=" [server] $ML__XFER_ERR"
  [[ -z $errs ]] || ml_fail "$label:$errs"
}

# ml_xfer_pair CGROUP NETNS LABEL "SERVER ARGS" "CLIENT ARGS" [COMMON ARGS...]: one checked
# transfer; afterwards ML_XFER_WIRE holds the bytes both sides sent (headers included).
ml_xfer_pair() {
  local cg=$1 ns=$2 label=$3 sargs=$4 cargs=$5
  shift 5
  # shellcheck disable=SC2086  # the argument strings are split on purpose
  ml_xfer_server_bg ML__PAIR_PID "$cg" "$ns" "$label" $sargs "$@"
  # shellcheck disable=SC2086
  ml_xfer_client "$cg" "$ns" "$label" $cargs "$@"
  ml_xfer_wait_server "$ML__PAIR_PID" "$label"
  ml_xfer_check "$label" "$ML__CLIENT_RC" "$ML__SERVER_RC"
}

# ml_wait_listen NETNS PORT [SECONDS]: waits (default ML_WAIT_S) until a TCP socket listens on
# PORT in NETNS.
ml_wait_listen() {
  local ns=$1 port=$2 secs=${3:-$ML_WAIT_S}
  host_wait_listen "$ns" - "$secs" "$port" || ml_fail "nothing listens on port $port in $ns after $secs s"
}

# ml_connrate_stop PID OUTFILE LABEL [MIN_REQUESTS]: stops background load started with
# `ml_bg PID OUTFILE ERRFILE ... ml_connrate client --duration 0 ...` (it runs until stopped)
# and checks its result: it was still running (it never ends by itself), SIGTERM ends it with
# status 0 (no error and at least one request), its JSON line says errors 0 and more than
# MIN_REQUESTS (default 0) requests. The line goes to ML_CONNRATE_RESULT and the log.
ml_connrate_stop() {
  local pid=$1 out=$2 label=$3 min=${4:-0} rc=0 result err
  err=${out%.out}.err
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || rc=$?
    ml_fail "$label: ml_connrate client exited (status $rc) before the test stopped it:" \
      "$(tail -n 1 "$out" 2>/dev/null) $(tail -n 3 "$err" 2>/dev/null)"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  host_wait_exit "$pid" || ml_fail "$label: ml_connrate client still running $ML_WAIT_S s after SIGTERM"
  wait "$pid" || rc=$?
  result=$(tail -n 1 "$out" 2>/dev/null || true)
  # shellcheck disable=SC2034  # for the tests
  ML_CONNRATE_RESULT=$result
  ml_log "$label (exit $rc): $result"
  [[ $rc -eq 0 && $result == *'"ok":true'* ]] ||
    ml_fail "$label: ml_connrate client failed (exit $rc): $result $(tail -n 3 "$err" 2>/dev/null)"
  [[ $(ml_json_int "$result" errors) -eq 0 && $(ml_json_int "$result" requests) -gt $min ]] ||
    ml_fail "$label: expected no error and more than $min requests: $result"
}

# ml_connrate_progress PID OUTFILE PROGRESS LABEL: where background load started with
# `ml_connrate client --duration 0 --progress-file PROGRESS` stands: ML_CR_REQUESTS,
# ML_CR_ERRORS and ML_CR_CONNECTIONS from PROGRESS (rewritten every 100 ms). Returns 1 before
# the first progress; fails the test if the client exited (it never ends by itself) or saw an
# error. For predicates polled with host_wait_for.
ml_connrate_progress() {
  local pid=$1 out=$2 progress=$3 label=$4 err=${2%.out}.err
  kill -0 "$pid" 2>/dev/null ||
    ml_fail "$label: ml_connrate client exited: $(tail -n 1 "$out" 2>/dev/null) $(tail -n 3 "$err" 2>/dev/null)"
  read -r ML_CR_REQUESTS ML_CR_ERRORS ML_CR_CONNECTIONS 2>/dev/null <"$progress" || return 1
  ((ML_CR_ERRORS == 0)) || ml_fail "$label: $ML_CR_ERRORS request(s) failed: $(tail -n 3 "$err" 2>/dev/null)"
}

# ---------------------------------------------------------------------------------------------
# BPF objects

# ml_bpf_named KIND: the "ID: type name ..." lines of every KIND (prog or map) named ml_*.
ml_bpf_named() {
  "$BPFTOOL" "$1" show 2>/dev/null | grep -E '^[0-9]+: .*name ml_' || true
}

# ml_bpf_ml_links: the first lines of every bpf_link whose program is named ml_*.
ml_bpf_ml_links() {
  local ids line pid
  ids=" $("$BPFTOOL" prog show 2>/dev/null | sed -n 's/^\([0-9]\{1,\}\): .*name ml_.*/\1/p' | tr '\n' ' ') "
  "$BPFTOOL" link show 2>/dev/null | grep -E '^[0-9]+: ' | while IFS= read -r line; do
    pid=$(sed -n 's/.* prog \([0-9]\{1,\}\).*/\1/p' <<<"$line")
    if [[ -n $pid && $ids == *" $pid "* ]]; then echo "$line"; fi
  done || true
}

# ml_cgroup_progs CGROUP: the programs attached to exactly this cgroup (bpftool cgroup show).
ml_cgroup_progs() {
  "$BPFTOOL" cgroup show "$1" 2>/dev/null | grep -E '^[[:space:]]*[0-9]+' || true
}

# ---------------------------------------------------------------------------------------------
# Assertions on counter deltas between two ml_snapshot PREFIXes

# ml_assert_spliced A B WIRE LABEL: the traffic between snapshots A and B (WIRE bytes sent in
# total, both directions, nothing else in the cgroup) went through the sockhash: no socket was
# refused as blocking, messages were redirected and bytes_redirected is at least 90% of WIRE
# (the first message of a connection may race with the peer's insertion) and not more than
# WIRE + 1% + 1 MiB.
ml_assert_spliced() {
  local a=$1 b=$2 wire=$3 label=$4 bytes msgs blocking
  bytes=$(ml_delta "$a" "$b" bytes_redirected)
  msgs=$(ml_delta "$a" "$b" messages_redirected)
  blocking=$(ml_delta "$a" "$b" sockets_skipped_blocking)
  ml_show_delta "$a" "$b"
  [[ $blocking -eq 0 ]] ||
    ml_fail "$label: sockets_skipped_blocking rose by $blocking: the datapath saw blocking sockets (ml_xfer without --nonblocking, or a listener made before the daemon was ready?)"
  [[ $msgs -gt 0 ]] ||
    ml_fail "$label: messages_redirected did not rise: the connection was not spliced"
  [[ $((bytes * 10)) -ge $((wire * 9)) ]] ||
    ml_fail "$label: bytes_redirected rose by $bytes, less than 90% of the $wire bytes sent"
  [[ $bytes -le $((wire + wire / 100 + 1048576)) ]] ||
    ml_fail "$label: bytes_redirected rose by $bytes, more than the $wire bytes sent (+1% +1 MiB)"
  ml_log "$label: spliced: $bytes of $wire bytes redirected in $msgs messages"
}

# ml_assert_skipped_blocking A B N LABEL: between snapshots A and B, nothing was redirected and
# sockets_skipped_blocking rose by exactly N.
ml_assert_skipped_blocking() {
  local a=$1 b=$2 n=$3 label=$4 bytes msgs blocking
  bytes=$(ml_delta "$a" "$b" bytes_redirected)
  msgs=$(ml_delta "$a" "$b" messages_redirected)
  blocking=$(ml_delta "$a" "$b" sockets_skipped_blocking)
  ml_show_delta "$a" "$b"
  [[ $bytes -eq 0 && $msgs -eq 0 ]] ||
    ml_fail "$label: blocking sockets must not be spliced, but $msgs messages / $bytes bytes were redirected"
  [[ $blocking -eq $n ]] ||
    ml_fail "$label: sockets_skipped_blocking rose by $blocking, expected exactly $n"
  ml_log "$label: not spliced, $blocking sockets skipped as blocking"
}

# ml_assert_not_spliced A B LABEL: nothing was redirected between snapshots A and B.
ml_assert_not_spliced() {
  local a=$1 b=$2 label=$3 bytes msgs
  bytes=$(ml_delta "$a" "$b" bytes_redirected)
  msgs=$(ml_delta "$a" "$b" messages_redirected)
  ml_show_delta "$a" "$b"
  [[ $bytes -eq 0 && $msgs -eq 0 ]] ||
    ml_fail "$label: expected no splicing, but $msgs messages / $bytes bytes were redirected"
}
