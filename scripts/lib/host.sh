# shellcheck shell=bash
# shellcheck disable=SC2016  # single-quoted scripts for bash -c are meant not to expand here
# Host helpers shared by the integration tests (tests/netns/lib.sh), the benchmark
# (scripts/bench/lib.sh), scripts/demo.sh and scripts/soak.sh (through tests/netns/lib.sh):
# the cgroup v2 and bpffs mounts, a child cgroup and the processes run in it, network
# namespaces, bridges and veths, background processes killed by PID, bounded waits, meshlaned's
# readiness and `--cleanup`, and a cleanup stack run from an EXIT trap. Source it:
#
#   source "<repo>/scripts/lib/host.sh"
#
# It defines functions and variables prefixed host_ / HOST_ (and ML_WAIT_S), runs nothing and
# sets no shell option. Functions report failure by their status (a message on stderr where
# the caller cannot say more); the caller decides whether that ends the script.
#
# Safety rules kept here for every caller:
#   - host_make_cgroup only makes a direct child of the cgroup v2 root, never the root itself:
#     whatever is attached to that cgroup (daemon.cgroup) touches only the processes run in it;
#   - host_add_veth refuses addresses outside 198.18.0.0/15 (IPv4) and fd00::/8 (IPv6), and
#     makes both ends of a veth inside namespaces (nothing appears in the root netns);
#   - host_kill_pid only signals a child of the calling shell, so a PID reused by another
#     process is never killed;
#   - the cleanup stack (host_defer) runs on every exit path (end, exit, failure, SIGINT,
#     SIGTERM) once host_trap_exit installed the traps.

# The bound of every wait for a condition that must come true: only a hang takes that long.
ML_WAIT_S=${ML_WAIT_S:-60}

HOST_CLEANUP=()
HOST__EXIT_FUNC=""

# host_warn MSG...: "<script>: warning: MSG" on stderr (HOST_WHO names the script).
host_warn() { echo "${HOST_WHO:-$(basename "$0")}: warning: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Cleanup

# host_defer CMD [ARGS...]: runs CMD ARGS at exit (the last deferred runs first), with stdin
# from /dev/null and errors ignored.
host_defer() {
  local q
  q=$(printf '%q ' "$@")
  HOST_CLEANUP+=("$q")
}

# host_run_deferred: runs the commands of host_defer now, last first, and forgets them.
host_run_deferred() {
  local i
  for ((i = ${#HOST_CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${HOST_CLEANUP[i]}" </dev/null
  done
  HOST_CLEANUP=()
}

# host_trap_exit FUNC: installs the EXIT, INT and TERM traps. Whatever ends the script (its
# end, exit, a failure under set -e, SIGINT -> 130, SIGTERM -> 143), FUNC runs once with the
# exit status as $1, errexit off and the traps removed; the script then exits with that status.
# FUNC usually calls host_run_deferred.
host_trap_exit() {
  HOST__EXIT_FUNC=$1
  trap host__exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
host__exit() {
  local rc=$?
  set +e
  trap - EXIT INT TERM ERR
  "$HOST__EXIT_FUNC" "$rc"
  exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# Mounts

# host__mountinfo FSTYPE: the mount point of the first FSTYPE mount in /proc/self/mountinfo
# (field 5, octal escapes such as \040 decoded); status 1 if there is none.
host__mountinfo() {
  local mp
  mp=$(awk -v t="$1" '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == t) { print $5; exit } break } }' \
    /proc/self/mountinfo)
  [[ -n $mp ]] || return 1
  printf '%b\n' "$mp"
}

# host_cgroup2_mount: the cgroup v2 mount point: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a
# hybrid host (never assumed: read from mountinfo). Status 1 if cgroup v2 is not mounted.
host_cgroup2_mount() { host__mountinfo cgroup2; }

# host_bpffs_mount: the bpf filesystem's mount point, or /sys/fs/bpf (where meshlaned mounts one
# when none is mounted).
host_bpffs_mount() { host__mountinfo bpf || echo /sys/fs/bpf; }

# ---------------------------------------------------------------------------------------------
# cgroup

# host_make_cgroup VAR NAME: creates the cgroup <cgroup v2 mount>/NAME (NAME: one path
# component, so a direct child of the root, never the root) and stores its absolute path in
# VAR. Status 1 (with a message) if there is no cgroup v2 mount, NAME is not allowed or mkdir
# fails. The caller removes it with host_remove_cgroup.
host_make_cgroup() {
  local host__var=$1 name=$2 mnt
  mnt=$(host_cgroup2_mount) || {
    echo "no cgroup2 filesystem in /proc/self/mountinfo" >&2
    return 1
  }
  if [[ -z $name || $name == */* || $name == . || $name == .. ]]; then
    echo "refusing cgroup '$name' (must be a child of the cgroup v2 root $mnt)" >&2
    return 1
  fi
  mkdir "$mnt/$name" || {
    echo "cannot create cgroup $mnt/$name" >&2
    return 1
  }
  printf -v "$host__var" '%s' "$mnt/$name"
}

# host_remove_cgroup DIR: kills the processes left in DIR (cgroup.kill, or SIGKILL to each;
# only ever called on a cgroup the caller made and runs its own processes in), then removes
# it; warns if it cannot.
host_remove_cgroup() {
  local cg=$1 i pid pids
  [[ -d $cg ]] || return 0
  for ((i = 0; i < 50; i++)); do
    pids=$(cat "$cg/cgroup.procs" 2>/dev/null || true)
    [[ -z $pids ]] && break
    if [[ -e $cg/cgroup.kill ]]; then
      echo 1 >"$cg/cgroup.kill" 2>/dev/null || true
    else
      for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    sleep 0.1
  done
  for ((i = 0; i < 50; i++)); do
    rmdir "$cg" 2>/dev/null && return 0
    sleep 0.1
  done
  host_warn "could not remove cgroup $cg"
}

# ---------------------------------------------------------------------------------------------
# Running things in a cgroup and a network namespace

# host_argv CGROUP NETNS CMD [ARGS...]: sets HOST_ARGV to a command line that joins cgroup
# CGROUP (absolute path; "-" for none), enters network namespace NETNS ("-" for the current
# one) and execs CMD, so that the process started keeps one PID throughout. The cgroup is
# joined before entering the netns (`ip netns exec` remounts /sys, hiding the cgroup fs).
host_argv() {
  local cg=$1 ns=$2
  shift 2
  HOST_ARGV=()
  [[ $cg == - ]] || HOST_ARGV=(bash -c 'echo $$ >"$0/cgroup.procs" || exit 125; exec "$@"' "$cg")
  [[ $ns == - ]] || HOST_ARGV+=(ip netns exec "$ns")
  HOST_ARGV+=("$@")
}

# host_in CGROUP NETNS CMD [ARGS...]: runs CMD in CGROUP and NETNS (see host_argv), in the
# foreground; its status.
host_in() {
  host_argv "$@"
  "${HOST_ARGV[@]}"
}

# host_child PID: PID is a child of this shell, i.e. still a process it started (a PID
# already waited for may have been reused by another process since).
host_child() {
  local stat ppid
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  read -r _ ppid _ <<<"${stat##*) }"
  [[ $ppid == "$BASHPID" ]]
}

# host_running PID: PID exists and has not exited (a zombie not yet reaped has). Reads /proc
# with a builtin: it is polled.
host_running() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  [[ ${stat##*) } != Z* ]]
}

# host_kill_pid PID: SIGTERM, then SIGKILL after 3 s; reaps it. Only if PID is still a child of
# this shell; never fails.
host_kill_pid() {
  local pid=$1 i
  [[ -n $pid ]] && host_child "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    host_running "$pid" || break
    sleep 0.1
  done
  ! host_child "$pid" || ! host_running "$pid" || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# host_wait_exit PID [SECONDS]: waits (default ML_WAIT_S) for PID to exit by itself; status 1
# if it still runs then. Reaps nothing: `wait PID` afterwards for its status.
host_wait_exit() {
  local pid=$1 end=$((SECONDS + ${2:-$ML_WAIT_S}))
  while host_running "$pid"; do
    ((SECONDS < end)) || return 1
    sleep 0.05
  done
}

# host_stop_pid PID [SECONDS]: SIGTERM to PID (a child of this shell), waits (default
# ML_WAIT_S) for it to exit and reaps it: its exit status in HOST_RC. Status 1 if it still
# runs after SECONDS (then it is neither killed nor reaped).
# shellcheck disable=SC2034  # HOST_RC is for the caller
host_stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  host_wait_exit "$pid" "${2:-$ML_WAIT_S}" || return 1
  HOST_RC=0
  wait "$pid" || HOST_RC=$?
}

# host_wait_for SECONDS CMD [ARGS...]: runs CMD every 0.05 s until it succeeds (status 0) or
# SECONDS have passed (status 1). For conditions that must come true: SECONDS only bounds a
# hang, the wait ends as soon as the condition holds.
host_wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.05
  done
}

# ---------------------------------------------------------------------------------------------
# Network namespaces, bridges, veths

# host_make_netns NAME: creates network namespace NAME with lo up (status 1, and no namespace,
# if either fails). The caller deletes it with host_delete_netns.
host_make_netns() {
  ip netns add "$1" || {
    echo "cannot create network namespace $1" >&2
    return 1
  }
  ip -n "$1" link set lo up || {
    echo "cannot bring lo up in $1" >&2
    ip netns del "$1" 2>/dev/null
    return 1
  }
}

# host_delete_netns NAME: kills what still runs in NAME (only ever called on a namespace the
# caller made, where only its own processes run), then deletes it; never fails.
host_delete_netns() {
  local ns=$1 pid
  for pid in $(ip netns pids "$ns" 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  ip netns del "$ns" 2>/dev/null || true
}

# host_add_bridge NETNS [BRIDGE]: bridge BRIDGE (default br0) in NETNS, STP off, forwarding at
# once, up.
host_add_bridge() {
  local ns=$1 br=${2:-br0}
  ip -n "$ns" link add "$br" type bridge stp_state 0 forward_delay 0 || {
    echo "cannot create bridge $br in $ns" >&2
    return 1
  }
  ip -n "$ns" link set "$br" up
}

# host_test_addr ADDR[/PREFIX]: ADDR is a test address: in 198.18.0.0/15 or fd00::/8.
host_test_addr() {
  local a=${1%/*}
  [[ $a =~ ^198\.1[89]\.[0-9]+\.[0-9]+$ || ${a,,} =~ ^fd[0-9a-f]{2}: ]]
}

# host_add_veth NODE_NS PORT NETNS ADDR/PREFIX...: a veth pair, PORT in NODE_NS on bridge br0
# and eth0 in NETNS, with the addresses (IPv6 ones without DAD) on eth0, both ends up. Only
# test addresses (host_test_addr). Returns at once: wait with host_eth0_up or host_eth0_usable.
host_add_veth() {
  local node=$1 port=$2 ns=$3 a
  shift 3
  for a in "$@"; do
    host_test_addr "$a" || {
      echo "refusing address $a: not in 198.18.0.0/15 or fd00::/8" >&2
      return 1
    }
  done
  ip -n "$node" link add "$port" type veth peer name eth0 netns "$ns" || {
    echo "cannot create veth $port <-> $ns/eth0" >&2
    return 1
  }
  ip -n "$node" link set "$port" master br0 up || return 1
  for a in "$@"; do
    if [[ $a == *:* ]]; then
      ip -n "$ns" addr add "$a" dev eth0 nodad || return 1
    else
      ip -n "$ns" addr add "$a" dev eth0 || return 1
    fi
  done
  ip -n "$ns" link set eth0 up
}

# host_eth0_up NETNS...: eth0 has its carrier (LOWER_UP) in every NETNS.
host_eth0_up() {
  local ns
  for ns in "$@"; do
    ip -n "$ns" -o link show eth0 | grep -q LOWER_UP || return 1
  done
}

# host_eth0_usable NETNS...: eth0 is up in every NETNS and no address there is tentative.
host_eth0_usable() {
  local ns
  for ns in "$@"; do
    host_eth0_up "$ns" || return 1
    [[ -z $(ip -n "$ns" -o addr show tentative) ]] || return 1
  done
}

# host_listens NETNS PORT: a TCP socket listens on PORT in NETNS.
host_listens() { ip netns exec "$1" ss -Htln "sport = :$2" 2>/dev/null | grep -q .; }

# host_wait_listen NETNS PID SECONDS PORT...: waits until a TCP socket listens on every PORT in
# NETNS. Status 0 when they all do, 1 if process PID ("-": none) exited first, 2 after SECONDS.
host_wait_listen() {
  local ns=$1 pid=$2 end=$((SECONDS + $3)) port
  shift 3
  for port in "$@"; do
    until host_listens "$ns" "$port"; do
      [[ $pid == - ]] || host_running "$pid" || return 1
      ((SECONDS < end)) || return 2
      sleep 0.05
    done
  done
}

# ---------------------------------------------------------------------------------------------
# meshlaned

# host_daemon_wait_ready PID SECONDS LOG...: waits until one of the LOG files has the line
# "meshlaned ready". Status 0 then, 1 if the daemon (PID) exited first, 2 after SECONDS.
host_daemon_wait_ready() {
  local pid=$1 end=$((SECONDS + $2))
  shift 2
  until grep -q 'meshlaned ready' "$@" 2>/dev/null; do
    host_running "$pid" || return 1
    ((SECONDS < end)) || return 2
    sleep 0.05
  done
}

# host_daemon_cleanup MESHLANED CONFIG [OUTFILE]: `MESHLANED --config CONFIG --cleanup` (it
# detaches and unpins the datapath), its output to OUTFILE (default /dev/null); its status.
host_daemon_cleanup() {
  "$1" --config "$2" --cleanup >"${3:-/dev/null}" 2>&1 </dev/null
}
