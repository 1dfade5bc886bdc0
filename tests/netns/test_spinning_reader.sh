#!/usr/bin/env bash
# Spinning readers (acceleration.leave_spinning_readers, on by default). A redirected send
# takes the reader's socket lock; a reader that calls recv() in a loop on its non-blocking
# socket holds that lock much of the time with nothing queued, so sends to it wait for the
# lock (meshlane/reader_spin.h). The datapath sees this and sends that direction by TCP from
# then on. Request/response over one persistent connection (ml_connrate --check-bytes, 64 B
# each way, every byte checked by both ends: each request is one letter, its reply the same in
# upper case):
#
#   1. The client busy-polls (--busy-poll: recv() again at once on EAGAIN, no epoll):
#      redirect_reader_spinning rose, messages were redirected, then not all of them (fewer
#      than the requests and replies), the monitor showed a fallback event with reason
#      reader_spinning, and every request got its reply, intact.
#   2. The client waits in epoll: its reader never holds its socket when the reply comes.
#      Nothing falls back: redirect_reader_spinning stays, every message is redirected.
#   3. With leave_spinning_readers = false, the busy-polling client of step 1 keeps its splice:
#      every message redirected, redirect_reader_spinning stays.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_make_cgroup
ml_make_netns NS
ml_daemon_start

# request_response LABEL PORT [CLIENT ARGS...]: an ml_connrate server on PORT and a client with
# one persistent connection for 2 s; fails unless every request got its reply. Sets REQUESTS,
# SPINNING and MESSAGES (the counters' rise).
request_response() {
  local label=$1 port=$2 server result
  shift 2
  ml_bg server "$ML_WORKDIR/$label.server.out" "$ML_WORKDIR/$label.server.err" "$ML_CG" "$NS" \
    "$ML_CONNRATE" server --listen "127.0.0.1:$port" --close-after 0 --check-bytes
  ml_wait_listen "$NS" "$port"
  ml_snapshot before
  host_in "$ML_CG" "$NS" "$ML_CONNRATE" client --connect "127.0.0.1:$port" --concurrency 1 \
    --requests-per-conn 0 --duration 2 --check-bytes "$@" >"$ML_WORKDIR/$label.client.out" \
    2>"$ML_WORKDIR/$label.client.err" ||
    ml_fail "$label: ml_connrate client failed: $(tail -n 1 "$ML_WORKDIR/$label.client.out") $(tail -n 3 "$ML_WORKDIR/$label.client.err")"
  ml_snapshot after
  host_kill_pid "$server"
  result=$(tail -n 1 "$ML_WORKDIR/$label.client.out")
  REQUESTS=$(ml_json_int "$result" requests)
  SPINNING=$(ml_delta before after redirect_reader_spinning)
  MESSAGES=$(ml_delta before after messages_redirected)
  ml_log "$label: $REQUESTS requests, messages_redirected +$MESSAGES, redirect_reader_spinning +$SPINNING"
  [[ $(ml_json_int "$result" errors) -eq 0 && $result == *'"check_bytes":true'* ]] ||
    ml_fail "$label: errors, or bytes not checked: $result"
  ((REQUESTS >= 100)) || ml_fail "$label: only $REQUESTS requests in 2 s: $result"
}

# 1. A busy-polling client. A monitor of fallback events is attached first (the datapath emits
# events only while one is: slot 0 of ml_monitor_v1 is the gate).
MON_OUT="$ML_WORKDIR/monitor.out"
ml_bg MON_PID "$MON_OUT" "$ML_WORKDIR/monitor.err" - - \
  "$MESHLANE_BIN/meshlanectl" --socket "$ML_WORKDIR/meshlane.sock" monitor -o json --type fallback
gate_open() { [[ $(ml_monitor_slot 0) != 0 ]]; }
host_wait_for "$ML_WAIT_S" gate_open || ml_fail "the monitor's event gate did not open"
request_response busy 5401 --busy-poll
((SPINNING >= 1)) || ml_fail "busy: redirect_reader_spinning did not rise: no spinning reader was seen"
((MESSAGES > 0)) || ml_fail "busy: nothing was redirected: the connection was never spliced"
# Each request and each reply is one message: fewer redirected means a direction left.
((MESSAGES < 2 * REQUESTS)) ||
  ml_fail "busy: $MESSAGES messages redirected for $REQUESTS requests: no direction went back to TCP"
host_wait_for "$ML_WAIT_S" grep -qE '"reason": ?"reader_spinning"' "$MON_OUT" ||
  ml_fail "busy: the monitor showed no fallback with reason reader_spinning: $(head -c 600 "$MON_OUT")"
ml_log "busy: monitor: $(grep -m1 -E '"reason": ?"reader_spinning"' "$MON_OUT")"
host_kill_pid "$MON_PID"

# 2. An event-loop client keeps the splice.
request_response epoll 5402
((SPINNING == 0)) ||
  ml_fail "epoll: redirect_reader_spinning rose by $SPINNING: an epoll reader was taken for a spinning one"
((MESSAGES >= 2 * REQUESTS)) ||
  ml_fail "epoll: messages_redirected rose by $MESSAGES, fewer than the $((2 * REQUESTS)) requests and replies"

# 3. Off: the busy-polling client keeps the splice.
ml_daemon_stop
ml_daemon_start "leave_spinning_readers = false"
request_response busy-off 5403 --busy-poll
((SPINNING == 0)) || ml_fail "busy-off: redirect_reader_spinning rose by $SPINNING with the setting off"
((MESSAGES >= 2 * REQUESTS)) ||
  ml_fail "busy-off: messages_redirected rose by $MESSAGES, fewer than the $((2 * REQUESTS)) requests and replies"
ml_pass
