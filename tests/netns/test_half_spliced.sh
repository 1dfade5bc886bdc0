#!/usr/bin/env bash
# A connection is spliced on both ends or on neither. A socket in the sockhash whose bytes
# arrive by TCP (its peer is not spliced) has a FIONREAD of 0 while recv() returns data: the
# kernel (tcp_bpf_ioctl) counts only redirected bytes. ml_xfer's fionread read mode checks
# FIONREAD > 0 whenever data is readable, on both sides, with every byte and the EOF:
#   A. loopback, the server outside the cgroup: the client is not spliced (sockets_skipped_peer);
#   B. loopback, the client outside the cgroup: the server is not spliced;
#   C. loopback, a blocking server (not spliced): its non-blocking client leaves the sockhash;
#   D. pods A and B (configured workloads, ports not intercepted): spliced end to end;
#   E. the same with the handshake's final ACK dropped at B, so that the client's first send
#      comes before B's socket is established: the send goes by TCP (redirect_failed), the
#      server end is not spliced and takes the client end out (sockets_skipped_peer);
#   F. pod A to a host that is not a workload: not spliced;
#   G. pod A to a server in pod B (a configured workload) that runs outside the cgroup: the
#      client is not spliced, because pod B has no listener of the cgroup on that port.
# Before the pairing rule the client ends of A, C and E stayed in the sockhash and received by
# TCP; A and E were seen failing with a FIONREAD trap. Before the listener check for pod
# addresses, G's client end stayed in the sockhash and failed the same way.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ml_setup
ml_require_meshlane
ml_require_cmd iptables
ml_make_cgroup
ml_make_netns NS lo
ml_make_netns POD_A a
ml_make_netns POD_B b
ml_make_netns HOST_X x

# Pods A and B and host X, each with an eth0 on a bridge in a namespace of its own.
ml_make_netns NODE node
ip -n "$NODE" link add br0 type bridge
ip -n "$NODE" link set br0 up
i=1
for ns in "$POD_A" "$POD_B" "$HOST_X"; do
  ip -n "$NODE" link add "eth$i" type veth peer name eth0 netns "$ns"
  ip -n "$NODE" link set "eth$i" master br0 up
  ip -n "$ns" addr add "198.18.9.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  i=$((i + 1))
done
A=198.18.9.1 B=198.18.9.2 X=198.18.9.3

workload() { # NAME NETNS IP
  printf '%s\n' "" "[[workload]]" "name = \"$1\"" "netns = \"/var/run/netns/$2\"" \
    "ips = [\"$3\"]" "exclude_outbound_ports = [5501, 5502, 5503, 5504, 5505, 5506, 5507]" \
    "exclude_inbound_ports = [5501, 5502, 5503, 5504, 5505, 5506, 5507]"
}
mapfile -t extra < <(workload pod-a "$POD_A" "$A"; workload pod-b "$POD_B" "$B")
ml_daemon_start "${extra[@]}"

# xfer LABEL SERVER_CG SERVER_NS SERVER_ARGS CLIENT_CG CLIENT_NS CLIENT_ARGS: a checked
# transfer, 4 MiB each way over 2 connections, fionread reads on both sides.
xfer() {
  local label=$1 scg=$2 sns=$3 sargs=$4 ccg=$5 cns=$6 cargs=$7 pid
  local common=(--bytes 4M --seed 9 --read-mode fionread --timeout 30)
  ml_snapshot before
  # shellcheck disable=SC2086  # the argument strings are split on purpose
  ml_xfer_server_bg pid "$scg" "$sns" "$label" $sargs --connections 2 "${common[@]}"
  # shellcheck disable=SC2086
  ml_xfer_client "$ccg" "$cns" "$label" $cargs --parallel 2 "${common[@]}"
  ml_xfer_wait_server "$pid" "$label"
  ml_xfer_check "$label" "$ML__CLIENT_RC" "$ML__SERVER_RC"
  ml_snapshot after
  ml_show_delta before after
}
delta() { ml_delta before after "$1"; }
expect() { # LABEL COUNTER OP VALUE
  local v
  v=$(delta "$2")
  test "$v" "$3" "$4" || ml_fail "$1: $2 rose by $v, expected $3 $4"
}

xfer A-server-outside - "$NS" "--listen 127.0.0.1:5501 --nonblocking" \
  "$ML_CG" "$NS" "--connect 127.0.0.1:5501 --nonblocking"
expect A sockets_added -eq 0
expect A sockets_skipped_peer -ge 2

xfer B-client-outside "$ML_CG" "$NS" "--listen 127.0.0.1:5502 --nonblocking" \
  - "$NS" "--connect 127.0.0.1:5502 --nonblocking"
expect B sockets_added -eq 0
expect B sockets_skipped_peer -ge 2

xfer C-blocking-server "$ML_CG" "$NS" "--listen 127.0.0.1:5503" \
  "$ML_CG" "$NS" "--connect 127.0.0.1:5503 --nonblocking"
expect C sockets_skipped_blocking -ge 2
expect C bytes_redirected -eq 0

xfer D-pods "$ML_CG" "$POD_B" "--listen $B:5504 --nonblocking" \
  "$ML_CG" "$POD_A" "--connect $B:5504 --nonblocking"
ml_assert_spliced before after "$ML_XFER_WIRE" D-pods
expect D sockets_skipped_peer -eq 0

# The handshake's final ACK (the client's second packet, carrying no data) never reaches B:
# B's socket is established by the client's first data segment.
ip netns exec "$POD_B" iptables -A INPUT -p tcp --dport 5505 --tcp-flags ALL ACK \
  -m connbytes --connbytes 2:2 --connbytes-dir original --connbytes-mode packets -j DROP
xfer E-first-send-first "$ML_CG" "$POD_B" "--listen $B:5505 --nonblocking" \
  "$ML_CG" "$POD_A" "--connect $B:5505 --nonblocking"
expect E redirect_failed -ge 2
expect E sockets_skipped_peer -ge 2
expect E bytes_redirected -eq 0

xfer F-not-a-workload "$ML_CG" "$HOST_X" "--listen $X:5506 --nonblocking" \
  "$ML_CG" "$POD_A" "--connect $X:5506 --nonblocking"
expect F sockets_added -eq 0
expect F sockets_skipped_peer -ge 2

xfer G-pod-server-outside - "$POD_B" "--listen $B:5507 --nonblocking" \
  "$ML_CG" "$POD_A" "--connect $B:5507 --nonblocking"
expect G sockets_added -eq 0
expect G sockets_skipped_peer -ge 2
expect G bytes_redirected -eq 0
ml_pass
