#!/usr/bin/env bash
# meshlane demo: measures a mesh-like TCP chain (client -> HAProxy -> server) without and with
# meshlaned splicing its hops, interleaved, and prints a side-by-side table and the datapath
# counters. Everything runs in a network namespace and a child cgroup v2 that this script
# creates and removes; nothing is attached to the host's root cgroup.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: sudo scripts/demo.sh [--rounds N] [--duration SECONDS] [--skip-deps] [--help]

Installs dependencies (scripts/deps.sh), builds meshlane (scripts/build.sh), then, inside a
network namespace and a child cgroup v2 of its own, runs the chain

    client -> HAProxy (mode tcp, 127.0.0.1) -> server

with two workloads: sockperf TCP ping-pong (64 B messages, round-trip time: avg, p50, p99) and
iperf3 (one stream, throughput). Each round measures the chain without meshlane, then with
meshlaned attached to the demo cgroup (client connections opened after "meshlaned ready").
Between phases the datapath is fully removed (meshlaned --cleanup) and the chain restarted.
Prints one table (metric, without, with, ratio) and the counters of the meshlane phases.

Options:
  --rounds N          rounds of (without, with); default 2 (about one minute in total)
  --duration SECONDS  length of each sockperf and iperf3 run; default 5
  --skip-deps         do not run scripts/deps.sh (the packages are already installed)
  -h, --help          show this help

Exit status: 0 when the demo ran and meshlane spliced bytes; 1 when it could not run or
nothing was spliced (the reason is printed).
EOF
}

rounds=2
duration=5
skip_deps=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="${2:-}"; shift 2 || { usage >&2; exit 1; } ;;
    --duration) duration="${2:-}"; shift 2 || { usage >&2; exit 1; } ;;
    --skip-deps) skip_deps=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
  esac
done
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || ! [[ "$duration" =~ ^[1-9][0-9]*$ ]]; then
  echo "demo.sh: --rounds and --duration take a positive integer (see --help)" >&2
  exit 1
fi

die() {
  echo "demo.sh: error: $*" >&2
  exit 1
}

step() {
  printf '[%3ds] %s\n' "$SECONDS" "$*"
}

[ "$(id -u)" -eq 0 ] || die "run as root (sudo scripts/demo.sh): it installs packages, loads BPF \
programs and creates a network namespace and a cgroup"

cd "$(dirname "$0")/.."
repo="$(pwd)"

# ---------------------------------------------------------------------------------------------
# State that the EXIT trap cleans up. Every resource is recorded right after it is created.
tmp=""
netns=""
cgroup_dir=""
daemon_pid=""
daemon_config=""
pids=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  local pid
  for pid in "${pids[@]}" ${daemon_pid:+"$daemon_pid"}; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}" ${daemon_pid:+"$daemon_pid"}; do
    wait "$pid" 2>/dev/null
  done
  if [ -n "$daemon_config" ] && [ -f "$daemon_config" ]; then
    "$repo/build/bin/meshlaned" --config "$daemon_config" --cleanup >>"$tmp/cleanup.log" 2>&1 ||
      echo "demo.sh: warning: meshlaned --cleanup failed: $(tail -n 3 "$tmp/cleanup.log")" >&2
  fi
  if [ -n "$cgroup_dir" ] && [ -d "$cgroup_dir" ]; then
    # Anything still in the demo cgroup was started by this script (e.g. an interrupted client).
    local _
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      rmdir "$cgroup_dir" 2>/dev/null && break
      while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$cgroup_dir/cgroup.procs"
      sleep 0.2
    done
    [ -d "$cgroup_dir" ] && echo "demo.sh: warning: could not remove cgroup $cgroup_dir" >&2
  fi
  if [ -n "$netns" ]; then
    ip netns delete "$netns" 2>/dev/null ||
      echo "demo.sh: warning: could not delete network namespace $netns" >&2
  fi
  if [ -n "$tmp" ]; then
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tmp="$(mktemp -d /tmp/meshlane-demo.XXXXXX)"

# ---------------------------------------------------------------------------------------------
step "demo: client -> HAProxy -> server, ${rounds} round(s) of (without, with meshlane), ${duration} s per workload"

if [ "$skip_deps" -eq 0 ]; then
  step "installing dependencies (scripts/deps.sh)"
  if ! scripts/deps.sh >"$tmp/deps.log" 2>&1; then
    tail -n 20 "$tmp/deps.log" >&2
    die "scripts/deps.sh failed (last lines above)"
  fi
fi

step "building meshlane (scripts/build.sh)"
if ! scripts/build.sh >"$tmp/build.log" 2>&1; then
  tail -n 30 "$tmp/build.log" >&2
  die "scripts/build.sh failed (last lines above)"
fi
meshlaned="$repo/build/bin/meshlaned"
[ -x "$meshlaned" ] || die "scripts/build.sh did not produce $meshlaned"

for tool in ip ss haproxy sockperf iperf3 python3; do
  command -v "$tool" >/dev/null || die "'$tool' not found (scripts/deps.sh installs it)"
done

# The cgroup v2 mount (fstype cgroup2), from mountinfo: /sys/fs/cgroup, or /sys/fs/cgroup/unified
# on hybrid hosts. Field 5 is the mount point, with octal escapes (\040 for a space).
cgroup2_mount="$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' \
  /proc/self/mountinfo)"
[ -n "$cgroup2_mount" ] || die "no cgroup v2 mount found in /proc/self/mountinfo; meshlane needs cgroup v2"
cgroup2_mount="$(printf '%b' "$cgroup2_mount")"

# bpffs: use the mounted one, or /sys/fs/bpf, which meshlaned mounts when none is mounted.
bpffs_mount="$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "bpf") { print $5; exit } break } }' \
  /proc/self/mountinfo)"
bpffs_mount="$(printf '%b' "${bpffs_mount:-/sys/fs/bpf}")"

name="meshlane-demo-$$"
bpffs_dir="$bpffs_mount/$name"

step "creating network namespace $name, cgroup $cgroup2_mount/$name"
ip netns add "$name" || die "cannot create network namespace $name"
netns="$name"
ip -n "$netns" link set lo up || die "cannot bring up loopback in $netns"
mkdir "$cgroup2_mount/$name" || die "cannot create cgroup $cgroup2_mount/$name"
cgroup_dir="$cgroup2_mount/$name"

daemon_config="$tmp/meshlane.toml"
cat >"$daemon_config" <<EOF
# Written by scripts/demo.sh; removed when it exits.
[daemon]
bpffs_dir = "$bpffs_dir"
cgroup = "$name"
log_level = "info"

[acceleration]
enabled = true
EOF

sockperf_port=7001   # sockperf server
iperf_port=5201      # iperf3 server
proxy_sockperf_port=15001
proxy_iperf_port=15002

cat >"$tmp/haproxy.cfg" <<EOF
# Plain TCP proxy in front of each server, as a sidecar would be. No logging.
global
  maxconn 1024

defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s

listen sockperf
  bind 127.0.0.1:$proxy_sockperf_port
  server server 127.0.0.1:$sockperf_port

listen iperf3
  bind 127.0.0.1:$proxy_iperf_port
  server server 127.0.0.1:$iperf_port
EOF

# Runs a command inside the demo cgroup and network namespace: the subshell moves itself into the
# cgroup, then execs (ip netns exec execs too), so the PID stays the workload's.
in_demo() {
  echo "$BASHPID" >"$cgroup_dir/cgroup.procs"
  exec ip netns exec "$netns" "$@"
}

# Starts a background workload process in the demo cgroup and netns; records its PID.
start_bg() {
  local log="$1"
  shift
  (in_demo "$@") >"$log" 2>&1 &
  pids+=("$!")
}

stop_bg() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

wait_listening() {
  local port
  local deadline=$((SECONDS + 10))
  for port in "$@"; do
    until ip netns exec "$netns" ss -Htln "sport = :$port" | grep -q LISTEN; do
      [ "$SECONDS" -lt "$deadline" ] || return 1
      sleep 0.05
    done
  done
}

start_chain() {
  local tag="$1"
  start_bg "$tmp/sockperf-server.$tag.log" sockperf server --tcp -i 127.0.0.1 -p "$sockperf_port"
  start_bg "$tmp/iperf3-server.$tag.log" iperf3 --server --bind 127.0.0.1 --port "$iperf_port"
  start_bg "$tmp/haproxy.$tag.log" haproxy -db -f "$tmp/haproxy.cfg"
  if ! wait_listening "$sockperf_port" "$iperf_port" "$proxy_sockperf_port" "$proxy_iperf_port"; then
    tail -n 5 "$tmp"/*."$tag".log >&2
    die "the chain (sockperf server, iperf3 server, haproxy) did not start listening"
  fi
}

start_daemon() {
  local log="$tmp/meshlaned.log"
  : >"$log"
  "$meshlaned" --config "$daemon_config" >>"$log" 2>&1 &
  daemon_pid=$!
  local deadline=$((SECONDS + 30))
  until grep -q "meshlaned ready" "$log"; do
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
      wait "$daemon_pid" 2>/dev/null || true
      daemon_pid=""
      cat "$log" >&2
      die "meshlaned exited before it was ready (its log is above)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || { cat "$log" >&2; die "meshlaned not ready after 30 s"; }
    sleep 0.05
  done
}

stop_daemon() {
  local rc=0
  kill -TERM "$daemon_pid"
  wait "$daemon_pid" || rc=$?
  daemon_pid=""
  if [ "$rc" -ne 0 ]; then
    cat "$tmp/meshlaned.log" >&2
    die "meshlaned exited with status $rc on SIGTERM (expected 0)"
  fi
  if ! "$meshlaned" --config "$daemon_config" --cleanup >"$tmp/cleanup.log" 2>&1; then
    cat "$tmp/cleanup.log" >&2
    die "meshlaned --cleanup failed"
  fi
  [ ! -e "$bpffs_dir" ] || die "meshlaned --cleanup left $bpffs_dir behind"
}

read_stats() {
  "$meshlaned" --config "$daemon_config" --stats -o json >"$1" 2>"$tmp/stats.err" || {
    cat "$tmp/stats.err" >&2
    die "meshlaned --stats failed"
  }
}

# A workload that fails without meshlane means the demo cannot run here: stop. One that fails
# with meshlane is a finding: record it in $tmp/failures, keep going, report it at the end.
workload_failed() {
  local mode="$1" round="$2" what="$3" detail="$4"
  if [ "$mode" = without ]; then
    echo "$detail" >&2
    die "$what failed without meshlane, so the demo cannot run on this machine"
  fi
  echo "round $round: $what failed with meshlane: $detail" >>"$tmp/failures"
  echo "demo.sh: round $round: $what FAILED with meshlane: $detail" >&2
}

# Appends "<mode> <round> <metric> <value>" lines to $tmp/results.
run_workloads() {
  local mode="$1" round="$2"
  local out="$tmp/sockperf.$mode.$round.txt"
  if ! (in_demo sockperf ping-pong --tcp --full-rtt -i 127.0.0.1 -p "$proxy_sockperf_port" \
      -t "$duration" -m 64) >"$out" 2>&1; then
    workload_failed "$mode" "$round" "sockperf ping-pong" "$(sed 's/\x1b\[[0-9;]*m//g' "$out" | tail -n 3)"
  else
    # sockperf colours some lines; the figures are in usec.
    sed -i 's/\x1b\[[0-9;]*m//g' "$out"
    awk -v mode="$mode" -v round="$round" '
      /avg-rtt=/ { sub(/.*avg-rtt=/, ""); sub(/[^0-9.].*/, ""); avg = $0 }
      /percentile 50.000 =/ { p50 = $NF }
      /percentile 99.000 =/ { p99 = $NF }
      END {
        if (avg == "" || p50 == "" || p99 == "") exit 1
        printf "%s %s rtt_avg %s\n%s %s rtt_p50 %s\n%s %s rtt_p99 %s\n",
               mode, round, avg, mode, round, p50, mode, round, p99
      }' "$out" >>"$tmp/results" || {
      cat "$out" >&2
      die "could not parse avg/p50/p99 from the sockperf output above"
    }
  fi

  local json="$tmp/iperf3.$mode.$round.json"
  (in_demo iperf3 --client 127.0.0.1 --port "$proxy_iperf_port" -t "$duration" -J) \
    >"$json" 2>"$tmp/iperf3.err" || true
  # iperf3 -J reports its own errors in the JSON ("error"), with a non-zero exit status.
  local parsed
  if ! parsed="$(python3 - "$json" "$mode" "$round" 2>&1 <<'EOF'
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except ValueError as e:
    sys.exit(f"no JSON from iperf3 ({e})")
if "error" in data:
    sys.exit(data["error"])
print(sys.argv[2], sys.argv[3], "iperf3_bps", data["end"]["sum_received"]["bits_per_second"])
EOF
  )"; then
    workload_failed "$mode" "$round" "iperf3" "$parsed $(head -c 300 "$tmp/iperf3.err")"
  else
    echo "$parsed" >>"$tmp/results"
  fi
}

# ---------------------------------------------------------------------------------------------
: >"$tmp/results"
: >"$tmp/failures"
for round in $(seq 1 "$rounds"); do
  step "round $round/$rounds: without meshlane: starting sockperf server, iperf3 server, haproxy"
  start_chain "base$round"
  step "round $round/$rounds: without meshlane: sockperf ping-pong ${duration} s, iperf3 ${duration} s"
  run_workloads without "$round"
  stop_bg

  step "round $round/$rounds: with meshlane: starting meshlaned on cgroup $name"
  start_daemon
  read_stats "$tmp/stats.before.$round.json"
  step "round $round/$rounds: with meshlane: meshlaned ready; starting the chain"
  start_chain "mesh$round"
  step "round $round/$rounds: with meshlane: sockperf ping-pong ${duration} s, iperf3 ${duration} s"
  run_workloads with "$round"
  read_stats "$tmp/stats.after.$round.json"
  stop_bg
  step "round $round/$rounds: with meshlane: SIGTERM to meshlaned, then meshlaned --cleanup"
  stop_daemon
done
step "done; all measurements taken"

# ---------------------------------------------------------------------------------------------
status=0
python3 - "$tmp" "$rounds" <<'EOF' || status=$?
import json, os, statistics, sys

tmp, rounds = sys.argv[1], int(sys.argv[2])
values = {}
for line in open(os.path.join(tmp, "results")):
    mode, _round, metric, value = line.split()
    values.setdefault((metric, mode), []).append(float(value))
failures = [line.rstrip("\n") for line in open(os.path.join(tmp, "failures")) if line.strip()]

rows = [
    ("rtt_avg", "sockperf 64 B round trip, avg", "us", 1.0, "lower is better"),
    ("rtt_p50", "sockperf 64 B round trip, p50", "us", 1.0, "lower is better"),
    ("rtt_p99", "sockperf 64 B round trip, p99", "us", 1.0, "lower is better"),
    ("iperf3_bps", "iperf3 1 stream throughput", "Gbit/s", 1e-9, "higher is better"),
]

print()
print(f"Results: client -> HAProxy -> server on loopback, mean of {rounds} interleaved run(s) each")
print()
header = f"{'metric':<32} {'without':>14} {'with':>14} {'ratio':>7}"
print(header)
print("-" * (len(header) + 20))
for key, label, unit, scale, better in rows:
    base = values.get((key, "without"), [])
    mesh = values.get((key, "with"), [])
    without = statistics.mean(base) * scale
    if mesh:
        with_ = statistics.mean(mesh) * scale
        cells = (f"{without:.2f} {unit}", f"{with_:.2f} {unit}", f"{with_ / without:.2f}x")
        note = better if len(mesh) == rounds else f"{better}; with: {len(mesh)} of {rounds} runs"
    else:
        cells = (f"{without:.2f} {unit}", "FAILED", "-")
        note = "every run with meshlane failed, see below"
    print(f"{label:<32} {cells[0]:>14} {cells[1]:>14} {cells[2]:>7}   ({note})")
print()
print("ratio = with / without. Single runs vary (often +-15% on a VM), so the runs were interleaved:")
for key, label, unit, scale, _ in rows:
    fmt = lambda xs: ", ".join(f"{x * scale:.2f}" for x in xs) or "-"
    print(f"  {label:<32} without: {fmt(values.get((key, 'without'), []))}"
          f"  with: {fmt(values.get((key, 'with'), []))} {unit}")

names = ["sockets_added", "sockets_add_failed", "sockets_skipped_by_port",
         "messages_redirected", "bytes_redirected", "redirect_failed"]
delta = dict.fromkeys(names, 0)
for r in range(1, rounds + 1):
    before = json.load(open(os.path.join(tmp, f"stats.before.{r}.json")))
    after = json.load(open(os.path.join(tmp, f"stats.after.{r}.json")))
    for name in names:
        delta[name] += after.get(name, 0) - before.get(name, 0)

print()
print("meshlane counters (meshlaned --stats), summed over the meshlane phases only:")
for name in names:
    print(f"  {name:<26} {delta[name]}")
print()
if delta["redirect_failed"] > 0:
    print("(redirect_failed: sends that took the normal stack instead, after which that socket stays "
          "on it; iperf3 through haproxy typically shows one per run, at connection teardown)")
if delta["bytes_redirected"] > 0:
    print(f"bytes_redirected = {delta['bytes_redirected']} > 0: the client -> haproxy and "
          "haproxy -> server hops were spliced socket to socket, skipping the TCP/IP stack.")
else:
    print("bytes_redirected = 0: nothing was spliced, so the 'with' column measured the normal stack.")

if failures:
    print()
    print("FAILED with meshlane (the same workloads succeeded without it):")
    for line in failures:
        print(f"  {line}")
    if any("Cannot allocate memory" in line for line in failures):
        print("  ENOMEM from send(): bytes that sk_msg redirects into a receiving socket's queue are not")
        print("  held to its receive buffer, so a sender faster than its reader piles them up until the")
        print("  kernel's TCP memory limit (net.ipv4.tcp_mem) is reached and send() fails. meshlane does")
        print("  not guard against this yet: it is a bug in the current datapath, not in the demo.")
    sys.exit(4)
if delta["bytes_redirected"] == 0:
    sys.exit(3)
EOF
case "$status" in
  0) ;;
  3) die "meshlane spliced no bytes during the meshlane phases" ;;
  4) die "workloads failed with meshlane running (listed above)" ;;
  *) die "could not summarise the results (python3 exited with status $status)" ;;
esac
