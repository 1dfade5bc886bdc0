#!/usr/bin/env bash
# The Prometheus endpoint end to end: meshlaned with [metrics] listen on a free 127.0.0.1 port;
# traffic between and inside two pod namespaces (an intercepted connect from pod A to pod B, a
# spliced loopback transfer in pod A); GET /metrics then carries every counter exactly as
# `meshlanectl stats -o json` reports it, in the Prometheus text format: node-wide as
# meshlane_<counter>_total (bytes as meshlane_redirected_bytes_total), pod A's own as
# meshlane_workload_<counter>_total{workload="pod-a"} equal to `stats --workload pod-a`, only
# for the counters the programs count per workload (those rose with the traffic), and no name
# used both with and without a workload label; the gauges: workloads, uptime, build, start time,
# degraded 0, both datapath features on, last reload 1 (then 0 after a rejected SIGHUP and 1
# again after a good one, its timestamp rising), policies in force. Map occupancy: two held
# spliced loopback connections raise meshlane_map_entries{map="sockhash"} from 0 to 4 (the
# periodic count), pod A fills 1 workload and 2 pod address entries, equal to `status`'s
# map_usage, and every map_capacity equals the max_entries bpftool reads from the kernel. Other paths are 404, other methods 405, garbage 400, an oversized
# request head 431; a non-loopback listen address is refused unless allowed; the port is closed
# once the daemon exits.
# shellcheck source=control_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/control_lib.sh"

ctl_setup
ml_require_cmd curl
ml_make_cgroup
ctl_make_pods POD_A POD_B

# A non-loopback address is refused when the config is read (before anything is attached).
cat >"$ML_WORKDIR/open.toml" <<TOML
[metrics]
listen = "0.0.0.0:9464"
TOML
RC=0
"$MESHLANED" --config "$ML_WORKDIR/open.toml" --stats >/dev/null 2>"$ML_WORKDIR/open.err" || RC=$?
[[ $RC -eq 1 ]] || ml_fail "a non-loopback metrics.listen must be a config error (exit 1), got $RC"
grep -q 'metrics.listen: "0.0.0.0:9464" is not a loopback address' "$ML_WORKDIR/open.err" ||
  ml_fail "non-loopback refusal message: $(cat "$ML_WORKDIR/open.err")"

PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT/metrics"
ctl_daemon_start '[metrics]' "listen = \"127.0.0.1:$PORT\""
grep -q "metrics: $URL" "$ML_DAEMON_LOG" || ml_fail "meshlaned did not log its metrics URL $URL"

# ---- traffic ------------------------------------------------------------------------------------
ctl_ok workload add pod-a --netns "$POD_A" --ip 198.18.0.10 --ip fd00::10
ctl_app_connect metrics
[[ $SERVED == sidecar ]] || ml_fail "pod A's connect to pod B was not intercepted"
ml_xfer_pair "$ML_CG" "$POD_A" loop "--listen 127.0.0.1:5301" "--connect 127.0.0.1:5301" \
  --bytes 8M --nonblocking --timeout 60

# ---- scrape and compare ----------------------------------------------------------------------------
# Nothing runs in the test cgroup now, so the counters stand still between the reads.
curl -sS --max-time 10 -D "$ML_WORKDIR/headers" -o "$ML_WORKDIR/page" "$URL" ||
  ml_fail "curl $URL failed"
ctl_ok -o json stats
STATS=$CTL_OUT
ctl_ok -o json stats --workload pod-a
WL_STATS=$CTL_OUT
head -n 1 "$ML_WORKDIR/headers" | grep -q '^HTTP/1.1 200 OK' ||
  ml_fail "GET /metrics: $(head -n 1 "$ML_WORKDIR/headers")"
grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$ML_WORKDIR/headers" ||
  ml_fail "GET /metrics content type: $(cat "$ML_WORKDIR/headers")"

# The page's samples as JSON {"name{labels}": value} and {"name": type}, for the checks below.
cat >"$ML_WORKDIR/parse.py" <<'EOF_PY'
import json, re, sys
def parse(path):
    samples, types = {}, {}
    for line in open(path).read().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
            if not m:
                sys.exit("not a sample line: %r" % line)
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples, types
EOF_PY

"$PYTHON" - "$ML_WORKDIR/page" "$STATS" "$WL_STATS" "$ML_WORKDIR/parse.py" <<'EOF_PY' || ml_fail "the scraped metrics do not match meshlanectl stats"
import json, re, sys, time
exec(open(sys.argv[4]).read())
samples, types = parse(sys.argv[1])
stats = json.loads(sys.argv[2])["counters"]
wl_stats = json.loads(sys.argv[3])["counters"]
problems = []
def prom(name):  # the Prometheus name of a counter: units last
    return {"bytes_redirected": "redirected_bytes"}.get(name, name)
# Counted per workload by the programs (controller/observe/counters.cpp); the others are
# node-wide only and have no per-workload series.
node_only = {"messages_redirected", "bytes_redirected", "redirect_failed", "redirect_reader_behind",
             "redirect_reader_spinning", "redirect_peer_left", "orig_dst_answered", "orig_dst_unknown", "listeners_scanned", "listeners_unregistered"}
node = {k: v for k, v in samples.items() if k.endswith("_total") and "{" not in k}
labelled = {k: v for k, v in samples.items() if k.endswith("_total") and "{" in k}
if set(wl_stats) != set(stats) - node_only:
    problems.append("stats --workload lists %s, expected every counter but the node-only ones" % sorted(wl_stats))
if set(node) != {"meshlane_%s_total" % prom(name) for name in stats}:
    problems.append("node-wide counter families differ: %s vs %s" % (sorted(node), sorted(stats)))
for name, value in stats.items():
    metric = "meshlane_%s_total" % prom(name)
    if node.get(metric) != value:
        problems.append("%s = %s, meshlanectl stats says %s" % (metric, node.get(metric), value))
    if types.get(metric) != "counter":
        problems.append("%s has TYPE %s" % (metric, types.get(metric)))
    wl_metric = 'meshlane_workload_%s_total{workload="pod-a"}' % prom(name)
    if name in node_only:
        if name in wl_stats:
            problems.append("%s is counted node-wide only, yet stats --workload lists it" % name)
        if any(k.startswith("meshlane_workload_%s_total" % prom(name)) for k in samples) or \
                "meshlane_workload_%s_total" % prom(name) in types:
            problems.append("%s is counted node-wide only, yet served per workload" % name)
    elif samples.get(wl_metric) != wl_stats[name]:
        problems.append("%s = %s, meshlanectl stats --workload says %s" % (wl_metric, samples.get(wl_metric), wl_stats[name]))
    elif types.get("meshlane_workload_%s_total" % prom(name)) != "counter":
        problems.append("meshlane_workload_%s_total has TYPE %s" % (prom(name), types.get("meshlane_workload_%s_total" % prom(name))))
if "meshlane_bytes_redirected_total" in samples or "meshlane_redirected_bytes_total" not in samples:
    problems.append("bytes_redirected is not served as meshlane_redirected_bytes_total")
# No name is both node-wide and per workload: sum() over a family never counts twice.
families = {}
for key in samples:
    families.setdefault(key.split("{")[0], set()).add("workload=" in key)
for family, kinds in families.items():
    if len(kinds) > 1:
        problems.append("%s has samples with and without a workload label" % family)
    if (True in kinds) != family.startswith("meshlane_workload_"):
        problems.append("%s: a workload label on a name without meshlane_workload_, or the reverse" % family)
# The traffic was pod A's: its own series rose where the programs count per workload.
for name, least in (("intercepted_outbound", 1), ("sockets_added", 2), ("spliced_other", 1)):
    metric = 'meshlane_workload_%s_total{workload="pod-a"}' % name
    if not samples.get(metric, 0) >= least:
        problems.append("%s = %s after pod A's traffic, expected >= %d" % (metric, samples.get(metric), least))
if stats["bytes_redirected"] < 8 << 20 or stats["intercepted_outbound"] < 1:
    problems.append("the traffic left no trace: %s" % stats)
expect = {'meshlane_workloads{source="live"}': 1, 'meshlane_workloads{source="config"}': 0,
          "meshlane_control_clients": 0, "meshlane_degraded": 0,
          'meshlane_datapath_feature_enabled{feature="splicing"}': 1,
          'meshlane_datapath_feature_enabled{feature="interception"}': 1,
          "meshlane_last_reload_success": 1, "meshlane_policies": 0,
          "meshlane_policies_enforced": 1}
for metric, value in expect.items():
    if samples.get(metric) != value:
        problems.append("%s = %s, expected %s" % (metric, samples.get(metric), value))
uptime = samples.get("meshlane_uptime_seconds", 0)
start = samples.get("meshlane_start_time_seconds", 0)
if not uptime > 0:
    problems.append("meshlane_uptime_seconds is %s" % uptime)
if not abs(time.time() - uptime - start) < 60:
    problems.append("meshlane_start_time_seconds %s is not now - uptime (%s)" % (start, time.time() - uptime))
if samples.get("meshlane_last_reload_timestamp_seconds") != start:
    problems.append("before any SIGHUP, meshlane_last_reload_timestamp_seconds %s should be the start time %s" % (samples.get("meshlane_last_reload_timestamp_seconds"), start))
if not any(k.startswith("meshlane_kernel_feature_present{") for k in samples):
    problems.append("no meshlane_kernel_feature_present")
if not any(k.startswith("meshlane_build_info{version=") and v == 1 for k, v in samples.items()):
    problems.append("no meshlane_build_info")
for gauge in ("meshlane_workloads", "meshlane_uptime_seconds", "meshlane_control_clients",
              "meshlane_start_time_seconds", "meshlane_degraded", "meshlane_last_reload_success",
              "meshlane_last_reload_timestamp_seconds", "meshlane_policies",
              "meshlane_policies_enforced", "meshlane_map_entries", "meshlane_map_capacity"):
    if types.get(gauge) != "gauge":
        problems.append("%s has TYPE %s" % (gauge, types.get(gauge)))
if problems:
    sys.exit("\n".join(problems))
print("metrics: %d samples, all %d counters equal to meshlanectl stats" % (len(samples), len(stats)))
EOF_PY
ml_log "scraped counters equal meshlanectl stats: bytes_redirected $(ctl_json "$STATS" 'j["counters"]["bytes_redirected"]'), intercepted_outbound $(ctl_json "$STATS" 'j["counters"]["intercepted_outbound"]')"

# ---- map occupancy ---------------------------------------------------------------------------------
# metric_value NAME{LABELS}: its value on a fresh scrape ("" when absent).
metric_value() {
  curl -sS --max-time 10 -o "$ML_WORKDIR/page2" "$URL" || ml_fail "curl $URL failed"
  "$PYTHON" - "$ML_WORKDIR/page2" "$1" "$ML_WORKDIR/parse.py" <<'EOF_PY'
import sys
exec(open(sys.argv[3]).read())
value = parse(sys.argv[1])[0].get(sys.argv[2])
print("" if value is None else int(value))
EOF_PY
}
SOCKHASH='meshlane_map_entries{map="sockhash"}'
# Earlier connections closed: their sockets leave the sockhash, and the periodic count follows.
sockhash_settled() { [[ $(metric_value "$SOCKHASH") == 0 ]]; }
host_wait_for "$ML_WAIT_S" sockhash_settled || ml_fail "$SOCKHASH is $(metric_value "$SOCKHASH") with no connection open"
ctl_hold_start HOLD1 "$POD_A" 5311
ctl_hold_start HOLD2 "$POD_A" 5312
sockhash_full_of_holds() { [[ $(metric_value "$SOCKHASH") == 4 ]]; }
host_wait_for "$ML_WAIT_S" sockhash_full_of_holds ||
  ml_fail "two held spliced connections: $SOCKHASH is $(metric_value "$SOCKHASH"), expected 4"
curl -sS --max-time 10 -o "$ML_WORKDIR/page3" "$URL" || ml_fail "curl $URL failed"
ctl_ok -o json status
"$PYTHON" - "$ML_WORKDIR/page3" "$CTL_OUT" "$ML_WORKDIR/parse.py" "$BPFTOOL" "$ML_BPFFS_DIR" <<'EOF_PY' || ml_fail "map occupancy: /metrics, status and the kernel disagree"
import json, subprocess, sys
exec(open(sys.argv[3]).read())
samples = parse(sys.argv[1])[0]
usage = json.loads(sys.argv[2])["map_usage"]["maps"]
problems = []
expected = {"sockhash": 65536, "orig_dst": 65536, "tc_flows": 65536, "workloads": 4096,
            "pod_addresses": 8192}
if set(usage) != set(expected):
    problems.append("status map_usage lists %s" % sorted(usage))
for name, default in expected.items():
    entry = usage.get(name, {})
    kernel = json.loads(subprocess.run([sys.argv[4], "-j", "map", "show", "pinned",
                                        "%s/%s" % (sys.argv[5], entry.get("pin"))],
                                       check=True, capture_output=True, text=True).stdout)
    for what, value in (("status capacity", entry.get("capacity")),
                        ("map_capacity", samples.get('meshlane_map_capacity{map="%s"}' % name))):
        if value != kernel["max_entries"] or value != default:
            problems.append("%s %s: %s, the kernel says %s (default %s)" % (name, what, value, kernel["max_entries"], default))
    if samples.get('meshlane_map_entries{map="%s"}' % name) != entry.get("entries"):
        problems.append("%s: map_entries %s, status says %s" % (name, samples.get('meshlane_map_entries{map="%s"}' % name), entry.get("entries")))
for name, used in (("sockhash", 4), ("workloads", 1), ("pod_addresses", 2)):
    if usage[name]["entries"] != used:
        problems.append("status: %s holds %s, expected %d" % (name, usage[name]["entries"], used))
if problems:
    sys.exit("\n".join(problems))
print("map occupancy: " + ", ".join("%s %d/%d" % (n, e["entries"], e["capacity"]) for n, e in sorted(usage.items())))
EOF_PY
ctl_hold_finish "$HOLD1" 5311
ctl_hold_finish "$HOLD2" 5312

# ---- reloads -----------------------------------------------------------------------------------------
GOOD_CONFIG="$ML_WORKDIR/good.toml"
cp "$ML_CONFIG" "$GOOD_CONFIG"
before=$(metric_value meshlane_last_reload_timestamp_seconds)
sleep 1.1 # the timestamp has whole seconds: the reload's must differ from the start's
echo 'this is = not [valid toml' >>"$ML_CONFIG"
ml_sighup "bad config"
[[ $(metric_value meshlane_last_reload_success) == 0 ]] || ml_fail "after a rejected reload, meshlane_last_reload_success is $(metric_value meshlane_last_reload_success)"
rejected_at=$(metric_value meshlane_last_reload_timestamp_seconds)
((rejected_at > before)) || ml_fail "meshlane_last_reload_timestamp_seconds did not rise with the rejected reload ($before -> $rejected_at)"
cp "$GOOD_CONFIG" "$ML_CONFIG"
ml_sighup "good config"
[[ $(metric_value meshlane_last_reload_success) == 1 ]] || ml_fail "after a good reload, meshlane_last_reload_success is $(metric_value meshlane_last_reload_success)"
ml_log "reloads: last_reload_success 0 after a rejected SIGHUP, 1 after a good one"

# ---- other requests ----------------------------------------------------------------------------------
http_code() { curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$@"; }
[[ $(http_code "http://127.0.0.1:$PORT/") == 404 ]] || ml_fail "GET / is not 404"
[[ $(http_code "http://127.0.0.1:$PORT/metrics/x") == 404 ]] || ml_fail "GET /metrics/x is not 404"
[[ $(http_code -X POST "$URL") == 405 ]] || ml_fail "POST /metrics is not 405"
[[ $(http_code -I "$URL") == 200 ]] || ml_fail "HEAD /metrics is not 200"
[[ $(http_code -H "X-Padding: $(head -c 10000 /dev/zero | tr '\0' a)" "$URL") == 431 ]] ||
  ml_fail "a 10 kB request head is not 431"
RAW=$("$PYTHON" - "$PORT" <<'EOF_PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"\x16\x03\x01 not http\r\n\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode())
EOF_PY
)
[[ $RAW == "HTTP/1.1 400 Bad Request" ]] || ml_fail "garbage got: $RAW"
kill -0 "$ML_DAEMON_PID" 2>/dev/null || ml_fail "meshlaned died serving metrics"
[[ $(http_code "$URL") == 200 ]] || ml_fail "GET /metrics after bad requests is not 200"

ctl_ok workload del pod-a
ml_daemon_stop
[[ $ML_DAEMON_RC -eq 0 ]] || ml_fail "meshlaned exited with status $ML_DAEMON_RC"
if curl -s --max-time 5 -o /dev/null "$URL"; then
  ml_fail "the metrics port still answers after the daemon exited"
fi
ml_pass
