#!/usr/bin/env bash
# L4 policy end to end, driven with meshlanectl: pods A (labels app=client) and B (app=server)
# are istio-style workloads on a bridge; the node namespace (198.18.0.1, not a workload) plays
# a client from off the pods. Checked, each time against what the listeners actually accepted
# and the kernel's counters:
#   - no policy: everything connects;
#   - B allows app=client on 8080 only: A -> B:8080 connects (to A's sidecar, as interception
#     wants), A -> B:8081 fails at once with EPERM, the node's SYN to B:8080 never reaches B;
#   - the reverse after an update (deny app=client, allow the node's /32): A fails, node passes;
#   - an egress deny on A, to a CIDR and port;
#   - per-workload and node-wide denial counters, policy get/del, bad policies, a non-root peer;
#   - the policy stays in force while meshlaned is stopped and after it restarts (state file);
#   - a policy's interception and acceleration settings (exclude a port, splicing off).
# shellcheck source=control_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/control_lib.sh"

ctl_setup
ml_make_cgroup
ctl_make_pods POD_A POD_B
ip -n "$CTL_NODE_NS" addr add 198.18.0.1/24 dev br0
ctl_daemon_start

ctl_ok workload add pod-a --netns "$POD_A" --ip 198.18.0.10 --ip fd00::10 --label app=client
ctl_ok workload add pod-b --netns "$POD_B" --ip 198.18.0.11 --ip fd00::11 --label app=server

# Listeners that log every connection they accept: A's outbound sidecar port (A's app connects
# are intercepted there) and B's inbound sidecar port (tc steers the node's connections there).
cat >"$ML_WORKDIR/listen.py" <<'PY'
import socket, sys
host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(64)
open(log + ".ready", "w").close()
while True:
    c, peer = s.accept()
    with open(log, "a") as f:
        f.write("%s %d\n" % (peer[0], peer[1]))
    c.close()
PY
# probe.py HOST PORT [LIMIT]: connects once (LIMIT seconds at most, default 1.5); prints ok, or
# the errno name and how long the failure took.
cat >"$ML_WORKDIR/probe.py" <<'PY'
import errno, json, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.settimeout(float(sys.argv[3]) if len(sys.argv) > 3 else 1.5)
t = time.monotonic()
try:
    s.connect((host, port))
    result = "ok"
except socket.timeout:
    result = "timeout"
except OSError as e:
    result = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps({"result": result, "ms": round((time.monotonic() - t) * 1000, 1)}))
PY

start_listener() {  # NS HOST PORT NAME
  local pid
  ml_bg pid "$ML_WORKDIR/$4.out" "$ML_WORKDIR/$4.err" "$ML_CG" "$1" "$PYTHON" \
    "$ML_WORKDIR/listen.py" "$2" "$3" "$ML_WORKDIR/$4.log"
  ml_wait_file "$ML_WORKDIR/$4.log.ready" "$pid" || ml_fail "listener $4 did not start: $(cat "$ML_WORKDIR/$4.err")"
  touch "$ML_WORKDIR/$4.log"
}
start_listener "$POD_A" :: 15001 sidecar-a
start_listener "$POD_B" 0.0.0.0 15006 inbound-b

# A connection from off the pods that the policy denies: socket-lookup steering (the default)
# refuses it (a reset); tc (ML_INBOUND_STEERING=tc) drops its SYN (the client times out).
OFF_POD_DENIED=ECONNREFUSED
[[ ${ML_INBOUND_STEERING:-sk_lookup} != tc ]] || OFF_POD_DENIED=timeout

# probe LABEL NS HOST PORT EXPECT: EXPECT is ok, EPERM, ECONNREFUSED or timeout; checks what the listener
# behind saw (sidecar-a for pod A's connects, inbound-b for the node's). A connect expected to
# get through may take as long as it needs (ML_WAIT_S at most); one whose SYN is expected to be
# dropped is given up after 1.5 s, which a slow machine can only make pass, not fail.
probe() {
  local label=$1 ns=$2 host=$3 port=$4 expect=$5 log before out result limit=1.5
  log=$([[ $ns == "$POD_A" ]] && echo sidecar-a || echo inbound-b)
  before=$(wc -l <"$ML_WORKDIR/$log.log")
  [[ $expect == timeout ]] || limit=$ML_WAIT_S
  out=$(host_in "$ML_CG" "$ns" "$PYTHON" "$ML_WORKDIR/probe.py" "$host" "$port" "$limit")
  result=$(ctl_json "$out" 'j["result"]')
  [[ $result == "$expect" ]] || ml_fail "$label: $host:$port gave $out, expected $expect"
  local seen=0
  # The listener logs a connection it accepted a moment after the connect returned.
  [[ $expect != ok ]] || host_wait_for "$ML_WAIT_S" log_grew "$log" "$before" || true
  seen=$(($(wc -l <"$ML_WORKDIR/$log.log") - before))
  if [[ $expect == ok ]]; then
    [[ $seen -eq 1 ]] || ml_fail "$label: connected, but $log accepted $seen connections"
  else
    [[ $seen -eq 0 ]] || ml_fail "$label: refused, yet $log accepted a connection"
  fi
  ml_log "$label: $host:$port from $([[ $ns == "$POD_A" ]] && echo pod-a || echo node) -> $out"
}

log_grew() { (($(wc -l <"$ML_WORKDIR/$1.log") > $2)); }  # NAME LINES

wl_counter() {  # WORKLOAD COUNTER
  ctl_ok -o json stats --workload "$1"
  ctl_json "$CTL_OUT" "j[\"counters\"][\"$2\"]"
}

# ---- no policy ----------------------------------------------------------------------------------
probe "no policy" "$POD_A" 198.18.0.11 8080 ok
probe "no policy" "$CTL_NODE_NS" 198.18.0.11 8080 ok
ctl_ok -o json policy get
ctl_assert_json "$CTL_OUT" 'j["total"] == 0' "no policies at start"

# ---- B accepts app=client on 8080 only ---------------------------------------------------------
cat >"$ML_WORKDIR/allow.json" <<'J'
{"policies": [{"name": "server-in", "selector": {"app": "server"},
  "ingress": [{"action": "allow", "from": [{"labels": {"app": "client"}}], "ports": [8080]}]}]}
J
DENIED_CONNECT=$(ctl_counter denied_connect)
DENIED_TC=$(ctl_counter denied_inbound_tc)
B_DENIED=$(wl_counter pod-b denied_connect)
ctl_ok policy apply -f "$ML_WORKDIR/allow.json"
grep -q '^policy server-in: added$' <<<"$CTL_OUT" || ml_fail "policy apply printed: $CTL_OUT"
probe "allow app=client:8080" "$POD_A" 198.18.0.11 8080 ok
probe "allow app=client:8080" "$POD_A" fd00::11 8080 ok
probe "port not allowed" "$POD_A" 198.18.0.11 8081 EPERM
probe "node not allowed" "$CTL_NODE_NS" 198.18.0.11 8080 "$OFF_POD_DENIED"
probe "node straight to the inbound port" "$CTL_NODE_NS" 198.18.0.11 15006 "$OFF_POD_DENIED"
[[ $(ctl_counter denied_connect) -eq $((DENIED_CONNECT + 1)) ]] ||
  ml_fail "denied_connect went from $DENIED_CONNECT to $(ctl_counter denied_connect), expected +1"
[[ $(ctl_counter denied_inbound_tc) -ge $((DENIED_TC + 1)) ]] ||
  ml_fail "denied_inbound_tc did not count the node's dropped SYN"
[[ $(wl_counter pod-b denied_connect) -eq $((B_DENIED + 1)) ]] || ml_fail "pod-b's denied_connect is not +1"
[[ $(wl_counter pod-a denied_connect) -eq 1 ]] || ml_fail "pod-a's denied_connect is not 1"
[[ $(wl_counter pod-b denied_inbound_tc) -ge 1 ]] || ml_fail "pod-b's denied_inbound_tc is not counted"
[[ $(wl_counter pod-a denied_inbound_tc) -eq 0 ]] || ml_fail "pod-a got pod-b's tc denial"
ml_log "allow rule enforced; denials counted node-wide and per workload"

# ---- the reverse after an update ------------------------------------------------------------------
cat >"$ML_WORKDIR/reverse.json" <<'J'
{"name": "server-in", "selector": {"app": "server"},
 "ingress": [{"action": "deny", "from": [{"workload": "pod-a"}]},
             {"action": "allow", "from": [{"cidr": "198.18.0.1/32"}], "ports": ["8000-8100"]}]}
J
ctl_ok -o json policy apply -f "$ML_WORKDIR/reverse.json"
ctl_assert_json "$CTL_OUT" 'j["outcomes"] == {"server-in": "replaced"} and j["kernel_entries"] > 0' "update outcome"
probe "reverse: pod-a denied" "$POD_A" 198.18.0.11 8080 EPERM
probe "reverse: node allowed" "$CTL_NODE_NS" 198.18.0.11 8080 ok
probe "reverse: node, other port" "$CTL_NODE_NS" 198.18.0.11 9999 "$OFF_POD_DENIED"
probe "reverse: node, inbound port" "$CTL_NODE_NS" 198.18.0.11 15006 "$OFF_POD_DENIED"
ml_log "after the update the verdicts are reversed"

# ---- monitor shows the denials --------------------------------------------------------------------
ml_bg MON_PID "$ML_WORKDIR/monitor.out" "$ML_WORKDIR/monitor.err" - - \
  "$MESHLANECTL" --socket "$CTL_SOCKET" -o json monitor --type denied --count 2
# The subscription is in place once the daemon has set the datapath's event gate for it.
host_wait_for "$ML_WAIT_S" grep -q 'monitor: datapath now emits denied' "$ML_DAEMON_LOG" ||
  ml_fail "the monitor did not subscribe: $(cat "$ML_WORKDIR/monitor.err")"
probe "monitored: pod-a denied" "$POD_A" 198.18.0.11 8080 EPERM
probe "monitored: node, other port" "$CTL_NODE_NS" 198.18.0.11 9999 "$OFF_POD_DENIED"
host_wait_exit "$MON_PID" || ml_fail "meshlanectl monitor --count 2 still runs $ML_WAIT_S s after the two denials"
wait "$MON_PID" || ml_fail "meshlanectl monitor --count 2 failed: $(cat "$ML_WORKDIR/monitor.err")"
"$PYTHON" - "$ML_WORKDIR/monitor.out" <<'PY' || ml_fail "monitor did not show the two denials: $(cat "$ML_WORKDIR/monitor.out")"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(events) == 2 and all(e["type"] == "denied" for e in events), events
ports = sorted(int(e["orig_dst"].rsplit(":", 1)[1]) for e in events)
assert ports == [8080, 9999], ports
PY
ml_log "monitor showed both denials (connect and tc)"

# ---- egress ------------------------------------------------------------------------------------------
cat >"$ML_WORKDIR/egress.json" <<'J'
{"policies": [{"name": "client-out", "workload": "pod-a",
  "egress": [{"action": "deny", "to": [{"cidr": "198.18.0.0/24"}], "ports": [7070]}]}]}
J
ctl_ok policy apply -f "$ML_WORKDIR/egress.json"
probe "egress deny" "$POD_A" 198.18.0.99 7070 EPERM
ctl_ok policy get
grep -qE '^client-out +workload pod-a +0 +1$' <<<"$CTL_OUT" || ml_fail "policy get table: $CTL_OUT"
grep -qE '^server-in +labels \{"app":"server"\} +2 +0$' <<<"$CTL_OUT" || ml_fail "policy get table: $CTL_OUT"
ctl_ok -o json policy get server-in
ctl_assert_json "$CTL_OUT" 'j["policies"][0]["ingress"][1]["ports"] == ["8000-8100"]' "policy get one"

# ---- bad policies and peers ---------------------------------------------------------------------
echo '{"name": "x", "workload": "pod-a", "ingress": [{"action": "allow", "ports": [0]}]}' >"$ML_WORKDIR/bad.json"
ctl -o json policy apply -f "$ML_WORKDIR/bad.json"
ctl_expect_rc 2 "invalid policy"
ctl_assert_json "$CTL_OUT" 'j["error"]["code"] == "invalid_params" and "ingress[0].ports[0]" in j["error"]["message"]' "invalid policy error"
echo '{not json' >"$ML_WORKDIR/bad2.json"
ctl policy apply -f "$ML_WORKDIR/bad2.json"
ctl_expect_rc 1 "policy file that is not JSON"
ctl_as 65534 65534 -o json policy apply -f "$ML_WORKDIR/allow.json"
ctl_expect_rc 3 "non-root peer (socket mode keeps it out)"
probe "bad input changed nothing" "$POD_A" 198.18.0.11 8080 EPERM

# ---- the policy outlives the daemon --------------------------------------------------------------
[[ -f $CTL_STATE_DIR/policies.json ]] || ml_fail "no policies.json in $CTL_STATE_DIR"
ml_daemon_stop
probe "daemon stopped: still denied" "$POD_A" 198.18.0.11 8080 EPERM
probe "daemon stopped: still allowed" "$CTL_NODE_NS" 198.18.0.11 8080 ok
ctl_daemon_start
ctl_ok -o json policy get
ctl_assert_json "$CTL_OUT" 'j["total"] == 2' "policies after restart"
probe "restarted: denied" "$POD_A" 198.18.0.11 8080 EPERM
probe "restarted: egress denied" "$POD_A" 198.18.0.99 7070 EPERM

# ---- delete -------------------------------------------------------------------------------------------
ctl_ok policy del server-in
ctl_ok policy del client-out
ctl policy del client-out
ctl_expect_rc 2 "deleting a missing policy"
probe "no policy again" "$POD_A" 198.18.0.11 8080 ok
probe "no policy again" "$CTL_NODE_NS" 198.18.0.11 8080 ok

# ---- interception and acceleration settings carried by a policy ---------------------------------
start_listener "$POD_B" 0.0.0.0 8080 app-b
# direct_or_sidecar: pod A's app connects to B:8080; prints who accepted it: sidecar-a (A's
# outbound proxy), or, when A's interception lets it pass, inbound-b (B's tc sends a client that
# did not come through a sidecar to B's inbound proxy) or app-b.
any_log_grew() {  # APP_LINES SIDECAR_LINES INBOUND_LINES
  log_grew app-b "$1" || log_grew sidecar-a "$2" || log_grew inbound-b "$3"
}
direct_or_sidecar() {
  local app sidecar inbound out
  app=$(wc -l <"$ML_WORKDIR/app-b.log")
  sidecar=$(wc -l <"$ML_WORKDIR/sidecar-a.log")
  inbound=$(wc -l <"$ML_WORKDIR/inbound-b.log")
  out=$(host_in "$ML_CG" "$POD_A" "$PYTHON" "$ML_WORKDIR/probe.py" 198.18.0.11 8080 "$ML_WAIT_S")
  [[ $(ctl_json "$out" 'j["result"]') == ok ]] || ml_fail "A -> B:8080 failed: $out"
  # The listener that accepted it logs it a moment later.
  host_wait_for "$ML_WAIT_S" any_log_grew "$app" "$sidecar" "$inbound" || true
  if (($(wc -l <"$ML_WORKDIR/app-b.log") > app)); then echo app-b; fi
  if (($(wc -l <"$ML_WORKDIR/sidecar-a.log") > sidecar)); then echo sidecar-a; fi
  if (($(wc -l <"$ML_WORKDIR/inbound-b.log") > inbound)); then echo inbound-b; fi
}
[[ $(direct_or_sidecar) == sidecar-a ]] || ml_fail "before the settings policy, A's connect must go to its sidecar"
cat >"$ML_WORKDIR/settings.json" <<'J'
{"name": "a-settings", "workload": "pod-a",
 "interception": {"exclude_outbound_ports": [8080]}, "acceleration": {"enabled": false}}
J
ctl_ok policy apply -f "$ML_WORKDIR/settings.json"
[[ $(direct_or_sidecar) == inbound-b ]] ||
  ml_fail "with exclude_outbound_ports [8080] from a policy, A's connect must bypass A's sidecar"
ctl_ok -o json workload get pod-a
ctl_assert_json "$CTL_OUT" 'j["spec"]["exclude_outbound_ports"] != [8080]' \
  "the workload's own settings are unchanged (the policy overlays them)"
SKIPPED=$(wl_counter pod-a sockets_skipped_by_workload)
ADDED=$(wl_counter pod-a sockets_added)
ctl_hold_start HOLD_PID "$POD_A" 9000
ctl_hold_finish "$HOLD_PID" 9000
[[ $(wl_counter pod-a sockets_skipped_by_workload) -eq $((SKIPPED + 2)) ]] ||
  ml_fail "acceleration off by policy: both ends of a loopback connection must be skipped"
[[ $(wl_counter pod-a sockets_added) -eq $ADDED ]] || ml_fail "acceleration off by policy, yet pod-a sockets were spliced"
ctl_ok policy del a-settings
[[ $(direct_or_sidecar) == sidecar-a ]] || ml_fail "after deleting the settings policy, A's connect must go to its sidecar again"
ml_log "interception and acceleration settings from a policy applied and removed"
ml_pass
