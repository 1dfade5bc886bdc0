#!/usr/bin/env bash
# Original destinations (ml_origdst_v2, a plain hash of handshakes in flight), in an istio-style
# mesh whose sidecars are ml_proxy (Envoy-like; rel_lib.sh pods A and B):
#   1. A proxy asking twice: both sidecars ask SO_ORIGINAL_DST twice per connection
#      (--ask-twice) and log an error if the answers differ. A verified transfer A -> B:8080:
#      both sidecars log orig B:8080 and no error, orig_dst_answered rises by 4, and the map is
#      empty afterwards (each entry was taken into the accepted socket's storage).
#   2. A full map: ml_origdst_v2 shrunk to 16 entries (MESHLANE_TEST_MAP_MAX_ENTRIES), A's
#      sidecar listening with backlog 1 and stopped (SIGSTOP): a burst of 40 connections
#      A -> B:8093 fills the map with handshakes the sidecar never completes, up to its
#      headroom (16 - 2). Then new connects are not intercepted but go straight to their
#      original destination: a verified transfer A -> B:8080 succeeds with A's sidecar still
#      stopped, intercept_skipped_map_full > 0 and orig_dst_file_failed = 0 (read back from the
#      kernel). After SIGCONT the stalled connections complete (every burst connection gets its
#      whole reply), A's sidecar logs exactly one accepted connection per intercepted connect,
#      each with orig B:8093 and no error, and the map empties. `meshlanectl monitor` showed
#      each connect left alone as "bypassed" reason "orig_dst_full", exactly as many as
#      intercept_skipped_map_full rose.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"
# shellcheck source-path=SCRIPTDIR source=long_conns.sh
source "$(dirname "${BASH_SOURCE[0]}")/long_conns.sh"

BURST=$(dirname "${BASH_SOURCE[0]}")/conn_burst.py
rel_setup
ml_require_test_hooks
B4=$(mesh_v4 11)
CONFIG="$ML_WORKDIR/meshlane.toml"
rel_write_config "$CONFIG"

sidecar_args=(--listen "$REL_OUT" --listen "$REL_IN" --source "$REL_IN:$REL_SRC" --source "$REL_IN:::6"
  --ask-twice)
mesh_start_ml_proxy PA "$REL_A" mlp-a "$REL_UID" "${sidecar_args[@]}" --backlog 1
mesh_start_ml_proxy PB "$REL_B" mlp-b "$REL_UID" "${sidecar_args[@]}"
LOG_A="$MESH_DIR/mlp-a.log"
LOG_B="$MESH_DIR/mlp-b.log"
[[ $(cat "/proc/$PA/comm") == ml_proxy ]] || ml_fail "pid $PA is not ml_proxy: $(cat "/proc/$PA/comm")"

orig_dst_count() {
  "$BPFTOOL" -j map dump pinned "$ML_BPFFS_DIR/ml_origdst_v2" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

no_proxy_errors() {
  if grep -q '^error' "$LOG_A" "$LOG_B"; then
    grep '^error' "$LOG_A" "$LOG_B" >&2
    ml_fail "$1: a sidecar logged errors (above)"
  fi
}

# ---------------------------------------------------------------------------------------------
ml_log "1. sidecars asking for the original destination twice"
rel_start_timed "$CONFIG"
sa=$(mesh_log_lines "$LOG_A")
sb=$(mesh_log_lines "$LOG_B")
ml_snapshot t0
mesh_xfer twice "$REL_B" "[::]:$REL_APP" "$REL_A" "$B4:$REL_APP" --bytes 2M --timeout 30
ml_snapshot t1
ml_show_delta t0 t1
mesh_assert_rose t0 t1 twice intercepted_outbound
mesh_assert_rose t0 t1 twice intercepted_inbound_local
mesh_assert_rose t0 t1 twice orig_dst_answered 4
mesh_wait_log "$LOG_A" "$sa" "^accepted .* orig=$(mesh_re "$B4"):$REL_APP\$" ||
  ml_fail "A's sidecar did not log orig $B4:$REL_APP"
mesh_wait_log "$LOG_B" "$sb" "^accepted .* orig=$(mesh_re "$B4"):$REL_APP\$" ||
  ml_fail "B's sidecar did not log orig $B4:$REL_APP"
no_proxy_errors "asked twice"
left=$(orig_dst_count)
[[ $left -eq 0 ]] || ml_fail "$left original destination(s) left in the map after the connections were accepted"
ml_daemon_stop
ml_daemon_cleanup

# ---------------------------------------------------------------------------------------------
ml_log "2. ml_origdst_v2 with 16 entries, A's sidecar stopped with backlog 1"
MESHLANE_TEST_MAP_MAX_ENTRIES=ml_origdst_v2=16 rel_start_timed "$CONFIG"
ml_bg MON_PID "$ML_WORKDIR/monitor.out" "$ML_WORKDIR/monitor.err" - - \
  "$MESHLANECTL" --socket "$(rel_socket)" -o json monitor
host_wait_for "$ML_WAIT_S" grep -q 'monitor: datapath now emits' "$ML_DAEMON_LOG" ||
  ml_fail "the monitor did not subscribe: $(cat "$ML_WORKDIR/monitor.err")"
ll_connrate_server "$REL_B" 8093 1
sa=$(mesh_log_lines "$LOG_A")
ml_snapshot f0
kill -STOP "$PA"
host_defer kill -CONT "$PA"
ml_bg BURSTPID "$ML_WORKDIR/burst.out" "$ML_WORKDIR/burst.err" "$ML_CG" "$REL_A" \
  python3 "$BURST" --connect "$B4:8093" --count 40 --timeout 0
# Every connect of the burst has passed the connect hook once it was either intercepted or
# skipped because the map was full.
burst_connected() {
  ml_snapshot f1
  (($(ml_delta f0 f1 intercepted_outbound) + $(ml_delta f0 f1 intercept_skipped_map_full) >= 40))
}
host_wait_for "$ML_WAIT_S" burst_connected ||
  ml_log "after $ML_WAIT_S s, fewer than 40 connects of the burst were counted (intercepted or skipped)"
stalled=$(orig_dst_count)
ml_log "map full: $stalled original destination(s) of stalled handshakes in a 16-entry map"
((stalled >= 8 && stalled <= 16)) || ml_fail "expected the 16-entry map (nearly) full, it holds $stalled"
ml_snapshot f1
mesh_assert_rose f0 f1 "burst while full" intercept_skipped_map_full
mesh_xfer while-full "$REL_B" "[::]:$REL_APP" "$REL_A" "$B4:$REL_APP" --bytes 1M --timeout 20
ml_snapshot f2
ml_show_delta f1 f2
mesh_assert_rose f1 f2 while-full intercept_skipped_map_full
mesh_assert_flat f1 f2 while-full intercepted_outbound
kill -0 "$BURSTPID" 2>/dev/null || ml_fail "the burst ended while A's sidecar was stopped: $(cat "$ML_WORKDIR/burst.out")"

ml_log "SIGCONT A's sidecar: the stalled handshakes complete"
kill -CONT "$PA"
# A handshake whose SYN the stopped sidecar's full backlog dropped completes at its next
# retransmission, up to a minute later: the bound covers the kernel's whole SYN retry budget.
host_wait_exit "$BURSTPID" 180 || ml_fail "the burst did not finish within 180 s of SIGCONT"
rc=0
wait "$BURSTPID" || rc=$?
ml_log "burst (exit $rc): $(cat "$ML_WORKDIR/burst.out") $(tail -n 3 "$ML_WORKDIR/burst.err")"
[[ $rc -eq 0 ]] || ml_fail "burst connections failed"
map_empty() { [[ $(orig_dst_count) -eq 0 ]]; }
host_wait_for "$ML_WAIT_S" map_empty || true
if [[ $(orig_dst_count) -ne 0 ]]; then
  # What is left, and the sockets of both pods, for the log.
  "$BPFTOOL" map dump pinned "$ML_BPFFS_DIR/ml_origdst_v2" >&2 || true
  host_in - "$REL_A" ss -tanei >&2 || true
  host_in - "$REL_B" ss -tanei >&2 || true
  ml_fail "$(orig_dst_count) original destination(s) left after the handshakes completed"
fi
ml_snapshot f3
ml_show_delta f0 f3
intercepted=$(ml_delta f0 f3 intercepted_outbound)
accepted=$(mesh_log_since "$LOG_A" "$sa" | grep -cE "^accepted .* orig=$(mesh_re "$B4"):8093\$" || true)
ml_log "burst: $intercepted intercepted (A's sidecar accepted $accepted with orig $B4:8093), $(ml_delta f0 f3 intercept_skipped_map_full) not intercepted (map full)"
((intercepted >= stalled)) || ml_fail "intercepted_outbound rose by $intercepted, fewer than the $stalled stalled handshakes"
[[ $accepted -eq $intercepted ]] ||
  ml_fail "A's sidecar accepted $accepted connections with orig $B4:8093, but $intercepted were intercepted"
no_proxy_errors "full map"
# The monitor's stream lags the counters a little: wait for as many events as connects skipped.
skipped=$(ml_delta f0 f3 intercept_skipped_map_full)
full_events() { grep '"type":"bypassed"' "$ML_WORKDIR/monitor.out" | grep -c '"reason":"orig_dst_full"' || true; }
host_wait_for "$ML_WAIT_S" eval '(($(full_events) >= skipped))' || true
grep -q '"type":"dropped"' "$ML_WORKDIR/monitor.out" && ml_fail "the monitor dropped events: $(grep '"type":"dropped"' "$ML_WORKDIR/monitor.out")"
[[ $(full_events) -eq $skipped ]] ||
  ml_fail "the monitor showed $(full_events) bypassed/orig_dst_full event(s), intercept_skipped_map_full rose by $skipped"
ml_log "monitor: $skipped bypassed event(s) with reason orig_dst_full, one per connect left alone"
kill -INT "$MON_PID"
host_wait_exit "$MON_PID" || ml_fail "meshlanectl monitor still runs after SIGINT"
[[ $(rel_counter orig_dst_file_failed) -eq 0 ]] || ml_fail "orig_dst_file_failed is $(rel_counter orig_dst_file_failed)"
ml_daemon_stop
ml_daemon_cleanup
ml_pass
