#!/usr/bin/env bash
# Adaptive splicing (acceleration.adaptive_splicing, on by default): a server port whose
# spliced connections carry only a few messages each stops splicing its new ones, watches one in
# 16 of them unspliced as samples, and splices again once a sample shows its connections got
# longer (bpf/include/meshlane/port_use.h).
# Each phase is one run of port_use.py: N connections one after the other, non-blocking on both
# ends, the server greeting first and echoing R requests of 64 bytes, every byte checked.
# Counter deltas read from the kernel:
#   1. 160 one-request connections to 127.0.0.1:5501 in pod A (every end sends fewer than 4
#      messages): the first 32 are spliced while the port is judged (64 ends), then every one
#      is skipped: sockets_skipped_short >= 100, spliced_other <= 36, spliced_other +
#      sockets_skipped_short = 160 (every connection is one or the other), sockets_sampled_short
#      = one in 16 of the skipped, redirect_failed + 0, and `meshlanectl monitor --type
#      skipped_short` shows one event per skipped client end, each to port 5501, reason "short";
#      1b. one more connection to 5501 (ml_sockstate, 64 KiB each way): skipped as short, and
#      its client end has no listener answer (ml_srvlistener_v1, read back by socket: the
#      connect hook took the decision and kept none);
#   2. 40 connections of 8 requests to 5502: all spliced, none skipped;
#   3. 5501's connections turn persistent (8 requests): the first sample among them (one in 16
#      skipped) judges it busy again, so at most 16 are skipped, exactly one of them a sample,
#      then 40 more are all spliced and none skipped;
#   3b. 160 one-request connections make 5504 short; then 16 streams to it are opened and kept
#      open (the client sends one request, the server answers with 1 MiB): one of them is a
#      sample, whose server end its client end's ACKs judge busy while it is open, so a probe
#      connection made while all 16 are still open is spliced (samples +1, spliced >= 1,
#      spliced + skipped = 17);
#   4. through the HAProxy sidecars of pods A and B (Istio rules, meshlane interception), an
#      app in A makes 160 one-request connections to B:7001, then 20 of 8 requests to B:7002.
#      Every connection crosses the sidecars' shared ports 15001 and 15006, so the hops are
#      judged by the port the app asked for: the 7001 hops are skipped (sockets_skipped_short
#      >= 200 of the 3 x 160 client ends), while every hop of every 7002 connection is spliced
#      (spliced_app_to_proxy, spliced_proxy_to_proxy, spliced_proxy_to_app + 20 each, nothing
#      skipped as short);
#   5. with adaptive_splicing = false, 160 one-request connections to 5503 are all spliced.
# shellcheck source=mesh_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"

MESHLANECTL=${MESHLANECTL:-$MESHLANE_BIN/meshlanectl}
UID_PROXY=1337
TOOL=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/port_use.py
ML_COUNTERS+=" sockets_sampled_short"

mesh_setup
ml_require_meshlane
ml_require_cmd python3 timeout
[[ -x $MESHLANECTL ]] || ml_fail "meshlanectl not found at $MESHLANECTL (set MESHLANE_BIN)"
ml_make_cgroup
mesh_make_node
mesh_add_pod POD_A a 10
mesh_add_pod POD_B b 11
mesh_assert_no_iptables "$POD_A" "$POD_B"
IP_B=$(mesh_v4 11)

mesh_workload pod-a "$POD_A" "\"$(mesh_v4 10)\"" istio
mesh_workload pod-b "$POD_B" "\"$IP_B\"" istio
ml_daemon_start "${MESH_WL_LINES[@]}"
SOCKET="$ML_WORKDIR/meshlane.sock"

# run_phase NAME CONNECTIONS ROUNDS PORT [HOST]: port_use.py in pod A (server and client, or
# only the client when HOST is given: the server then runs in pod B; PHASE_ARGS are passed on to
# it), with counter deltas
# around it in SPLICED (spliced_other), SKIPPED (sockets_skipped_short), SAMPLED
# (sockets_sampled_short) and FAILED (redirect_failed); the snapshots are phase_before and phase_after.
PHASE_ARGS=()
run_phase() {
  local name=$1 connections=$2 rounds=$3 port=$4 host=${5:-} out="$ML_WORKDIR/$1.out" rc=0
  local server_pid="" json
  local args=(--port "$port" --connections "$connections" --rounds "$rounds" "${PHASE_ARGS[@]}")
  if [[ -n $host ]]; then
    ml_bg server_pid "$ML_WORKDIR/$name.server.out" "$ML_WORKDIR/$name.server.err" "$ML_CG" \
      "$POD_B" python3 "$TOOL" "${args[@]}" --role server --host 0.0.0.0
    ml_wait_listen "$POD_B" "$port"
    args+=(--role client --host "$host")
  fi
  ml_snapshot phase_before
  host_in "$ML_CG" "$POD_A" timeout -k 5 300 python3 "$TOOL" "${args[@]}" >"$out" 2>&1 \
    </dev/null || rc=$?
  if [[ -n $server_pid ]]; then
    host_wait_exit "$server_pid" || ml_fail "$name: the server in pod B did not finish"
    wait "$server_pid" || rc=$?
  fi
  ml_snapshot phase_after
  ml_show_delta phase_before phase_after
  json=$(tail -n1 "$out")
  if [[ $rc -ne 0 || $(ml_json_field "$json" ok) != true ]]; then
    cat "$out" "$ML_WORKDIR/$name.server."* >&2 2>/dev/null
    ml_fail "$name: port_use.py failed (exit $rc)"
  fi
  SPLICED=$(ml_delta phase_before phase_after spliced_other)
  SKIPPED=$(ml_delta phase_before phase_after sockets_skipped_short)
  SAMPLED=$(ml_delta phase_before phase_after sockets_sampled_short)
  FAILED=$(ml_delta phase_before phase_after redirect_failed)
  ml_log "$name: $connections connections of $rounds request(s) to ${host:-127.0.0.1}:$port:" \
    "spliced $SPLICED, skipped as short $SKIPPED (samples $SAMPLED)"
  [[ $FAILED -eq 0 ]] || ml_fail "$name: redirect_failed rose by $FAILED"
}

# loopback_phase NAME PORT CONNECTIONS ROUNDS: a run_phase inside pod A, where every connection
# is either spliced or skipped as short.
loopback_phase() {
  run_phase "$1" "$3" "$4" "$2"
  [[ $((SPLICED + SKIPPED)) -eq $3 ]] ||
    ml_fail "$1: $SPLICED spliced + $SKIPPED skipped as short != $3 connections"
}

# ---- 1: a port of one-request connections, watched by the monitor -----------------------------
# The monitor's event gate (ml_monitor_v1[0]) has the skipped_short bit once it is attached.
gate_has_skipped_short() { ((($(ml_monitor_slot 0) >> 7) & 1)); }
monitor_caught_up() { [[ $(grep -c skipped_short "$ML_WORKDIR/monitor.out") -ge $SKIPPED ]]; }

ml_bg MONITOR_PID "$ML_WORKDIR/monitor.out" "$ML_WORKDIR/monitor.err" - - \
  "$MESHLANECTL" --socket "$SOCKET" -o json monitor --type skipped_short
host_wait_for "$ML_WAIT_S" gate_has_skipped_short ||
  ml_fail "meshlanectl monitor --type skipped_short did not attach: $(cat "$ML_WORKDIR/monitor.err")"

loopback_phase short-port 5501 160 1
[[ $SKIPPED -ge 100 ]] ||
  ml_fail "short-port: only $SKIPPED of 160 one-request connections were skipped as short"
[[ $SPLICED -ge 32 && $SPLICED -le 36 ]] ||
  ml_fail "short-port: $SPLICED spliced, not the 32 of the judging (up to 36 with late judgements)"
# The port's count of skipped connections starts with this phase: every 16th is a sample.
[[ $SAMPLED -eq $((SKIPPED / 16)) ]] ||
  ml_fail "short-port: $SAMPLED samples among $SKIPPED skipped connections, not one in 16"
# Every event is in the ring by now (emitted before connect() returned); give the monitor time
# to print them, then stop it as Ctrl-C would.
host_wait_for "$ML_WAIT_S" monitor_caught_up || true
kill -INT "$MONITOR_PID"
host_wait_exit "$MONITOR_PID" || ml_fail "meshlanectl monitor still runs after SIGINT"
EVENTS=$(grep -c '"type":"skipped_short"' "$ML_WORKDIR/monitor.out" || true)
ON_PORT=$(grep '"type":"skipped_short"' "$ML_WORKDIR/monitor.out" |
  grep -c '"dst":"127.0.0.1:5501".*"reason":"short".*"side":"client"' || true)
[[ $EVENTS -eq $SKIPPED && $ON_PORT -eq $SKIPPED ]] || {
  head -n5 "$ML_WORKDIR/monitor.out" >&2
  ml_fail "monitor: $EVENTS skipped_short events ($ON_PORT client ends to 5501 with reason short), counter rose by $SKIPPED"
}
ml_log "monitor: $EVENTS skipped_short events, all client ends to 5501"

# ---- 1b: what a skipped connection costs: no listener answer on its client end ----------------
# The connect hook takes the decision for 5501, now short: a connection it keeps unspliced gets
# no answer (ml_srvlistener_v1), a sample neither (it stays unspliced too). ml_sockstate reads
# both ends' storage back from the kernel (64 KiB each way, every byte checked).
ml_snapshot short_before
STATE=$(host_in "$ML_CG" - "$ML_SOCKSTATE" --maps "$ML_BPFFS_DIR" \
  --server-netns "/run/netns/$POD_A" --client-netns "/run/netns/$POD_A" \
  --connect 127.0.0.1:5501 2>"$ML_WORKDIR/sockstate.err") ||
  ml_fail "short-port storage: ml_sockstate failed: $(cat "$ML_WORKDIR/sockstate.err") $STATE"
ml_snapshot short_after
SHORT=$(ml_delta short_before short_after sockets_skipped_short)
SPLICED=$(ml_delta short_before short_after spliced_other)
ANSWERED=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["client"]["srvlistener"]))' "$STATE")
ml_log "short-port storage: skipped_short +$SHORT, spliced_other +$SPLICED: $STATE"
[[ $SHORT -eq 1 && $SPLICED -eq 0 ]] ||
  ml_fail "short-port storage: skipped_short +$SHORT and spliced_other +$SPLICED for one connection"
[[ $ANSWERED -eq 0 ]] || ml_fail "short-port storage: a skipped client end has a listener answer: $STATE"

# ---- 2, 3: a port of persistent connections; the short port turning persistent ----------------
loopback_phase busy-port 5502 40 8
[[ $SPLICED -eq 40 && $SKIPPED -eq 0 ]] ||
  ml_fail "busy-port: $SPLICED of 40 spliced, $SKIPPED skipped"

loopback_phase turning-busy 5501 300 8
[[ $SKIPPED -le 16 && $SAMPLED -eq 1 ]] ||
  ml_fail "turning-busy: $SKIPPED of 300 skipped, $SAMPLED of them samples: the first sample did not turn the judgement"
loopback_phase turned-busy 5501 40 8
[[ $SPLICED -eq 40 && $SKIPPED -eq 0 ]] ||
  ml_fail "turned-busy: $SPLICED of 40 spliced, $SKIPPED skipped"

# ---- 3b: a sample judged while it is open: a stream to its client ------------------------------
# 5504 turns short on 160 one-request connections. Then 16 streams are opened and kept open (on
# each the client sends one request and reads 1 MiB back, at least 16 segments): 16 skipped
# connections in a row hold exactly one sample. Its client end sent one segment; the ACKs it
# sends for the stream call it back (the header-option callback), which judges the server end
# busy while the stream is open. So the probe connection made next, with every stream still
# open, is spliced: no connection has closed that could have judged the port otherwise.
loopback_phase stream-judged 5504 160 1
[[ $SKIPPED -ge 100 ]] || ml_fail "stream-judged: only $SKIPPED of 160 one-request connections were skipped as short"
PHASE_ARGS=(--stream 1048576)
run_phase streams-open 16 1 5504
PHASE_ARGS=()
[[ $SAMPLED -eq 1 && $SKIPPED -le 16 && $SPLICED -ge 1 && $((SPLICED + SKIPPED)) -eq 17 ]] ||
  ml_fail "streams-open: $SKIPPED skipped ($SAMPLED samples) and $SPLICED spliced of 16 open streams and a probe: the open sample did not turn the judgement"

# ---- 4: through the sidecars, judged by the port the app asked for ----------------------------
mesh_start_haproxy PA "$POD_A" hap-a "$UID_PROXY" 15001 15006 127.0.0.6
mesh_start_haproxy PB "$POD_B" hap-b "$UID_PROXY" 15001 15006 127.0.0.6

run_phase mesh-short 160 1 7001 "$IP_B"
MESH_SKIPPED=$SKIPPED
OUTBOUND=$(ml_delta phase_before phase_after intercepted_outbound)
[[ $OUTBOUND -eq 160 ]] || ml_fail "mesh-short: intercepted_outbound rose by $OUTBOUND, not 160"
[[ $MESH_SKIPPED -ge 200 ]] ||
  ml_fail "mesh-short: only $MESH_SKIPPED of 480 client ends (3 hops x 160) skipped as short"

run_phase mesh-busy 20 8 7002 "$IP_B"
for hop in spliced_app_to_proxy spliced_proxy_to_proxy spliced_proxy_to_app; do
  n=$(ml_delta phase_before phase_after "$hop")
  [[ $n -eq 20 ]] || ml_fail "mesh-busy: $hop rose by $n, not 20 (one per connection)"
done
[[ $SKIPPED -eq 0 ]] ||
  ml_fail "mesh-busy: $SKIPPED client ends skipped as short: the sidecars' ports were judged"
ml_log "mesh: 7001's hops skipped $MESH_SKIPPED times, every hop of 7002's connections spliced"

# ---- 5: adaptive splicing off ------------------------------------------------------------------
ml_daemon_stop
ml_daemon_start "adaptive_splicing = false" "${MESH_WL_LINES[@]}"
loopback_phase not-adaptive 5503 160 1
[[ $SPLICED -eq 160 && $SKIPPED -eq 0 ]] ||
  ml_fail "not-adaptive: $SPLICED of 160 spliced, $SKIPPED skipped"

ml_pass
