# shellcheck shell=bash
# Helpers for scripts/bench.sh: the node topology, the Istio-style iptables rules, HAProxy
# sidecars, meshlaned and its cleanup. Sourced by bench.sh only. The cgroup, netns, process and
# cleanup-stack helpers (host_*) are scripts/lib/host.sh, shared with the tests and the demo; it
# does not depend on tests/netns/*.sh, which the integration tests own.
#
# Safety rules, enforced here:
#   - nothing is attached to the cgroup v2 root: every process runs in a child cgroup made by
#     bench_make_cgroup, and meshlaned's daemon.cgroup points at it;
#   - traffic stays in network namespaces made here (a node netns with a bridge and two pods),
#     addresses in 198.18.0.0/15 only; iptables rules only inside the pods;
#   - at exit (bench_run_cleanup), everything is undone: processes are killed by PID,
#     `meshlaned --cleanup` removes the datapath, namespaces and the cgroup are removed, the
#     work directory is deleted (or kept with --keep).

# shellcheck source=scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/host.sh"
HOST_WHO=bench.sh

BENCH_CG=""                      # the bench cgroup (absolute path), made by bench_make_cgroup
BENCH_CG_REL=""
declare -A BENCH_PIDS=()         # background processes started and not yet reaped
declare -A BENCH_DAEMON_CFGS=()  # meshlaned configs whose datapath may still be attached
declare -A BENCH_NETNS=()        # network namespaces made and not yet deleted

bench_ts() { printf '[%4ds]' "$SECONDS"; }
bench_log() { echo "$(bench_ts) $*" >&2; }
bench_die() {
  echo "bench.sh: error: $*" >&2
  exit 1
}

# bench_run_cleanup RC: at exit (host_trap_exit in bench.sh). Processes first (only our own
# children, by PID: a PID stays ours until we reap it), then the datapath, then the namespaces
# still there, then the deferred stack (host_defer: cgroup, files).
bench_run_cleanup() {
  local pid cfg ns
  for pid in "${!BENCH_PIDS[@]}"; do bench_kill_pid "$pid"; done
  for cfg in "${!BENCH_DAEMON_CFGS[@]}"; do bench_daemon_cleanup "$cfg"; done
  for ns in "${!BENCH_NETNS[@]}"; do bench_delete_netns "$ns"; done
  host_run_deferred
}

# bench_kill_pid PID: host_kill_pid (SIGTERM, SIGKILL after 3 s, reap), for PIDs of bench_bg
# not reaped yet.
bench_kill_pid() {
  local pid=$1
  [[ -n $pid && -n ${BENCH_PIDS[$pid]:-} ]] || return 0
  unset "BENCH_PIDS[$pid]"
  host_kill_pid "$pid"
}

# ---------------------------------------------------------------------------------------------
# cgroup

# bench_make_cgroup NAME: <cgroup2 mount>/NAME (host_make_cgroup); sets BENCH_CG (absolute),
# BENCH_CG_REL. Removed at exit.
bench_make_cgroup() {
  BENCH_CG_REL=$1
  host_make_cgroup BENCH_CG "$BENCH_CG_REL" || bench_die "cannot make the bench cgroup (above)"
  host_defer host_remove_cgroup "$BENCH_CG"
}

# CPU time used by the processes of the bench cgroup, microseconds.
bench_cg_usage() { sed -n 's/^usage_usec \([0-9]*\)$/\1/p' "$BENCH_CG/cpu.stat"; }

# ---------------------------------------------------------------------------------------------
# Running things in the cgroup and a netns

# bench_in NETNS CMD...: CMD in the bench cgroup and NETNS ("-" for none), in the foreground
# (host_in).
bench_in() { host_in "$BENCH_CG" "$@"; }

# bench_bg VAR OUT ERR NETNS CMD...: the same in the background; PID in VAR, killed at exit
# unless reaped before by bench_kill_pid or bench_wait_pid.
bench_bg() {
  local bench__var=$1 bench__out=$2 bench__err=$3
  shift 3
  host_argv "$BENCH_CG" "$@"
  "${HOST_ARGV[@]}" >"$bench__out" 2>"$bench__err" </dev/null &
  BENCH_PIDS[$!]=1
  printf -v "$bench__var" '%s' "$!"
}

# bench_wait_pid PID [SECONDS]: waits for a process of bench_bg to exit (killed after SECONDS,
# default 30); its exit status goes to BENCH_RC.
bench_wait_pid() {
  local pid=$1 secs=${2:-30}
  BENCH_RC=0
  if ! host_wait_exit "$pid" "$secs"; then
    bench_kill_pid "$pid"
    BENCH_RC=124
    return 0
  fi
  unset "BENCH_PIDS[$pid]"
  wait "$pid" || BENCH_RC=$?
  export BENCH_RC
}

# ---------------------------------------------------------------------------------------------
# Topology: node netns with bridge br0; pods on it, each eth0 = 198.18.0.N/24, lo up.
# bench.sh makes a fresh one for every mode of every round: state left in a namespace by one
# mode (conntrack entries of the iptables mode, TIME_WAIT sockets) must not leak into the next.

BENCH_NODE_NS=""

# bench_make_netns NS: host_make_netns, recorded for bench_delete_netns and the exit.
bench_make_netns() {
  local ns=$1
  host_make_netns "$ns" || bench_die "cannot make network namespace $ns (above)"
  BENCH_NETNS[$ns]=1
}

# bench_delete_netns NS: only namespaces made by bench_make_netns; what still runs in one was
# started by this script (its processes are killed by PID before, this is the safety net).
bench_delete_netns() {
  local ns=$1
  [[ -n ${BENCH_NETNS[$ns]:-} ]] || return 0
  unset "BENCH_NETNS[$ns]"
  host_delete_netns "$ns"
}

# bench_make_node NAME
bench_make_node() {
  BENCH_NODE_NS=$1
  bench_make_netns "$BENCH_NODE_NS"
  host_add_bridge "$BENCH_NODE_NS" || bench_die "no bridge in $BENCH_NODE_NS (above)"
}

# bench_add_pod NS N: a pod netns with eth0 = 198.18.0.N/24 on the node's bridge.
bench_add_pod() {
  local ns=$1 n=$2
  bench_make_netns "$ns"
  host_add_veth "$BENCH_NODE_NS" "mlb$n" "$ns" "198.18.0.$n/24" ||
    bench_die "cannot wire $ns to the node bridge (above)"
  host_wait_for 5 host_eth0_up "$ns" || bench_die "eth0 of $ns did not come up"
}

# ---------------------------------------------------------------------------------------------
# Mode (b): the istio-iptables rules (nat table), exactly as istio-init installs them.

# shellcheck source=scripts/bench/istio-iptables.sh
source "$(dirname "${BASH_SOURCE[0]}")/istio-iptables.sh"

# bench_iptables_on NS: installs the rules in the pod (its namespace is deleted after the mode,
# with its conntrack entries).
bench_iptables_on() {
  istio_iptables_install "$1" || bench_die "iptables-restore failed in $1"
}

# ---------------------------------------------------------------------------------------------
# HAProxy sidecar: outbound :15001 -> original destination; inbound :15006 -> original
# destination from 127.0.0.6. No logging. Runs as uid/gid 1337 (the Istio proxy user).

BENCH_PROXY_UID=1337

bench_haproxy_cfg() {
  local file=$1 threads=$2
  cat >"$file" <<EOF
global
  maxconn 4096
  nbthread $threads

defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s

frontend outbound
  bind :15001
  default_backend outbound_orig

backend outbound_orig
  server x 0.0.0.0:0

frontend inbound
  bind :15006
  default_backend inbound_orig

backend inbound_orig
  source 127.0.0.6
  server x 0.0.0.0:0
EOF
  chmod 644 "$file"
}

# bench_start_haproxy VAR NS LABEL DIR THREADS: PID in VAR; waits until both ports listen.
bench_start_haproxy() {
  local var=$1 ns=$2 label=$3 dir=$4 threads=$5 pid
  bench_haproxy_cfg "$dir/$label.cfg" "$threads"
  bench_bg pid "$dir/$label.out" "$dir/$label.err" "$ns" \
    setpriv --reuid="$BENCH_PROXY_UID" --regid="$BENCH_PROXY_UID" --clear-groups \
    haproxy -db -f "$dir/$label.cfg"
  if ! host_wait_listen "$ns" "$pid" 10 15001 15006; then
    tail -n 20 "$dir/$label.err" >&2
    bench_die "HAProxy $label did not start listening in $ns"
  fi
  printf -v "$var" '%s' "$pid"
}

# ---------------------------------------------------------------------------------------------
# meshlaned

# bench_write_daemon_config FILE BPFFS_DIR ENABLED SPLICE_BLOCKING EXCLUDE_PORTS [NAME NETNS IP]...
# EXCLUDE_PORTS: acceleration.exclude_ports as a comma-separated list, "" for none.
bench_write_daemon_config() {
  local file=$1 dir=$2 enabled=$3 blocking=$4 exclude=$5
  local cfgdir
  cfgdir=$(dirname "$file")
  shift 5
  {
    echo "# generated by scripts/bench.sh"
    echo "[daemon]"
    echo "bpffs_dir = \"$dir\""
    echo "cgroup = \"$BENCH_CG_REL\""
    echo "log_level = \"info\""
    # A daemon with a control socket needs its own socket and state directory (never the
    # production defaults, which a daemon of the host or of another test may be using).
    if [[ ${BENCH_DAEMON_HAS_SOCKET:-1} -eq 1 ]]; then
      echo "socket = \"$cfgdir/meshlane.sock\""
      echo "state_dir = \"$cfgdir/state\""
    fi
    echo
    echo "[acceleration]"
    echo "enabled = $enabled"
    echo "splice_blocking_sockets = $blocking"
    echo "exclude_ports = [$exclude]"
    while [[ $# -ge 3 ]]; do
      echo
      echo "[[workload]]"
      echo "name = \"$1\""
      echo "netns = \"/var/run/netns/$2\""
      echo "ips = [\"$3\"]"
      echo "mesh = \"istio\""
      shift 3
    done
  } >"$file"
}

# bench_daemon_probe WORKDIR: sets BENCH_DAEMON_HAS_SOCKET to 1 if this meshlaned knows the
# daemon.socket and daemon.state_dir keys (the control socket), else 0, by asking it to parse
# a config that has them (--stats fails anyway: nothing is pinned there).
bench_daemon_probe() {
  local cfg="$1/probe.toml" out
  printf '[daemon]\nbpffs_dir = "%s"\nsocket = "%s"\nstate_dir = "%s"\n' \
    "/sys/fs/bpf/meshlane-bench-probe-$$" "$1/probe.sock" "$1/probe-state" >"$cfg"
  out=$("$MESHLANED" --config "$cfg" --stats 2>&1 </dev/null)
  if grep -q 'unknown key' <<<"$out"; then BENCH_DAEMON_HAS_SOCKET=0; else BENCH_DAEMON_HAS_SOCKET=1; fi
  rm -f "$cfg"
}

# bench_daemon_start VAR CONFIG LOG: starts meshlaned in the bench cgroup (no netns), waits up
# to 30 s for "meshlaned ready". PID in VAR. At exit: killed, then `--cleanup`.
bench_daemon_start() {
  local var=$1 cfg=$2 log=$3 pid rc=0
  [[ -n $BENCH_CG_REL ]] || bench_die "daemon started before the bench cgroup exists"
  BENCH_DAEMON_CFGS[$cfg]=1
  bench_bg pid "$log" "$log.err" - "$MESHLANED" --config "$cfg"
  host_daemon_wait_ready "$pid" 30 "$log" "$log.err" || rc=$?
  case $rc in
    0) printf -v "$var" '%s' "$pid" ;;
    1)
      tail -n 30 "$log" "$log.err" >&2
      bench_die "meshlaned exited before logging 'meshlaned ready' (config $cfg)"
      ;;
    *)
      tail -n 30 "$log" "$log.err" >&2
      bench_die "meshlaned did not log 'meshlaned ready' within 30 s"
      ;;
  esac
}

# bench_daemon_cleanup CONFIG: `meshlaned --cleanup`; never fails (used at exit too).
bench_daemon_cleanup() {
  unset "BENCH_DAEMON_CFGS[$1]"
  host_daemon_cleanup "$MESHLANED" "$1" || host_warn "meshlaned --config $1 --cleanup failed"
  return 0
}

# bench_daemon_stats CONFIG: one line of JSON counters ("{}" if unavailable).
bench_daemon_stats() {
  local out
  out=$("$MESHLANED" --config "$1" --stats -o json 2>/dev/null | tr -d '\n') || out=""
  [[ $out == \{* ]] || out="{}"
  echo "$out"
}
