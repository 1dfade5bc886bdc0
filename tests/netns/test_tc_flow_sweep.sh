#!/usr/bin/env bash
# Steered tc flows whose end tc never sees, in an istio-style mesh (pods A and B with HAProxy
# sidecars, host X off the node; rel_lib.sh). ml_tcflows_v3 is a plain hash: a flow ends when
# tc sees its RST or both FINs. A connection that dies otherwise (timed out, or destroyed while
# its last packets were dropped before the pod's interface) would keep its flow for as long as
# the workload exists; meshlaned looks for the pod-side socket of old flows (NETLINK_SOCK_DIAG
# in the pod's namespace) and removes the flows whose socket is gone.
#
# MESHLANE_TEST_FAST_SWEEP=1 (tests only) runs that check every second on flows of any age.
# Two held connections X -> B, both steered into B's inbound sidecar:
#   - "dead" (B:8094): in B, an iptables rule drops B's packets to it, and `ss -K` destroys
#     the sidecar's socket: its RST never reaches tc. Its flow must be removed within a few
#     sweeps (status swept.dead_tc_flows), and no other flow with it.
#   - "live" (B:8095), held across those sweeps until the test has seen the dead flow removed
#     and the live one still there: then its second exchange of 4 KiB is echoed intact through
#     the sidecar.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"
# With tc steering whatever daemon.inbound_steering defaults to: tc's flow map and its sweep are what this tests.
export ML_INBOUND_STEERING=tc

HERE=$(dirname "${BASH_SOURCE[0]}")
rel_setup
ml_require_test_hooks
rel_sidecars
B4=$(mesh_v4 11)
X4=$(mesh_v4 100)
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"
MESHLANE_TEST_FAST_SWEEP=1 rel_start_timed "$CONFIG"

# flow_ports: the client ports of the flows in ml_tcflows_v3, sorted (key bytes 32-33, host order).
flow_ports() {
  "$BPFTOOL" -j map dump pinned "$ML_BPFFS_DIR/ml_tcflows_v3" | python3 -c '
import json, sys
for entry in json.load(sys.stdin):
    key = [int(b, 16) for b in entry["key"]]
    print(key[32] | key[33] << 8)' | sort -n
}
wait_ready() {  # wait_ready FILE PID: the client port once held_conn.py printed "ready PORT"
  host_wait_for "$ML_WAIT_S" held_ready "$1" "$2" || ml_fail "held connection not ready: $(cat "$1")"
  sed -n 's/^ready //p' "$1"
}
held_ready() {  # FILE PID
  grep -q '^ready ' "$1" 2>/dev/null && return 0
  kill -0 "$2" 2>/dev/null || ml_fail "held connection exited early: $(cat "$1")"
  return 1
}

rel_echo_server "$REL_B" 8094 8095

ml_snapshot s0
ml_bg DEAD "$ML_WORKDIR/dead.out" "$ML_WORKDIR/dead.err" "$ML_CG" "$REL_X" \
  python3 "$HERE/held_conn.py" "$B4" 8094 -1
ml_bg LIVE "$ML_WORKDIR/live.out" "$ML_WORKDIR/live.err" "$ML_CG" "$REL_X" \
  python3 "$HERE/held_conn.py" "$B4" 8095 "$ML_WORKDIR/live.go"
dead_port=$(wait_ready "$ML_WORKDIR/dead.out" "$DEAD")
live_port=$(wait_ready "$ML_WORKDIR/live.out" "$LIVE")
ml_snapshot s1
[[ $(ml_delta s0 s1 intercepted_inbound_tc) -eq 2 ]] ||
  ml_fail "expected both held connections steered by tc, intercepted_inbound_tc rose by $(ml_delta s0 s1 intercepted_inbound_tc)"
ports=$(flow_ports | tr '\n' ' ')
[[ " $ports" == *" $dead_port "* && " $ports" == *" $live_port "* ]] ||
  ml_fail "flows of ports $dead_port and $live_port expected in ml_tcflows_v3, found: $ports"
before=$(rel_swept_dead_flows)
ml_log "flows for client ports: $ports(dead $dead_port, live $live_port); swept so far: $before"

ml_log "the sidecar's socket of the dead connection destroyed, its RST dropped before tc"
host_in - "$REL_B" iptables -w -I OUTPUT -p tcp -d "$X4" --dport "$dead_port" -j DROP
host_in - "$REL_B" ss -K -t dst "$X4" dport = ":$dead_port" >/dev/null
host_in - "$REL_B" ss -H -t -n dst "$X4" dport = ":$dead_port" | grep -q . &&
  ml_fail "ss -K left the sidecar's socket of port $dead_port (kernel without INET_DIAG_DESTROY?)"

dead_flow_gone() {
  local ports
  ports=$(flow_ports)
  ! grep -qx "$dead_port" <<<"$ports"
}
host_wait_for "$ML_WAIT_S" dead_flow_gone ||
  ml_fail "the flow of the dead connection ($dead_port) was not removed within $ML_WAIT_S s"
after=$(rel_swept_dead_flows)
[[ $((after - before)) -eq 1 ]] ||
  ml_fail "status swept.dead_tc_flows rose by $((after - before)), expected 1"
flow_ports | grep -qx "$live_port" || ml_fail "the live connection's flow was removed too"
ml_log "dead flow removed (swept.dead_tc_flows $before -> $after); the live one stays"

kill -0 "$LIVE" 2>/dev/null || ml_fail "the live connection ended during the hold: $(cat "$ML_WORKDIR/live.out")"
touch "$ML_WORKDIR/live.go"
host_wait_exit "$LIVE" || ml_fail "the live connection's second exchange did not end in $ML_WAIT_S s"
rc=0
wait "$LIVE" || rc=$?
[[ $rc -eq 0 ]] || ml_fail "the live connection failed after the sweeps: $(cat "$ML_WORKDIR/live.out")"
grep -qx ok "$ML_WORKDIR/live.out" || ml_fail "the live connection did not finish: $(cat "$ML_WORKDIR/live.out")"
ml_log "PASS: a flow whose end tc never saw is removed once its socket is gone; a live one is kept"
