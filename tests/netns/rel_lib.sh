# shellcheck shell=bash
# Helpers for the reliability tests (tests/netns/test_restart_kill.sh, test_upgrade.sh,
# test_faults.sh, test_uninstall.sh) and scripts/soak.sh, on top of mesh_lib.sh. Source it
# instead of mesh_lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"
#
# What it adds: a two-pod istio mesh (pods A .10 and B .11 with HAProxy sidecars, uid 1337,
# outbound 15001, inbound 15006, passthrough source 127.0.0.6), starting meshlaned without
# waiting for its log (so a restart can be timed), SIGKILL, the time from exec to the control
# socket answering `meshlanectl status`, and snapshots of what meshlane leaves on the machine.
#
# Environment besides mesh_lib.sh's: MESHLANECTL (default $MESHLANE_BIN/meshlanectl).

# shellcheck source-path=SCRIPTDIR source=mesh_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"

MESHLANECTL=${MESHLANECTL:-$MESHLANE_BIN/meshlanectl}
REL_UID=1337
REL_OUT=15001
REL_IN=15006
REL_SRC=127.0.0.6
REL_APP=8080

# rel_setup: mesh_setup plus meshlanectl and ml_connrate, the test cgroup, and the topology:
# node bridge, pods REL_A (198.18.0.10) and REL_B (198.18.0.11), host REL_X (.100, not a
# workload). Sets REL_WL_LINES (the two [[workload]] tables, istio preset).
rel_setup() {
  mesh_setup
  ml_require_meshlane
  [[ -x $MESHLANECTL ]] || ml_fail "meshlanectl not found at $MESHLANECTL (set MESHLANE_BIN)"
  [[ -x $ML_CONNRATE ]] || ml_fail "ml_connrate not found at $ML_CONNRATE (set MESHLANE_BIN)"
  # shellcheck disable=SC2119  # no suffix
  ml_make_cgroup
  mesh_make_node
  mesh_add_pod REL_A a 10
  mesh_add_pod REL_B b 11
  mesh_add_host REL_X x 100
  MESH_ALL=("$REL_A" "$REL_B" "$REL_X" "$MESH_NODE_NS")
  MESH_WL_LINES=()
  mesh_workload pod-a "$REL_A" "\"$(mesh_v4 10)\", \"$(mesh_v6 10)\"" istio
  mesh_workload pod-b "$REL_B" "\"$(mesh_v4 11)\", \"$(mesh_v6 11)\"" istio \
    "exclude_inbound_ports = [15008, 15020, 15021, 15090]"
  REL_WL_LINES=("${MESH_WL_LINES[@]}")
}

# rel_sidecars: HAProxy sidecars in A and B (logs in REL_LOG_A, REL_LOG_B).
rel_sidecars() {
  mesh_start_haproxy REL_PA "$REL_A" hap-a "$REL_UID" "$REL_OUT" "$REL_IN" "$REL_SRC"
  mesh_start_haproxy REL_PB "$REL_B" hap-b "$REL_UID" "$REL_OUT" "$REL_IN" "$REL_SRC"
  REL_LOG_A="$MESH_DIR/hap-a.log"
  REL_LOG_B="$MESH_DIR/hap-b.log"
}

# rel_mark_sidecars: remembers the sidecars' session counts and A's log length, for
# rel_assert_proxied.
rel_mark_sidecars() {
  REL_MARK_LOG_A=$(mesh_log_lines "$REL_LOG_A")
  local -A now=()
  mesh_haproxy_sessions_of now hap-a hap-b
  REL_MARK_OUT_A=${now[hap-a-outbound]}
  REL_MARK_IN_B=${now[hap-b-inbound]}
}

# rel_assert_proxied LABEL CONNS DEST: since rel_mark_sidecars, A's outbound and B's inbound
# frontends accepted at least CONNS sessions each, A's sidecar logged connections to DEST
# (ADDR:PORT) and to nothing else. Sessions come from HAProxy's `show stat`: its log can be a
# few lines short at 10,000 connections/s. HAProxy logs a connection at its end: this waits
# (ML_WAIT_S at most) for a first line to DEST.
rel_assert_proxied() {
  local label=$1 conns=$2 dest=$3 out_a in_b logged re
  local -A now=()
  re="^outbound [^ ]+ [^ ]+ $(mesh_re "$dest")\$"
  mesh_wait_log "$REL_LOG_A" "$REL_MARK_LOG_A" "$re" || true
  mesh_haproxy_sessions_of now hap-a hap-b
  out_a=$((now[hap-a-outbound] - REL_MARK_OUT_A))
  in_b=$((now[hap-b-inbound] - REL_MARK_IN_B))
  logged=$(mesh_log_since "$REL_LOG_A" "$REL_MARK_LOG_A" | grep -cE "$re" || true)
  ml_log "$label: $conns connections; sessions of A's outbound sidecar +$out_a, of B's inbound" \
    "sidecar +$in_b; A's sidecar logged $logged to $dest"
  ((out_a >= conns)) || ml_fail "$label: A's outbound sidecar accepted $out_a sessions for $conns connections"
  ((in_b >= conns)) || ml_fail "$label: B's inbound sidecar accepted $in_b sessions for $conns connections"
  ((logged > 0)) || ml_fail "$label: A's sidecar logged no connection to $dest"
  if mesh_log_since "$REL_LOG_A" "$REL_MARK_LOG_A" | grep -vE "$re" >&2; then
    ml_fail "$label: A's sidecar logged connections (above) that did not go to $dest"
  fi
}

# rel_write_config FILE [EXTRA_LINE...]: ml_write_config with the two workloads appended.
rel_write_config() {
  local file=$1
  shift
  ml_write_config "$file" "$@" "${REL_WL_LINES[@]}"
}

# rel_write_config_b_only FILE: ml_write_config with pod B's workload only (A left out).
rel_write_config_b_only() {
  ml_write_config "$1"
  local l skip=0
  for l in "${REL_WL_LINES[@]}"; do
    [[ $l == 'name = "pod-a"' ]] && skip=1
    [[ $l == 'name = "pod-b"' ]] && skip=0
    [[ $skip -eq 1 || $l == '[[workload]]' ]] && continue
    [[ $l == 'name = "pod-b"' ]] && echo '[[workload]]'
    echo "$l"
  done >>"$1"
}

# rel_exec_daemon CONFIG: starts `meshlaned --config CONFIG` in the background without waiting
# (ML_DAEMON_PID, ML_DAEMON_LOG = $ML_WORKDIR/meshlaned-N.log, N bumped). Killed at exit, and
# `meshlaned --cleanup` runs at exit.
rel_exec_daemon() {
  ML_DAEMON_SEQ=$((ML_DAEMON_SEQ + 1))
  ml_daemon_exec "$1"
}

# rel_socket: the control socket path in ML_CONFIG.
rel_socket() { sed -n 's/^socket = "\(.*\)"$/\1/p' "$ML_CONFIG" | sed -n 1p; }

# rel_start_timed CONFIG: execs the daemon and polls `meshlanectl status` until it answers
# (ML_WAIT_S at most: a hang guard, not a speed requirement). REL_CONTROL_MS: milliseconds from
# exec to the first answer.
rel_start_timed() {
  local config=$1 t0 sock
  t0=$(date +%s%N)
  rel_exec_daemon "$config"
  sock=$(rel_socket)
  while :; do
    if "$MESHLANECTL" --socket "$sock" --timeout 1 status >"$ML_WORKDIR/status.out" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$ML_DAEMON_PID" 2>/dev/null; then
      ml_dump_daemon_log
      ml_fail "meshlaned exited before its control socket answered"
    fi
    if (($(date +%s%N) - t0 > ML_WAIT_S * 1000000000)); then
      ml_dump_daemon_log
      ml_fail "meshlaned's control socket did not answer within $ML_WAIT_S s"
    fi
    sleep 0.01
  done
  REL_CONTROL_MS=$((($(date +%s%N) - t0) / 1000000))
}

# rel_echo_server NETNS PORT...: an echo server on every PORT (all addresses, dual stack;
# same_port_pair.py) in NETNS and the test cgroup, in the background until the test ends (PID
# in REL_ECHO_PID); returns once all ports listen.
rel_echo_server() {
  local ns=$1
  shift
  ml_bg REL_ECHO_PID "$ML_WORKDIR/echo.out" "$ML_WORKDIR/echo.err" "$ML_CG" "$ns" \
    python3 "$(dirname "${BASH_SOURCE[0]}")/same_port_pair.py" server "$@"
  host_wait_for "$ML_WAIT_S" rel__echo_listening ||
    ml_fail "echo server on ports $* did not listen within $ML_WAIT_S s"
}
rel__echo_listening() {
  grep -q listening "$ML_WORKDIR/echo.out" 2>/dev/null && return 0
  kill -0 "$REL_ECHO_PID" 2>/dev/null || ml_fail "echo server exited: $(cat "$ML_WORKDIR/echo.err")"
  return 1
}

# rel_assert_steered_fionread: a process of the cgroup in X (not a workload) -> B's app port,
# steered to B's inbound sidecar, 1 MiB each way with FIONREAD reads on both ends (ml_xfer).
# Its end must stay out of the sockhash like the sidecar's: joined, it would wait for a server
# end that never comes, and until then its FIONREAD would count only redirected bytes (0) while
# recv() has data. Checks: B's app saw the sidecar (the passthrough source), the steering and
# the sidecar's spliced hop to the app counted, no redirect_failed, exactly 2 sockets added.
rel_assert_steered_fionread() {
  local b4
  b4=$(mesh_v4 11)
  ml_snapshot s0
  mesh_xfer steered-fionread "$REL_B" "0.0.0.0:$REL_APP" "$REL_X" "$b4:$REL_APP" \
    --bytes 1M --read-mode fionread --timeout 30
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$REL_SRC" ]] ||
    ml_fail "B's app saw client $MESH_SERVER_PEER, expected B's inbound sidecar from $REL_SRC"
  ml_snapshot s1
  ml_show_delta s0 s1
  mesh_assert_rose s0 s1 steered-fionread intercepted_inbound_tc
  mesh_assert_rose s0 s1 steered-fionread spliced_proxy_to_app
  mesh_assert_flat s0 s1 steered-fionread redirect_failed
  [[ $(ml_delta s0 s1 sockets_added) -eq 2 ]] ||
    ml_fail "sockets_added rose by $(ml_delta s0 s1 sockets_added), expected 2 (the sidecar's hop to the app)"
}

# rel_status_json: `meshlanectl -o json status` of the running daemon.
rel_status_json() { "$MESHLANECTL" --socket "$(rel_socket)" -o json status; }

# rel_swept_dead_flows: tc flows the daemon removed because their sidecar socket was gone
# (status swept.dead_tc_flows), so far.
rel_swept_dead_flows() { ml_json_int "$(rel_status_json | tr -d '\n')" dead_tc_flows; }

# rel_map_len NAME: the entries of the map pinned as NAME under the bpffs directory.
rel_map_len() {
  "$BPFTOOL" -j map dump pinned "$ML_BPFFS_DIR/$1" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# rel_kill9: SIGKILL to the daemon; waits for it to be gone.
rel_kill9() {
  local pid=$ML_DAEMON_PID
  kill -KILL "$pid" 2>/dev/null || ml_fail "cannot SIGKILL meshlaned (pid $pid)"
  wait "$pid" 2>/dev/null || true
  ML_DAEMON_PID=""
  kill -0 "$pid" 2>/dev/null && ml_fail "meshlaned (pid $pid) survived SIGKILL"
  return 0
}

# rel_counter NAME: one counter read back from the pinned maps (meshlaned --stats -o json).
rel_counter() { ml_json_int "$(ml_stats_json)" "$1"; }

# rel_link_progs: "pin prog_id link_id" for every pinned link of the datapath, sorted.
rel_link_progs() {
  local pin json prog link
  for pin in "$ML_BPFFS_DIR"/links/*; do
    [[ -e $pin ]] || continue
    json=$("$BPFTOOL" -j link show pinned "$pin") || ml_fail "bpftool cannot show the link pinned at $pin"
    # The fields of one flat object, read without a Python start per link.
    prog=$(ml_json_int "$json" prog_id) || exit 1
    link=$(ml_json_int "$json" id) || exit 1
    echo "${pin##*/} $prog $link"
  done | sort
}

# rel_snapshot FILE: what meshlane can leave behind, for a before/after comparison: pins under
# the bpffs directory, tc filters and qdiscs in every namespace of the test, programs attached
# to the test cgroup (bpftool cgroup tree), meshlaned processes, and the control socket.
rel_snapshot() {
  local file=$1 ns
  {
    echo "# pins under $ML_BPFFS_DIR"
    [[ -e $ML_BPFFS_DIR ]] && find "$ML_BPFFS_DIR" | sort
    echo "# tc"
    for ns in "${MESH_ALL[@]}"; do
      echo "## $ns"
      mesh_tc_filters "$ns"
    done
    echo "# cgroup $ML_CG"
    "$BPFTOOL" cgroup tree "$ML_CG" 2>/dev/null | tail -n +2
    echo "# meshlaned processes using this config"
    pgrep -af "meshlaned --config $ML_WORKDIR" || true
    echo "# control socket"
    [[ -e $(rel_socket) ]] && echo "$(rel_socket) exists"
  } >"$file" 2>&1
  return 0
}
