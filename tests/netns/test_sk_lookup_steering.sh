#!/usr/bin/env bash
# Inbound steering by socket lookup (daemon.inbound_steering = "sk_lookup", the default;
# docs/interception.md)
# in an istio-style mesh (pods A and B with HAProxy sidecars, host X off the node; rel_lib.sh):
#   0. No tc filter on any pod; one socket-lookup link on each workload's namespace, pinned.
#   1. Two connections at once from one address and port of X to B:8092 and B:8080, which tc
#      steering cannot tell apart (test_tc_flows.sh): both go through B's inbound sidecar, which
#      logs each original destination; 1 MiB each way, echoed and compared byte for byte;
#      intercepted_inbound_tc +2, counted once each when established.
#   2. A process of the cgroup in X (not a workload) -> B:8080: steered, its end stays out of
#      the sockhash, the sidecar's hop to the app is spliced; B's app sees the passthrough
#      source.
#   3. meshlaned killed (SIGKILL): X -> B:8094 is still steered (the pinned link keeps the
#      program attached); a new meshlaned adopts the link (same link, its program swapped).
#   4. B's sidecar stopped: X -> B:8095 is refused (ECONNREFUSED) and B's app never sees it
#      (it would be the proxy bypassed); steered_no_proxy +1. The sidecar started again: steered.
#   5. pod-b removed from the config (SIGHUP): its link is gone at once, X -> B:8096 reaches
#      the app directly (it sees X as its peer), B's sidecar logs nothing.
#   6. SIGTERM + `meshlaned --cleanup`: no link and no pin left.
# Every other test runs with it too unless it sets ML_INBOUND_STEERING=tc (test_tc_suites.sh
# runs the mesh, fast-path, policy and CNI tests again with tc).
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"

export ML_INBOUND_STEERING=sk_lookup
PAIR=$(dirname "${BASH_SOURCE[0]}")/same_port_pair.py
rel_setup
rel_sidecars
B4=$(mesh_v4 11)
X4=$(mesh_v4 100)
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"
rel_start_timed "$CONFIG"
LINK_B=$(echo "$ML_BPFFS_DIR"/links/ml_sklookup_pod-b_*)

# link_field FIELD: a field of B's pinned link, as bpftool shows it.
link_field() { ml_json_int "$("$BPFTOOL" -j link show pinned "$LINK_B")" "$1"; }

# ---------------------------------------------------------------------------------------------
ml_log "0. steering attached by socket lookup, no tc filter"
for ns in "$REL_A" "$REL_B"; do mesh_assert_steering "$ns"; done
mesh_assert_no_steering "$REL_X"
[[ -e $LINK_B ]] || ml_fail "no link pinned at $LINK_B"

# ---------------------------------------------------------------------------------------------
ml_log "1. two connections from $X4:40123 to $B4:8092 and $B4:8080 at once"
rel_echo_server "$REL_B" 8080 8092
sb=$(mesh_log_lines "$REL_LOG_B")
ml_snapshot c0
no_proxy0=$(rel_counter steered_no_proxy)
rc=0
host_in "$ML_CG" "$REL_X" python3 "$PAIR" client --bind "$X4:40123" --connect "$B4:8092" \
  --connect "$B4:8080" --bytes $((1 << 20)) >"$ML_WORKDIR/pair.out" 2>"$ML_WORKDIR/pair.err" || rc=$?
ml_log "pair (exit $rc): $(cat "$ML_WORKDIR/pair.out") $(cat "$ML_WORKDIR/pair.err")"
[[ $rc -eq 0 ]] || ml_fail "the two connections sharing a source port did not both carry every byte"
for port in 8092 8080; do
  mesh_wait_log "$REL_LOG_B" "$sb" "^inbound $(mesh_re "$X4"):40123 [^ ]+ [^ ]+:$port\$" ||
    ml_fail "B's inbound sidecar did not carry $X4:40123 -> $B4:$port: $(mesh_log_since "$REL_LOG_B" "$sb")"
done
ml_snapshot c1
ml_show_delta c0 c1
[[ $(ml_delta c0 c1 intercepted_inbound_tc) -eq 2 ]] ||
  ml_fail "intercepted_inbound_tc rose by $(ml_delta c0 c1 intercepted_inbound_tc), expected 2"
mesh_assert_flat c0 c1 pair tc_flow_collisions
[[ $(rel_counter steered_no_proxy) -eq $no_proxy0 ]] || ml_fail "steered_no_proxy rose with B's sidecar up"
ml_log "both connections went through B's inbound sidecar"

# ---------------------------------------------------------------------------------------------
ml_log "2. a process of the cgroup that is not a workload's (in X) -> B:8080, steered"
host_kill_pid "$REL_ECHO_PID"
rel_assert_steered_fionread

# ---------------------------------------------------------------------------------------------
ml_log "3. meshlaned killed: steering goes on; a new meshlaned adopts the link"
link_id=$(link_field id)
prog_id=$(link_field prog_id)
rel_kill9
sb=$(mesh_log_lines "$REL_LOG_B")
mesh_xfer while-dead "$REL_B" "[::]:8094" "$REL_X" "$B4:8094" --bytes 1M --timeout 30
mesh_wait_log "$REL_LOG_B" "$sb" "^inbound $(mesh_re "$X4"):[0-9]+ [^ ]+ [^ ]+:8094\$" ||
  ml_fail "with meshlaned down, B's inbound sidecar did not carry $X4 -> $B4:8094"
rel_start_timed "$CONFIG"
[[ $(link_field id) == "$link_id" ]] ||
  ml_fail "the restarted meshlaned attached link $(link_field id), expected it to adopt link $link_id"
[[ $(link_field prog_id) != "$prog_id" ]] ||
  ml_fail "the adopted link still runs program $prog_id of the killed meshlaned"
[[ $(mesh_sk_lookup_links "$REL_B") -eq 1 ]] ||
  ml_fail "$(mesh_sk_lookup_links "$REL_B") socket-lookup links on B after the restart, expected 1"
ml_log "link $link_id adopted, program $prog_id -> $(link_field prog_id)"

# ---------------------------------------------------------------------------------------------
ml_log "4. B's sidecar stopped: X -> B:8095 refused, never handed to the app"
accepts="$ML_WORKDIR/app-8095.accepts"
: >"$accepts"
ml_bg APP_PID "$ML_WORKDIR/app-8095.out" "$ML_WORKDIR/app-8095.err" "$ML_CG" "$REL_B" \
  python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 8095))
s.listen(16)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    with open(sys.argv[1], "a") as f:
        f.write("accepted %s\n" % (peer,))
    c.close()' "$accepts"
app_listening() { grep -q listening "$ML_WORKDIR/app-8095.out"; }
host_wait_for "$ML_WAIT_S" app_listening || ml_fail "the app on B:8095 did not listen"
host_kill_pid "$REL_PB"
no_proxy0=$(rel_counter steered_no_proxy)
result=$(host_in "$ML_CG" "$REL_X" python3 -c '
import errno, socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[2]))
try:
    s.connect((sys.argv[1], 8095))
    print("connected")
except socket.timeout:
    print("timeout")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))' "$B4" "$ML_WAIT_S")
no_proxy=$(($(rel_counter steered_no_proxy) - no_proxy0))
ml_log "X -> B:8095 with no inbound sidecar: $result, steered_no_proxy +$no_proxy"
[[ $result == ECONNREFUSED ]] || ml_fail "with no inbound sidecar, X -> B:8095 gave $result, expected ECONNREFUSED"
[[ $no_proxy -eq 1 ]] || ml_fail "steered_no_proxy rose by $no_proxy, expected 1"
[[ ! -s $accepts ]] || ml_fail "B's app accepted a connection that had to go through its sidecar: $(cat "$accepts")"
mesh_start_haproxy REL_PB "$REL_B" hap-b2 "$REL_UID" "$REL_OUT" "$REL_IN" "$REL_SRC"
REL_LOG_B="$MESH_DIR/hap-b2.log"
sb=$(mesh_log_lines "$REL_LOG_B")
mesh_xfer sidecar-back "$REL_B" "[::]:8093" "$REL_X" "$B4:8093" --bytes 1M --timeout 30
mesh_wait_log "$REL_LOG_B" "$sb" "^inbound $(mesh_re "$X4"):[0-9]+ [^ ]+ [^ ]+:8093\$" ||
  ml_fail "the restarted sidecar did not carry $X4 -> $B4:8093"
host_kill_pid "$APP_PID"
ml_log "refused while B's sidecar was down, steered again once it was back"

# ---------------------------------------------------------------------------------------------
ml_log "5. pod-b removed from the config: its link goes, X -> B reaches the app directly"
ml_write_config "$CONFIG.new"
printf '%s\n' "${REL_WL_LINES[@]}" | awk '/^\[\[workload\]\]$/ { n++ } n < 2' >>"$CONFIG.new"
grep -q 'name = "pod-b"' "$CONFIG.new" && ml_fail "the config without pod-b still has it"
mv "$CONFIG.new" "$CONFIG"
kill -HUP "$ML_DAEMON_PID"
link_gone() { [[ ! -e $LINK_B && $(mesh_sk_lookup_links "$REL_B") -eq 0 ]]; }
host_wait_for "$ML_WAIT_S" link_gone || ml_fail "pod-b's socket-lookup link is still there after its removal"
mesh_assert_steering "$REL_A"
sb=$(mesh_log_lines "$REL_LOG_B")
mesh_xfer direct "$REL_B" "[::]:8096" "$REL_X" "$B4:8096" --bytes 1M --timeout 30
[[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$X4" ]] ||
  ml_fail "B's app saw client $MESH_SERVER_PEER, expected X ($X4) directly"
mesh_log_since "$REL_LOG_B" "$sb" | grep -q ':8096$' && ml_fail "B's sidecar carried X -> B:8096 after pod-b was removed"

# ---------------------------------------------------------------------------------------------
ml_log "6. SIGTERM + meshlaned --cleanup"
ml_daemon_stop
ml_daemon_cleanup
mesh_assert_cleaned "$REL_A" "$REL_B" "$REL_X"
ml_pass
