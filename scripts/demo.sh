#!/usr/bin/env bash
# meshlane demo: measures a mesh-like TCP chain (client -> HAProxy -> server) without and with
# meshlaned splicing its hops, interleaved, and prints a side-by-side table and the datapath
# counters. Everything runs in a network namespace and a child cgroup v2 that this script
# creates and removes; nothing is attached to the host's root cgroup. meshlaned runs with its
# default settings (no splice_blocking_sockets): every program in the chain reads non-blocking,
# as event-loop applications and proxies do, so every hop can be spliced.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: sudo scripts/demo.sh [--rounds N] [--duration SECONDS] [--bytes SIZE] [--skip-deps]
                            [--skip-fast-path] [--help]

Installs dependencies (scripts/deps.sh), builds meshlane (scripts/build.sh), then, inside a
network namespace and a child cgroup v2 of its own, runs the chain

    client -> HAProxy (mode tcp, 127.0.0.1) -> server

with two workloads, all of whose sockets are non-blocking:
  - latency: sockperf ping-pong over TCP, --nonblocked -F epoll on client and server (non-
    blocking sockets, waiting in epoll like an event loop), 64 B messages; round-trip time
    avg, p50, p99;
  - throughput: a one-way bulk transfer of SIZE bytes with ml_xfer --nonblocking (built into
    build/bin), client -> server in 128 KiB writes; the server checks every byte against the
    expected stream and that the stream ends exactly there. Throughput = SIZE / time from
    starting the client to the server having verified the last byte.
Each round measures the chain without meshlane, then with meshlaned (default configuration)
attached to the demo cgroup, the chain being started after "meshlaned ready". Between phases
the datapath is fully removed (meshlaned --cleanup) and the chain restarted. Prints one table
(metric, without, with, ratio), the peak kernel TCP memory during each transfer and the
counters of the meshlane phases.

Then part 2, the L4 fast path (docs/fast-path.md), measured by the benchmark's harness
(scripts/bench.sh --modes a,b,f --workloads spe64,rr1,cr16 --duration 3, same --rounds): two
pods on a bridge, each with an HAProxy sidecar and Istio's iptables rules (the mesh as it runs
today), against the same two pods under meshlane with fast_path = true (the apps talk
directly, spliced where that pays), and against no mesh at all. Prints round-trip time,
requests/s over one keep-alive connection and new connections/s (16 at once), and how many
connections took the fast path. About 40 s per round.

Options:
  --rounds N          rounds of each part; default 2 (part 1 about a minute, part 2 about
                      80 s, plus the build)
  --duration SECONDS  length of each sockperf run of part 1; default 5
  --bytes SIZE        payload of each bulk transfer, SIZE[K|M|G] (KiB, MiB, GiB); default 2G
  --skip-deps         do not run scripts/deps.sh (the packages are already installed)
  --skip-fast-path    do not run part 2 (the L4 fast path)
  -h, --help          show this help

Exit status: 0 when the demo ran, every workload succeeded with meshlane, meshlane spliced
bytes and (part 2) the fast path carried the connections; 1 when it could not run, a workload
failed with meshlane running (for instance send() failing with ENOMEM: see "Known limitations"
in README.md), nothing was spliced, or a fast-path connection went through a sidecar. The
reason is printed.
EOF
}

rounds=2
duration=5
size=2G
skip_deps=0
fast_path=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="${2:-}"; shift 2 || { usage >&2; exit 1; } ;;
    --duration) duration="${2:-}"; shift 2 || { usage >&2; exit 1; } ;;
    --bytes) size="${2:-}"; shift 2 || { usage >&2; exit 1; } ;;
    --skip-deps) skip_deps=1; shift ;;
    --skip-fast-path) fast_path=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
  esac
done
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || ! [[ "$duration" =~ ^[1-9][0-9]*$ ]]; then
  echo "demo.sh: --rounds and --duration take a positive integer (see --help)" >&2
  exit 1
fi
if ! [[ "$size" =~ ^([1-9][0-9]{0,8})([KkMmGg]?)$ ]]; then
  echo "demo.sh: --bytes takes a positive integer with an optional K, M or G suffix (see --help)" >&2
  exit 1
fi
case "${BASH_REMATCH[2]}" in
  K | k) bulk_bytes=$((BASH_REMATCH[1] << 10)) ;;
  M | m) bulk_bytes=$((BASH_REMATCH[1] << 20)) ;;
  G | g) bulk_bytes=$((BASH_REMATCH[1] << 30)) ;;
  *) bulk_bytes=$((BASH_REMATCH[1])) ;;
esac

die() {
  echo "demo.sh: error: $*" >&2
  exit 1
}

step() {
  printf '[%3ds] %s\n' "$SECONDS" "$*"
}

# Seconds since the epoch with a '.' decimal point, whatever the locale.
now() {
  local t="$EPOCHREALTIME"
  echo "${t/,/.}"
}

[ "$(id -u)" -eq 0 ] || die "run as root (sudo scripts/demo.sh): it installs packages, loads BPF \
programs and creates a network namespace and a cgroup"

cd "$(dirname "$0")/.."
repo="$(pwd)"
# shellcheck source=scripts/lib/host.sh
source "$repo/scripts/lib/host.sh"
HOST_WHO=demo.sh

# ---------------------------------------------------------------------------------------------
# State that the EXIT trap cleans up. Every resource is recorded right after it is created.
tmp=""
netns=""
cgroup_dir=""
daemon_pid=""
daemon_config=""
xfer_server_pid=""
sampler_pid=""
pids=()

# At exit, whatever the path (host_trap_exit): our processes by PID, the datapath, the cgroup
# (anything still in it was started by this script, e.g. an interrupted client), the netns,
# the files.
cleanup() {
  local pid
  for pid in "${pids[@]}" "$xfer_server_pid" "$sampler_pid" "$daemon_pid"; do
    host_kill_pid "$pid"
  done
  if [ -n "$daemon_config" ] && [ -f "$daemon_config" ]; then
    host_daemon_cleanup "$repo/build/bin/meshlaned" "$daemon_config" "$tmp/cleanup.log" ||
      host_warn "meshlaned --cleanup failed: $(tail -n 3 "$tmp/cleanup.log")"
  fi
  [ -z "$cgroup_dir" ] || host_remove_cgroup "$cgroup_dir"
  [ -z "$netns" ] || host_delete_netns "$netns"
  [ -z "$tmp" ] || rm -rf "$tmp"
}
host_trap_exit cleanup

tmp="$(mktemp -d /tmp/meshlane-demo.XXXXXX)"

# ---------------------------------------------------------------------------------------------
plan="demo part 1: client -> HAProxy -> server, ${rounds} round(s) of (without, with meshlane): sockperf ${duration} s, bulk transfer of $size"
if [ "$fast_path" -eq 1 ]; then plan+="; part 2: the L4 fast path"; fi
step "$plan"

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
ml_xfer="$repo/build/bin/ml_xfer"
[ -x "$meshlaned" ] || die "scripts/build.sh did not produce $meshlaned"
[ -x "$ml_xfer" ] || die "scripts/build.sh did not produce $ml_xfer"

for tool in ip ss haproxy sockperf python3; do
  command -v "$tool" >/dev/null || die "'$tool' not found (scripts/deps.sh installs it)"
done

# The cgroup v2 mount: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts.
cgroup2_mount="$(host_cgroup2_mount)" ||
  die "no cgroup v2 mount found in /proc/self/mountinfo; meshlane needs cgroup v2"

# bpffs: use the mounted one, or /sys/fs/bpf, which meshlaned mounts when none is mounted.
bpffs_mount="$(host_bpffs_mount)"

name="meshlane-demo-$$"
bpffs_dir="$bpffs_mount/$name"

step "creating network namespace $name, cgroup $cgroup2_mount/$name"
host_make_netns "$name" || die "cannot make network namespace $name (above)"
netns="$name"
host_make_cgroup cgroup_dir "$name" || die "cannot make cgroup $cgroup2_mount/$name (above)"

# The default acceleration settings: in particular splice_blocking_sockets stays false. The
# control socket and the state directory are the demo's own, so that neither a meshlaned
# running on the host nor its saved workloads are touched.
daemon_config="$tmp/meshlane.toml"
cat >"$daemon_config" <<EOF
# Written by scripts/demo.sh; removed when it exits.
[daemon]
bpffs_dir = "$bpffs_dir"
cgroup = "$name"
log_level = "info"
socket = "$tmp/meshlane.sock"
state_dir = "$tmp/state"
EOF

sockperf_port=7001   # sockperf server
xfer_port=5201       # ml_xfer server
proxy_sockperf_port=15001
proxy_xfer_port=15002
xfer_timeout=600     # ml_xfer's watchdog, seconds
page_size="$(getconf PAGESIZE)"
tcp_mem_max_mib=$(($(awk '{ print $3 }' /proc/sys/net/ipv4/tcp_mem) * page_size / 1048576))

# sockperf takes its TCP (T:) addresses from a file when it is told to wait in epoll (-F epoll
# needs -f; --tcp conflicts with -f). With --nonblocked alone it would busy-poll recvfrom() on
# both sides, which on a small machine starves HAProxy of CPU and measures the scheduler
# (milliseconds) instead of the network path.
echo "T:127.0.0.1:$sockperf_port" >"$tmp/sockperf-server.lst"
echo "T:127.0.0.1:$proxy_sockperf_port" >"$tmp/sockperf-client.lst"

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

listen bulk
  bind 127.0.0.1:$proxy_xfer_port
  server server 127.0.0.1:$xfer_port
EOF

# Runs a command inside the demo cgroup and network namespace (host_in: it joins the cgroup,
# then execs, so the PID stays the workload's).
in_demo() { host_in "$cgroup_dir" "$netns" "$@"; }

# Starts a background workload process in the demo cgroup and netns; records its PID.
start_bg() {
  local log="$1"
  shift
  host_argv "$cgroup_dir" "$netns" "$@"
  "${HOST_ARGV[@]}" >"$log" 2>&1 &
  pids+=("$!")
}

stop_bg() {
  local pid
  for pid in "${pids[@]}"; do host_kill_pid "$pid"; done
  pids=()
}

# Starts the servers and the proxy. Their listening sockets are opened now, so in the meshlane
# phase after the datapath is attached, which records that they are non-blocking.
start_chain() {
  local tag="$1" round="$2"
  start_bg "$tmp/sockperf-server.$tag.log" sockperf server --nonblocked -F epoll \
    -f "$tmp/sockperf-server.lst"
  start_bg "$tmp/haproxy.$tag.log" haproxy -db -f "$tmp/haproxy.cfg"
  # The bulk receiver serves one connection, then exits: its exit marks the last byte verified.
  host_argv "$cgroup_dir" "$netns" "$ml_xfer" server --listen "127.0.0.1:$xfer_port" --nonblocking --bytes 0 \
    --peer-bytes "$bulk_bytes" --seed "$round" --quiet --timeout "$xfer_timeout"
  "${HOST_ARGV[@]}" >"$tmp/xfer-server.$tag.json" 2>"$tmp/xfer-server.$tag.err" &
  xfer_server_pid=$!
  if ! host_wait_listen "$netns" - 10 "$sockperf_port" "$xfer_port" "$proxy_sockperf_port" \
      "$proxy_xfer_port"; then
    tail -n 5 "$tmp"/*."$tag".* >&2
    die "the chain (sockperf server, ml_xfer server, haproxy) did not start listening"
  fi
}

start_daemon() {
  local log="$tmp/meshlaned.log"
  : >"$log"
  "$meshlaned" --config "$daemon_config" >>"$log" 2>&1 &
  daemon_pid=$!
  local rc=0
  host_daemon_wait_ready "$daemon_pid" 30 "$log" || rc=$?
  if [ "$rc" -eq 1 ]; then
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
    cat "$log" >&2
    die "meshlaned exited before it was ready (its log is above)"
  elif [ "$rc" -ne 0 ]; then
    cat "$log" >&2
    die "meshlaned not ready after 30 s"
  fi
}

stop_daemon() {
  host_stop_pid "$daemon_pid" 60 || die "meshlaned still running 60 s after SIGTERM"
  local rc=$HOST_RC
  daemon_pid=""
  if [ "$rc" -ne 0 ]; then
    cat "$tmp/meshlaned.log" >&2
    die "meshlaned exited with status $rc on SIGTERM (expected 0)"
  fi
  if ! host_daemon_cleanup "$meshlaned" "$daemon_config" "$tmp/cleanup.log"; then
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

run_sockperf() {
  local mode="$1" round="$2"
  local out="$tmp/sockperf.$mode.$round.txt"
  if ! in_demo sockperf ping-pong --nonblocked -F epoll -f "$tmp/sockperf-client.lst" \
      --full-rtt -t "$duration" -m 64 >"$out" 2>&1; then
    workload_failed "$mode" "$round" "sockperf ping-pong" "$(sed 's/\x1b\[[0-9;]*m//g' "$out" | tail -n 3)"
    return
  fi
  # sockperf colours some lines; the figures are in usec.
  sed -i 's/\x1b\[[0-9;]*m//g' "$out"
  local parsed
  parsed="$(awk -v mode="$mode" -v round="$round" '
    /avg-rtt=/ { sub(/.*avg-rtt=/, ""); sub(/[^0-9.].*/, ""); avg = $0 }
    /percentile 50.000 =/ { p50 = $NF }
    /percentile 99.000 =/ { p99 = $NF }
    END {
      if (avg == "" || p50 == "" || p99 == "") exit 1
      printf "%s %s rtt_avg %s\n%s %s rtt_p50 %s\n%s %s rtt_p99 %s\n",
             mode, round, avg, mode, round, p50, mode, round, p99
    }' "$out")" || {
    cat "$out" >&2
    die "could not parse avg/p50/p99 from the sockperf output above"
  }
  echo "$parsed" >>"$tmp/results"
  step "round $round/$rounds: $mode meshlane: sockperf round trip $(echo "$parsed" |
    awk '{ printf "%s%s %s us", (NR > 1 ? ", " : ""), substr($3, 5), $4 }')"
}

# Records in file $1 the peak of the kernel's TCP memory (/proc/net/sockstat "mem", in pages; it
# is host-wide) while it runs, every 0.1 s. Redirected bytes wait in the reader's queue without
# back-pressure, so this shows how much a transfer piled up; ENOMEM comes at net.ipv4.tcp_mem[2].
tcp_mem_pages() {
  local proto fields mem=0
  while read -r proto fields; do
    if [ "$proto" = "TCP:" ]; then mem="${fields##* }"; fi
  done </proc/net/sockstat
  echo "$mem"
}

start_mem_sampler() {
  local out="$1"
  echo 0 >"$out"
  (
    peak=0
    while :; do
      mem="$(tcp_mem_pages)"
      if [ "$mem" -gt "$peak" ]; then
        peak="$mem"
        echo "$peak" >"$out"
      fi
      sleep 0.1
    done
  ) &
  sampler_pid=$!
}

stop_mem_sampler() {
  host_kill_pid "$sampler_pid"
  sampler_pid=""
}

# One-way bulk transfer client -> haproxy -> server. The clock runs from starting the client to
# the server's exit, which comes after it has checked the last byte and the end of the stream:
# bytes that the client has handed to the kernel but the server has not read yet do not count.
run_bulk() {
  local mode="$1" round="$2" tag="$3"
  local client_json="$tmp/xfer-client.$mode.$round.json"
  local client_rc=0 server_rc=0 t0 t1
  local start_mib=$(($(tcp_mem_pages) * page_size / 1048576))
  start_mem_sampler "$tmp/tcpmem.$mode.$round"
  t0="$(now)"
  in_demo "$ml_xfer" client --connect "127.0.0.1:$proxy_xfer_port" --nonblocking \
    --bytes "$bulk_bytes" --peer-bytes 0 --seed "$round" --min-write 128K --max-write 128K \
    --quiet --timeout "$xfer_timeout" >"$client_json" 2>"$tmp/xfer-client.$mode.$round.err" ||
    client_rc=$?
  if [ "$client_rc" -ne 0 ]; then
    # The server may still be waiting for a connection that never came.
    kill -TERM "$xfer_server_pid" 2>/dev/null || true
  fi
  wait "$xfer_server_pid" || server_rc=$?
  t1="$(now)"
  xfer_server_pid=""
  stop_mem_sampler
  local peak_mib=$(($(cat "$tmp/tcpmem.$mode.$round") * page_size / 1048576))
  local parsed
  if ! parsed="$(python3 - "$client_json" "$tmp/xfer-server.$tag.json" "$client_rc" "$server_rc" \
      "$bulk_bytes" "$t0" "$t1" "$mode" "$round" "$peak_mib" "$start_mib" 2>&1 <<'EOF'
import json, sys

client_path, server_path = sys.argv[1], sys.argv[2]
client_rc, server_rc, payload = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t0, t1, mode, rnd = float(sys.argv[6]), float(sys.argv[7]), sys.argv[8], sys.argv[9]
peak_mib, start_mib = sys.argv[10], sys.argv[11]

def summary(path, who):
    try:
        lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
        return json.loads(lines[-1])
    except (OSError, ValueError, IndexError):
        return {"ok": False, "error": f"no JSON summary from the ml_xfer {who}"}

client, server = summary(client_path, "client"), summary(server_path, "server")
problems = []
for who, s, rc in (("client", client, client_rc), ("server", server, server_rc)):
    if rc != 0 or not s.get("ok"):
        problems.append(f"ml_xfer {who} exit {rc}: {s.get('error') or 'no error message'}")
if not problems and server.get("bytes_received") != payload + 32:
    problems.append(f"server received {server.get('bytes_received')} bytes, "
                    f"expected {payload + 32} (payload and 32-byte header)")
if problems:
    sys.exit("; ".join(problems) + f" (peak TCP memory of the host: {peak_mib} MiB)")
print(mode, rnd, "bulk_bps", payload * 8 / (t1 - t0))
print(mode, rnd, "bulk_s", t1 - t0)
print(mode, rnd, "bulk_sender_s", client["elapsed_s"])
print(mode, rnd, "bulk_tcpmem_mib", peak_mib)
print(mode, rnd, "bulk_tcpmem_start_mib", start_mib)
EOF
  )"; then
    workload_failed "$mode" "$round" "bulk transfer (ml_xfer)" "$parsed"
    return
  fi
  echo "$parsed" >>"$tmp/results"
  step "round $round/$rounds: $mode meshlane: $size sent and verified in $(echo "$parsed" |
    awk '$3 == "bulk_s" { s = $4 } $3 == "bulk_bps" { b = $4 }
         END { printf "%.2f s, %.2f Gbit/s", s, b / 1e9 }'); peak TCP memory ${peak_mib} MiB (${start_mib} MiB before)"
}

# ---------------------------------------------------------------------------------------------
: >"$tmp/results"
: >"$tmp/failures"
for round in $(seq 1 "$rounds"); do
  step "round $round/$rounds: without meshlane: starting sockperf server, ml_xfer server, haproxy"
  start_chain "base$round" "$round"
  step "round $round/$rounds: without meshlane: sockperf ping-pong ${duration} s, then bulk transfer of $size"
  run_sockperf without "$round"
  run_bulk without "$round" "base$round"
  stop_bg

  step "round $round/$rounds: with meshlane: starting meshlaned on cgroup $name"
  start_daemon
  read_stats "$tmp/stats.before.$round.json"
  step "round $round/$rounds: with meshlane: meshlaned ready; starting the chain"
  start_chain "mesh$round" "$round"
  step "round $round/$rounds: with meshlane: sockperf ping-pong ${duration} s, then bulk transfer of $size"
  run_sockperf with "$round"
  read_stats "$tmp/stats.mid.$round.json"
  run_bulk with "$round" "mesh$round"
  read_stats "$tmp/stats.after.$round.json"
  stop_bg
  step "round $round/$rounds: with meshlane: SIGTERM to meshlaned, then meshlaned --cleanup"
  stop_daemon
done
step "done; all measurements taken"

# ---------------------------------------------------------------------------------------------
status=0
python3 - "$tmp" "$rounds" "$bulk_bytes" "$size" "$tcp_mem_max_mib" <<'EOF' || status=$?
import json, os, statistics, sys

tmp, rounds, payload, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tcp_mem_max_mib = sys.argv[5]
values = {}
for line in open(os.path.join(tmp, "results")):
    mode, _round, metric, value = line.split()
    values.setdefault((metric, mode), []).append(float(value))
failures = [line.rstrip("\n") for line in open(os.path.join(tmp, "failures")) if line.strip()]

rows = [
    ("rtt_avg", "sockperf 64 B round trip, avg", "us", 1.0, "lower is better"),
    ("rtt_p50", "sockperf 64 B round trip, p50", "us", 1.0, "lower is better"),
    ("rtt_p99", "sockperf 64 B round trip, p99", "us", 1.0, "lower is better"),
    ("bulk_bps", f"bulk {size}, verified", "Gbit/s", 1e-9, "higher is better"),
]

print()
print(f"Results: client -> HAProxy -> server on loopback, non-blocking sockets, "
      f"mean of {rounds} interleaved run(s) each")
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
halt_poll = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"
if os.path.exists(halt_poll) and open(halt_poll).read().strip() == "0":
    print("(This VM's idle vCPUs halt at once, guest_halt_poll_ns=0: a round trip that wakes an idle")
    print(" vCPU waits for the hypervisor, which costs the faster spliced path most. See \"Idle vCPUs\"")
    print(" in docs/performance.md.)")
print("ratio = with / without. Single runs vary (often +-15% on a VM), so the runs were interleaved:")
for key, label, unit, scale, _ in rows:
    fmt = lambda xs: ", ".join(f"{x * scale:.2f}" for x in xs) or "-"
    print(f"  {label:<32} without: {fmt(values.get((key, 'without'), []))}"
          f"  with: {fmt(values.get((key, 'with'), []))} {unit}")
def runs(key, fmt="{:.2f}"):
    return "  ".join(f"{mode}: " + (", ".join(fmt.format(x) for x in values.get((key, mode), [])) or "-")
                     for mode in ("without", "with"))
print()
print("Bulk: the receiver checked every byte against the expected stream, and the end of the stream;")
print("time runs from starting the sender to the receiver having checked the last byte.")
print(f"  sender done after (s)              {runs('bulk_sender_s')}")
print(f"  peak TCP memory (MiB)              {runs('bulk_tcpmem_mib', '{:.0f}')}")
print(f"  TCP memory before (MiB)            {runs('bulk_tcpmem_start_mib', '{:.0f}')}")
print("  TCP memory: /proc/net/sockstat, sampled every 0.1 s; it is host-wide, so it includes any other")
print(f"  TCP traffic of the host. send() fails with ENOMEM at net.ipv4.tcp_mem = {tcp_mem_max_mib} MiB;")
print("  spliced bytes wait in the reader's queue without back-pressure (docs/datapath.md).")

names = ["sockets_added", "sockets_add_failed", "sockets_skipped_by_port",
         "sockets_skipped_blocking", "messages_redirected", "bytes_redirected", "redirect_failed",
         "spliced_app_to_proxy", "spliced_proxy_to_proxy", "spliced_proxy_to_app",
         "spliced_other"]
phases = {"sockperf": ("before", "mid"), "bulk": ("mid", "after")}
delta = {phase: dict.fromkeys(names, 0) for phase in phases}
for r in range(1, rounds + 1):
    stats = {}
    for point in ("before", "mid", "after"):
        path = os.path.join(tmp, f"stats.{point}.{r}.json")
        stats[point] = json.load(open(path)) if os.path.exists(path) else None
    for phase, (a, b) in phases.items():
        if stats[a] is None or stats[b] is None:
            continue
        for name in names:
            delta[phase][name] += stats[b].get(name, 0) - stats[a].get(name, 0)
total = {name: sum(delta[p][name] for p in phases) for name in names}

print()
print("meshlane counters (meshlaned --stats), summed over the meshlane phases only:")
print(f"  {'counter':<26} {'sockperf':>14} {'bulk':>14} {'total':>14}")
for name in names:
    print(f"  {name:<26} {delta['sockperf'][name]:>14} {delta['bulk'][name]:>14} {total[name]:>14}")
print()
print("Each run opens 2 connections (client -> haproxy, haproxy -> server), i.e. 4 sockets; a spliced")
print("connection counts once under spliced_* (no [[workload]] is configured, so as spliced_other).")
if total["sockets_skipped_blocking"] > 0:
    print(f"sockets_skipped_blocking = {total['sockets_skipped_blocking']}: sockets read in blocking mode, "
          "left on the normal stack by design (docs/datapath.md).")
if total["redirect_failed"] > 0:
    print("(redirect_failed: sends that took the normal stack instead, after which that socket stays "
          "on it; typically one at connection teardown, when the peer socket is already gone)")
runs_ok = len(values.get(("bulk_bps", "with"), []))
if runs_ok and delta["bulk"]["bytes_redirected"] > 0:
    hops = delta["bulk"]["bytes_redirected"] / (payload * runs_ok)
    print(f"bulk bytes_redirected / bulk payload = {hops:.2f} (2.00 = both hops carried every byte "
          "socket to socket)")
if total["bytes_redirected"] > 0:
    print(f"bytes_redirected = {total['bytes_redirected']} > 0: the client -> haproxy and "
          "haproxy -> server hops were spliced socket to socket, skipping the TCP/IP stack.")
else:
    print("bytes_redirected = 0: nothing was spliced, so the 'with' column measured the normal stack.")

if failures:
    print()
    print("FAILED with meshlane (the same workloads succeeded without it):")
    for line in failures:
        print(f"  {line}")
    if any("Cannot allocate memory" in line or "ENOMEM" in line for line in failures):
        print("  ENOMEM from send(): bytes that sk_msg redirects into a receiving socket's queue are not")
        print("  held to its receive buffer, so a sender faster than its reader piles them up until the")
        print("  kernel's TCP memory limit (net.ipv4.tcp_mem) is reached and send() fails. This is the")
        print("  known limitation 'no back-pressure' of the current datapath (docs/datapath.md), not a")
        print("  bug of the demo; a smaller --bytes makes it less likely, it does not fix it.")
    sys.exit(4)
if total["bytes_redirected"] == 0:
    sys.exit(3)
EOF
case "$status" in
  0) ;;
  3) die "meshlane spliced no bytes during the meshlane phases" ;;
  4) die "workloads failed with meshlane running (listed above)" ;;
  *) die "could not summarise the results (python3 exited with status $status)" ;;
esac

# ---------------------------------------------------------------------------------------------
# Part 2: the L4 fast path. The benchmark's harness already builds the two pods, their sidecars
# and Istio's rules, and checks every mode's counters: the demo runs a small slice of it.
[ "$fast_path" -eq 1 ] || exit 0
fast_path_dir="$tmp/fast-path"
fast_path_cmd=(scripts/bench.sh --modes "a,b,f" --workloads "spe64,rr1,cr16" --rounds "$rounds"
  --duration 3 --out "$fast_path_dir")
echo
step "part 2: the L4 fast path; two pods, each with an HAProxy sidecar: Istio's iptables rules (b), meshlane with fast_path = true (f), no mesh (a): ${fast_path_cmd[*]}"
# bench.sh prints a progress line per cell ("[ 12s] [ 3/27, ETA 60s] round 1/2 mode b ..."); the
# demo shows those and keeps the rest in the log.
set +e
"${fast_path_cmd[@]}" 2>&1 | tee "$tmp/fast-path.log" |
  grep --line-buffered -E '^\[ *[0-9]+s\] \[ *[0-9]+/[0-9]+' | sed -u 's/^/  bench: /'
bench_status=${PIPESTATUS[0]}
set -e
if [ "$bench_status" -ne 0 ] || [ ! -f "$fast_path_dir/results.json" ]; then
  tail -n 20 "$tmp/fast-path.log" >&2
  die "the fast-path measurement (${fast_path_cmd[*]}) failed with status $bench_status (last lines above)"
fi

status=0
python3 "$repo/scripts/demo/fast_path_report.py" "$fast_path_dir/results.json" "$rounds" || status=$?
case "$status" in
  0) ;;
  4) die "part 2 found problems (listed above)" ;;
  *) die "could not summarise part 2 (python3 exited with status $status)" ;;
esac
