#!/usr/bin/env bash
# iperf3 (an unmodified application) for ~3 s over 127.0.0.1 in the test cgroup: the counters
# must account for what it sent: bytes_redirected >= the bytes iperf3 reports sent, and not
# more than that plus its small control connection (1% + 1 MiB); messages_redirected > 0;
# sockets_added >= 4 (both ends of the control and of the data connection).
#
# iperf3 (3.12) uses blocking sockets, which the datapath does not splice by default: the
# kernel's sockmap receive path can return EAGAIN to a blocking recv(). iperf3 tolerates that
# (it treats EAGAIN from a read as a short read and carries on), so this test turns the guard
# off with acceleration.splice_blocking_sockets = true, the setting meant for such
# applications, and checks that then nothing is skipped as blocking.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_require_cmd iperf3
ml_make_cgroup
ml_make_netns NS
ml_daemon_start "splice_blocking_sockets = true"

# The "bytes" of the first object named KEY in iperf3 -J output.
iperf_bytes() {
  awk -v key="\"$2\"" 'index($0, key) { f = 1 } f && /"bytes"[[:space:]]*:/ {
      gsub(/[^0-9]/, ""); print; exit }' "$1"
}

ml_snapshot before
ml_bg SPID "$ML_WORKDIR/iperf3-server.json" "$ML_WORKDIR/iperf3-server.err" "$ML_CG" "$NS" \
  iperf3 -s -1 -p 5201 -B 127.0.0.1 -J
ml_wait_listen "$NS" 5201
rc=0
timeout 60 bash -c 'echo $$ >"$1/cgroup.procs" && exec ip netns exec "$2" iperf3 -c 127.0.0.1 -p 5201 -t 3 -J' \
  _ "$ML_CG" "$NS" >"$ML_WORKDIR/iperf3-client.json" 2>"$ML_WORKDIR/iperf3-client.err" || rc=$?
if [[ $rc -ne 0 ]]; then
  cat "$ML_WORKDIR/iperf3-client.err" "$ML_WORKDIR/iperf3-client.json" >&2
  ml_fail "iperf3 client exited with status $rc"
fi
src=0
wait "$SPID" || src=$?
[[ $src -eq 0 ]] || ml_fail "iperf3 server exited with status $src: $(cat "$ML_WORKDIR/iperf3-server.err")"
ml_snapshot after

sent=$(iperf_bytes "$ML_WORKDIR/iperf3-client.json" sum_sent)
received=$(iperf_bytes "$ML_WORKDIR/iperf3-client.json" sum_received)
[[ -n $sent && $sent -gt 0 ]] || ml_fail "no sum_sent.bytes in iperf3 -J output ($ML_WORKDIR/iperf3-client.json)"
ml_log "iperf3: sent $sent bytes, received $received bytes"
ml_show_delta before after

bytes=$(ml_delta before after bytes_redirected)
msgs=$(ml_delta before after messages_redirected)
added=$(ml_delta before after sockets_added)
[[ $msgs -gt 0 ]] || ml_fail "messages_redirected did not rise: iperf3 traffic was not spliced"
[[ $bytes -ge $sent ]] || ml_fail "bytes_redirected rose by $bytes, less than the $sent bytes iperf3 sent"
[[ $bytes -le $((sent + sent / 100 + 1048576)) ]] ||
  ml_fail "bytes_redirected rose by $bytes, far more than the $sent bytes iperf3 sent"
[[ $added -ge 4 ]] || ml_fail "sockets_added rose by $added, expected >= 4 (control + data connection, both ends)"
blocking=$(ml_delta before after sockets_skipped_blocking)
[[ $blocking -eq 0 ]] ||
  ml_fail "sockets_skipped_blocking rose by $blocking with splice_blocking_sockets = true"
ml_pass
