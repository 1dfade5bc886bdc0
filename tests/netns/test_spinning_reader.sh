#!/usr/bin/env bash
# Spinning readers (acceleration.leave_spinning_readers, on by default). A redirected send
# takes the reader's socket lock; a reader that calls recv() in a loop on its non-blocking
# socket holds that lock much of the time with nothing queued, so sends to it wait for the
# lock (meshlane/reader_spin.h). The datapath sees this and sends that direction by TCP from
# then on. 20,000 requests over one persistent connection (ml_connrate --check-bytes, 64 B
# each way, every byte checked by both ends: each request is one letter, its reply the same in
# upper case; the client runs until it has made them, however long that takes):
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
# one persistent connection, stopped once it has made REQUEST_COUNT requests (however long
# that takes, up to ML_WAIT_S); fails unless every request got its reply, bytes checked. Sets
# REQUESTS, SPINNING and MESSAGES (the counters' rise).
REQUEST_COUNT=20000
request_response() {
  local label=$1 port=$2 server client progress
  progress="$ML_WORKDIR/$1.progress"
  shift 2
  ml_bg server "$ML_WORKDIR/$label.server.out" "$ML_WORKDIR/$label.server.err" "$ML_CG" "$NS" \
    "$ML_CONNRATE" server --listen "127.0.0.1:$port" --close-after 0 --check-bytes
  ml_wait_listen "$NS" "$port"
  ml_snapshot before
  ml_bg client "$ML_WORKDIR/$label.client.out" "$ML_WORKDIR/$label.client.err" "$ML_CG" "$NS" \
    "$ML_CONNRATE" client --connect "127.0.0.1:$port" --concurrency 1 --requests-per-conn 0 \
    --duration 0 --progress-file "$progress" --check-bytes "$@"
  enough_requests() {
    ml_connrate_progress "$client" "$ML_WORKDIR/$label.client.out" "$progress" "$label" &&
      ((ML_CR_REQUESTS >= REQUEST_COUNT))
  }
  host_wait_for "$ML_WAIT_S" enough_requests ||
    ml_fail "$label: fewer than $REQUEST_COUNT requests after $ML_WAIT_S s"
  ml_connrate_stop "$client" "$ML_WORKDIR/$label.client.out" "$label" "$((REQUEST_COUNT - 1))"
  ml_snapshot after
  host_kill_pid "$server"
  REQUESTS=$(ml_json_int "$ML_CONNRATE_RESULT" requests)
  SPINNING=$(ml_delta before after redirect_reader_spinning)
  MESSAGES=$(ml_delta before after messages_redirected)
  ml_log "$label: $REQUESTS requests, messages_redirected +$MESSAGES, redirect_reader_spinning +$SPINNING"
  [[ $ML_CONNRATE_RESULT == *'"check_bytes":true'* ]] ||
    ml_fail "$label: the client did not check the bytes: $ML_CONNRATE_RESULT"
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
