#!/usr/bin/env bash
# Why a connection was or was not intercepted and spliced: `meshlanectl monitor` events for the
# skip reasons, denied events with their policy rule, the back-pressure fallback, and
# `meshlanectl explain` answering from the daemon's decision log (daemon.decision_log).
# Pods A (198.18.0.10, workload pod-a) and B (198.18.0.11, not a workload) on a bridge; A's
# "sidecar" is an ml_xfer server on 127.0.0.1:15001. Node-wide acceleration.exclude_ports =
# [5401] and max_unread_bytes = 1 MiB; policy a-settings gives pod-a acceleration exclude_ports
# [5402] and interception exclude_outbound_ports [5404] and exclude_outbound_cidrs
# [198.18.0.12/32] (pod B's second address); policy a-out denies pod-a egress to
# 198.18.0.11/32 port 5407. With one `meshlanectl monitor -o json` running throughout, each of
# these real connections must show its event, and the count of each kind must equal the rise of
# its kernel counter:
#   - port:      a non-blocking pair on 127.0.0.1:5401 in A: "skipped" reason "port", twice
#                (sockets_skipped_port +2);
#   - workload:  the same on 5402: "skipped" reason "workload" (sockets_skipped_by_workload +2);
#   - peer:      a non-blocking client in the cgroup, its server on 5406 outside it: "skipped"
#                reason "peer" at the client end (sockets_skipped_peer +1);
#   - blocking:  a blocking pair on 5405: "skipped_blocking" reason "blocking" (+2);
#   - bypassed:  A's app to 198.18.0.11:5404: "bypassed" reason "excluded_port", and to
#                198.18.0.12:5403: reason "excluded_cidr"; both connections reached B itself
#                (bypassed_excluded +2); A's proxy uid (1337) to 198.18.0.11:5410: reason
#                "proxy", reached B itself (bypassed_proxy_own +1);
#   - denied:    A's app to 198.18.0.11:5407 fails with EPERM: "denied" with the rule a-out's
#                egress[0] ("rule_name": "a-out egress[0] deny") (denied_connect +1);
#   - intercepted and spliced: A's app to 198.18.0.11:8080 reaches the sidecar: "intercepted"
#                outbound and both ends "spliced", carrying orig_dst 198.18.0.11:8080;
#   - back-pressure: 32 MiB each way on 5408 with 4 KiB reads: "fallback" reason
#                "reader_behind" with unread_bytes above the limit, as many as
#                redirect_reader_behind rose.
# Then `meshlanectl explain -o json` says, for each: intercepted (outbound) and spliced; not
# spliced by "port", "workload", "peer", "blocking"; not intercepted by "excluded_port",
# "excluded_cidr" and "proxy"; denied
# by "a-out egress[0] deny"; fell back by "reader_behind"; and "no_record" with a note for a
# connection that never happened. The readable form says the same.
# Last, restarted with acceleration.enabled = false: a non-blocking pair on 5409 shows
# "skipped" reason "acceleration_off" at both ends, nothing is spliced, and explain says so.
# shellcheck source=control_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/control_lib.sh"

ctl_setup
ml_make_cgroup
ctl_make_pods POD_A POD_B
ctl_daemon_start "decision_log = 4096" "[acceleration]" "exclude_ports = [5401]" \
  "max_unread_bytes = 1048576"

ctl_ok workload add pod-a --netns "$POD_A" --ip 198.18.0.10 --ip fd00::10
# Pod B is no workload: its tc filters would steer pod A's connections to its inbound proxy.
grep -q 'explain: keeping the last 4096 datapath decisions' "$ML_DAEMON_LOG" ||
  ml_fail "the daemon did not start its decision log"

cat >"$ML_WORKDIR/policies.json" <<'J'
{"policies": [
  {"name": "a-settings", "workload": "pod-a",
   "acceleration": {"exclude_ports": [5402]},
   "interception": {"exclude_outbound_ports": [5404], "exclude_outbound_cidrs": ["198.18.0.12/32"]}},
  {"name": "a-out", "workload": "pod-a",
   "egress": [{"action": "deny", "to": [{"cidr": "198.18.0.11/32"}], "ports": [5407]}]}
]}
J
ctl_ok policy apply -f "$ML_WORKDIR/policies.json"

ml_bg MON_PID "$ML_WORKDIR/monitor.out" "$ML_WORKDIR/monitor.err" - - \
  "$MESHLANECTL" --socket "$CTL_SOCKET" -o json monitor
host_wait_for "$ML_WAIT_S" grep -q 'monitor: datapath now emits' "$ML_DAEMON_LOG" ||
  ml_fail "the monitor did not subscribe: $(cat "$ML_WORKDIR/monitor.err")"

ctl_ok -o json stats
echo "$CTL_OUT" >"$ML_WORKDIR/stats0.json"

NB=(--bytes 64K --timeout 60)
# port, workload: non-blocking pairs in pod A (both ends spliceable but for the port rules).
ml_xfer_pair "$ML_CG" "$POD_A" port "--listen 127.0.0.1:5401 --nonblocking" \
  "--connect 127.0.0.1:5401 --nonblocking" "${NB[@]}"
ml_xfer_pair "$ML_CG" "$POD_A" workload "--listen 127.0.0.1:5402 --nonblocking" \
  "--connect 127.0.0.1:5402 --nonblocking" "${NB[@]}"
# peer: the server outside the test cgroup ("-"), in the same namespace.
ml_xfer_server_bg PEER_PID - "$POD_A" peer --listen 127.0.0.1:5406 --nonblocking "${NB[@]}"
ml_xfer_client "$ML_CG" "$POD_A" peer --connect 127.0.0.1:5406 --nonblocking "${NB[@]}"
ml_xfer_wait_server "$PEER_PID" peer
ml_xfer_check peer "$ML__CLIENT_RC" "$ML__SERVER_RC"
# blocking: both ends blocking.
ml_xfer_pair "$ML_CG" "$POD_A" blocking "--listen 127.0.0.1:5405" "--connect 127.0.0.1:5405" \
  "${NB[@]}"
# bypassed: pod B serves 5404; pod A's app connect to it is not sent to the sidecar (nothing
# listens on 15001 yet: had it been intercepted, the transfer would fail).
ml_xfer_server_bg BYP_PID "$ML_CG" "$POD_B" bypassed --listen 0.0.0.0:5404 --nonblocking "${NB[@]}"
ml_xfer_client "$ML_CG" "$POD_A" bypassed --connect 198.18.0.11:5404 --nonblocking "${NB[@]}"
ml_xfer_wait_server "$BYP_PID" bypassed
ml_xfer_check bypassed "$ML__CLIENT_RC" "$ML__SERVER_RC"
# bypassed by CIDR: pod B's second address is in pod-a's exclude_outbound_cidrs.
ip -n "$POD_B" addr add 198.18.0.12/24 dev eth0 || ml_fail "cannot add 198.18.0.12 to pod B"
ml_xfer_server_bg CIDR_PID "$ML_CG" "$POD_B" cidr --listen 0.0.0.0:5403 --nonblocking "${NB[@]}"
ml_xfer_client "$ML_CG" "$POD_A" cidr --connect 198.18.0.12:5403 --nonblocking "${NB[@]}"
ml_xfer_wait_server "$CIDR_PID" cidr
ml_xfer_check cidr "$ML__CLIENT_RC" "$ML__SERVER_RC"
# bypassed as the proxy's own connect: pod-a's proxy uid (istio's 1337) to pod B, no workload.
ml_xfer_server_bg PROXY_PID "$ML_CG" "$POD_B" proxy --listen 0.0.0.0:5410 --nonblocking "${NB[@]}"
ML__CLIENT_RC=0
host_in "$ML_CG" "$POD_A" setpriv --reuid=1337 --regid=1337 --clear-groups "$ML_XFER" client \
  --connect 198.18.0.11:5410 --nonblocking "${NB[@]}" >"$ML_WORKDIR/proxy.client.out" \
  2>"$ML_WORKDIR/proxy.client.err" </dev/null || ML__CLIENT_RC=$?
ml_xfer_wait_server "$PROXY_PID" proxy
ml_xfer_check proxy "$ML__CLIENT_RC" "$ML__SERVER_RC"
# denied: the connect fails at once with EPERM.
cat >"$ML_WORKDIR/probe.py" <<'PY'
import errno, socket, sys
s = socket.socket()
s.settimeout(30)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
DENIED=$(host_in "$ML_CG" "$POD_A" "$PYTHON" "$ML_WORKDIR/probe.py" 198.18.0.11 5407)
[[ $DENIED == EPERM ]] || ml_fail "pod-a -> 198.18.0.11:5407 gave $DENIED, expected EPERM"
# intercepted and spliced: A's sidecar (non-blocking, in the cgroup) gets A's app connect.
ml_xfer_server_bg SIDE_PID "$ML_CG" "$POD_A" intercepted --listen 127.0.0.1:15001 --nonblocking \
  "${NB[@]}"
ml_xfer_client "$ML_CG" "$POD_A" intercepted --connect 198.18.0.11:8080 --nonblocking "${NB[@]}"
ml_xfer_wait_server "$SIDE_PID" intercepted
ml_xfer_check intercepted "$ML__CLIENT_RC" "$ML__SERVER_RC"
# back-pressure: readers far behind their writers (test_backpressure.sh).
ml_xfer_pair "$ML_CG" "$POD_A" behind "--listen 127.0.0.1:5408" "--connect 127.0.0.1:5408" \
  --bytes 32M --read-mode plain --max-read 4096 --nonblocking --min-write 1K --max-write 1M \
  --timeout 120

ctl_ok -o json stats
echo "$CTL_OUT" >"$ML_WORKDIR/stats1.json"

# The monitor has shown every event once the counts match (the stream lags a little).
cat >"$ML_WORKDIR/check.py" <<'PY'
import json, sys

work, final = sys.argv[1], sys.argv[2] == "final"
events = []
with open(f"{work}/monitor.out") as f:
    for line in f:
        if line.endswith("\n"):
            events.append(json.loads(line))
def counters(n):
    with open(f"{work}/stats{n}.json") as f:
        return json.load(f)["counters"]
before, after = counters(0), counters(1)
delta = {k: after[k] - before[k] for k in after}
problems = []
if any(e["type"] == "dropped" for e in events):
    print("FAIL: events were dropped:", [e for e in events if e["type"] == "dropped"])
    sys.exit(1)
def port_of(text):
    return int(text.rsplit(":", 1)[1]) if text else None
def on_port(e, port):
    return port in (port_of(e.get("src")), port_of(e.get("dst")), port_of(e.get("orig_dst")))
def kind(type_, reason, port):
    return [e for e in events if e["type"] == type_ and e.get("reason") == reason and on_port(e, port)]
def expect(what, got, want):
    if len(got) != want:
        problems.append(f"{what}: {len(got)} event(s), expected {want}")

expect("skipped port", kind("skipped", "port", 5401), 2)
expect("skipped port (counter)", [e for e in events if e["type"] == "skipped" and e["reason"] == "port"],
       delta["sockets_skipped_by_port"])
expect("skipped workload", kind("skipped", "workload", 5402), 2)
expect("skipped workload (counter)",
       [e for e in events if e["type"] == "skipped" and e["reason"] == "workload"],
       delta["sockets_skipped_by_workload"])
peer = kind("skipped", "peer", 5406)
expect("skipped peer", peer, 1)
if peer and peer[0]["side"] != "client":
    problems.append(f"skipped peer at the {peer[0]['side']} end: {peer[0]}")
expect("skipped peer (counter)",
       [e for e in events if e["type"] == "skipped" and e["reason"] == "peer"],
       delta["sockets_skipped_peer"])
expect("skipped_blocking", kind("skipped_blocking", "blocking", 5405), 2)
expect("skipped_blocking (counter)", [e for e in events if e["type"] == "skipped_blocking"],
       delta["sockets_skipped_blocking"])
def bypassed_by(*reasons):
    return [e for e in events if e["type"] == "bypassed" and e.get("reason") in reasons]
for reason, port, dst in (("excluded_port", 5404, "198.18.0.11:5404"),
                          ("excluded_cidr", 5403, "198.18.0.12:5403"),
                          ("proxy", 5410, "198.18.0.11:5410")):
    bypassed = kind("bypassed", reason, port)
    expect(f"bypassed {reason}", bypassed, 1)
    if bypassed and (bypassed[0]["workload"] != "pod-a" or bypassed[0]["dst"] != dst):
        problems.append(f"bypassed {reason} event: {bypassed[0]}")
expect("bypassed by a rule (counter)", bypassed_by("excluded_port", "excluded_cidr"),
       delta["bypassed_excluded"])
expect("bypassed proxy (counter)", bypassed_by("proxy"), delta["bypassed_proxy_own"])
denied = [e for e in events if e["type"] == "denied"]
expect("denied", denied, delta["denied_connect"])
expect("denied on 5407", [e for e in denied if on_port(e, 5407)], 1)
for e in denied:
    if e.get("rule_name") != "a-out egress[0] deny" or e.get("rule", 0) == 0:
        problems.append(f"denied event names the wrong rule: {e}")
intercepted = [e for e in events if e["type"] == "intercepted" and e.get("orig_dst") == "198.18.0.11:8080"]
expect("intercepted outbound", [e for e in intercepted if e["reason"] == "outbound"], 1)
spliced = [e for e in events if e["type"] == "spliced" and e.get("orig_dst") == "198.18.0.11:8080"]
expect("spliced ends carrying orig_dst 198.18.0.11:8080", spliced, 2)
behind = [e for e in events if e["type"] == "fallback" and e.get("reason") == "reader_behind"]
expect("fallback reader_behind", behind, delta["redirect_reader_behind"])
if delta["redirect_reader_behind"] < 1:
    print("FAIL: redirect_reader_behind did not rise: the limit was never hit")
    sys.exit(1)
for e in behind:
    if not on_port(e, 5408) or e.get("unread_bytes", 0) <= 1048576:
        problems.append(f"fallback event: {e}")
if problems:
    print("FAIL: " + "; ".join(problems))
    sys.exit(1 if final else 3)
print(f"monitor: {len(events)} events, every kind as the counters say")
PY

check_monitor() { "$PYTHON" "$ML_WORKDIR/check.py" "$ML_WORKDIR" "$1" >"$ML_WORKDIR/check.txt"; }
end=$((SECONDS + ML_WAIT_S))
until check_monitor retry; do
  rc=$?
  [[ $rc -eq 3 ]] || ml_fail "$(cat "$ML_WORKDIR/check.txt")"
  ((SECONDS < end)) || { check_monitor final || ml_fail "$(cat "$ML_WORKDIR/check.txt")"; }
  sleep 0.2
done
ml_log "$(cat "$ML_WORKDIR/check.txt")"
kill -INT "$MON_PID"
host_wait_exit "$MON_PID" || ml_fail "meshlanectl monitor still runs after SIGINT"
wait "$MON_PID" || ml_fail "meshlanectl monitor exited with status $?"

# ---- explain --------------------------------------------------------------------------------
# explain_is SRC DST PART DECISION RULE: `meshlanectl -o json explain` says it.
explain_is() {
  local src=$1 dst=$2 part=$3 decision=$4 rule=$5 got
  ctl_ok -o json explain --src "$src" --dst "$dst"
  got=$(ctl_json "$CTL_OUT" "j['$part']['decision'] + ' ' + str(j['$part']['rule'])")
  [[ $got == "$decision $rule" ]] ||
    ml_fail "explain $src -> $dst: $part is \"$got\", expected \"$decision $rule\": $CTL_OUT"
  ml_log "explain $src -> $dst: $part $got"
}
explain_is 198.18.0.10 198.18.0.11:8080 interception intercepted outbound
explain_is 198.18.0.10 198.18.0.11:8080 splicing spliced None
# The same with the app socket's own address and port, as the monitor showed it.
APP_END=$(ctl_json "$(grep '"spliced"' "$ML_WORKDIR/monitor.out" | grep '"client"' |
  grep '198.18.0.11:8080' | head -n1)" 'j["src"]')
explain_is "$APP_END" 198.18.0.11:8080 interception intercepted outbound
explain_is "$APP_END" 198.18.0.11:8080 splicing spliced None
explain_is 127.0.0.1 127.0.0.1:5401 splicing not_spliced port
explain_is 127.0.0.1 127.0.0.1:5401 interception not_intercepted loopback
explain_is 127.0.0.1 127.0.0.1:5402 splicing not_spliced workload
explain_is 127.0.0.1 127.0.0.1:5406 splicing not_spliced peer
explain_is 127.0.0.1 127.0.0.1:5405 splicing not_spliced blocking
explain_is 198.18.0.10 198.18.0.11:5404 interception not_intercepted excluded_port
explain_is 198.18.0.10 198.18.0.12:5403 interception not_intercepted excluded_cidr
explain_is 198.18.0.10 198.18.0.11:5410 interception not_intercepted proxy
explain_is 198.18.0.10 198.18.0.11:5407 interception denied "a-out egress[0] deny"
explain_is 127.0.0.1 127.0.0.1:5408 splicing fell_back reader_behind
explain_is 198.18.0.10 198.18.0.11:9999 interception no_record None
ctl_assert_json "$CTL_OUT" '"no record" in j["note"] and j["records"] == []' "explain, nothing recorded"
# The readable form.
ctl_ok explain --src 198.18.0.10 --dst 198.18.0.11:8080
grep -q 'interception: intercepted (rule: outbound)' <<<"$CTL_OUT" || ml_fail "explain text: $CTL_OUT"
grep -q 'splicing: spliced' <<<"$CTL_OUT" || ml_fail "explain text: $CTL_OUT"
ml_log "meshlanectl explain --src 198.18.0.10 --dst 198.18.0.11:8080:"$'\n'"$CTL_OUT"
ctl_ok explain --src 127.0.0.1 --dst 127.0.0.1:5402
grep -q 'splicing: not_spliced (rule: workload)' <<<"$CTL_OUT" || ml_fail "explain text: $CTL_OUT"
ml_log "meshlanectl explain --src 127.0.0.1 --dst 127.0.0.1:5402:"$'\n'"$CTL_OUT"
ctl explain --dst nonsense
ctl_expect_rc 2 "explain with a bad --dst"

# ---- acceleration off -----------------------------------------------------------------------
# acceleration.enabled = false is given at load time (a restart): sock_ops still sees every
# socket and says why it stays out, "skipped" reason "acceleration_off" at both ends.
ml_daemon_stop
ctl_daemon_start "decision_log = 4096" "[acceleration]" "enabled = false"
ml_bg MON2_PID "$ML_WORKDIR/monitor2.out" "$ML_WORKDIR/monitor2.err" - - \
  "$MESHLANECTL" --socket "$CTL_SOCKET" -o json monitor
host_wait_for "$ML_WAIT_S" grep -q 'monitor: datapath now emits' "$ML_DAEMON_LOG" ||
  ml_fail "the second monitor did not subscribe: $(cat "$ML_WORKDIR/monitor2.err")"
ctl_ok -o json stats
ADDED0=$(ctl_json "$CTL_OUT" 'j["counters"]["sockets_added"]')
ml_xfer_pair "$ML_CG" "$POD_A" accel-off "--listen 127.0.0.1:5409 --nonblocking" \
  "--connect 127.0.0.1:5409 --nonblocking" "${NB[@]}"
accel_off_events() {
  grep '"skipped"' "$ML_WORKDIR/monitor2.out" | grep '"acceleration_off"' | grep -c ':5409"' || true
}
host_wait_for "$ML_WAIT_S" eval '(($(accel_off_events) >= 2))' ||
  ml_fail "acceleration off: $(accel_off_events) skipped/acceleration_off event(s) on port 5409, expected 2: $(cat "$ML_WORKDIR/monitor2.out")"
ctl_ok -o json stats
[[ $(ctl_json "$CTL_OUT" 'j["counters"]["sockets_added"]') == "$ADDED0" ]] ||
  ml_fail "acceleration off: sockets_added rose from $ADDED0: $CTL_OUT"
ml_log "acceleration off: both ends of 127.0.0.1:5409 skipped with reason acceleration_off, none spliced"
explain_is 127.0.0.1 127.0.0.1:5409 splicing not_spliced acceleration_off
kill -INT "$MON2_PID"
host_wait_exit "$MON2_PID" || ml_fail "the second monitor still runs after SIGINT"
ml_pass
