#!/usr/bin/env bash
# meshlanectl monitor against a real istio-style mesh (pods A .10 and B .11 with HAProxy
# sidecars as uid/gid 1337, no iptables; host X .100 stands in for another node):
#   - with no monitor attached the kernel gate (ml_monitor_v1[0]) is 0; while `meshlanectl
#     monitor` runs it holds the union of the subscribed types; once the last one exits it is 0
#     again;
#   - three A app -> B:8080 transfers (A's sidecar -> B's inbound sidecar -> B's app), one
#     X -> B:8080 (steered by tc) and one blocking loopback pair in A: `monitor -o json` shows
#     every one of them: intercepted outbound (dst A's sidecar 127.0.0.1:15001, orig_dst
#     B:8080), intercepted inbound_local (A's sidecar -> B's inbound port, orig_dst B:8080),
#     intercepted inbound_tc (from X, orig_dst B:8080), spliced sockets with the hop kind of
#     their client end, skipped "steered" for both ends of X's connection, skipped_blocking for
#     the blocking pair; the count of each kind equals
#     the rise of the matching counter in `meshlanectl stats -o json`; nothing was dropped;
#   - filters are applied by the daemon: `--type spliced --port 15006` and `--type intercepted
#     --workload pod-b` see exactly the matching subset of the unfiltered stream;
#   - a human-readable `monitor --type intercepted --count 2` exits 0 by itself after two
#     lines; the readable form has one line per JSON event, saying the same; Ctrl-C (SIGINT)
#     ends a monitor with status 0;
#   - with the daemon stopped (SIGSTOP) while a monitor is attached, loopback connections are
#     spliced (ml_connrate, until the datapath has counted events lost to the full ring): the
#     ring fills, and afterwards the monitor shows the events the ring held plus "dropped" lines
#     (kernel ring, client queue) that add up exactly to the rise of sockets_added;
#   - after a daemon restart (maps adopted, not cleaned up) the ring buffer still delivers.
# shellcheck source=mesh_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/mesh_lib.sh"

MESHLANECTL=${MESHLANECTL:-$MESHLANE_BIN/meshlanectl}
PYTHON=${PYTHON:-python3}
UID_PROXY=1337

mesh_setup
ml_require_meshlane
ml_require_cmd "$PYTHON" "$BPFTOOL"
[[ -x $MESHLANECTL ]] || ml_fail "meshlanectl not found at $MESHLANECTL (set MESHLANE_BIN)"
ml_make_cgroup
mesh_make_node
mesh_add_pod POD_A a 10
mesh_add_pod POD_B b 11
mesh_add_host HOST_X x 100
mesh_assert_no_iptables "$POD_A" "$POD_B" "$HOST_X"

MESH_WL_LINES=()
mesh_workload pod-a "$POD_A" '"198.18.0.10", "fd00::10"' istio
mesh_workload pod-b "$POD_B" '"198.18.0.11", "fd00::11"' istio
ml_daemon_start "${MESH_WL_LINES[@]}"
SOCKET="$ML_WORKDIR/meshlane.sock"

gate_mask() { ml_monitor_slot 0; }

# wait_gate EXPECTED: waits (ML_WAIT_S at most) for the gate to hold EXPECTED.
gate_is() { [[ $(gate_mask) == "$1" ]]; }
wait_gate() {
  host_wait_for "$ML_WAIT_S" gate_is "$1" || ml_fail "the event gate is $(gate_mask), expected $1"
}

# ctl_stats FILE: `meshlanectl stats -o json` into FILE.
ctl_stats() {
  "$MESHLANECTL" --socket "$SOCKET" -o json stats >"$1" || ml_fail "meshlanectl stats failed"
}

# monitor_bg VAR NAME ARGS...: `meshlanectl monitor ARGS` in the background, stdout in
# $ML_WORKDIR/NAME.out, stderr in NAME.err; PID in VAR.
monitor_bg() {
  local var=$1 name=$2
  shift 2
  ml_bg "$var" "$ML_WORKDIR/$name.out" "$ML_WORKDIR/$name.err" - - \
    "$MESHLANECTL" --socket "$SOCKET" monitor "$@"
}

# stop_monitor PID NAME: SIGINT, as Ctrl-C; it must exit 0.
stop_monitor() {
  local pid=$1 rc=0
  kill -INT "$pid"
  host_wait_exit "$pid" || ml_fail "meshlanectl monitor ($2) still runs $ML_WAIT_S s after SIGINT"
  wait "$pid" || rc=$?
  [[ $rc -eq 0 ]] || ml_fail "meshlanectl monitor ($2) exited with status $rc on SIGINT: $(cat "$ML_WORKDIR/$2.err")"
}

ALL_TYPES=1022 # intercepted .. bypassed: bits 1..9

# ---- no monitor: the gate is off ------------------------------------------------------------------
[[ $(gate_mask) == 0 ]] || ml_fail "the event gate is $(gate_mask) with no monitor attached"
ml_log "no monitor attached: gate 0"

mesh_start_haproxy PA "$POD_A" hap-a "$UID_PROXY" 15001 15006 127.0.0.6
mesh_start_haproxy PB "$POD_B" hap-b "$UID_PROXY" 15001 15006 127.0.0.6

# ---- monitors attached ---------------------------------------------------------------------------
monitor_bg MON_ALL all -o json
monitor_bg MON_PORT port -o json --type spliced --port 15006
monitor_bg MON_WL wl -o json --type intercepted --workload pod-b
monitor_bg MON_COUNT count --type intercepted --count 2
monitor_bg MON_TEXT text
wait_gate "$ALL_TYPES"
ml_log "5 monitors attached: gate $ALL_TYPES"

ctl_stats "$ML_WORKDIR/stats0.json"
for i in 1 2 3; do
  mesh_xfer "mesh-$i" "$POD_B" "0.0.0.0:8080" "$POD_A" "198.18.0.11:8080" --bytes 256K --timeout 30
done
mesh_xfer tc "$POD_B" "0.0.0.0:8080" "$HOST_X" "198.18.0.11:8080" --bytes 256K --timeout 30
# Blocking on both sides: intercepted nowhere (loopback), spliced nowhere (blocking readers).
ml_xfer_pair "$ML_CG" "$POD_A" blocking "--listen 127.0.0.1:9500" "--connect 127.0.0.1:9500" \
  --bytes 64K --timeout 30

# The analysis, in Python: counts per kind against the counters' rise since stats0, the
# filtered streams against the unfiltered one. Exit 3 means "not everything arrived yet"
# (retried for a while).
cat >"$ML_WORKDIR/check.py" <<'EOF'
import json, sys

work, final = sys.argv[1], sys.argv[2] == "final"

def lines(name):
    out = []
    with open(f"{work}/{name}.out") as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out

def counters(n):
    with open(f"{work}/stats{n}.json") as f:
        return json.load(f)["counters"]

before, after = counters(0), counters(1)
delta = {k: after[k] - before[k] for k in after}
events = lines("all")
problems = []

def expect(what, got, want):
    if got != want:
        problems.append(f"{what}: {got} event(s), counters say {want}")

dropped = [e for e in events if e["type"] == "dropped"]
if dropped:
    print(f"FAIL: events were dropped: {dropped}")
    sys.exit(1)
by = lambda **kv: [e for e in events if all(e.get(k) == v for k, v in kv.items())]

expect("intercepted outbound", len(by(type="intercepted", reason="outbound")),
       delta["intercepted_outbound"])
expect("intercepted inbound_local", len(by(type="intercepted", reason="inbound_local")),
       delta["intercepted_inbound_local"])
expect("intercepted inbound_tc", len(by(type="intercepted", reason="inbound_tc")),
       delta["intercepted_inbound_tc"])
expect("intercepted node_proxy", len(by(type="intercepted", reason="node_proxy")),
       delta["intercepted_to_node_proxy"])
expect("spliced", len(by(type="spliced")), delta["sockets_added"])
# A connection counts as spliced (spliced_<hop>) once both its ends are in: a client end whose
# server end stayed out (blocking) has its own event but no count.
server_ends = {(e["src"], e["dst"]) for e in by(type="spliced", side="server")}
for hop in ("app_to_proxy", "proxy_to_proxy", "proxy_to_app", "other", "fastpath"):
    paired = [e for e in by(type="spliced", side="client", hop=hop)
              if (e["dst"], e["src"]) in server_ends]
    counter = "spliced_fast_path" if hop == "fastpath" else f"spliced_{hop}"
    expect(f"spliced client {hop} with its server end", len(paired), delta[counter])
expect("map_full", len(by(type="map_full")), delta["sockets_add_failed"])
expect("fallback", len(by(type="fallback")), delta["redirect_failed"])
expect("skipped_blocking", len(by(type="skipped_blocking")), delta["sockets_skipped_blocking"])
if problems:
    if final:
        print("FAIL: " + "; ".join(problems))
        for e in events:
            print("  " + json.dumps(e))
        sys.exit(1)
    sys.exit(3)

# What the traffic must have produced, with the right details.
def need(what, n, **kv):
    got = by(**kv)
    if len(got) < n:
        print(f"FAIL: {what}: {len(got)} event(s) matching {kv}, expected at least {n}")
        for e in events:
            print("  " + json.dumps(e))
        sys.exit(1)

need("A's app -> its sidecar, orig B:8080", 3, type="intercepted", reason="outbound",
     workload="pod-a", peer_workload="pod-b", dst="127.0.0.1:15001",
     orig_dst="198.18.0.11:8080", hop="app_to_proxy")
need("A's sidecar -> B's inbound proxy, orig B:8080", 3, type="intercepted",
     reason="inbound_local", workload="pod-a", peer_workload="pod-b",
     dst="198.18.0.11:15006", orig_dst="198.18.0.11:8080", hop="proxy_to_proxy")
tc = by(type="intercepted", reason="inbound_tc")
if len(tc) != 1 or not tc[0]["src"].startswith("198.18.0.100:") or tc[0]["workload"] != "pod-b" \
        or tc[0]["dst"] != "198.18.0.11:15006" or tc[0]["orig_dst"] != "198.18.0.11:8080":
    print(f"FAIL: tc steering events: {tc}")
    sys.exit(1)
for hop in ("app_to_proxy", "proxy_to_proxy", "proxy_to_app"):
    need(f"spliced {hop}", 3, type="spliced", side="client", hop=hop)
need("spliced server ends", 9, type="spliced", side="server")
need("blocking pair skipped", 2, type="skipped_blocking", workload="pod-a", peer_workload="pod-a")
# The X -> B:8080 connection tc steered to B's inbound sidecar: neither end joins the sockhash
# and both say why. The sidecar's end has its peer off the node; X's end (X runs in the test
# cgroup, like a node process that is not a workload's) saw B's app listening on 8080, but
# tc took its connection to the sidecar: joined, it would wait for a server end that never
# comes, and its FIONREAD would count only redirected bytes (0).
need("the tc-steered server end skipped as steered", 1, type="skipped", reason="steered",
     side="server")
need("the tc-steered client end skipped as steered", 1, type="skipped", reason="steered",
     side="client")
for e in by(type="skipped", reason="steered"):
    x_end = e["dst"] if e["side"] == "server" else e["src"]
    if not x_end.startswith("198.18.0.100:"):
        print(f"FAIL: a steered skip whose client is not X: {e}")
        sys.exit(1)
for e in events:
    if e["type"] in ("spliced", "fallback") and e["src"].startswith("198.18.0.100:"):
        print(f"FAIL: X's end of the tc-steered connection joined the sockhash: {e}")
        sys.exit(1)
for e in by(type="spliced", side="server"):
    if e["hop"] is not None:
        print(f"FAIL: a server end reports a hop: {e}")
        sys.exit(1)

# The daemon's filters: exactly the matching subset, in the same order.
def subset(name, keep):
    want = [e for e in events if keep(e)]
    got = lines(name)
    if got != want:
        if not final:
            sys.exit(3)
        print(f"FAIL: monitor {name}: {len(got)} event(s), expected the {len(want)} matching")
        for e in got:
            print("  got  " + json.dumps(e))
        for e in want:
            print("  want " + json.dumps(e))
        sys.exit(1)
    return len(got)

n_port = subset("port", lambda e: e["type"] == "spliced" and any(
    (e[k] or "").endswith(":15006") for k in ("src", "dst")))
n_wl = subset("wl", lambda e: e["type"] == "intercepted" and "pod-b" in (
    e["workload"], e["peer_workload"]))
if n_port < 6 or n_wl < 7:
    print(f"FAIL: filtered streams too small: port {n_port}, workload {n_wl}")
    sys.exit(1)
print(f"ok: {len(events)} events; --port 15006: {n_port}; --workload pod-b: {n_wl}; "
      + ", ".join(f"{k} +{v}" for k, v in sorted(delta.items()) if v))
EOF

check_rc=3
end=$((SECONDS + ML_WAIT_S))
while ((check_rc == 3 && SECONDS < end)); do
  # Counters read anew each time: what the stream shows must converge on them.
  ctl_stats "$ML_WORKDIR/stats1.json"
  check_rc=0
  "$PYTHON" "$ML_WORKDIR/check.py" "$ML_WORKDIR" retry >"$ML_WORKDIR/check.log" 2>&1 || check_rc=$?
  ((check_rc != 3)) || sleep 0.1
done
if [[ $check_rc -ne 0 ]]; then
  "$PYTHON" "$ML_WORKDIR/check.py" "$ML_WORKDIR" final >&2 || true
  ml_dump_daemon_log
  ml_fail "the monitor's events do not match the traffic and the counters (above)"
fi
ml_log "$(cat "$ML_WORKDIR/check.log")"

# --count 2: exited by itself, two readable lines.
rc=0
host_wait_exit "$MON_COUNT" || ml_fail "monitor --count 2 still runs $ML_WAIT_S s after the traffic"
wait "$MON_COUNT" || rc=$?
[[ $rc -eq 0 ]] || ml_fail "monitor --count 2 exited with status $rc: $(cat "$ML_WORKDIR/count.err")"
[[ $(wc -l <"$ML_WORKDIR/count.out") -eq 2 ]] || ml_fail "monitor --count 2 printed: $(cat "$ML_WORKDIR/count.out")"
grep -qE '^[0-9:.]+  intercepted +pod-a +- -> 127\.0\.0\.1:15001 \(orig 198\.18\.0\.11:8080\) \[outbound, app_to_proxy\]$' \
  "$ML_WORKDIR/count.out" || ml_fail "monitor --count 2 printed: $(cat "$ML_WORKDIR/count.out")"

# The readable form: one line per event, in the same order, saying the same thing.
stop_monitor "$MON_TEXT" text
"$PYTHON" - "$ML_WORKDIR" <<'EOF' || ml_fail "the readable monitor output does not match the JSON one"
import json, sys
work = sys.argv[1]
events = [json.loads(l) for l in open(f"{work}/all.out")]
text = open(f"{work}/text.out").read().splitlines()
assert len(text) == len(events), f"{len(text)} readable lines for {len(events)} events"
for line, e in zip(text, events):
    fields = line.split()
    assert fields[1] == e["type"], (line, e)
    assert fields[2] == (e["workload"] or "-"), (line, e)
    for key in ("dst", "orig_dst", "reason", "hop"):
        if isinstance(e.get(key), str):
            assert e[key] in line, (key, line, e)
EOF
stop_monitor "$MON_PORT" port
stop_monitor "$MON_WL" wl
wait_gate "$ALL_TYPES" # the unfiltered one still runs
stop_monitor "$MON_ALL" all
wait_gate 0
grep -q 'monitor: datapath now emits none' "$ML_DAEMON_LOG" || ml_fail "the daemon did not log the gate going off"
ml_log "every monitor gone: gate 0"

# ---- the daemon falls behind: the ring fills, nothing blocks, every loss is accounted for ---------
# With the daemon stopped (SIGSTOP) the datapath keeps emitting into the ring until it is full,
# then counts what it cannot write. Once the daemon runs again, the monitor gets the ring's
# events, a "kernel_ring" drop line, and "client_queue" drop lines for what did not fit in its
# queue: delivered + dropped must equal the sockets spliced meanwhile, exactly.
# The connections carry 8 requests each: adaptive splicing keeps splicing a port whose ends send
# 4 messages or more, where one-request connections would stop being spliced (and reported)
# once their port is judged short.
[[ -x $ML_CONNRATE ]] || ml_fail "ml_connrate not found at $ML_CONNRATE (set MESHLANE_BIN)"
monitor_bg MON_RING ring -o json --type spliced
wait_gate 4
ctl_stats "$ML_WORKDIR/stats0.json"
rm -f "$ML_WORKDIR/connrate.ready"
ml_bg CR_SERVER "$ML_WORKDIR/connrate.server.out" "$ML_WORKDIR/connrate.server.err" "$ML_CG" \
  "$POD_A" "$ML_CONNRATE" server --listen 127.0.0.1:7000 --close-after 8 \
  --ready-file "$ML_WORKDIR/connrate.ready"
ml_wait_file "$ML_WORKDIR/connrate.ready" "$CR_SERVER" || ml_fail "ml_connrate server did not start"
kill -STOP "$ML_DAEMON_PID"
RING_DROPS0=$(ml_monitor_slot 1)
ml_bg CR_CLIENT "$ML_WORKDIR/connrate.client.out" "$ML_WORKDIR/connrate.client.err" "$ML_CG" \
  "$POD_A" "$ML_CONNRATE" client --connect 127.0.0.1:7000 --concurrency 8 --duration 0 \
  --requests-per-conn 8 --timeout 30
# ring_overflowed: the datapath counted events it could not write to the full ring.
ring_overflowed() {
  kill -0 "$CR_CLIENT" 2>/dev/null || ml_fail "ml_connrate client exited: $(tail -n 3 "$ML_WORKDIR/connrate.client.err")"
  (($(ml_monitor_slot 1) > RING_DROPS0))
}
host_wait_for "$ML_WAIT_S" ring_overflowed ||
  ml_fail "the ring buffer did not fill in $ML_WAIT_S s of connections with the daemon stopped"
ml_connrate_stop "$CR_CLIENT" "$ML_WORKDIR/connrate.client.out" "connections while the daemon was stopped"
kill -CONT "$ML_DAEMON_PID"
host_kill_pid "$CR_SERVER"
cat >"$ML_WORKDIR/ring.py" <<'EOF'
import json, sys
work = sys.argv[1]
delta = {k: json.load(open(f"{work}/stats1.json"))["counters"][k]
         - json.load(open(f"{work}/stats0.json"))["counters"][k] for k in ("sockets_added",)}
delivered, dropped = 0, {"kernel_ring": 0, "client_queue": 0}
for line in open(f"{work}/ring.out"):
    if not line.endswith("\n"):
        break
    e = json.loads(line)
    if e["type"] == "dropped":
        dropped[e["source"]] += e["count"]
    else:
        assert e["type"] == "spliced", e
        delivered += 1
total = delivered + sum(dropped.values())
print(f"spliced +{delta['sockets_added']}: {delivered} delivered, {dropped['kernel_ring']} lost "
      f"in the kernel ring, {dropped['client_queue']} in the client queue")
if total != delta["sockets_added"]:
    sys.exit(3)
if dropped["kernel_ring"] == 0:
    print("FAIL: the ring never filled")
    sys.exit(1)
EOF
ring_rc=3
end=$((SECONDS + ML_WAIT_S))
while ((ring_rc == 3 && SECONDS < end)); do
  ctl_stats "$ML_WORKDIR/stats1.json"
  ring_rc=0
  "$PYTHON" "$ML_WORKDIR/ring.py" "$ML_WORKDIR" >"$ML_WORKDIR/ring.log" 2>&1 || ring_rc=$?
  ((ring_rc != 3)) || sleep 0.1
done
[[ $ring_rc -eq 0 ]] || {
  ml_dump_daemon_log
  ml_fail "ring full: $(cat "$ML_WORKDIR/ring.log")"
}
ml_log "ring full: $(cat "$ML_WORKDIR/ring.log")"
grep -q 'monitor: the datapath dropped [0-9]* event(s)' "$ML_DAEMON_LOG" ||
  ml_fail "the daemon did not log the ring's drops"
stop_monitor "$MON_RING" ring
wait_gate 0

# ---- restart: the pinned ring buffer is adopted and still delivers -------------------------------
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC on SIGTERM"
ML_DAEMON_SEQ=$((ML_DAEMON_SEQ + 1))
ml_daemon_start_with_config "$ML_CONFIG"
grep -q "maps adopted" "$ML_DAEMON_LOG" || ml_fail "the restarted daemon did not adopt the maps"
[[ $(gate_mask) == 0 ]] || ml_fail "the event gate is $(gate_mask) after a restart with no monitor"
monitor_bg MON_AGAIN again -o json --type intercepted --count 1
wait_gate 2
mesh_xfer again "$POD_B" "0.0.0.0:8080" "$POD_A" "198.18.0.11:8080" --bytes 64K --timeout 30
rc=0
host_wait_exit "$MON_AGAIN" || ml_fail "monitor --count 1 after the restart still runs $ML_WAIT_S s after the traffic"
wait "$MON_AGAIN" || rc=$?
[[ $rc -eq 0 ]] || ml_fail "monitor after the restart exited with status $rc: $(cat "$ML_WORKDIR/again.err")"
grep -q '"orig_dst":"198.18.0.11:8080"' "$ML_WORKDIR/again.out" ||
  ml_fail "monitor after the restart printed: $(cat "$ML_WORKDIR/again.out")"
wait_gate 0
ml_log "after a restart the adopted ring buffer delivers; gate 0 again"

host_kill_pid "$PA"
host_kill_pid "$PB"
ml_pass
