#!/usr/bin/env bash
# The datapath outlives the daemon: meshlaned is killed with SIGKILL in the middle of traffic
# through an istio-style mesh (pods A and B with HAProxy sidecars, see rel_lib.sh) and nothing
# is lost.
#   1. A 1 GiB one-way transfer A's app -> B:8080 (A's sidecar -> B's sidecar -> B's app, every
#      hop spliced, ml_xfer verifies every byte). Once 64 MiB have been redirected, SIGKILL.
#      While the daemon is down: bytes_redirected keeps rising, and a new connection A ->
#      B:8081 is intercepted (A's sidecar logs the original destination B:8081,
#      intercepted_outbound and intercepted_inbound_local rise). Restart: the time from exec to
#      `meshlanectl status` answering must be < 1 s (printed); the daemon reports the maps and
#      links adopted. The transfer completes, verified, through both sidecars.
#   2. A connection storm (ml_connrate, 8 in flight, one request each) A's app -> B:8090 for
#      8 s; SIGKILL at 2 s, restart at 4 s (timed again). No connection fails, and every one was
#      intercepted: intercepted_outbound rose by at least the connections made, A's outbound and
#      B's inbound sidecar frontends accepted at least that many sessions (rel_assert_proxied),
#      A's sidecar logged connections to B:8090 and nowhere else, intercepted_inbound_tc did not
#      move (a connection that escaped interception would reach B's eth0 and be steered by tc).
# Then SIGTERM (exit 0) and meshlaned --cleanup.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"

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
for ((i = 0; i < 400; i++)); do
  now=$(rel_counter bytes_redirected)
  ((now - base >= 64 << 20)) && break
  kill -0 "$CPID" 2>/dev/null || break
  sleep 0.025
done
kill -0 "$CPID" 2>/dev/null || ml_fail "the 1 GiB transfer ended before 64 MiB were redirected"
((now - base >= 64 << 20)) || ml_fail "the transfer redirected only $((now - base)) bytes in 10 s"
rel_kill9
ml_log "SIGKILL after $(((now - base) >> 20)) MiB redirected; transfer running: $(kill -0 "$CPID" 2>/dev/null && echo yes || echo no)"

# Down: the datapath keeps splicing and intercepting.
d0=$(rel_counter bytes_redirected)
sleep 0.2
d1=$(rel_counter bytes_redirected)
if kill -0 "$CPID" 2>/dev/null; then
  ((d1 > d0)) || ml_fail "bytes_redirected did not rise while the daemon was down ($d0 -> $d1)"
fi
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
((RESTART1_MS < 1000)) || ml_fail "restart took ${RESTART1_MS} ms to answer meshlanectl status (limit 1000)"
status=$(rel_status_json)
[[ $(ml_json_field "$status" maps_adopted) == true ]] ||
  ml_fail "the restarted daemon did not adopt the pinned maps: $status"
adopted=$(grep -o 'adopted pinned link, program updated in place' <<<"$status" | wc -l)
[[ $adopted -eq 5 ]] || ml_fail "expected 5 links adopted and updated in place, got $adopted: $status"

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
ml_log "2. connection storm A -> $B4:8090 for 8 s; SIGKILL at 2 s, restart at 4 s"
ml_bg RSPID "$ML_WORKDIR/storm.server.out" "$ML_WORKDIR/storm.server.err" "$ML_CG" "$REL_B" \
  "$ML_CONNRATE" server --listen "0.0.0.0:8090" --request-size 200 --reply-size 2000 \
  --close-after 1 --ready-file "$ML_WORKDIR/storm.ready"
ml_wait_file "$ML_WORKDIR/storm.ready" "$RSPID" 10 || ml_fail "ml_connrate server did not start"
rel_mark_sidecars
ml_snapshot s0
ml_bg RCPID "$ML_WORKDIR/storm.client.out" "$ML_WORKDIR/storm.client.err" "$ML_CG" "$REL_A" \
  "$ML_CONNRATE" client --connect "$B4:8090" --concurrency 8 --duration 8 --request-size 200 \
  --reply-size 2000 --requests-per-conn 1 --timeout 5
sleep 2
rel_kill9
k0=$(rel_counter intercepted_outbound)
sleep 2
k1=$(rel_counter intercepted_outbound)
ml_log "while down (2 s): intercepted_outbound +$((k1 - k0))"
((k1 - k0 > 0)) || ml_fail "no connection was intercepted while the daemon was down"
rel_start_timed "$CONFIG"
RESTART2_MS=$REL_CONTROL_MS
ml_log "restart in the storm: control socket answered after ${RESTART2_MS} ms"
((RESTART2_MS < 1000)) || ml_fail "restart took ${RESTART2_MS} ms to answer meshlanectl status (limit 1000)"
rc=0
wait "$RCPID" || rc=$?
result=$(tail -n 1 "$ML_WORKDIR/storm.client.out")
ml_log "storm client (exit $rc): $result"
conns=$(ml_json_int "$result" connections)
errors=$(ml_json_int "$result" errors)
[[ $rc -eq 0 && $errors -eq 0 && $(ml_json_field "$result" ok) == true ]] ||
  ml_fail "the storm saw $errors failed connection(s) (exit $rc): $result"
((conns > 100)) || ml_fail "the storm made only $conns connections"
sleep 1 # HAProxy logs a connection at its end
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
