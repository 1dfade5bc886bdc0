#!/usr/bin/env bash
# tc flow state (ml_tcflows_v3, a plain hash), in an istio-style mesh (pods A and B with HAProxy
# sidecars, host X off the node; rel_lib.sh):
#   1. Flow key collision: two connections at once from X with the same source address and
#      port (SO_REUSEADDR) to two app ports of B, 8092 then 8080. tc keys a flow by (client
#      address and port, pod address), so the second SYN finds the first one's flow: it is not
#      steered (tc_flow_collisions = 1) and reaches B:8080 directly, while the first goes
#      through B's inbound sidecar (intercepted_inbound_tc = 1, the sidecar logs B:8092). Both
#      carry 1 MiB each way, echoed and compared byte for byte, interleaved; afterwards no flow
#      is left behind. (Before v2, the second SYN overwrote the first flow and one connection
#      was reset.) `meshlanectl monitor` shows the second as "bypassed" reason
#      "tc_flow_collision", from X4:40123 to B:8080.
#   2. A process of the test cgroup in X (X is not a workload, like a node agent probing a pod)
#      -> B:8080, steered by tc to B's sidecar: ml_xfer's fionread reads on both sides, 1 MiB
#      each way; X's end stays out of the sockhash (it once joined, waiting for a server end
#      that never came: a FIONREAD trap and a redirect_failed per connection), the sidecar's hop
#      to the app is spliced.
#   3. A full flow map (ml_tcflows_v3 shrunk to 4 entries with MESHLANE_TEST_MAP_MAX_ENTRIES):
#      8 persistent connections X -> B:8093 at once (ml_connrate, stopped once all 8 have been
#      counted and 100 requests answered): 4 steered, the others not steered (tc_flows_full)
#      but served directly by the app; no request fails. The monitor shows each SYN left alone
#      as "bypassed" reason "tc_flows_full", as many as the counter rose.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"
# shellcheck source-path=SCRIPTDIR source=long_conns.sh
source "$(dirname "${BASH_SOURCE[0]}")/long_conns.sh"
# With tc steering whatever daemon.inbound_steering defaults to: tc's flow map is what this tests.
export ML_INBOUND_STEERING=tc

PAIR=$(dirname "${BASH_SOURCE[0]}")/same_port_pair.py
rel_setup
ml_require_test_hooks
rel_sidecars
B4=$(mesh_v4 11)
X4=$(mesh_v4 100)
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"
rel_start_timed "$CONFIG"

# monitor_start LABEL: `meshlanectl monitor -o json` into $ML_WORKDIR/LABEL.monitor, subscribed.
monitor_start() {
  ml_bg MON_PID "$ML_WORKDIR/$1.monitor" "$ML_WORKDIR/$1.monitor.err" - - \
    "$MESHLANECTL" --socket "$(rel_socket)" -o json monitor
  host_wait_for "$ML_WAIT_S" grep -q 'monitor: datapath now emits' "$ML_DAEMON_LOG" ||
    ml_fail "the monitor did not subscribe: $(cat "$ML_WORKDIR/$1.monitor.err")"
}
# bypassed_events LABEL REASON [MATCH]: the monitor's bypassed events with REASON (and MATCH).
bypassed_events() {
  grep '"type":"bypassed"' "$ML_WORKDIR/$1.monitor" | grep "\"reason\":\"$2\"" | grep -c -- "${3:-}" || true
}
monitor_stop() {
  kill -INT "$MON_PID"
  host_wait_exit "$MON_PID" || ml_fail "meshlanectl monitor still runs after SIGINT"
}

flow_count() { rel_map_len ml_tcflows_v3; }

# ---------------------------------------------------------------------------------------------
ml_log "1. two connections from $X4:40123 to $B4:8092 and $B4:8080 at once"
rel_echo_server "$REL_B" 8080 8092
monitor_start collision
sb=$(mesh_log_lines "$REL_LOG_B")
ml_snapshot c0
rc=0
host_in "$ML_CG" "$REL_X" python3 "$PAIR" client --bind "$X4:40123" --connect "$B4:8092" \
  --connect "$B4:8080" --bytes $((1 << 20)) >"$ML_WORKDIR/pair.out" 2>"$ML_WORKDIR/pair.err" || rc=$?
ml_log "pair (exit $rc): $(cat "$ML_WORKDIR/pair.out") $(cat "$ML_WORKDIR/pair.err")"
[[ $rc -eq 0 ]] || ml_fail "the two connections sharing a source port did not both carry every byte"
# Their flow goes once tc has seen both FINs (or a RST): wait for the map to empty.
no_flows() { [[ $(flow_count) -eq 0 ]]; }
host_wait_for "$ML_WAIT_S" no_flows || true
ml_snapshot c1
ml_show_delta c0 c1
[[ $(ml_delta c0 c1 tc_flow_collisions) -eq 1 ]] ||
  ml_fail "tc_flow_collisions rose by $(ml_delta c0 c1 tc_flow_collisions), expected 1"
[[ $(ml_delta c0 c1 intercepted_inbound_tc) -eq 1 ]] ||
  ml_fail "intercepted_inbound_tc rose by $(ml_delta c0 c1 intercepted_inbound_tc), expected 1 (the first connection)"
mesh_assert_flat c0 c1 collision tc_flows_full
mesh_wait_log "$REL_LOG_B" "$sb" "^inbound $(mesh_re "$X4"):40123 [^ ]+ [^ ]+:8092\$" ||
  ml_fail "B's inbound sidecar did not carry $X4:40123 -> $B4:8092: $(mesh_log_since "$REL_LOG_B" "$sb")"
mesh_log_since "$REL_LOG_B" "$sb" | grep -q ":8080\$" &&
  ml_fail "B's inbound sidecar carried the colliding connection to 8080 too"
flows=$(flow_count)
[[ $flows -eq 0 ]] || ml_fail "$flows tc flow(s) left behind after both connections closed"
collided() { (($(bypassed_events collision tc_flow_collision) >= 1)); }
host_wait_for "$ML_WAIT_S" collided || true
[[ $(bypassed_events collision tc_flow_collision "\"src\":\"$X4:40123\"") -eq 1 &&
  $(bypassed_events collision tc_flow_collision "\"dst\":\"$B4:8080\"") -eq 1 &&
  $(bypassed_events collision tc_flow_collision) -eq 1 ]] ||
  ml_fail "the monitor did not show one bypassed/tc_flow_collision event $X4:40123 -> $B4:8080: $(grep bypassed "$ML_WORKDIR/collision.monitor")"
ml_log "monitor: the colliding SYN shown as bypassed, reason tc_flow_collision"
monitor_stop
host_kill_pid "$REL_ECHO_PID"

# ---------------------------------------------------------------------------------------------
ml_log "2. a process of the cgroup that is not a workload's (in X) -> B:8080, steered by tc"
# X's client saw B's app listening on 8080 (a listener of the cgroup in a workload), but tc
# takes its connection to B's sidecar. Its end must stay out of the sockhash like the
# sidecar's: joined, it would wait for a server end that never comes, and until then its
# FIONREAD would count only redirected bytes (0) while recv() has data.
rel_assert_steered_fionread

# ---------------------------------------------------------------------------------------------
ml_log "3. ml_tcflows_v3 with 4 entries, 8 persistent connections X -> B:8093"
ml_daemon_stop
ml_daemon_cleanup
MESHLANE_TEST_MAP_MAX_ENTRIES=ml_tcflows_v3=4 rel_start_timed "$CONFIG"
monitor_start full
ll_connrate_server "$REL_B" 8093 0
ml_snapshot f0
ll_connrate_client FULL_PID full "$REL_X" "$B4:8093" 8 0
# all_counted: no request failed, more than 100 answered, and each of the 8 connections' SYNs
# was counted, steered or not steered for lack of room (tc counts them).
all_counted() {
  ll_connrate_progress full "$FULL_PID" "requests with a full tc flow map" || return 1
  ml_snapshot f1
  ((ML_CR_REQUESTS > 100 && $(ml_delta f0 f1 intercepted_inbound_tc) + $(ml_delta f0 f1 tc_flows_full) >= 8))
}
host_wait_for "$ML_WAIT_S" all_counted || true
ml_connrate_stop "$FULL_PID" "$ML_WORKDIR/full.out" "full flow map" 100
ml_snapshot f1
ml_show_delta f0 f1
steered=$(ml_delta f0 f1 intercepted_inbound_tc)
full=$(ml_delta f0 f1 tc_flows_full)
ml_log "full flow map: $steered steered, tc_flows_full +$full"
((steered >= 1 && steered <= 4)) || ml_fail "$steered connections steered with a 4-entry flow map"
((full >= 8 - steered)) || ml_fail "tc_flows_full rose by $full, expected at least $((8 - steered))"
mesh_assert_flat f0 f1 full tc_flow_collisions
shown_all() { (($(bypassed_events full tc_flows_full) >= full)); }
host_wait_for "$ML_WAIT_S" shown_all || true
[[ $(bypassed_events full tc_flows_full) -eq $full ]] ||
  ml_fail "the monitor showed $(bypassed_events full tc_flows_full) bypassed/tc_flows_full event(s), tc_flows_full rose by $full"
ml_log "monitor: $full bypassed event(s) with reason tc_flows_full"
monitor_stop
ml_daemon_stop
ml_daemon_cleanup
ml_pass
