#!/usr/bin/env bash
# meshlane benchmark: the Istio-style iptables sidecar mesh against meshlane, side by side, in
# one run, interleaved. See --help and docs/performance.md.
set -uo pipefail

usage() {
  cat <<'EOF'
Usage: sudo scripts/bench.sh [--quick] [--rounds N] [--duration S] [--modes LIST]
                             [--workloads LIST] [--proxy-threads N] [--out DIR] [--keep]
                             [--build] [--help]

Two pods (network namespaces on a bridge in a node namespace, 198.18.0.11 and .12) talk over
TCP in these modes, measured in one run and interleaved (round 1: a b c d dx d+ f f+ fn ft, round 2
starts one mode later, and so on):

  a   direct: client pod -> server pod, no mesh (the floor)
  b   Istio sidecar mesh: the istio-iptables nat rules in each pod and an HAProxy sidecar per pod
      (uid/gid 1337, outbound :15001, inbound :15006 with source 127.0.0.6): the baseline
  c   the same sidecars, meshlane interception instead of iptables, acceleration.enabled = false
  d   the same sidecars, meshlane interception and acceleration (the default configuration)
  dx  as d with acceleration.exclude_ports = [15001]: the hop app -> outbound sidecar stays on
      TCP, the other two hops are spliced; request/response and connection cells only (in
      the iperf3 cells that hop is not spliced in d either). It beat d's latency for
      busy-polling clients until d learned to take a spinning reader's replies off the
      splice: see "Idle vCPUs" in docs/performance.md
  d+  as d with acceleration.splice_blocking_sockets = true; throughput cells only (iperf3
      uses blocking sockets, which d does not splice)
  f   as d with both pods opted in to the L4 fast path (fast_path = true, docs/fast-path.md):
      the client's connects to the server pod skip both sidecars (which still run) and go app
      to app, spliced when both ends are non-blocking (iperf3's blocking sockets are not);
      compared with a and b in every cell (--quick runs it only when named: --modes a,b,f)
  f+  as f with acceleration.splice_blocking_sockets = true; throughput cells only: the fast
      path with iperf3's blocking sockets spliced app to app (not a default: docs/datapath.md)
  fn  as f with acceleration.enabled = false: the fast path without splicing (plain TCP app to
      app); connection and request cells only (cr1, cr16, rr1), to show what splicing a
      short connection costs or saves (f/fn)
  ft  as f with daemon.inbound_steering = "tc" (the default before 2026-12-07,
      docs/interception.md): tc filters on the pods' interfaces where every other mode has
      none (connections from off the node are steered at the socket lookup there); connection
      and request cells only (cr1, cr16, rr1), to show what tc's per-packet hook costs the fast
      path (ft/f)

Workloads (cells), client in pod A, server in pod B:
  sp64, sp4k            sockperf ping-pong --tcp --nonblocked, 64 B / 4 KiB: RTT p50, p99;
                        the client busy-polls recvfrom() between round trips
  spe64, spe4k          the same with the client waiting in epoll_wait() like an event-loop
                        application (sockperf's feed-file form, -F epoll)
  ip1x1k, ip1x64k,      iperf3, 1 or 8 streams, 1 KiB or 64 KiB writes: Gbit/s
  ip8x1k, ip8x64k
  cr1, cr16             ml_connrate: connect, one 64 B request, 64 B reply, close, at
                        concurrency 1 / 16: connections/s, connection latency p50, p99
  rr1                   ml_connrate over one persistent connection: requests/s, p50, p99
Every cell also records CPU time: system-wide busy time from /proc/stat and the bench cgroup's
usage_usec, per request (per connection for cr*) and per GiB (iperf3).

Results go to bench-results/<date>[-quick]/ (and bench-results/latest): results.md (absolute
figures as median [min-max] over the rounds, ratios against b), results.json, chart.png, raw/
(every tool's output and the counters). The ratio table is printed at the end.

Options:
  --quick             1 round of 1 s cells, without modes a, f and fn and the 4 KiB sockperf
                      cells unless --modes/--workloads name them: about 75 s, a smoke test
                      (each sockperf run takes 3 s whatever its length). Mode d also times
                      200 switches of a 1,000-rule L4 policy; 40 with --quick
  --rounds N          interleaved rounds (default 5)
  --duration S        seconds per cell, an integer (default 4)
  --modes LIST        comma-separated subset of a,b,c,d,dx,d+,f,f+,fn,ft (default all; b is needed for
                      ratios, a for f's ratios against the floor)
  --workloads LIST    comma-separated subset of the cells above (default all)
  --proxy-threads N   HAProxy nbthread per sidecar (default 1; this VM class has 2 vCPUs)
  --out DIR           output directory (default bench-results/<date>[-quick])
  --keep              keep the work directory (daemon and proxy logs) under DIR/work
  --bpf-stats         record run count and run time of meshlane's BPF programs per cell (modes
                      c, d, dx, d+, f): sets kernel.bpf_stats_enabled = 1 for the run (a host-wide
                      switch that adds a few ns to every BPF program run) and restores it
  --perf              profile every cell with `perf record -a -g` (needs perf, Debian package
                      linux-perf) and report where the CPU goes per request / per GiB: user
                      space, TCP/IP, netfilter, meshlane's programs, sockmap splicing,
                      scheduler (scripts/bench/profile.py). perf costs CPU itself: use it to
                      explain figures, not for the headline run
  --build             (re)build first even if the binaries exist
  -h, --help          this help

Environment: MESHLANE_BUILD_DIR build directory (default build/, binaries in its bin/; built
with CMake and Ninja when missing), MESHLANE_BIN to point at a bin directory directly.

Safety: runs only as root; every process runs in a child cgroup v2 made for the run (never the
root cgroup, which meshlaned's daemon.cgroup never points at either), all traffic stays in the
namespaces made for the run, iptables rules exist only inside the pod namespaces; everything is
removed on exit, including on errors and Ctrl-C.

Exit status: 0 the benchmark ran (cells that failed are reported in the output, not hidden);
1 it could not run.
EOF
}

ORIG_ARGS="$*"
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
# shellcheck source=scripts/bench/lib.sh
source "$REPO/scripts/bench/lib.sh"

ALL_MODES="a b c d dx d+ f f+ fn ft"
ALL_CELLS="sp64 sp4k spe64 spe4k ip1x1k ip1x64k ip8x1k ip8x64k cr1 cr16 rr1"
rounds=5
duration=4
modes_arg=""
cells_arg=""
proxy_threads=1
out_dir=""
keep=0
force_build=0
bpf_stats=0
profile=0
quick=0
policy_rounds=200
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) quick=1; rounds=1; duration=1; policy_rounds=40; shift ;;
    --rounds) rounds=${2:-}; shift 2 || { usage >&2; exit 1; } ;;
    --duration) duration=${2:-}; shift 2 || { usage >&2; exit 1; } ;;
    --modes) modes_arg=${2:-}; shift 2 || { usage >&2; exit 1; } ;;
    --workloads) cells_arg=${2:-}; shift 2 || { usage >&2; exit 1; } ;;
    --proxy-threads) proxy_threads=${2:-}; shift 2 || { usage >&2; exit 1; } ;;
    --out) out_dir=${2:-}; shift 2 || { usage >&2; exit 1; } ;;
    --keep) keep=1; shift ;;
    --build) force_build=1; shift ;;
    --bpf-stats) bpf_stats=1; shift ;;
    --perf) profile=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || bench_die "--rounds takes a positive integer"
[[ $duration =~ ^[1-9][0-9]*$ ]] || bench_die "--duration takes a positive integer (seconds)"
[[ $proxy_threads =~ ^[1-9][0-9]*$ ]] || bench_die "--proxy-threads takes a positive integer"

pick_list() {  # pick_list "ALLOWED" "ARG" -> the ARG items (in ALLOWED order), validated
  local allowed=$1 arg=$2 x out=""
  [[ -z $arg ]] && { echo "$allowed"; return 0; }
  for x in ${arg//,/ }; do
    [[ " $allowed " == *" $x "* ]] || bench_die "unknown item '$x' (allowed: $allowed)"
  done
  for x in $allowed; do
    [[ ",$arg," == *",$x,"* ]] && out+="$x "
  done
  echo "${out% }"
}
if [[ $quick -eq 1 ]]; then
  # The floor (a) and the 4 KiB ping-pongs tell a smoke test little; the full run has them.
  [[ -n $modes_arg ]] || modes_arg="b,c,d,dx,d+"
  if [[ -z $cells_arg ]]; then
    for c in $ALL_CELLS; do [[ $c == sp4k || $c == spe4k ]] || cells_arg+="$c,"; done
  fi
fi
MODES=$(pick_list "$ALL_MODES" "$modes_arg")
CELLS=$(pick_list "$ALL_CELLS" "$cells_arg")

[[ $(id -u) -eq 0 ]] || bench_die "run as root (sudo scripts/bench.sh): it creates network \
namespaces, a cgroup, iptables rules inside them and loads BPF programs"

for tool in ip ss iptables-restore iptables setpriv haproxy sockperf iperf3 python3 timeout awk; do
  command -v "$tool" >/dev/null 2>&1 || bench_die "'$tool' not found (scripts/deps.sh installs it)"
done
command -v gnuplot >/dev/null 2>&1 ||
  echo "bench.sh: warning: gnuplot not found, no chart will be drawn (apt-get install gnuplot-nox)" >&2

# ---------------------------------------------------------------------------------------------
# Binaries

BUILD_DIR=${MESHLANE_BUILD_DIR:-build}
[[ $BUILD_DIR == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
BIN=${MESHLANE_BIN:-$BUILD_DIR/bin}
MESHLANED="$BIN/meshlaned"
CONNRATE="$BIN/ml_connrate"
if [[ $force_build -eq 1 || ! -x $MESHLANED || ! -x $CONNRATE ]]; then
  [[ -z ${MESHLANE_BIN:-} ]] || bench_die "$MESHLANED or $CONNRATE missing (MESHLANE_BIN=$BIN)"
  bench_log "building meshlane into $BUILD_DIR"
  { cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja && ninja -C "$BUILD_DIR"; } >/tmp/meshlane-bench-build.$$.log 2>&1 || {
    tail -n 30 /tmp/meshlane-bench-build.$$.log >&2
    rm -f /tmp/meshlane-bench-build.$$.log
    bench_die "build failed (last lines above)"
  }
  rm -f /tmp/meshlane-bench-build.$$.log
fi
[[ -x $MESHLANED && -x $CONNRATE ]] || bench_die "meshlaned or ml_connrate not found in $BIN"

# ---------------------------------------------------------------------------------------------
# Output and work directories, cleanup

stamp=$(date +%Y%m%d-%H%M%S)
[[ -n $out_dir ]] || out_dir="$REPO/bench-results/$stamp$([[ $quick -eq 1 ]] && echo -quick)"
mkdir -p "$out_dir/raw" || bench_die "cannot create $out_dir"
out_dir=$(cd "$out_dir" && pwd)
RAW="$out_dir/raw"

host_trap_exit bench_run_cleanup

WORK=$(mktemp -d /tmp/meshlane-bench.XXXXXX) || bench_die "mktemp failed"
chmod 711 "$WORK"  # HAProxy runs as uid 1337 and reads its config from here
if [[ $keep -eq 1 ]]; then
  # shellcheck disable=SC2016  # expanded by the inner bash
  host_defer bash -c 'cp -a "$0" "$1/work" 2>/dev/null; rm -rf -- "$0"' "$WORK" "$out_dir"
else
  host_defer rm -rf -- "$WORK"
fi

TAG="mlb$$"
NS_NODE=""
NS_A=""
NS_B=""
IP_A=198.18.0.11
IP_B=198.18.0.12
BPFFS_DIR="/sys/fs/bpf/meshlane-bench-$$"
PORT_SOCKPERF=11111
PORT_IPERF=5201
PORT_CONN=8080
PORT_RR=8081

bench_make_cgroup "meshlane-bench-$$"
bench_daemon_probe "$WORK"

BPFTOOL=${BPFTOOL:-$(command -v bpftool || echo /usr/sbin/bpftool)}
if [[ $bpf_stats -eq 1 ]]; then
  [[ -x $BPFTOOL ]] || bench_die "--bpf-stats needs bpftool"
  old_bpf_stats=$(sysctl -n kernel.bpf_stats_enabled) || bench_die "cannot read kernel.bpf_stats_enabled"
  host_defer sysctl -q -w "kernel.bpf_stats_enabled=$old_bpf_stats"
  sysctl -q -w kernel.bpf_stats_enabled=1 || bench_die "cannot set kernel.bpf_stats_enabled"
fi
if [[ $profile -eq 1 ]]; then
  command -v perf >/dev/null 2>&1 || bench_die "--perf needs perf (apt-get install linux-perf)"
fi

{
  echo "command=scripts/bench.sh${ORIG_ARGS:+ $ORIG_ARGS}"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "rounds=$rounds"
  echo "duration=$duration"
  echo "quick=$quick"
  echo "modes=$MODES"
  echo "cells=$CELLS"
  echo "proxy_threads=$proxy_threads"
  echo "kernel=$(uname -r)"
  echo "cpus=$(nproc)"
  echo "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  echo "mem_total=$(sed -n 's/^MemTotal:[[:space:]]*//p' /proc/meminfo)"
  # How an idle CPU waits: a VM whose idle driver halts at once pays a wake-up of the vCPU for
  # every hop that crosses to an idle CPU, which decides latency figures (docs/performance.md).
  echo "cpuidle=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo none)$(
    [[ -r /sys/module/haltpoll/parameters/guest_halt_poll_ns ]] &&
      echo " guest_halt_poll_ns=$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns)")"
  echo "git=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" status --porcelain 2>/dev/null | grep -q . && echo '+dirty')"
  echo "meshlaned=$MESHLANED ($("$MESHLANED" --version 2>/dev/null | head -n 1))"
  echo "haproxy=$(haproxy -v 2>/dev/null | head -n 1)"
  echo "sockperf=$(sockperf --version 2>&1 | sed -n 's/.*version \([^ ]*\).*/\1/p' | head -n 1)"
  echo "iperf3=$(iperf3 --version 2>/dev/null | head -n 1)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "clk_tck=$(getconf CLK_TCK)"
  echo "bpf_stats=$bpf_stats"
  echo "perf=$profile"
} >"$out_dir/meta.txt"

# ---------------------------------------------------------------------------------------------
# Modes

DAEMON_PID=""
DAEMON_CFG=""
PROXY_A=""
PROXY_B=""
SERVER_PIDS=()

start_servers() {
  local mode=$1 pid
  # The feed-file form (T: = TCP) is the only way to make the sockperf server wait in epoll;
  # with -i it busy-polls recvfrom() on its non-blocking socket and takes a whole vCPU.
  echo "T:$IP_B:$PORT_SOCKPERF" >"$WORK/sockperf.feed"
  bench_bg pid "$WORK/sockperf.$mode.out" "$WORK/sockperf.$mode.err" "$NS_B" \
    sockperf server --nonblocked -F epoll -f "$WORK/sockperf.feed"
  SERVER_PIDS+=("$pid")
  host_wait_listen "$NS_B" "$pid" 10 "$PORT_SOCKPERF" || bench_die "sockperf server did not start"
  bench_bg pid "$WORK/connrate.$mode.out" "$WORK/connrate.$mode.err" "$NS_B" \
    "$CONNRATE" server --listen "0.0.0.0:$PORT_CONN" --close-after 1
  SERVER_PIDS+=("$pid")
  host_wait_listen "$NS_B" "$pid" 10 "$PORT_CONN" || bench_die "ml_connrate server did not start"
  bench_bg pid "$WORK/rr.$mode.out" "$WORK/rr.$mode.err" "$NS_B" \
    "$CONNRATE" server --listen "0.0.0.0:$PORT_RR" --close-after 0
  SERVER_PIDS+=("$pid")
  host_wait_listen "$NS_B" "$pid" 10 "$PORT_RR" || bench_die "ml_connrate rr server did not start"
}

# topology_up ROUND MODE: a fresh node and two pods for this mode run.
topology_up() {
  local t="$TAG-$1${2/+/p}"
  NS_NODE="$t-node"
  NS_A="$t-a"
  NS_B="$t-b"
  bench_make_node "$NS_NODE"
  bench_add_pod "$NS_A" 11
  bench_add_pod "$NS_B" 12
}

topology_down() {
  bench_delete_netns "$NS_A"
  bench_delete_netns "$NS_B"
  bench_delete_netns "$NS_NODE"
}

# setup_mode ROUND MODE
setup_mode() {
  local r=$1 mode=$2
  topology_up "$r" "$mode"
  case $mode in
    a) ;;
    b)
      bench_iptables_on "$NS_A"
      bench_iptables_on "$NS_B"
      ;;
    c | d | dx | d+ | f | f+ | fn | ft)
      local enabled=true blocking=false exclude=""
      [[ $mode == c || $mode == fn ]] && enabled=false
      [[ $mode == d+ || $mode == f+ ]] && blocking=true
      # The outbound sidecar's port: the one hop that has it at either end is app -> sidecar.
      [[ $mode == dx ]] && exclude=15001
      DAEMON_CFG="$WORK/meshlane-r$r-$mode.toml"
      bench_write_daemon_config "$DAEMON_CFG" "$BPFFS_DIR" "$enabled" "$blocking" "$exclude" \
        pod-a "$NS_A" "$IP_A" pod-b "$NS_B" "$IP_B"
      if [[ $mode == f || $mode == f+ || $mode == fn || $mode == ft ]]; then
        # Both pods opt in to the L4 fast path: one line after each workload's mesh key.
        sed -i 's/^mesh = "istio"$/&\nfast_path = true/' "$DAEMON_CFG"
        [[ $(grep -c '^fast_path = true$' "$DAEMON_CFG") -eq 2 ]] ||
          bench_die "could not opt both workloads in to the fast path in $DAEMON_CFG"
      fi
      if [[ $mode == ft ]]; then
        sed -i 's/^log_level = .*$/&\ninbound_steering = "tc"/' "$DAEMON_CFG"
        grep -q '^inbound_steering = "tc"$' "$DAEMON_CFG" ||
          bench_die "could not set inbound_steering in $DAEMON_CFG"
      fi
      bench_daemon_start DAEMON_PID "$DAEMON_CFG" "$WORK/meshlaned-r$r-$mode.log"
      if [[ $bpf_stats -eq 1 ]]; then
        # The IDs of this daemon's maps: its programs are the ml_* programs using them (other
        # meshlane instances on the host have their own maps).
        local f
        for f in "$BPFFS_DIR"/ml_*; do
          [[ -f $f ]] && "$BPFTOOL" map show pinned "$f" -j 2>/dev/null
          echo
        done >"$RAW/r$r-$mode.maps.json"
      fi
      ;;
  esac
  if [[ $mode != a ]]; then
    # Proxies and servers start after the datapath is attached: meshlane records at listen()
    # whether a listener is non-blocking.
    bench_start_haproxy PROXY_A "$NS_A" "haproxy-a-r$r-$mode" "$WORK" "$proxy_threads"
    bench_start_haproxy PROXY_B "$NS_B" "haproxy-b-r$r-$mode" "$WORK" "$proxy_threads"
  fi
  start_servers "$mode"
  sleep 0.3  # let the previous mode's namespaces finish going away in the kernel
}

teardown_mode() {
  local r=$1 mode=$2 pid
  for pid in "${SERVER_PIDS[@]}"; do bench_kill_pid "$pid"; done
  SERVER_PIDS=()
  if [[ $mode == b ]]; then
    {
      echo "a_ISTIO_REDIRECT=$(istio_iptables_redirect_hits "$NS_A" ISTIO_REDIRECT)"
      echo "b_ISTIO_IN_REDIRECT=$(istio_iptables_redirect_hits "$NS_B" ISTIO_IN_REDIRECT)"
    } >"$RAW/r$r-b.iptables"
  fi
  [[ -z $PROXY_A ]] || bench_kill_pid "$PROXY_A"
  [[ -z $PROXY_B ]] || bench_kill_pid "$PROXY_B"
  PROXY_A=""
  PROXY_B=""
  case $mode in
    c | d | dx | d+ | f | f+ | fn | ft)
      bench_daemon_stats "$DAEMON_CFG" >"$RAW/r$r-$mode.counters.json"
      bench_kill_pid "$DAEMON_PID"
      bench_daemon_cleanup "$DAEMON_CFG"
      DAEMON_PID=""
      DAEMON_CFG=""
      ;;
  esac
  topology_down
}

# ---------------------------------------------------------------------------------------------
# Cells

snapshot() {  # snapshot PREFIX N: the system and cgroup CPU counters, and meshlane's counters
  local p=$1 n=$2
  head -n 1 /proc/stat >"$p.stat$n"
  bench_cg_usage >"$p.cg$n"
  grep '^TCP:' /proc/net/sockstat >"$p.sock$n" 2>/dev/null
  date +%s%N >"$p.t$n"
  [[ -z $DAEMON_CFG ]] || bench_daemon_stats "$DAEMON_CFG" >"$p.ml$n"
  if [[ -n $DAEMON_CFG && $bpf_stats -eq 1 ]]; then
    "$BPFTOOL" prog show -j >"$p.bpf$n" 2>/dev/null
  fi
  return 0
}

# profile_start PREFIX / profile_stop PREFIX: a system-wide perf profile around one cell, run
# outside the bench cgroup (its own CPU is not the benchmark's), reduced to CPU time per
# category in PREFIX.profile.json; the perf.data file is removed.
PROFILE_PID=""
profile_start() {
  perf record -a -g -F "$PROFILE_HZ" -o "$1.perf.data" >/dev/null 2>"$1.perf.err" &
  PROFILE_PID=$!
  BENCH_PIDS[$PROFILE_PID]=1
  sleep 0.5  # perf needs a moment to open its per-CPU buffers
}
profile_stop() {
  local p=$1
  kill -INT "$PROFILE_PID" 2>/dev/null
  bench_wait_pid "$PROFILE_PID" 20
  PROFILE_PID=""
  python3 "$REPO/scripts/bench/profile.py" categorize "$p.perf.data" "$PROFILE_HZ" \
    >"$p.profile.json" 2>>"$p.perf.err" || rm -f "$p.profile.json"
  rm -f "$p.perf.data" "$p.perf.data.old"
}
PROFILE_HZ=997

# run_cell ROUND MODE CELL
run_cell() {
  local r=$1 mode=$2 cell=$3
  local p="$RAW/r$r-$mode-$cell" rc=0 tmo=$((duration + 60)) ipid="" argv=()
  case $cell in
    sp64 | sp4k)
      local size=64
      [[ $cell == sp4k ]] && size=4096
      argv=(sockperf ping-pong --tcp --nonblocked -i "$IP_B" -p "$PORT_SOCKPERF" -m "$size"
        -t "$duration" --full-rtt)
      ;;
    spe64 | spe4k)
      # With one connection given by -i, sockperf's client spins on recvfrom() until the reply
      # is there; with a feed file it waits in epoll, as event-loop applications do. The feed
      # is the server's (T:IP_B:PORT), which is also the address the client connects to.
      local size=64
      [[ $cell == spe4k ]] && size=4096
      argv=(sockperf ping-pong --nonblocked -F epoll -f "$WORK/sockperf.feed" -m "$size"
        -t "$duration" --full-rtt)
      ;;
    ip*)
      local streams=${cell#ip}
      streams=${streams%%x*}
      local len=${cell#*x}
      len=${len^^}
      bench_bg ipid "$p.server.out" "$p.server.err" "$NS_B" \
        iperf3 -s -1 -p "$PORT_IPERF" -B "$IP_B"
      host_wait_listen "$NS_B" "$ipid" 10 "$PORT_IPERF" || bench_die "iperf3 server did not start"
      argv=(iperf3 -c "$IP_B" -p "$PORT_IPERF" -t "$duration" -P "$streams" -l "$len" -J)
      ;;
    cr1 | cr16)
      argv=("$CONNRATE" client --connect "$IP_B:$PORT_CONN" --concurrency "${cell#cr}"
        --duration "$duration")
      ;;
    rr1)
      argv=("$CONNRATE" client --connect "$IP_B:$PORT_RR" --concurrency 1 --duration "$duration"
        --requests-per-conn 0)
      ;;
  esac
  printf 'round=%s\nmode=%s\ncell=%s\ncommand=%s\n' "$r" "$mode" "$cell" "${argv[*]}" >"$p.meta"
  [[ $profile -eq 0 ]] || profile_start "$p"
  snapshot "$p" 0
  bench_in "$NS_A" timeout -k 5 "$tmo" "${argv[@]}" >"$p.out" 2>"$p.err" </dev/null || rc=$?
  snapshot "$p" 1
  [[ $profile -eq 0 ]] || profile_stop "$p"
  echo "rc=$rc" >>"$p.meta"
  if [[ -n $ipid ]]; then
    bench_wait_pid "$ipid" 10
    echo "server_rc=$BENCH_RC" >>"$p.meta"
  fi
}

cells_for_mode() {  # d+ and f+ only run the throughput cells, dx all the others, fn and ft cr* and rr1
  local mode=$1 c out=""
  for c in $CELLS; do
    [[ ($mode == d+ || $mode == f+) && $c != ip* ]] && continue
    [[ $mode == dx && $c == ip* ]] && continue
    [[ ($mode == fn || $mode == ft) && $c != cr* && $c != rr1 ]] && continue
    out+="$c "
  done
  echo "$out"
}

read -r -a mode_list <<<"$MODES"
nmodes=${#mode_list[@]}
total=0
for ((r = 1; r <= rounds; r++)); do
  for mode in $MODES; do
    for c in $(cells_for_mode "$mode"); do total=$((total + 1)); done
  done
done
bench_log "meshlane bench: $rounds round(s) x modes [$MODES] x cells [$CELLS], ${duration} s per cell, $total cells; output $out_dir"

done_cells=0
start=$SECONDS
progress() {  # progress TEXT: one line per cell, with the ETA
  local elapsed=$((SECONDS - start)) eta="?"
  if [[ $done_cells -gt 0 ]]; then
    eta=$(((total - done_cells) * elapsed / done_cells))
    eta="${eta}s"
  fi
  printf '%s [%3d/%d, ETA %5s] %s\n' "$(bench_ts)" "$done_cells" "$total" "$eta" "$*" >&2
}

# One report.py for every cell's progress line (summarize-lines), not one Python start per cell.
coproc SUMMARIZER { exec python3 "$REPO/scripts/bench/report.py" summarize-lines; }
summarizer_pid=$SUMMARIZER_PID
# summarize PREFIX: the progress line's figures for one cell.
summarize() {
  local line
  if [[ -n ${SUMMARIZER[1]:-} ]] && printf '%s\n' "$1" >&"${SUMMARIZER[1]}" &&
    IFS= read -r line <&"${SUMMARIZER[0]}"; then
    printf '%s' "$line"
  else
    python3 "$REPO/scripts/bench/report.py" summarize "$1"
  fi
}

for ((r = 1; r <= rounds; r++)); do
  for ((k = 0; k < nmodes; k++)); do
    mode=${mode_list[$(((k + r - 1) % nmodes))]}
    cells=$(cells_for_mode "$mode")
    [[ -n $cells ]] || continue
    setup_mode "$r" "$mode"
    for cell in $cells; do
      run_cell "$r" "$mode" "$cell"
      done_cells=$((done_cells + 1))
      progress "round $r/$rounds mode $mode $cell: $(summarize "$RAW/r$r-$mode-$cell")"
    done
    teardown_mode "$r" "$mode"
  done
done
if [[ -n ${SUMMARIZER[1]:-} ]]; then
  summarizer_fd=${SUMMARIZER[1]}
  exec {summarizer_fd}>&- # end of its input: it exits
fi
wait "$summarizer_pid" 2>/dev/null || true
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out_dir/meta.txt"

# Policy switch: how soon after `policy apply` returns the kernel enforces a 1,000-rule policy
# (mode d's datapath; the probe connects from pod A, as the policy's subject).
if [[ " $MODES " == *" d "* ]]; then
  setup_mode policy d
  progress "policy switch: $policy_rounds applies of a 1,000-rule policy"
  bench_in "$NS_A" python3 "$REPO/scripts/bench/policy_switch.py" "$(dirname "$DAEMON_CFG")/meshlane.sock" \
    "$IP_B" "$PORT_CONN" "$policy_rounds" 1000 "$out_dir/policy_switch.json" >"$RAW/policy_switch.out" ||
    bench_die "policy switch measurement failed: $(tail -n 3 "$RAW/policy_switch.out")"
  teardown_mode policy d
fi

bench_log "all cells done in $((SECONDS - start)) s; writing the report"
python3 "$REPO/scripts/bench/report.py" build "$out_dir" ||
  bench_die "report.py failed; raw results are in $RAW"
ln -sfn "$(basename "$out_dir")" "$(dirname "$out_dir")/latest" 2>/dev/null || true
echo
cat "$out_dir/results.md"
echo
bench_log "results: $out_dir/results.md, results.json, chart.png"
