#!/usr/bin/env bash
# Back-pressure on spliced sockets (acceleration.max_unread_bytes). Redirected bytes are not
# held to the reader's receive buffer, so a writer faster than its reader would queue without
# bound (up to the kernel's TCP memory limit, then ENOMEM). With a limit, the writer's socket
# goes back to the normal stack once its reader is that far behind, and TCP's flow control
# holds it back from then on.
#
# ml_xfer sends 128 MiB each way over 127.0.0.1, non-blocking (spliced), with a 1 MiB limit and
# a reader that takes at most 4 KiB per read, so the readers fall behind. For the read modes
# plain, peek and epoll it checks:
#   - every byte and the EOF position on both sides: the reader gets the queued redirected bytes
#     before those that arrive by TCP after the switch;
#   - redirect_reader_behind rose (the limit was hit) and bytes_redirected is above 0 and below
#     the bytes sent (the transfer was spliced, then not);
#   - the kernel's TCP memory (/proc/net/sockstat, sampled every 20 ms) never rose by more than
#     what plain TCP may hold for these connections (tcp_rmem + tcp_wmem maxima per direction)
#     plus 32 MiB.
# Not the fionread mode: on Linux 6.18 FIONREAD on a socket in a sockmap counts only the
# redirected queue, so once bytes arrive by TCP it reads 0 while recv() returns data. That is
# the kernel's tcp_bpf_ioctl, a known gap of this setting (docs/datapath.md; ml_xfer's fionread
# mode caught it here on the first run), and one reason the limit is off by default.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_make_cgroup
ml_make_netns NS
ml_daemon_start "max_unread_bytes = 1048576"

PAGE=$(getconf PAGESIZE)
tcp_mem_bytes() { awk -v p="$PAGE" '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) * p }' /proc/net/sockstat; }
read -r _ _ rmem_max </proc/sys/net/ipv4/tcp_rmem
read -r _ _ wmem_max </proc/sys/net/ipv4/tcp_wmem
# Two directions, each at most what TCP lets one connection have in flight, plus slack for the
# limit itself (1 MiB per reader, overshot by one message) and other sockets of the machine.
BOUND=$((2 * (rmem_max + wmem_max) + (32 << 20)))

# sample_tcp_mem OUT: writes the peak of /proc/net/sockstat's TCP memory to OUT until killed.
sample_tcp_mem() {
  local out=$1 peak=0 now
  trap 'echo "$peak" >"$out"; exit 0' TERM
  while :; do
    now=$(tcp_mem_bytes)
    ((now > peak)) && peak=$now
    sleep 0.02
  done
}

BYTES=$((128 << 20))
port=5301
for mode in plain peek epoll; do
  label="behind-$mode"
  base=$(tcp_mem_bytes)
  sample_tcp_mem "$ML_WORKDIR/$label.peak" &
  sampler=$!
  host_defer host_kill_pid "$sampler"
  ml_snapshot before
  ml_xfer_pair "$ML_CG" "$NS" "$label" "--listen 127.0.0.1:$port" "--connect 127.0.0.1:$port" \
    --bytes 128M --seed $port --read-mode "$mode" --max-read 4096 --nonblocking \
    --min-write 1K --max-write 1M --timeout 120
  ml_snapshot after
  kill -TERM "$sampler"
  wait "$sampler" 2>/dev/null || true
  peak=$(cat "$ML_WORKDIR/$label.peak")
  ml_xfer_assert_mode "$label" client true
  ml_xfer_assert_mode "$label" server true
  behind=$(ml_delta before after redirect_reader_behind)
  redirected=$(ml_delta before after bytes_redirected)
  rose=$((peak - base))
  ml_log "$label: redirect_reader_behind +$behind, bytes_redirected +$redirected of $((2 * BYTES)), TCP memory rose by $((rose >> 20)) MiB at most (bound $((BOUND >> 20)) MiB)"
  ((behind >= 1)) || ml_fail "$label: redirect_reader_behind did not rise: the limit was never hit"
  ((redirected > 0)) || ml_fail "$label: nothing was redirected: the transfer was never spliced"
  ((redirected < 2 * BYTES)) ||
    ml_fail "$label: all $redirected bytes were redirected: no socket went back to TCP"
  ((rose < BOUND)) || ml_fail "$label: kernel TCP memory rose by $rose bytes, above $BOUND"
  port=$((port + 1))
done
ml_pass
