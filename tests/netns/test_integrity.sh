#!/usr/bin/env bash
# End-to-end data integrity through the splice: ml_xfer sends a pseudo-random stream in both
# directions at once and checks every byte and the EOF position on the other side.
#   - 1 GiB each way over 127.0.0.1, write sizes log-uniform in 1..4 MiB;
#   - 64 MiB each way over ::1 and over v4-mapped ::ffff:127.0.0.1;
#   - 64 MiB each way (2 connections) with each read mode: plain (recv), peek (MSG_PEEK then
#     recv must agree), fionread (FIONREAD must be > 0 whenever data is readable), epoll
#     (edge-triggered).
# All traffic is `ml_xfer --nonblocking` (every socket O_NONBLOCK from its creation, poll()
# before reads and writes): the datapath does not splice sockets an application may read in
# blocking mode (see test_blocking_guard.sh), and this test is about the spliced path.
# Every run must also show in the counters that it was spliced (>= 90% of its bytes
# redirected, no socket skipped as blocking), so the test fails if the datapath silently stays
# out of the way.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_make_cgroup
ml_make_netns NS
ml_daemon_start

# run LABEL "SERVER ARGS" "CLIENT ARGS" COMMON ARGS...
run() {
  local label=$1
  ml_snapshot before
  ml_xfer_pair "$ML_CG" "$NS" "$@"
  ml_snapshot after
  ml_xfer_assert_mode "$label" client true
  ml_xfer_assert_mode "$label" server true
  ml_assert_spliced before after "$ML_XFER_WIRE" "$label"
}

W=(--nonblocking --min-write 1 --max-write 4M --timeout 90)
run v4-1GiB "--listen 127.0.0.1:5201" "--connect 127.0.0.1:5201" --bytes 1G --seed 11 "${W[@]}"
run v6 "--listen [::1]:5202" "--connect [::1]:5202" --bytes 64M --seed 12 "${W[@]}"
run v4mapped "--listen [::]:5203" "--connect [::ffff:127.0.0.1]:5203" --bytes 64M --seed 13 "${W[@]}"
port=5204
for mode in plain peek fionread epoll; do
  run "read-$mode" "--listen 127.0.0.1:$port --connections 2" \
    "--connect 127.0.0.1:$port --parallel 2" --bytes 64M --seed $port --read-mode "$mode" "${W[@]}"
  port=$((port + 1))
done
ml_pass
