#!/usr/bin/env bash
# A server end is spliced according to the mode of THE LISTENER THAT ACCEPTED IT, not of the
# last listen() on its port. An accepted socket has no file when it is established, so the
# datapath takes its mode from the listener's socket-local storage (recorded at listen(),
# cloned into each accepted socket); with the default config only a connection accepted by a
# non-blocking listener (and made by a non-blocking client) may be spliced, because the
# kernel's sockmap receive path can return EAGAIN to a blocking recv(). Before this, the mode
# was keyed by (netns, port): a blocking IPv6-only listener sharing a port with a non-blocking
# IPv4 one got spliced and its blocking recv() saw EAGAIN, and the reverse order spliced
# nothing. Each scenario is one run of listener_modes.py (listeners opened after the daemon is
# ready, then non-blocking clients one connection at a time, 4 MiB echoed and checked byte by
# byte, EOF included), with counter deltas read around it:
#   v4nb-v6blk, v6blk-v4nb  non-blocking 0.0.0.0:P and blocking [::]:P (IPV6_V6ONLY), both
#                           start orders; 2 IPv4 and 2 IPv6 connections;
#   v6nb-v4blk, v4blk-v6nb  the modes swapped, both orders;
#   dualstack-nb/-blk       one [::]:P (IPV6_V6ONLY=0) serving IPv4 and IPv6 clients;
#   reuseport-mixed         a blocking and a non-blocking SO_REUSEPORT listener on 127.0.0.1:P,
#                           24 connections (each listener must accept some);
#   reuse-after-close       non-blocking, then blocking, then non-blocking listeners on one
#                           port, each closed (handlers finished) before the next opens;
#   reuseport-17            17 non-blocking SO_REUSEPORT listeners on 127.0.0.1:P, one more
#                           than the listener registry's 16 slots per port: 34 connections,
#                           all spliced (the port is known through the 16 registered), and
#                           listeners_unregistered + 1.
# For every scenario, from the tool's report of which listener accepted each connection:
#   spliced_other            + the connections accepted by non-blocking listeners;
#   sockets_skipped_blocking + the connections accepted by blocking listeners (server ends);
#   bytes_redirected         >= 2 x 4 MiB per non-blocking-accepted connection (and not more
#                           than that + 1 MiB), exactly 0 when none was;
#   sockets_added            2 per non-blocking-accepted connection, plus at most 1 (the client
#                           end, which leaves again) per blocking-accepted one;
#   sockets_skipped_peer, sockets_add_failed and redirect_failed + 0 (a client sends only once
#   its connection is accepted, so no first send races the server end);
# and every byte verified both ways, no error, and no EAGAIN ever seen by a blocking reader.
# Then a port whose listener of the cgroup has gone (the listener registry drops it when it
# closes): a non-blocking server of the cgroup on 127.0.0.1:5410 serves one connection
# (spliced: spliced_other +1); it exits and a server OUTSIDE the cgroup listens on 5410: a
# non-blocking client of the cgroup connecting there must stay out of the sockhash (its bytes
# arrive by TCP, and a sockhash member's FIONREAD counts only redirected bytes):
# sockets_added + 0, sockets_skipped_peer + 1, bytes_redirected + 0, every byte verified.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_require_cmd python3 timeout
ml_make_cgroup
ml_make_netns NS
ml_daemon_start

TOOL=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/listener_modes.py
BYTES=$((4 << 20))
# ml_snapshot and ml_show_delta cover spliced_other too.
ML_COUNTERS="$ML_COUNTERS spliced_other listeners_unregistered"

# scenario NAME PORT CONNS NB BLK: runs listener_modes.py NAME on PORT; CONNS connections are
# expected, NB of them accepted by non-blocking listeners and BLK by blocking ones ("-": the
# kernel chooses, SO_REUSEPORT).
scenario() {
  local name=$1 port=$2 conns=$3 want_nb=$4 want_blk=$5
  local out="$ML_WORKDIR/$name.out" err="$ML_WORKDIR/$name.err" rc=0 json start=$SECONDS
  ml_snapshot before
  host_in "$ML_CG" "$NS" timeout -k 5 360 python3 "$TOOL" "$name" --port "$port" \
    --bytes "$BYTES" --timeout 30 >"$out" 2>"$err" </dev/null || rc=$?
  ml_snapshot after
  json=$(tail -n1 "$out" 2>/dev/null || true)
  if [[ $rc -ne 0 || $(ml_json_field "$json" ok) != true ]]; then
    echo "----- $name: listener_modes.py (exit $rc) -----" >&2
    cat "$out" "$err" >&2
    ml_show_delta before after
    ml_fail "$name: listener_modes.py failed (exit $rc)"
  fi
  local n nb blk eagain per_listener
  n=$(ml_json_int "$json" connections)
  nb=$(ml_json_int "$json" accepted_nonblocking)
  blk=$(ml_json_int "$json" accepted_blocking)
  eagain=$(ml_json_int "$json" blocking_reader_eagain)
  per_listener=$(printf '%s\n' "$json" | sed -n 's/.*"accepted_per_listener": *\(\[[^]]*\]\).*/\1/p')
  [[ $(ml_json_field "$json" all_verified) == true ]] ||
    ml_fail "$name: not every byte was verified: $json"
  [[ $eagain -eq 0 ]] || ml_fail "$name: a blocking reader saw EAGAIN $eagain times"
  [[ $n -eq $conns && $((nb + blk)) -eq $n ]] ||
    ml_fail "$name: $n connections ($nb non-blocking, $blk blocking accepted), expected $conns"
  [[ $want_nb == - || $nb -eq $want_nb ]] ||
    ml_fail "$name: $nb connections accepted by non-blocking listeners, expected $want_nb"
  [[ $want_blk == - || $blk -eq $want_blk ]] ||
    ml_fail "$name: $blk connections accepted by blocking listeners, expected $want_blk"

  local other skipped bytes added peer addfail rfail
  other=$(ml_delta before after spliced_other)
  skipped=$(ml_delta before after sockets_skipped_blocking)
  bytes=$(ml_delta before after bytes_redirected)
  added=$(ml_delta before after sockets_added)
  peer=$(ml_delta before after sockets_skipped_peer)
  addfail=$(ml_delta before after sockets_add_failed)
  rfail=$(ml_delta before after redirect_failed)
  ml_show_delta before after
  local got="spliced_other +$other, sockets_skipped_blocking +$skipped, sockets_added +$added, bytes_redirected +$bytes"
  local bad="" min_bytes=$((2 * BYTES * nb))
  [[ $skipped -eq $blk ]] ||
    bad+="; sockets_skipped_blocking rose by $skipped, expected $blk (the server ends accepted by blocking listeners)"
  if [[ $nb -eq 0 ]]; then
    [[ $bytes -eq 0 ]] ||
      bad+="; bytes_redirected rose by $bytes, expected 0 (no connection was accepted non-blocking)"
  elif [[ $bytes -lt $min_bytes ]]; then
    bad+="; bytes_redirected rose by $bytes, less than the $min_bytes bytes of the $nb connection(s) accepted non-blocking"
  elif [[ $bytes -gt $((min_bytes + 1048576)) ]]; then
    bad+="; bytes_redirected rose by $bytes, more than the $min_bytes bytes of the $nb connection(s) accepted non-blocking (+1 MiB)"
  fi
  [[ $added -ge $((2 * nb)) && $added -le $((2 * nb + blk)) ]] ||
    bad+="; sockets_added rose by $added, expected $((2 * nb)) to $((2 * nb + blk))"
  [[ $peer -eq 0 && $addfail -eq 0 && $rfail -eq 0 ]] ||
    bad+="; sockets_skipped_peer +$peer, sockets_add_failed +$addfail, redirect_failed +$rfail, expected +0 each"
  [[ $other -eq $nb ]] ||
    bad+="; spliced_other rose by $other, expected $nb (the connections accepted non-blocking; the $blk accepted by blocking listeners are not spliced)"
  [[ -z $bad ]] || ml_fail "$name: $nb connection(s) accepted non-blocking, $blk blocking: ${bad#; }"
  ml_log "$name: $n conns, non-blocking-accepted $nb, blocking-accepted $blk, per listener $per_listener; $BYTES bytes each way verified, blocking EAGAIN 0; $got ($((SECONDS - start)) s)"
}

scenario v4nb-v6blk 5401 4 2 2
scenario v6blk-v4nb 5402 4 2 2
scenario v6nb-v4blk 5403 4 2 2
scenario v4blk-v6nb 5404 4 2 2
scenario dualstack-nb 5405 4 4 0
scenario dualstack-blk 5406 4 0 4
scenario reuseport-mixed 5407 24 - -
scenario reuse-after-close 5408 6 4 2
ml_snapshot registry0
scenario reuseport-17 5409 34 34 0
ml_snapshot registry1
[[ $(ml_delta registry0 registry1 listeners_unregistered) -eq 1 ]] ||
  ml_fail "reuseport-17: listeners_unregistered rose by $(ml_delta registry0 registry1 listeners_unregistered), expected 1"

# xfer_once LABEL SERVER_CG: one verified 1 MiB non-blocking echo to 127.0.0.1:5410 from a
# client of the cgroup, the server in SERVER_CG ("-": outside the cgroup).
xfer_once() {
  local pid
  ml_xfer_server_bg pid "$2" "$NS" "$1" --listen 127.0.0.1:5410 --nonblocking --bytes 1M \
    --timeout 60
  ml_xfer_client "$ML_CG" "$NS" "$1" --connect 127.0.0.1:5410 --nonblocking --bytes 1M \
    --timeout 60
  ml_xfer_wait_server "$pid" "$1"
  ml_xfer_check "$1" "$ML__CLIENT_RC" "$ML__SERVER_RC"
}
ml_snapshot gone0
xfer_once in-cgroup "$ML_CG"
ml_snapshot gone1
xfer_once outside-cgroup -
ml_snapshot gone2
ml_show_delta gone0 gone1
ml_show_delta gone1 gone2
[[ $(ml_delta gone0 gone1 spliced_other) -eq 1 ]] ||
  ml_fail "listener-gone: the connection to the cgroup's server was not spliced (spliced_other +$(ml_delta gone0 gone1 spliced_other))"
[[ $(ml_delta gone1 gone2 sockets_added) -eq 0 && $(ml_delta gone1 gone2 sockets_skipped_peer) -eq 1 &&
  $(ml_delta gone1 gone2 bytes_redirected) -eq 0 ]] ||
  ml_fail "listener-gone: a client of a server outside the cgroup joined the sockhash (sockets_added +$(ml_delta gone1 gone2 sockets_added), sockets_skipped_peer +$(ml_delta gone1 gone2 sockets_skipped_peer), bytes_redirected +$(ml_delta gone1 gone2 bytes_redirected))"
ml_log "listener-gone: spliced while the cgroup's server listened; the client of the server outside the cgroup stayed out"
ml_pass
