#!/usr/bin/env bash
# The datapath outlives the daemon: meshlaned is killed with SIGKILL in the middle of traffic
# through an istio-style mesh (pods A and B with HAProxy sidecars, see rel_lib.sh) and nothing
# is lost.
#   1. A 1 GiB one-way transfer A's app -> B:8080 (A's sidecar -> B's sidecar -> B's app, every
#      hop spliced, ml_xfer verifies every byte). Once 64 MiB have been redirected, SIGKILL.
#      While the daemon is down: bytes_redirected keeps rising, and a new connection A ->
#      B:8081 is intercepted (A's sidecar logs the original destination B:8081,
#      intercepted_outbound and intercepted_inbound_local rise). Restart: the time from exec to
#      `meshlanectl status` answering is measured and printed (RESULT line; the target is < 1 s,
#      a warning above it: on a loaded machine it is not a failure); the daemon reports the maps
#      and links adopted. The transfer completes, verified, through both sidecars.
#   2. A connection storm (ml_connrate, 8 in flight, one request each) A's app -> B:8090, running
#      until the test stops it: SIGKILL once it has made 300 connections, restart once 300 more
#      were intercepted with the daemon down (timed again), stop once 300 more were made after
#      the restart. No connection fails, and every one was
#      intercepted: intercepted_outbound rose by at least the connections made, A's outbound and
#      B's inbound sidecar frontends accepted at least that many sessions (rel_assert_proxied),
#      A's sidecar logged connections to B:8090 and nowhere else, intercepted_inbound_tc did not
#      move (a connection that escaped interception would reach B's eth0 and be steered by tc).
# Then SIGTERM (exit 0) and meshlaned --cleanup.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"
# shellcheck source-path=SCRIPTDIR source=long_conns.sh
source "$(dirname "${BASH_SOURCE[0]}")/long_conns.sh"

rel_setup
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"
rel_start_timed "$CONFIG"
ml_log "first start: control socket answered after ${REL_CONTROL_MS} ms"
rel_sidecars
B4=$(mesh_v4 11)

# ---------------------------------------------------------------------------------------------
ml_log "1. 1 GiB transfer A -> $B4:$REL_APP through both sidecars; SIGKILL in the middle"
ml_snapshot x0
ml_xfer_server_bg SPID "$ML_CG" "$REL_B" big --listen "[::]:$REL_APP" --nonblocking --bytes 0 \
  --peer-bytes 1G --timeout 120 --quiet
ml_bg CPID "$ML_WORKDIR/big.client.out" "$ML_WORKDIR/big.client.err" "$ML_CG" "$REL_A" \
  "$ML_XFER" client --connect "$B4:$REL_APP" --nonblocking --bytes 1G --peer-bytes 0 \
  --min-write 16K --max-write 128K --timeout 120 --quiet
base=$(rel_counter bytes_redirected)
end=$((SECONDS + ML_WAIT_S))
while :; do
  now=$(rel_counter bytes_redirected)
  ((now - base >= 64 << 20)) && break
  kill -0 "$CPID" 2>/dev/null || break
  ((SECONDS < end)) || break
  sleep 0.025
done
kill -0 "$CPID" 2>/dev/null || ml_fail "the 1 GiB transfer ended before 64 MiB were redirected"
((now - base >= 64 << 20)) || ml_fail "the transfer redirected only $((now - base)) bytes in $ML_WAIT_S s"
rel_kill9
ml_log "SIGKILL after $(((now - base) >> 20)) MiB redirected; transfer running: $(kill -0 "$CPID" 2>/dev/null && echo yes || echo no)"

# Down: the datapath keeps splicing and intercepting: bytes_redirected rises while the transfer
# runs (unless it ended first).
d0=$(rel_counter bytes_redirected)
redirected_rose() { (($(rel_counter bytes_redirected) > d0)) || ! kill -0 "$CPID" 2>/dev/null; }
host_wait_for "$ML_WAIT_S" redirected_rose ||
  ml_fail "bytes_redirected did not rise in $ML_WAIT_S s while the daemon was down ($d0 -> $(rel_counter bytes_redirected))"
d1=$(rel_counter bytes_redirected)
((d1 > d0)) || ml_log "the transfer ended before bytes_redirected was read again with the daemon down"
sa=$(mesh_log_lines "$REL_LOG_A")
sb=$(mesh_log_lines "$REL_LOG_B")
ml_snapshot k0
mesh_xfer down "$REL_B" "[::]:8081" "$REL_A" "$B4:8081" --bytes 1M --timeout 30
ml_snapshot k1
ml_show_delta k0 k1
mesh_assert_rose k0 k1 "daemon down" intercepted_outbound
mesh_assert_rose k0 k1 "daemon down" intercepted_inbound_local
mesh_assert_flat k0 k1 "daemon down" intercepted_inbound_tc
mesh__expect_log "daemon down" "$REL_LOG_A" "$sa" "^outbound [^ ]+ [^ ]+ $(mesh_re "$B4"):8081\$" \
  "A's sidecar did not carry the new connection to its original destination $B4:8081"
mesh__expect_log "daemon down" "$REL_LOG_B" "$sb" "^inbound $(mesh_re "$(mesh_v4 10)"):[0-9]+ [^ ]+ $(mesh_re "$B4"):8081\$" \
  "B's inbound sidecar did not carry A's connection to $B4:8081"
[[ $(mesh_peer_host "$MESH_SERVER_PEER") == "$REL_SRC" ]] ||
  ml_fail "daemon down: B's app saw $MESH_SERVER_PEER, expected B's sidecar from $REL_SRC"

rel_start_timed "$CONFIG"
RESTART1_MS=$REL_CONTROL_MS
running=$(kill -0 "$CPID" 2>/dev/null && echo "still running" || echo "already done")
ml_log "restart after SIGKILL: control socket answered after ${RESTART1_MS} ms (transfer $running)"
((RESTART1_MS < 1000)) ||
  echo "WARN: [$ML_TEST_NAME] restart took ${RESTART1_MS} ms to answer meshlanectl status (target < 1000 ms; a loaded machine?)" >&2
status=$(rel_status_json)
[[ $(ml_json_field "$status" maps_adopted) == true ]] ||
  ml_fail "the restarted daemon did not adopt the pinned maps: $status"
adopted=$(grep -o 'adopted pinned link, program updated in place' <<<"$status" | wc -l)
# sk_msg, sock_ops, connect4/6, getsockopt, and DNS capture's sendmsg4/6 and recvmsg4/6.
[[ $adopted -eq 9 ]] || ml_fail "expected 9 links adopted and updated in place, got $adopted: $status"

crc=0
wait "$CPID" || crc=$?
ml_xfer_wait_server "$SPID" big
ml_xfer_check big "$crc" "$ML__SERVER_RC"
ml_snapshot x1
ml_show_delta x0 x1
# ml_xfer counts its 32-byte header in bytes_received.
[[ $(ml_json_int "$(ml_xfer_last big server)" bytes_received) -eq $(((1 << 30) + 32)) ]] ||
  ml_fail "the server did not receive exactly 1 GiB (+ the 32-byte header)"
mesh__expect_log big "$REL_LOG_A" 0 "^outbound [^ ]+ [^ ]+ $(mesh_re "$B4"):$REL_APP\$" \
  "A's sidecar has no line for the 1 GiB transfer to $B4:$REL_APP"
mesh_assert_rose x0 x1 big spliced_proxy_to_proxy
((($(ml_delta x0 x1 bytes_redirected)) >= 3 << 30)) ||
  ml_fail "bytes_redirected rose by $(ml_delta x0 x1 bytes_redirected), less than 3 hops x 1 GiB"

# ---------------------------------------------------------------------------------------------
ml_log "2. connection storm A -> $B4:8090; SIGKILL and restart in the middle of it"
ll_connrate_server "$REL_B" 8090 1 200 2000
rel_mark_sidecars
ml_snapshot s0
ll_connrate_client RCPID storm "$REL_A" "$B4:8090" 8 1 200 2000
# storm_made N: the storm completed N connections since STORM_BASE, without error.
storm_made() {
  ll_connrate_progress storm "$RCPID" "the storm" && ((ML_CR_CONNECTIONS - STORM_BASE >= $1))
}
intercepted_since_k0() { (($(rel_counter intercepted_outbound) - k0 >= $1)); }
STORM_BASE=0
host_wait_for "$ML_WAIT_S" storm_made 300 || ml_fail "the storm did not make 300 connections in $ML_WAIT_S s"
rel_kill9
k0=$(rel_counter intercepted_outbound)
host_wait_for "$ML_WAIT_S" intercepted_since_k0 300 ||
  ml_fail "fewer than 300 connections were intercepted in $ML_WAIT_S s while the daemon was down (+$(($(rel_counter intercepted_outbound) - k0)))"
k1=$(rel_counter intercepted_outbound)
ml_log "while down: intercepted_outbound +$((k1 - k0))"
rel_start_timed "$CONFIG"
RESTART2_MS=$REL_CONTROL_MS
ml_log "restart in the storm: control socket answered after ${RESTART2_MS} ms"
((RESTART2_MS < 1000)) ||
  echo "WARN: [$ML_TEST_NAME] restart took ${RESTART2_MS} ms to answer meshlanectl status (target < 1000 ms; a loaded machine?)" >&2
read -r _ _ STORM_BASE <"$ML_WORKDIR/storm.progress"
host_wait_for "$ML_WAIT_S" storm_made 300 ||
  ml_fail "the storm did not make 300 connections in $ML_WAIT_S s after the restart"
ml_connrate_stop "$RCPID" "$ML_WORKDIR/storm.out" "storm client" 100
conns=$(ml_json_int "$ML_CONNRATE_RESULT" connections)
((conns > 100)) || ml_fail "the storm made only $conns connections"
ml_snapshot s1
ml_show_delta s0 s1
out=$(ml_delta s0 s1 intercepted_outbound)
((out >= conns)) || ml_fail "intercepted_outbound rose by $out for $conns connections"
mesh_assert_flat s0 s1 storm intercepted_inbound_tc
rel_assert_proxied storm "$conns" "$B4:8090"

ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
ml_daemon_cleanup
[[ ! -e $ML_BPFFS_DIR ]] || ml_fail "$ML_BPFFS_DIR still exists after meshlaned --cleanup"
echo "RESULT restart_to_control_ms after_kill_in_transfer=$RESTART1_MS after_kill_in_storm=$RESTART2_MS"
ml_pass
