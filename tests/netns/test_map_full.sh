#!/usr/bin/env bash
# A full sockhash must not break connections: with sockhash_max_entries = 2, 8 parallel
# connections (16 sockets) all transfer and verify their bytes, and sockets_add_failed counts
# the sockets that did not fit; `meshlanectl monitor --type map_full` shows one event for each,
# with the sockhash update's errno. Afterwards, with every socket closed, the map has room again:
# a new connection is spliced.
# Traffic is `ml_xfer --nonblocking` so that the only reason for a socket not to be spliced is
# the full map (blocking sockets are never spliced by default: test_blocking_guard.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_make_cgroup
ml_make_netns NS
ml_daemon_start "sockhash_max_entries = 2"

MESHLANECTL=${MESHLANECTL:-$MESHLANE_BIN/meshlanectl}
ml_bg MON_PID "$ML_WORKDIR/monitor.out" "$ML_WORKDIR/monitor.err" - - \
  "$MESHLANECTL" --socket "$ML_WORKDIR/meshlane.sock" -o json monitor --type map_full
host_wait_for "$ML_WAIT_S" grep -q 'monitor: datapath now emits map_full' "$ML_DAEMON_LOG" ||
  ml_fail "the monitor did not subscribe: $(cat "$ML_WORKDIR/monitor.err")"
ml_snapshot before
ml_xfer_pair "$ML_CG" "$NS" full "--listen 127.0.0.1:5201 --connections 8" \
  "--connect 127.0.0.1:5201 --parallel 8" --nonblocking --bytes 32M --max-write 1M --timeout 90
ml_snapshot after
ml_show_delta before after
failed=$(ml_delta before after sockets_add_failed)
[[ $failed -gt 0 ]] ||
  ml_fail "sockets_add_failed did not rise with 16 sockets and sockhash_max_entries = 2"
# The events reach the monitor a moment after the counters rose.
map_full_events() { (($(grep -c '"type":"map_full"' "$ML_WORKDIR/monitor.out") >= failed)); }
host_wait_for "$ML_WAIT_S" map_full_events || true
[[ $(grep '"type":"map_full"' "$ML_WORKDIR/monitor.out" | grep -c '"errno":[1-9]') -eq $failed ]] ||
  ml_fail "sockets_add_failed rose by $failed, monitor shows: $(cat "$ML_WORKDIR/monitor.out")"
host_kill_pid "$MON_PID"
ml_log "monitor: $failed map_full event(s), e.g. $(head -n 1 "$ML_WORKDIR/monitor.out")"
blocking=$(ml_delta before after sockets_skipped_blocking)
[[ $blocking -eq 0 ]] ||
  ml_fail "sockets_skipped_blocking rose by $blocking for non-blocking sockets"

ml_snapshot before2
ml_xfer_pair "$ML_CG" "$NS" after-full "--listen 127.0.0.1:5202" "--connect 127.0.0.1:5202" \
  --nonblocking --bytes 16M --timeout 60
ml_snapshot after2
added=$(ml_delta before2 after2 sockets_added)
[[ $added -ge 2 ]] ||
  ml_fail "after the connections closed, sockets_added rose by only $added for a new connection: closed sockets still fill the sockhash?"
ml_assert_spliced before2 after2 "$ML_XFER_WIRE" "new connection after map full"
ml_pass
