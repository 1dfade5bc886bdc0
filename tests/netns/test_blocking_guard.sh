#!/usr/bin/env bash
# The blocking-socket guard. The kernel's sockmap receive path (tcp_bpf_recvmsg) can return
# EAGAIN to a blocking recv() when the reader is woken without data, so with the default
# config (acceleration.splice_blocking_sockets = false) the datapath splices a client socket
# only if it is O_NONBLOCK when the connection is established, and a server socket only if its
# listener was O_NONBLOCK when listen() was called; every other socket is counted in
# sockets_skipped_blocking and keeps the normal stack. Each case is one verified ml_xfer
# transfer (every byte and the EOF position checked on both sides) with counter deltas read
# around it:
#   a. blocking server and blocking client, 256 MiB each way, read modes plain and peek (and
#      fionread with 2 connections): byte-exact, nothing redirected, no socket added,
#      sockets_skipped_blocking + 2 per connection (ml_xfer fails on any blocking-recv EAGAIN);
#   b. non-blocking client, blocking server (blocking listener): not spliced, + 1 per
#      connection (the server end), byte-exact;
#   c. blocking client, non-blocking server: not spliced, + 1 per connection (the client end);
#   d. non-blocking server and client: spliced, nothing skipped, both ends added;
#   e. a blocking listener on the port a non-blocking listener used before (case d), with a
#      non-blocking client: not spliced, + 1 (the server end), so a stale listener record
#      never lets blocking sockets in;
#   f. signals: each side's reader thread takes a SIGALRM every millisecond (handler with
#      SA_RESTART, as profilers and runtimes install it). Blocking on both sides: not spliced,
#      + 2, and no recv() fails. This is the case the guard exists for: with
#      splice_blocking_sockets = true the kernel's sockmap receive path returns EAGAIN to a
#      blocking reader at the first signal that finds it waiting (Linux 6.18: every run of
#      this transfer failed within its first ten signals), where TCP restarts the call.
#      Non-blocking on both sides: spliced, and the readers' interrupted poll() calls are
#      simply retried. Each reader must have taken signals, or the case proves nothing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_make_cgroup
ml_make_netns NS
ml_daemon_start

# case_ LABEL EXPECT CONNS SERVER_NB CLIENT_NB PORT ARGS...: one transfer of CONNS connections
# on 127.0.0.1:PORT; SERVER_NB/CLIENT_NB (nb|blocking) give each side's mode. EXPECT is
# "spliced" or the number of sockets that must be skipped as blocking.
case_() {
  local label=$1 expect=$2 conns=$3 snb=$4 cnb=$5 port=$6
  shift 6
  local -a s=(--listen "127.0.0.1:$port" --connections "$conns")
  local -a c=(--connect "127.0.0.1:$port" --parallel "$conns")
  [[ $snb == nb ]] && s+=(--nonblocking)
  [[ $cnb == nb ]] && c+=(--nonblocking)
  ml_log "$label: server $snb, client $cnb, $conns connection(s): $*"
  ml_snapshot before
  ml_xfer_pair "$ML_CG" "$NS" "$label" "${s[*]}" "${c[*]}" --seed "$port" "$@"
  ml_snapshot after
  ml_xfer_assert_mode "$label" server "$([[ $snb == nb ]] && echo true || echo false)"
  ml_xfer_assert_mode "$label" client "$([[ $cnb == nb ]] && echo true || echo false)"
  local added
  added=$(ml_delta before after sockets_added)
  if [[ $expect == spliced ]]; then
    ml_assert_spliced before after "$ML_XFER_WIRE" "$label"
    [[ $added -eq $((2 * conns)) ]] ||
      ml_fail "$label: sockets_added rose by $added, expected $((2 * conns)) (both ends of $conns connection(s))"
  else
    ml_assert_skipped_blocking before after "$expect" "$label"
    [[ $added -le $((2 * conns - expect)) ]] ||
      ml_fail "$label: sockets_added rose by $added, more than the $((2 * conns - expect)) non-blocking ends"
    ml_log "$label: sockets_added +$added, redirect_failed +$(ml_delta before after redirect_failed)"
  fi
}

W=(--min-write 1 --max-write 4M --timeout 90)
# a. Blocking on both sides: never spliced, every byte still exact.
case_ a-blocking-plain 2 1 blocking blocking 5301 --bytes 256M --read-mode plain "${W[@]}"
case_ a-blocking-peek 2 1 blocking blocking 5302 --bytes 256M --read-mode peek "${W[@]}"
case_ a-blocking-fionread 4 2 blocking blocking 5303 --bytes 64M --read-mode fionread "${W[@]}"
# b. Non-blocking client, blocking server: the server end is refused.
case_ b-nb-client-blocking-server 2 2 blocking nb 5304 --bytes 64M --read-mode plain "${W[@]}"
# c. Blocking client, non-blocking server: the client end is refused.
case_ c-blocking-client-nb-server 2 2 nb blocking 5305 --bytes 64M --read-mode plain "${W[@]}"
# d. Non-blocking on both sides: spliced.
case_ d-nonblocking spliced 2 nb nb 5306 --bytes 64M --read-mode plain "${W[@]}"
# e. The port of case d again, now with a blocking listener.
case_ e-port-reused-blocking 1 1 blocking nb 5306 --bytes 64M --read-mode peek "${W[@]}"

# assert_signalled LABEL: each side's reader handled SIGALRMs during transfer LABEL.
assert_signalled() {
  local role n
  for role in client server; do
    n=$(ml_json_int "$(ml_xfer_last "$1" "$role")" signals) || exit 1
    ((n > 0)) || ml_fail "$1: the $role's reader took no SIGALRM, so the case tested nothing"
    ml_log "$1: the $role's reader took $n SIGALRMs"
  done
}
S=(--signal-every-us 1000 --min-write 1 --max-write 64K --timeout 90)
# f. Signals to the readers.
case_ f-blocking-signals 2 1 blocking blocking 5307 --bytes 64M --read-mode plain "${S[@]}"
assert_signalled f-blocking-signals
case_ f-nonblocking-signals spliced 1 nb nb 5308 --bytes 64M --read-mode plain "${S[@]}"
assert_signalled f-nonblocking-signals
ml_pass
