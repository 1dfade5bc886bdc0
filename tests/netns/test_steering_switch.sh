#!/usr/bin/env bash
# Switching daemon.inbound_steering with a restart while steered connections are open (istio
# mesh of rel_lib.sh: pods A and B with HAProxy sidecars, host X off the node):
#   1. "tc": a connection X -> B:8097 steered by tc to B's inbound sidecar is held open (4 KiB
#      echoed and checked), its flow in ml_tcflows_v3.
#   2. Restart with "sk_lookup": B gets its socket-lookup link, and tc's filters stay, now
#      running this build's programs, which steer no new connection (the daemon logs that they
#      are kept). A new connection X -> B:8098 goes through B's sidecar by the socket lookup:
#      no new tc flow. The held connection then exchanges and checks another 4 KiB (tc still
#      rewrites its ports) and closes; once its flow is gone the filters are removed.
#   3. Restart with "tc": the socket-lookup links are removed at once, tc's filters are back,
#      X -> B:8099 is steered by tc again (a new flow).
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"

HERE=$(dirname "${BASH_SOURCE[0]}")
rel_setup
rel_sidecars
B4=$(mesh_v4 11)
X4=$(mesh_v4 100)
CONFIG="$ML_WORKDIR/meshlane.toml"

# start_with STEERING: writes the config with daemon.inbound_steering = STEERING and starts
# meshlaned with it.
start_with() {
  ML_INBOUND_STEERING=$1 rel_write_config "$CONFIG"
  rel_start_timed "$CONFIG"
}
flows() { rel_map_len ml_tcflows_v3; }
held_ready() {
  grep -q '^ready ' "$ML_WORKDIR/held.out" 2>/dev/null && return 0
  kill -0 "$HELD" 2>/dev/null || ml_fail "held connection exited early: $(cat "$ML_WORKDIR/held.out" "$ML_WORKDIR/held.err")"
  return 1
}
# via_sidecar LABEL PORT: X -> B:PORT (1 MiB each way, checked) went through B's inbound sidecar.
via_sidecar() {
  local sb
  sb=$(mesh_log_lines "$REL_LOG_B")
  mesh_xfer "$1" "$REL_B" "[::]:$2" "$REL_X" "$B4:$2" --bytes 1M --timeout 30
  [[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$REL_SRC" ]] ||
    ml_fail "$1: B's app saw client $MESH_SERVER_PEER, expected B's inbound sidecar from $REL_SRC"
  mesh_wait_log "$REL_LOG_B" "$sb" "^inbound $(mesh_re "$X4"):[0-9]+ [^ ]+ [^ ]+:$2\$" ||
    ml_fail "$1: B's inbound sidecar did not log $X4 -> $B4:$2"
}

# ---------------------------------------------------------------------------------------------
ml_log "1. tc steering, a connection X -> B:8097 held open"
start_with tc
ML_INBOUND_STEERING=tc mesh_assert_steering "$REL_B"
rel_echo_server "$REL_B" 8097
ml_bg HELD "$ML_WORKDIR/held.out" "$ML_WORKDIR/held.err" "$ML_CG" "$REL_X" \
  python3 "$HERE/held_conn.py" "$B4" 8097 "$ML_WORKDIR/held.go"
host_wait_for "$ML_WAIT_S" held_ready || ml_fail "held connection not ready: $(cat "$ML_WORKDIR/held.out")"
[[ $(flows) -eq 1 ]] || ml_fail "$(flows) tc flow(s) for the held connection, expected 1"

# ---------------------------------------------------------------------------------------------
ml_log "2. restart with socket-lookup steering"
ml_daemon_stop
start_with sk_lookup
[[ $(mesh_sk_lookup_links "$REL_B") -eq 1 ]] || ml_fail "no socket-lookup link on B after the switch"
[[ -n $(mesh_tc_filters "$REL_B") ]] || ml_fail "tc's filters left B while its steered connection is open"
grep -q "workload pod-b: tc filters of an earlier run kept" "$ML_DAEMON_LOG" ||
  ml_fail "the daemon did not say it keeps B's tc filters for their connections"
via_sidecar new-by-lookup 8098
[[ $(flows) -eq 1 ]] || ml_fail "$(flows) tc flows after a new connection, expected only the held one (tc steered it)"
touch "$ML_WORKDIR/held.go"
host_wait_exit "$HELD" || ml_fail "the held connection did not finish"
wait "$HELD" || ml_fail "the held connection failed after the switch: $(cat "$ML_WORKDIR/held.out" "$ML_WORKDIR/held.err")"
grep -qx ok "$ML_WORKDIR/held.out" || ml_fail "the held connection did not report ok: $(cat "$ML_WORKDIR/held.out")"
filters_gone() { [[ -z $(mesh_tc_filters "$REL_B") ]]; }
host_wait_for "$ML_WAIT_S" filters_gone ||
  ml_fail "tc's filters still on B after its steered connection ended ($(flows) flows): $(mesh_tc_filters "$REL_B")"
ML_INBOUND_STEERING=sk_lookup mesh_assert_steering "$REL_B"
ml_log "the held connection carried its bytes after the switch; tc's filters went after it"

# ---------------------------------------------------------------------------------------------
ml_log "3. restart with tc steering again"
ml_daemon_stop
start_with tc
[[ $(mesh_sk_lookup_links "$REL_B") -eq 0 && $(mesh_sk_lookup_links "$REL_A") -eq 0 ]] ||
  ml_fail "socket-lookup links left after switching back to tc"
ML_INBOUND_STEERING=tc mesh_assert_steering "$REL_B"
via_sidecar back-to-tc 8099
ml_daemon_stop
ml_daemon_cleanup
mesh_assert_cleaned "$REL_A" "$REL_B" "$REL_X"
ml_pass
