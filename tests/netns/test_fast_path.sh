#!/usr/bin/env bash
# The opt-in L4 fast path (docs/fast-path.md) in an istio-style mesh with real HAProxy sidecars
# (uid/gid 1337, outbound 15001, inbound 15006, passthrough source 127.0.0.6; rel_lib.sh):
# pods A (198.18.0.10, fd00::10) and B (.11, ::11) from the config file, both with
# fast_path = true, A excepting port 8082 and B port 8083 (fast_path_exclude_ports), B
# excluding istio's 15008/15020/15021/15090 from inbound interception; pod C (.12, ::12) added
# live with meshlanectl, NOT opted in; host X (.100, ::100) on the same bridge is no workload
# (it stands in for a pod on another node). Every app runs in the test cgroup. No iptables.
#
# "Fast path" below means, for the one connection of the step, checked against the kernel's
# counters (meshlaned --stats, and meshlanectl stats --workload for both pods), the sidecars'
# own session counts (HAProxy `show stat`) and what the server app saw:
#   - no sidecar accepted a session (outbound and inbound of A, B and C unchanged);
#   - the server saw the client pod's own address (not 127.0.0.6);
#   - every byte arrived, both ways (ml_xfer checks the streams);
#   - fast_path_connections +1 node-wide and +1 for each of the two workloads; nothing
#     intercepted (intercepted_outbound, intercepted_inbound_local, intercepted_inbound_tc,
#     orig_dst_answered flat), no denial;
#   - non-blocking: spliced_fast_path +1, spliced_app_to_proxy / proxy_to_proxy /
#     proxy_to_app / other flat; fast_path_bytes and bytes_redirected between 90% and 101%
#     (+1 MiB) of the bytes both sides sent (one spliced hop), no socket skipped as blocking;
#     per workload, fast_path_bytes of the client and of the server are each at least 90% of
#     what that side sent, and they add up to the node-wide rise.
# "Sidecar path" means today's behaviour, unchanged by the fast path: fast_path_connections,
# spliced_fast_path and fast_path_bytes flat, the sidecars named accepted exactly one session
# each (the others none), the server saw the address today's path gives, every byte arrived.
#
# Scenarios:
#   1. fp-v4: A -> B:8080 (IPv4, non-blocking, 4 MiB each way) with `meshlanectl monitor -o
#      json` attached: fast path. The monitor shows, for it, one intercepted event with reason
#      fast_path, hop fastpath, workload pod-a -> pod-b, dst = orig_dst = B:8080 (not
#      redirected), and one spliced client event with hop fastpath (src A, dst B:8080) plus the
#      server end's; the counts equal the counters' rise; no outbound/inbound_local/inbound_tc
#      event, nothing dropped.
#   2. fp-v6: A -> [fd00::11]:8080: fast path, B's app sees fd00::10.
#   3. fp-mapped: A's IPv6 socket -> [::ffff:198.18.0.11]:8080: fast path, B sees 198.18.0.10.
#   4. fp-blocking: A -> B:8084, blocking client and server: fast path but not spliced:
#      fast_path_connections +1, spliced_fast_path, fast_path_bytes, bytes_redirected flat,
#      sockets_skipped_blocking +2; its packets cross B's tc, which does not steer them
#      (intercepted_inbound_tc flat, no sidecar session, B sees A's address).
#   5. one side not opted in: C -> B:8080 (client not opted in): sidecar path through C's
#      outbound and B's inbound sidecar, B sees 127.0.0.6, intercepted_outbound and
#      intercepted_inbound_local +1; A -> C:8080 (server not opted in): through A's outbound
#      and C's inbound sidecar, C sees 127.0.0.6.
#   6. excepted port: A -> B:8082 (A's fast_path_exclude_ports) and A -> B:8083 (B's): sidecar
#      path through A's outbound and B's inbound sidecar, B sees 127.0.0.6.
#   7. mesh port: A -> B:15020 (excluded from B's inbound interception, an app listens there):
#      sidecar path as today: A's outbound sidecar carries it straight to B:15020 (B's inbound
#      sidecar does not: intercepted_inbound_local flat), so B sees A's address 198.18.0.10.
#   8. another node: A -> X:8080 (X is no workload): A's outbound sidecar carries it, X sees
#      198.18.0.10, intercepted_outbound +1; X -> B:8080: steered by B's tc to B's inbound
#      sidecar (intercepted_inbound_tc +1), B sees 127.0.0.6.
#   9. denied pair: policy "b-deny-a" (workload pod-b, ingress deny from pod-a on 8085), an app
#      listening on B:8085: A -> B:8085 and A -> [fd00::11]:8085 fail at once with EPERM,
#      denied_connect +2 node-wide and +2 for each of pod-a and pod-b, fast_path_connections
#      flat, no sidecar session; under the same policy A -> B:8080 (allowed) still takes the
#      fast path. The policy is deleted.
#  10. server not listening in the cgroup: an app on B:8086 that runs outside the test cgroup:
#      A -> B:8086 takes the sidecar path (A's outbound, B's inbound; B sees 127.0.0.6). And a
#      port whose listener of the cgroup has gone: A -> B:8087 takes the fast path while an app
#      of the cgroup listens there; that app exits and an app outside the cgroup listens on
#      B:8087 instead: A -> B:8087 takes the sidecar path (the listener registry dropped the
#      closed listener).
#  11. control socket and policy: `meshlanectl workload add pod-c ... --fast-path
#      --fast-path-exclude-ports 8088` replaces C: `workload get -o json` shows fast_path true
#      and [8088]; C -> B:8080 takes the fast path (B sees 198.18.0.12), C -> B:8088 the sidecar
#      path. C re-added without the flags: C -> B:8080 on the sidecar path again. A policy
#      "c-fast" (workload pod-c, "fast_path": {"enabled": true, "exclude_ports": [8088]})
#      opts C in while it exists (workload get still shows C's own fast_path false): C -> B:8080
#      fast path, C -> B:8088 sidecar path; deleted: C -> B:8080 sidecar path.
#  12. conns: while a spliced fast-path connection A -> B:8092 is open (scenario 13's),
#      `meshlanectl -o json conns` lists both of its ends (pod-a <-> pod-b, each end's peer in
#      the sockhash) and says they are of the fast path ("kind": "fastpath"); a spliced
#      sidecar hop is never shown as one (scenario 14).
#  13. switching under load (config rewritten + SIGHUP, "reload: 3 workload(s) applied"):
#      established before the first switch, on the fast path: 4 persistent ml_connrate
#      connections A -> B:8091 (request/response until stopped), a paced verified stream
#      A -> B:8092 (non-blocking, spliced) and one A -> B:8093 (blocking, so its packets cross
#      B's tc); a connect loop A -> B:8090 (ml_connrate --duration 0, a new connection per
#      request, concurrency 4) runs across both switches.
#      ON: the loop's new connections take the fast path (fast_path_connections rises at least
#      by the connections made, intercepted_outbound flat, no sidecar session).
#      A's fast_path set to false, SIGHUP: from then on fast_path_connections stays flat and
#      the loop's connections go through A's outbound and B's inbound sidecars (their sessions
#      and intercepted_outbound rise by at least the connections made, less the 4 that may have
#      been in flight); every established connection keeps moving data both ways. Opened now:
#      2 persistent connections A -> B:8091 and a paced stream A -> B:8094, through the
#      sidecars (B's `ss` shows them from 127.0.0.6, the fast-path ones from 198.18.0.10).
#      Back to true, SIGHUP: intercepted_outbound stays flat, fast_path_connections rises by at
#      least the connections made, the sidecars accept at most the 4 sessions that may have
#      been in flight; every established connection, of either path, keeps moving data.
#      At the end every ml_connrate client stops with no error, and every stream finishes with
#      each side having received exactly what the other sent, every byte checked, the server
#      having seen A's address (fast path) or 127.0.0.6 (sidecars).
#  14. conns never calls a sidecar hop fastpath: a paced stream A -> B:15020 (B's mesh port,
#      so the sidecar path: A's outbound sidecar connects to B's app from A's address) is
#      spliced on both of its hops; `meshlanectl -o json conns` shows the ends of the hop A's
#      sidecar -> B:15020 with a kind other than "fastpath", as the counters count it
#      (spliced_other, not spliced_fast_path); the stream finishes intact, B saw 198.18.0.10.
#  15. socket storage, read back from the kernel by socket (ml_sockstate, 64 KiB each way,
#      every byte checked): a spliced fast-path connection A -> B:8095 keeps its state on both
#      ends (hop fastpath, not fallen back), and its client end has no separate listener
#      answer (ml_srvlistener_v1); a blocking one A -> B:8096 (skipped_blocking +2) keeps the
#      client's (hop fastpath) and gives the server end none. A socket whose fast-path connect
#      to B:8097 is reset (an iptables REJECT in B for the step) connects again, to a listener
#      in its own pod: spliced as "other" (spliced_other +1, spliced_fast_path flat), its state
#      says hop other with no original destination; its connect found that listener
#      (ml_srvlistener_v1). A server end accepted by a non-blocking listener carries no
#      listener record (its listener's mode came with its sock_ops flags); the blocking one's
#      server end carries the cloned record "blocking" (ml_listenmode_v1).
#  16. restarted with acceleration.enabled = false: a loopback connection in A (bytes checked)
#      leaves no storage on either end: no listener answer on the client end, no listener
#      record cloned into the server end.
# Then SIGTERM (exit 0) and `meshlaned --cleanup`: no pin, nothing attached to the cgroup.
# IPv6 and v4-mapped cases are fast-path ones only: HAProxy asks only SOL_IP SO_ORIGINAL_DST,
# so it cannot be the sidecar of an IPv6 connection (test_mesh_istio.sh covers that with
# ml_proxy). Nothing waits a fixed time: every wait polls for its condition, ML_WAIT_S is only
# a hang guard, and no assertion depends on how fast a step is.
# shellcheck source-path=SCRIPTDIR source=rel_lib.sh
# Over 600 lines on purpose: the issue's scenarios share one topology that takes long to
# build, so they run in one script, one numbered step each.
source "$(dirname "${BASH_SOURCE[0]}")/rel_lib.sh"
# shellcheck source-path=SCRIPTDIR source=long_conns.sh
source "$(dirname "${BASH_SOURCE[0]}")/long_conns.sh"

PYTHON=${PYTHON:-python3}
A4=$(mesh_v4 10)
B4=$(mesh_v4 11)
C4=$(mesh_v4 12)
X4=$(mesh_v4 100)
A6=$(mesh_v6 10)
B6=$(mesh_v6 11)
C6=$(mesh_v6 12)
A_EXCEPT=8082
B_EXCEPT=8083
C_EXCEPT=8088
EXCL_IN="15008, 15020, 15021, 15090"
SIDECARS="a b c"

ML_COUNTERS+=" fast_path_connections spliced_fast_path fast_path_bytes"
WL_COUNTERS="fast_path_connections spliced_fast_path fast_path_bytes denied_connect"

# ---------------------------------------------------------------------------------------------
# Config, daemon, control socket

# write_config FAST_A: the config file with pods A (fast_path = FAST_A) and B, written
# atomically (the daemon reads it on SIGHUP).
write_config() {
  local tmp="$CONFIG.tmp"
  MESH_WL_LINES=()
  mesh_workload pod-a "$REL_A" "\"$A4\", \"$A6\"" istio "fast_path = $1" \
    "fast_path_exclude_ports = [$A_EXCEPT]"
  mesh_workload pod-b "$REL_B" "\"$B4\", \"$B6\"" istio "exclude_inbound_ports = [$EXCL_IN]" \
    "fast_path = true" "fast_path_exclude_ports = [$B_EXCEPT]"
  ml_write_config "$tmp" "${MESH_WL_LINES[@]}"
  mv -f "$tmp" "$CONFIG"
}

# ctl ARGS...: meshlanectl on this daemon's socket; output in CTL_OUT; fails the test on error.
ctl() {
  CTL_OUT=$("$MESHLANECTL" --socket "$SOCK" "$@" 2>"$ML_WORKDIR/ctl.err") ||
    ml_fail "meshlanectl $* failed: $(cat "$ML_WORKDIR/ctl.err")"
}

# json_eval JSON EXPR: the Python expression EXPR over the parsed JSON `j` (strings bare).
json_eval() {
  "$PYTHON" - "$1" "$2" <<'EOF' || ml_fail "cannot evaluate $2 over: $1"
import json, sys
j = json.loads(sys.argv[1])
v = eval(sys.argv[2], {"j": j})
print(v if isinstance(v, str) else json.dumps(v))
EOF
}

# sighup LABEL: ml_sighup, and the verdict must be "reload: 3 workload(s) applied (2 from the
# config file, 1 live)" (pod-c is live).
sighup() {
  ml_sighup "$1"
  grep -qF 'reload: 3 workload(s) applied (2 from the config file, 1 live)' <<<"$RELOAD_LINES" || {
    ml_dump_daemon_log
    ml_fail "$1: the reload was not applied: $RELOAD_LINES"
  }
}

# ---------------------------------------------------------------------------------------------
# Counters and sessions

# wl_snapshot PREFIX WORKLOAD: WL_COUNTERS of one workload (meshlanectl stats --workload) into
# PREFIX_<counter>.
wl_snapshot() {
  local json c v
  json=$("$MESHLANECTL" --socket "$SOCK" -o json stats --workload "$2") ||
    ml_fail "meshlanectl stats --workload $2 failed"
  for c in $WL_COUNTERS; do
    v=$(ml_json_int "$json" "$c") || exit 1
    printf -v "${1}_$c" '%s' "$v"
  done
}

# snap N: node-wide counters (sN), per-workload counters of A, B, C (sN_a, sN_b, sN_c) and the
# sessions every sidecar frontend has accepted (SESS_N[a-outbound] ...).
declare -A SESS_0 SESS_1
snap() {
  local n=$1 p fe labels=()
  local -A now=()
  local -n sessions="SESS_$n"
  ml_snapshot "s$n"
  for p in a b c; do wl_snapshot "s${n}_$p" "pod-$p"; done
  for p in $SIDECARS; do labels+=("hap-$p"); done
  mesh_haproxy_sessions_of now "${labels[@]}"
  for p in $SIDECARS; do
    for fe in outbound inbound; do
      [[ -n ${now[hap-$p-$fe]+set} ]] || ml_fail "HAProxy $p has no $fe frontend"
      sessions[$p-$fe]=${now[hap-$p-$fe]}
    done
  done
}

d() { ml_delta s0 s1 "$1"; }              # node-wide rise of a counter between snap 0 and 1
dw() { ml_delta "s0_$1" "s1_$1" "$2"; }   # one workload's (a, b or c)
sess() { echo $((SESS_1[$1] - SESS_0[$1])); }  # a-outbound, b-inbound, ...

# expect_eq LABEL WHAT GOT WANT
expect_eq() { [[ $3 -eq $4 ]] || ml_fail "$1: $2 rose by $3, expected $4"; }

# expect_sessions LABEL P-FE...: exactly one session on each frontend named, none on the others.
expect_sessions() {
  local label=$1 p fe want got line=""
  shift
  for p in $SIDECARS; do
    for fe in outbound inbound; do
      want=0
      [[ " $* " == *" $p-$fe "* ]] && want=1
      got=$(sess "$p-$fe")
      line+=" hap-$p/$fe +$got"
      [[ $got -eq $want ]] ||
        ml_fail "$label: HAProxy $p's $fe frontend accepted $got session(s), expected $want (sessions:$line)"
    done
  done
  ml_log "$label: sidecar sessions:$line"
}

# expect_bytes_near LABEL WHAT GOT WIRE: 90% of WIRE <= GOT <= WIRE + 1% + 1 MiB.
expect_bytes_near() {
  local label=$1 what=$2 got=$3 wire=$4
  ((got * 10 >= wire * 9)) || ml_fail "$label: $what rose by $got, less than 90% of the $wire bytes sent"
  ((got <= wire + wire / 100 + 1048576)) || ml_fail "$label: $what rose by $got, more than the $wire bytes sent"
}

# ---------------------------------------------------------------------------------------------
# Traffic

# xfer LABEL MODE SERVER_CG SERVER_NS LISTEN CLIENT_NS CONNECT [ARGS...]: one verified ml_xfer
# transfer (MODE nb: both sides --nonblocking, blk: both blocking), the client in the test
# cgroup, the server in SERVER_CG ("-": outside it). Sets WIRE (bytes both sides sent), PEER
# (the client address the server saw, without port; v4-mapped shown as IPv4) and SENT_C,
# SENT_S (what each side sent).
xfer() {
  local label=$1 mode=$2 scg=$3 sns=$4 listen=$5 cns=$6 connect=$7 pid nb=() peer
  shift 7
  [[ $mode == nb ]] && nb=(--nonblocking)
  ml_xfer_server_bg pid "$scg" "$sns" "$label" --listen "$listen" "${nb[@]}" "$@"
  ml_xfer_client "$ML_CG" "$cns" "$label" --connect "$connect" "${nb[@]}" "$@"
  ml_xfer_wait_server "$pid" "$label"
  ml_xfer_check "$label" "$ML__CLIENT_RC" "$ML__SERVER_RC"
  WIRE=$ML_XFER_WIRE
  SENT_C=$(ml_json_int "$(ml_xfer_last "$label" client)" bytes_sent) || exit 1
  SENT_S=$(ml_json_int "$(ml_xfer_last "$label" server)" bytes_sent) || exit 1
  peer=$(sed -n 's/.*accepted conn [0-9]* from \([^ ]*\).*/\1/p' \
    "$ML_WORKDIR/$label.server.err" | sed -n 1p)
  [[ -n $peer ]] || ml_fail "$label: the server logged no 'accepted conn ... from ...' line"
  PEER=$(mesh_peer_host "$peer")
  PEER=${PEER#::ffff:}
  ml_log "$label: $connect from $cns: ok, $WIRE bytes, the server saw $PEER"
}

expect_peer() {
  [[ $PEER == "$2" ]] || ml_fail "$1: the server app saw client $PEER, expected $2"
}

# fast_path LABEL MODE SERVER_NS LISTEN CLIENT_NS CONNECT CLIENT_POD(a|b|c) SERVER_POD PEER
#   [ARGS...]: one transfer that must take the fast path (see the header).
fast_path() {
  local label=$1 mode=$2 sns=$3 listen=$4 cns=$5 connect=$6 cp=$7 sp=$8 peer=$9 c
  shift 9
  snap 0
  xfer "$label" "$mode" "$ML_CG" "$sns" "$listen" "$cns" "$connect" "$@"
  snap 1
  ml_show_delta s0 s1
  expect_peer "$label" "$peer"
  expect_sessions "$label"
  expect_eq "$label" fast_path_connections "$(d fast_path_connections)" 1
  expect_eq "$label" "pod-$cp's fast_path_connections" "$(dw "$cp" fast_path_connections)" 1
  expect_eq "$label" "pod-$sp's fast_path_connections" "$(dw "$sp" fast_path_connections)" 1
  for c in intercepted_outbound intercepted_inbound_local intercepted_inbound_tc \
    intercepted_to_node_proxy orig_dst_answered bypassed_excluded denied_connect \
    denied_inbound_tc spliced_app_to_proxy spliced_proxy_to_proxy spliced_proxy_to_app \
    spliced_other; do
    mesh_assert_flat s0 s1 "$label" "$c"
  done
  if [[ $mode == nb ]]; then
    expect_eq "$label" spliced_fast_path "$(d spliced_fast_path)" 1
    expect_eq "$label" "pod-$cp's spliced_fast_path" "$(dw "$cp" spliced_fast_path)" 1
    mesh_assert_flat s0 s1 "$label" sockets_skipped_blocking
    expect_bytes_near "$label" fast_path_bytes "$(d fast_path_bytes)" "$WIRE"
    expect_bytes_near "$label" bytes_redirected "$(d bytes_redirected)" "$WIRE"
    expect_bytes_near "$label" "pod-$cp's fast_path_bytes" "$(dw "$cp" fast_path_bytes)" "$SENT_C"
    expect_bytes_near "$label" "pod-$sp's fast_path_bytes" "$(dw "$sp" fast_path_bytes)" "$SENT_S"
    expect_eq "$label" "fast_path_bytes of pod-$cp and pod-$sp together" \
      $(($(dw "$cp" fast_path_bytes) + $(dw "$sp" fast_path_bytes))) "$(d fast_path_bytes)"
    ml_log "$label: fast path, spliced: fast_path_bytes +$(d fast_path_bytes) for $WIRE bytes sent"
  else
    for c in spliced_fast_path fast_path_bytes bytes_redirected messages_redirected; do
      mesh_assert_flat s0 s1 "$label" "$c"
    done
    expect_eq "$label" sockets_skipped_blocking "$(d sockets_skipped_blocking)" 2
    ml_log "$label: fast path, not spliced (blocking)"
  fi
}

# sidecar_path LABEL SERVER_CG SERVER_NS LISTEN CLIENT_NS CONNECT PEER P-FE... -- [ARGS...]:
# one non-blocking transfer that must take today's path: exactly one session on each sidecar
# frontend P-FE named (a-outbound, b-inbound, ...), none elsewhere, the fast-path counters
# flat, the server saw PEER. Leaves snapshots s0/s1 for more checks.
sidecar_path() {
  local label=$1 scg=$2 sns=$3 listen=$4 cns=$5 connect=$6 peer=$7 fes=() c p
  shift 7
  while [[ $# -gt 0 && $1 != -- ]]; do
    fes+=("$1")
    shift
  done
  [[ $# -gt 0 ]] && shift
  snap 0
  xfer "$label" nb "$scg" "$sns" "$listen" "$cns" "$connect" --bytes 1M "$@"
  snap 1
  ml_show_delta s0 s1
  expect_peer "$label" "$peer"
  expect_sessions "$label" "${fes[@]}"
  for c in fast_path_connections spliced_fast_path fast_path_bytes; do
    mesh_assert_flat s0 s1 "$label" "$c"
    for p in a b c; do
      expect_eq "$label" "pod-$p's $c" "$(dw "$p" "$c")" 0
    done
  done
  ml_log "$label: sidecar path"
}

# probe LABEL NS HOST:PORT: one connect from NS (in the test cgroup); prints the result (ok,
# an errno name, timeout).
probe() {
  local out
  out=$(host_in "$ML_CG" "$2" "$PYTHON" "$LL_STREAM" probe "$3" --timeout "$ML_WAIT_S") ||
    ml_fail "$1: the probe of $3 failed to run"
  json_eval "$out" 'j["result"]'
}

# ---------------------------------------------------------------------------------------------
# Long-lived connections: paced verified streams (long_conns.sh) and ml_connrate

# loop_made N: the connect loop completed N connections since LOOP_BASE.
loop_made() { ll_connrate_progress loop "$LOOP" && ((ML_CR_CONNECTIONS - LOOP_BASE >= $1)); }
loop_conns() { ll_connrate_progress loop "$LOOP" || ml_fail "the connect loop has no progress yet"; echo "$ML_CR_CONNECTIONS"; }

# loop_base_after_snapshot: LOOP_BASE from a progress report of the connect loop written after
# the snapshot just taken. Reports are rewritten every 100 ms, so the one on disk may predate
# the snapshot and count connections whose sessions the snapshot already holds: `made` would
# then exceed what the sidecars can have accepted since.
loop_base_after_snapshot() {
  local before
  before=$(loop_conns)
  host_wait_for "$ML_WAIT_S" loop_beyond "$before" ||
    ml_fail "the connect loop reported no connection after its $before"
  LOOP_BASE=$ML_CR_CONNECTIONS
}
loop_beyond() { ll_connrate_progress loop "$LOOP" && ((ML_CR_CONNECTIONS > $1)); }

# switch_fast_path LABEL FAST_A: pod-a's fast_path = FAST_A (config rewritten, SIGHUP); then,
# between snapshots 0 and 1, the connect loop makes at least 200 more connections (made, all
# of them within that window; up to the loop's 4 in flight may have started before it).
switch_fast_path() {
  write_config "$2"
  sighup "$1"
  snap 0
  loop_base_after_snapshot
  host_wait_for "$ML_WAIT_S" loop_made 200 || ml_fail "$1: the connect loop did not make 200 more connections"
  made=$(($(loop_conns) - LOOP_BASE))
  snap 1
  ml_show_delta s0 s1
  ml_log "$1: $made connections; sessions hap-a/outbound +$(sess a-outbound), hap-b/inbound +$(sess b-inbound)"
}

# peers_on NS PORT: the peer addresses of the established connections to local PORT, one per
# line (sorted, with counts).
peers_on() {
  host_in - "$1" ss -H -t -n state established "( sport = :$2 )" |
    awk '{ a = $4; sub(/:[0-9]+$/, "", a); gsub(/^\[|\]$/, "", a); sub(/^::ffff:/, "", a); print a }' |
    sort | uniq -c | awk '{ print $2 "x" $1 }' | tr '\n' ' '
}

# =============================================================================================
rel_setup
ml_require_cmd "$PYTHON" ss
mesh_add_pod REL_C c 12
MESH_ALL+=("$REL_C")
CONFIG="$ML_WORKDIR/meshlane.toml"
write_config true
ML_DAEMON_SEQ=$((ML_DAEMON_SEQ + 1))
ml_daemon_start_with_config "$CONFIG"
SOCK=$(rel_socket)
ctl workload add pod-c --netns "$REL_C" --ip "$C4" --ip "$C6"
rel_sidecars
mesh_start_haproxy REL_PC "$REL_C" hap-c "$REL_UID" "$REL_OUT" "$REL_IN" "$REL_SRC"
mesh_assert_no_iptables "$REL_A" "$REL_B" "$REL_C" "$REL_X"

ctl -o json workload get pod-a
[[ $(json_eval "$CTL_OUT" '[j["spec"]["fast_path"], j["spec"]["fast_path_exclude_ports"]]') == "[true, [$A_EXCEPT]]" ]] ||
  ml_fail "workload get pod-a does not show fast_path true and [$A_EXCEPT]: $CTL_OUT"
ctl -o json workload get pod-c
[[ $(json_eval "$CTL_OUT" 'j["spec"].get("fast_path")') == false ]] ||
  ml_fail "workload get pod-c (added without --fast-path) does not show fast_path false: $CTL_OUT"

# ---------------------------------------------------------------------------------------------
ml_log "1. fp-v4: A -> B:8080 with the monitor attached"
mon_start=$(wc -l <"$ML_DAEMON_LOG")
ml_bg MON "$ML_WORKDIR/mon.out" "$ML_WORKDIR/mon.err" - - \
  "$MESHLANECTL" --socket "$SOCK" -o json monitor --type intercepted,spliced,skipped_blocking
mon_subscribed() { tail -n "+$((mon_start + 1))" "$ML_DAEMON_LOG" | grep -q 'monitor: datapath now emits'; }
host_wait_for "$ML_WAIT_S" mon_subscribed ||
  ml_fail "the monitor did not subscribe: $(cat "$ML_WORKDIR/mon.err")"
fast_path fp-v4 nb "$REL_B" "[::]:8080" "$REL_A" "$B4:8080" a b "$A4" --bytes 4M --timeout 60

cat >"$ML_WORKDIR/mon_check.py" <<'EOF'
import json, sys
path, final, a4, b4 = sys.argv[1], sys.argv[2] == "final", sys.argv[3], sys.argv[4]
want = {k: int(v) for k, v in (a.split("=") for a in sys.argv[5:])}
events = []
with open(path) as f:
    for line in f:
        if line.endswith("\n"):
            events.append(json.loads(line))
by = lambda **kv: [e for e in events if all(e.get(k) == v for k, v in kv.items())]
problems = []
def expect(what, got, n):
    if len(got) != n:
        problems.append(f"{what}: {len(got)} event(s), expected {n}")
expect("dropped", by(type="dropped"), 0)
fp = by(type="intercepted", reason="fast_path")
expect("intercepted fast_path", fp, want["fast_path_connections"])
expect("intercepted, another reason", [e for e in by(type="intercepted") if e["reason"] != "fast_path"], 0)
for e in fp:
    ok = (e["workload"] == "pod-a" and e["peer_workload"] == "pod-b" and e["hop"] == "fastpath"
          and e["dst"] == f"{b4}:8080" and e["orig_dst"] == f"{b4}:8080")
    if not ok:
        problems.append(f"intercepted fast_path event with the wrong details: {e}")
cl = by(type="spliced", side="client")
expect("spliced client ends", cl, want["spliced_fast_path"])
for e in cl:
    ok = (e["hop"] == "fastpath" and e["workload"] == "pod-a" and e["peer_workload"] == "pod-b"
          and e["src"].startswith(a4 + ":") and e["dst"] == f"{b4}:8080")
    if not ok:
        problems.append(f"spliced client event with the wrong details: {e}")
sv = by(type="spliced", side="server")
expect("spliced server ends", sv, want["spliced_fast_path"])
for e in sv:
    if e["workload"] != "pod-b" or e["src"] != f"{b4}:8080" or not e["dst"].startswith(a4 + ":"):
        problems.append(f"spliced server event with the wrong details: {e}")
expect("skipped_blocking", by(type="skipped_blocking"), 0)
if problems:
    if final:
        print("FAIL: " + "; ".join(problems))
        for e in events:
            print("  " + json.dumps(e))
        sys.exit(1)
    sys.exit(3)
print(f"monitor: {len(events)} event(s): intercepted [fast_path, fastpath] {fp[0]['src']} -> {fp[0]['dst']}, "
      f"spliced client [fastpath] {cl[0]['src']} -> {cl[0]['dst']}")
EOF
mon_args=("$ML_WORKDIR/mon.out" retry "$A4" "$B4" "fast_path_connections=$(d fast_path_connections)"
  "spliced_fast_path=$(d spliced_fast_path)")
mon_ok() {
  local rc=0
  "$PYTHON" "$ML_WORKDIR/mon_check.py" "${mon_args[@]}" >"$ML_WORKDIR/mon_check.out" 2>&1 || rc=$?
  ((rc == 0)) && return 0
  ((rc == 3)) || ml_fail "fp-v4: monitor check: $(cat "$ML_WORKDIR/mon_check.out")"
  return 1
}
if ! host_wait_for "$ML_WAIT_S" mon_ok; then
  mon_args[1]=final
  "$PYTHON" "$ML_WORKDIR/mon_check.py" "${mon_args[@]}" >&2 || true
  ml_fail "fp-v4: the monitor does not show the fast-path connection as the counters do (above)"
fi
ml_log "fp-v4: $(cat "$ML_WORKDIR/mon_check.out")"
kill -INT "$MON"
host_wait_exit "$MON" || ml_fail "meshlanectl monitor still runs $ML_WAIT_S s after SIGINT"
rc=0
wait "$MON" || rc=$?
[[ $rc -eq 0 ]] || ml_fail "meshlanectl monitor exited with status $rc on SIGINT: $(cat "$ML_WORKDIR/mon.err")"

# ---------------------------------------------------------------------------------------------
ml_log "2. fp-v6: A -> [$B6]:8080"
fast_path fp-v6 nb "$REL_B" "[::]:8080" "$REL_A" "[$B6]:8080" a b "$A6" --bytes 2M --timeout 60

ml_log "3. fp-mapped: A -> [::ffff:$B4]:8080"
fast_path fp-mapped nb "$REL_B" "[::]:8080" "$REL_A" "[::ffff:$B4]:8080" a b "$A4" --bytes 2M \
  --timeout 60

ml_log "4. fp-blocking: A -> B:8084, blocking on both sides"
fast_path fp-blocking blk "$REL_B" "0.0.0.0:8084" "$REL_A" "$B4:8084" a b "$A4" --bytes 2M \
  --timeout 60

# ---------------------------------------------------------------------------------------------
ml_log "5. one side not opted in (pod-c)"
sidecar_path c-to-b "$ML_CG" "$REL_B" "[::]:8080" "$REL_C" "$B4:8080" "$REL_SRC" c-outbound b-inbound
mesh_assert_rose s0 s1 c-to-b intercepted_outbound
mesh_assert_rose s0 s1 c-to-b intercepted_inbound_local
sidecar_path a-to-c "$ML_CG" "$REL_C" "[::]:8080" "$REL_A" "$C4:8080" "$REL_SRC" a-outbound c-inbound
mesh_assert_rose s0 s1 a-to-c intercepted_outbound
mesh_assert_rose s0 s1 a-to-c intercepted_inbound_local

ml_log "6. excepted ports: A -> B:$A_EXCEPT (A's exception), A -> B:$B_EXCEPT (B's)"
sidecar_path a-excepted "$ML_CG" "$REL_B" "[::]:$A_EXCEPT" "$REL_A" "$B4:$A_EXCEPT" "$REL_SRC" \
  a-outbound b-inbound
mesh_assert_rose s0 s1 a-excepted intercepted_outbound
sidecar_path b-excepted "$ML_CG" "$REL_B" "[::]:$B_EXCEPT" "$REL_A" "$B4:$B_EXCEPT" "$REL_SRC" \
  a-outbound b-inbound
mesh_assert_rose s0 s1 b-excepted intercepted_outbound

ml_log "7. a mesh port of B: A -> B:15020 (excluded from B's inbound interception)"
sidecar_path mesh-port "$ML_CG" "$REL_B" "[::]:15020" "$REL_A" "$B4:15020" "$A4" a-outbound
mesh_assert_rose s0 s1 mesh-port intercepted_outbound
mesh_assert_flat s0 s1 mesh-port intercepted_inbound_local

ml_log "8. another node: A -> X:8080, X -> B:8080"
sidecar_path a-to-x "$ML_CG" "$REL_X" "[::]:8080" "$REL_A" "$X4:8080" "$A4" a-outbound
mesh_assert_rose s0 s1 a-to-x intercepted_outbound
sidecar_path x-to-b "$ML_CG" "$REL_B" "[::]:8080" "$REL_X" "$B4:8080" "$REL_SRC" b-inbound
mesh_assert_rose s0 s1 x-to-b intercepted_inbound_tc
mesh_assert_flat s0 s1 x-to-b intercepted_outbound

# ---------------------------------------------------------------------------------------------
ml_log "9. denied pair: B denies A on 8085"
cat >"$ML_WORKDIR/deny.json" <<'EOF'
{"name": "b-deny-a", "workload": "pod-b",
 "ingress": [{"action": "deny", "from": [{"workload": "pod-a"}], "ports": [8085]}]}
EOF
ctl policy apply -f "$ML_WORKDIR/deny.json"
ml_xfer_server_bg DENY_SRV "$ML_CG" "$REL_B" deny-listener --listen "[::]:8085" --nonblocking \
  --timeout 600
snap 0
for target in "$B4:8085" "[$B6]:8085"; do
  result=$(probe denied "$REL_A" "$target")
  [[ $result == EPERM ]] || ml_fail "denied: A -> $target gave $result, expected EPERM"
  ml_log "denied: A -> $target: $result"
done
snap 1
ml_show_delta s0 s1
expect_eq denied denied_connect "$(d denied_connect)" 2
expect_eq denied "pod-a's denied_connect" "$(dw a denied_connect)" 2
expect_eq denied "pod-b's denied_connect" "$(dw b denied_connect)" 2
mesh_assert_flat s0 s1 denied fast_path_connections
mesh_assert_flat s0 s1 denied intercepted_outbound
expect_sessions denied
host_kill_pid "$DENY_SRV"
fast_path allowed-under-policy nb "$REL_B" "[::]:8080" "$REL_A" "$B4:8080" a b "$A4" --bytes 1M \
  --timeout 60
ctl policy del b-deny-a

# ---------------------------------------------------------------------------------------------
ml_log "10. the server does not listen in the cgroup: A -> B:8086"
sidecar_path outside-cgroup - "$REL_B" "[::]:8086" "$REL_A" "$B4:8086" "$REL_SRC" a-outbound b-inbound
mesh_assert_rose s0 s1 outside-cgroup intercepted_outbound
fast_path listener-in-cgroup nb "$REL_B" "[::]:8087" "$REL_A" "$B4:8087" a b "$A4" --bytes 1M \
  --timeout 60
sidecar_path listener-gone - "$REL_B" "[::]:8087" "$REL_A" "$B4:8087" "$REL_SRC" a-outbound b-inbound
mesh_assert_rose s0 s1 listener-gone intercepted_outbound

# ---------------------------------------------------------------------------------------------
ml_log "11. opting in over the control socket and by policy (pod-c)"
ctl workload add pod-c --netns "$REL_C" --ip "$C4" --ip "$C6" --fast-path \
  --fast-path-exclude-ports "$C_EXCEPT"
grep -q replaced <<<"$CTL_OUT" || ml_fail "workload add pod-c --fast-path printed: $CTL_OUT"
ctl -o json workload get pod-c
[[ $(json_eval "$CTL_OUT" '[j["spec"]["fast_path"], j["spec"]["fast_path_exclude_ports"]]') == "[true, [$C_EXCEPT]]" ]] ||
  ml_fail "workload get pod-c does not show fast_path true and [$C_EXCEPT]: $CTL_OUT"
fast_path ctl-c-to-b nb "$REL_B" "[::]:8080" "$REL_C" "$B4:8080" c b "$C4" --bytes 1M --timeout 60
sidecar_path ctl-c-excepted "$ML_CG" "$REL_B" "[::]:$C_EXCEPT" "$REL_C" "$B4:$C_EXCEPT" "$REL_SRC" \
  c-outbound b-inbound
ctl workload add pod-c --netns "$REL_C" --ip "$C4" --ip "$C6"
grep -q replaced <<<"$CTL_OUT" || ml_fail "workload add pod-c (without --fast-path) printed: $CTL_OUT"
sidecar_path ctl-c-off "$ML_CG" "$REL_B" "[::]:8080" "$REL_C" "$B4:8080" "$REL_SRC" c-outbound b-inbound

cat >"$ML_WORKDIR/c-fast.json" <<EOF
{"name": "c-fast", "workload": "pod-c", "fast_path": {"enabled": true, "exclude_ports": [$C_EXCEPT]}}
EOF
ctl policy apply -f "$ML_WORKDIR/c-fast.json"
ctl -o json workload get pod-c
[[ $(json_eval "$CTL_OUT" 'j["spec"].get("fast_path")') == false ]] ||
  ml_fail "the policy changed pod-c's own settings (it overlays them): $CTL_OUT"
fast_path policy-c-to-b nb "$REL_B" "[::]:8080" "$REL_C" "$B4:8080" c b "$C4" --bytes 1M --timeout 60
sidecar_path policy-c-excepted "$ML_CG" "$REL_B" "[::]:$C_EXCEPT" "$REL_C" "$B4:$C_EXCEPT" \
  "$REL_SRC" c-outbound b-inbound
ctl policy del c-fast
sidecar_path policy-deleted "$ML_CG" "$REL_B" "[::]:8080" "$REL_C" "$B4:8080" "$REL_SRC" \
  c-outbound b-inbound

# ---------------------------------------------------------------------------------------------
ml_log "13. switching fast path off and on under load (12: conns on the way)"
ll_connrate_server "$REL_B" 8090 1
ll_connrate_server "$REL_B" 8091 0
snap 0
ll_connrate_client PFP pfp "$REL_A" "$B4:8091" 4 0
persistent_up() {
  ll_connrate_progress pfp "$PFP" && ((ML_CR_REQUESTS > 0)) || return 1
  ml_snapshot s1
  (($(d fast_path_connections) >= 4))
}
host_wait_for "$ML_WAIT_S" persistent_up ||
  ml_fail "the 4 persistent connections A -> B:8091 did not come up on the fast path"
ll_start ll-fp-nb nb "$REL_B" "0.0.0.0:8092" "$REL_A" "$B4:8092"
ll_start ll-fp-blk blk "$REL_B" "0.0.0.0:8093" "$REL_A" "$B4:8093"
snap 1
ml_show_delta s0 s1
expect_eq established fast_path_connections "$(d fast_path_connections)" 6
expect_eq established spliced_fast_path "$(d spliced_fast_path)" 5
mesh_assert_flat s0 s1 established intercepted_outbound
expect_sessions established
[[ $(peers_on "$REL_B" 8091) == "${A4}x4 " ]] ||
  ml_fail "established: B:8091's connections come from $(peers_on "$REL_B" 8091), expected 4 from $A4"

ml_log "12. conns shows the fast-path connection A -> B:8092"
ctl -o json conns --limit 0
"$PYTHON" - "$CTL_OUT" "$A4" "$B4:8092" >"$ML_WORKDIR/conns.check" 2>&1 <<'EOF' ||
import json, sys
j, a4, b = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
ends = [c for c in j["connections"] if b in (c["local"], c["remote"])]
kinds = {k for c in ends for k in ("hop", "kind") if k in c}
ok = (len(ends) == 2 and all(c["peer_in_map"] for c in ends)
      and {c["workload"] for c in ends} == {"pod-a", "pod-b"}
      and {c["remote_workload"] for c in ends} == {"pod-a", "pod-b"}
      and any(c["local"].startswith(a4 + ":") for c in ends)
      and kinds and all(c[k] == "fastpath" for c in ends for k in kinds))
print(("ok: " if ok else "FAIL: ") + json.dumps(ends))
sys.exit(0 if ok else 1)
EOF
  ml_fail "conns does not show A -> $B4:8092 as a spliced fast-path connection: $(cat "$ML_WORKDIR/conns.check")"
ml_log "conns: $(cat "$ML_WORKDIR/conns.check")"
ctl conns
grep -E "$(mesh_re "$B4:8092")" <<<"$CTL_OUT" >&2 || true

ml_log "13. ON: a connect loop A -> B:8090"
snap 0
ll_connrate_client LOOP loop "$REL_A" "$B4:8090" 4 1
LOOP_BASE=0
host_wait_for "$ML_WAIT_S" loop_made 200 || ml_fail "the connect loop did not make 200 connections"
made=$(loop_conns)
snap 1
ml_show_delta s0 s1
(($(d fast_path_connections) >= made)) ||
  ml_fail "on: fast_path_connections rose by $(d fast_path_connections) for $made connections"
mesh_assert_flat s0 s1 on intercepted_outbound
expect_sessions on
ml_log "on: $made connections of the loop, fast_path_connections +$(d fast_path_connections)"

ml_log "13. OFF: pod-a's fast_path = false, SIGHUP"
switch_fast_path off false
mesh_assert_flat s0 s1 off fast_path_connections
(($(d intercepted_outbound) >= made - 4)) ||
  ml_fail "off: intercepted_outbound rose by $(d intercepted_outbound) for $made connections"
(($(sess a-outbound) >= made - 4 && $(sess b-inbound) >= made - 4)) ||
  ml_fail "off: the sidecars accepted $(sess a-outbound) (A outbound) and $(sess b-inbound) (B inbound) sessions for $made connections"
for ll in ll-fp-nb ll-fp-blk; do ll_checkpoint "$ll" "switching off"; done
ll_connrate_checkpoint pfp "$PFP" "switching off"
snap 0
ll_connrate_client PSC psc "$REL_A" "$B4:8091" 2 0
ll_start ll-sc nb "$REL_B" "0.0.0.0:8094" "$REL_A" "$B4:8094"
sc_up() { [[ $(peers_on "$REL_B" 8091) == "${REL_SRC}x2 ${A4}x4 " ]]; }
host_wait_for "$ML_WAIT_S" sc_up ||
  ml_fail "off: B:8091's connections come from $(peers_on "$REL_B" 8091), expected 2 from $REL_SRC (sidecar) and 4 from $A4"
snap 1
mesh_assert_flat s0 s1 off-established fast_path_connections
(($(sess a-outbound) >= 3 && $(sess b-inbound) >= 3)) ||
  ml_fail "off: the new persistent connections and stream did not pass the sidecars"
[[ $(ll_server_peer ll-sc) == "$REL_SRC" ]] ||
  ml_fail "off: the stream A -> B:8094 was not accepted from $REL_SRC: $(cat "$ML_WORKDIR/ll-sc.server.err")"

ml_log "13. ON again: pod-a's fast_path = true, SIGHUP"
switch_fast_path on-again true
mesh_assert_flat s0 s1 on-again intercepted_outbound
(($(d fast_path_connections) >= made - 4)) ||
  ml_fail "on-again: fast_path_connections rose by $(d fast_path_connections) for $made connections"
(($(sess a-outbound) <= 4 && $(sess b-inbound) <= 4)) ||
  ml_fail "on-again: the sidecars accepted $(sess a-outbound) (A outbound) and $(sess b-inbound) (B inbound) sessions: more than the 4 connections that may have been in flight"
for ll in ll-fp-nb ll-fp-blk ll-sc; do ll_checkpoint "$ll" "switching on again"; done
ll_connrate_checkpoint pfp "$PFP" "switching on again"
ll_connrate_checkpoint psc "$PSC" "switching on again"
[[ $(peers_on "$REL_B" 8091) == "${REL_SRC}x2 ${A4}x4 " ]] ||
  ml_fail "on-again: B:8091's connections come from $(peers_on "$REL_B" 8091), expected the same 2 from $REL_SRC and 4 from $A4"

ml_log "13. the end of the load"
ml_connrate_stop "$LOOP" "$ML_WORKDIR/loop.out" "the connect loop across the switches" 600
ml_connrate_stop "$PFP" "$ML_WORKDIR/pfp.out" "the fast-path persistent connections" 0
ml_connrate_stop "$PSC" "$ML_WORKDIR/psc.out" "the sidecar persistent connections" 0
ll_finish ll-fp-nb "$A4"
ll_finish ll-fp-blk "$A4"
ll_finish ll-sc "$REL_SRC"

# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
ml_log "14. conns: a spliced sidecar hop to B's mesh port 15020 is not fastpath"
snap 0
ll_start ll-mesh-port nb "$REL_B" "0.0.0.0:15020" "$REL_A" "$B4:15020"
snap 1
ml_show_delta s0 s1
expect_sessions mesh-port-stream a-outbound
mesh_assert_flat s0 s1 mesh-port-stream fast_path_connections
mesh_assert_flat s0 s1 mesh-port-stream spliced_fast_path
expect_eq mesh-port-stream spliced_app_to_proxy "$(d spliced_app_to_proxy)" 1
expect_eq mesh-port-stream spliced_other "$(d spliced_other)" 1
ctl -o json conns --limit 0
"$PYTHON" - "$CTL_OUT" "$A4" "$B4:15020" >"$ML_WORKDIR/conns15.check" 2>&1 <<'EOF' ||
import json, sys
j, a4, b = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
ends = [c for c in j["connections"] if b in (c["local"], c["remote"])]
ok = (len(ends) == 2 and all(c["peer_in_map"] for c in ends)
      and any(c["local"].startswith(a4 + ":") for c in ends)
      and all(c.get("kind") not in (None, "fastpath") for c in ends))
print(("ok: " if ok else "FAIL: ") + json.dumps(ends))
sys.exit(0 if ok else 1)
EOF
  ml_fail "14: conns shows A's sidecar -> $B4:15020 (a sidecar hop: spliced_other +1, spliced_fast_path +0) as: $(cat "$ML_WORKDIR/conns15.check")"
ml_log "14: $(cat "$ML_WORKDIR/conns15.check")"
ll_finish ll-mesh-port "$A4"

# ---------------------------------------------------------------------------------------------
ml_log "15. socket storage: only where something reads it"
# sockstate CASE ARGS...: ml_sockstate in the test cgroup (it enters the namespaces itself, so
# the bpffs directory stays visible); its JSON line in SOCKSTATE_OUT, ml_fail on any error.
sockstate() {
  local label=$1
  shift
  SOCKSTATE_OUT=$(host_in "$ML_CG" - "$ML_SOCKSTATE" --maps "$ML_BPFFS_DIR" "$@" \
    2>"$ML_WORKDIR/sockstate.$label.err") ||
    ml_fail "15 $label: ml_sockstate failed: $(cat "$ML_WORKDIR/sockstate.$label.err") $SOCKSTATE_OUT"
  ml_log "15 $label: $SOCKSTATE_OUT"
}
# expect_storage LABEL EXPR: the Python expression EXPR over ml_sockstate's JSON `j` holds.
expect_storage() {
  [[ $(json_eval "$SOCKSTATE_OUT" "$2") == true ]] || ml_fail "15 $1: not $2 in: $SOCKSTATE_OUT"
}
NS_A=/run/netns/$REL_A
NS_B=/run/netns/$REL_B
snap 0
sockstate spliced --server-netns "$NS_B" --client-netns "$NS_A" --connect "$B4:8095"
snap 1
expect_eq storage-spliced spliced_fast_path "$(d spliced_fast_path)" 1
# Both ends are sockhash members and keep their state; the client's fast-path connect left no
# separate listener answer (its own condition was that listener).
expect_storage spliced 'j["client"] == {"sockstate": True, "hop": 4, "fallback": 0, "has_orig_dst": 0, "pairing": 0, "srvlistener": False}'
# The server end was judged non-blocking by the mark its listener's flags passed on: it
# carries no listener record (none is cloned from a non-blocking listener).
expect_storage spliced 'j["server"] == {"sockstate": True, "hop": 4, "fallback": 0, "has_orig_dst": 0, "pairing": 0, "srvlistener": False, "listenmode": False}'
snap 0
sockstate blocking --blocking --server-netns "$NS_B" --client-netns "$NS_A" --connect "$B4:8096"
snap 1
expect_eq storage-blocking fast_path_connections "$(d fast_path_connections)" 1
expect_eq storage-blocking sockets_skipped_blocking "$(d sockets_skipped_blocking)" 2
mesh_assert_flat s0 s1 storage-blocking spliced_fast_path
# Unspliced: the client keeps what its connect hook recorded (the hop); the server end, which
# nothing reads, has no state of its own, only its blocking listener's record (1: blocking).
expect_storage blocking 'j["client"] == {"sockstate": True, "hop": 4, "fallback": 1, "has_orig_dst": 0, "pairing": 0, "srvlistener": False}'
expect_storage blocking 'j["server"] == {"sockstate": False, "srvlistener": False, "listenmode": 1}'
# A socket that connects again after a refused fast-path connect: B's app listens on 8097 (so
# the fast path applies) but B's firewall resets the SYN. The same socket then connects to a
# listener in its own pod (not intercepted, hop "other"): nothing of the first connect is left.
ml_bg REFUSED_SRV "$ML_WORKDIR/refused.out" "$ML_WORKDIR/refused.err" "$ML_CG" "$REL_B" \
  "$ML_XFER" server --listen "0.0.0.0:8097" --connections 1 --nonblocking
ml_wait_listen "$REL_B" 8097
host_in - "$REL_B" iptables -w -A INPUT -p tcp --dport 8097 --syn -j REJECT --reject-with tcp-reset ||
  ml_fail "15: cannot add the reject rule in $REL_B"
snap 0
sockstate reconnect --server-netns "$NS_A" --client-netns "$NS_A" --refused "$B4:8097" \
  --connect "127.0.0.1:8098"
snap 1
host_in - "$REL_B" iptables -w -D INPUT -p tcp --dport 8097 --syn -j REJECT --reject-with tcp-reset ||
  ml_fail "15: cannot remove the reject rule in $REL_B"
host_kill_pid "$REFUSED_SRV"
expect_eq storage-reconnect fast_path_connections "$(d fast_path_connections)" 1
mesh_assert_flat s0 s1 storage-reconnect spliced_fast_path
expect_eq storage-reconnect spliced_other "$(d spliced_other)" 1
expect_storage reconnect 'j["client"]["sockstate"] and j["client"]["hop"] == 0 and j["client"]["has_orig_dst"] == 0 and j["client"]["fallback"] == 0'
# Its connect found the listener in its own pod (what sock_ops then judged it by); the server
# end, accepted by a non-blocking listener, carries no cloned record.
expect_storage reconnect 'j["client"]["srvlistener"] and j["server"]["listenmode"] == False'
mesh_assert_no_iptables "$REL_B"

# ---------------------------------------------------------------------------------------------
ml_log "16. acceleration off: no listener record, no listener answer"
# Restarted with acceleration.enabled = false (a load-time setting): nothing would read what a
# connect found listening or a listener's mode, so neither is kept. The same loopback
# connection as 15's second one, in pod A: bytes checked, no storage on either end.
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "16: meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
sed -i 's/^enabled = true$/enabled = false/' "$CONFIG"
grep -qx 'enabled = false' "$CONFIG" || ml_fail "16: cannot turn acceleration off in $CONFIG"
ML_DAEMON_SEQ=$((ML_DAEMON_SEQ + 1))
ml_daemon_start_with_config "$CONFIG"
snap 0
sockstate accel-off --server-netns "$NS_A" --client-netns "$NS_A" --connect "127.0.0.1:8099"
snap 1
mesh_assert_flat s0 s1 accel-off spliced_other
expect_storage accel-off 'j["client"] == {"sockstate": False, "srvlistener": False}'
expect_storage accel-off 'j["server"] == {"sockstate": False, "srvlistener": False, "listenmode": False}'

# ---------------------------------------------------------------------------------------------
ml_log "SIGTERM + meshlaned --cleanup"
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
ml_daemon_cleanup
[[ ! -e $ML_BPFFS_DIR ]] || ml_fail "$ML_BPFFS_DIR still exists after meshlaned --cleanup"
[[ -z $(ml_cgroup_progs "$ML_CG") ]] || ml_fail "programs still attached to $ML_CG after meshlaned --cleanup"
ml_pass
