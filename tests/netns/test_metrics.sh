#!/usr/bin/env bash
# The Prometheus endpoint end to end: meshlaned with [metrics] listen on a free 127.0.0.1 port;
# traffic between and inside two pod namespaces (an intercepted connect from pod A to pod B, a
# spliced loopback transfer in pod A); GET /metrics then carries every counter exactly as
# `meshlanectl stats -o json` reports it, in the Prometheus text format, with the workload,
# uptime and build gauges; other paths are 404, other methods 405, garbage 400, an oversized
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

"$PYTHON" - "$ML_WORKDIR/page" "$STATS" "$WL_STATS" <<'EOF_PY' || ml_fail "the scraped metrics do not match meshlanectl stats"
import json, re, sys
page = open(sys.argv[1]).read()
stats = json.loads(sys.argv[2])["counters"]
wl_stats = json.loads(sys.argv[3])["counters"]
samples, types = {}, {}
for line in page.splitlines():
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        types[name] = kind
    elif line and not line.startswith("#"):
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
        if not m:
            sys.exit("not a sample line: %r" % line)
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
problems = []
counters = {k: v for k, v in samples.items() if k.endswith("_total")}
# pod-a's own series: the same families with a workload label, equal to stats --workload.
for name, value in wl_stats.items():
    metric = 'meshlane_%s_total{workload="pod-a"}' % name
    if samples.get(metric) != value:
        problems.append("%s = %s, meshlanectl stats --workload says %s" % (metric, samples.get(metric), value))
if wl_stats["intercepted_outbound"] < 1:
    problems.append("pod-a's own counters show no interception: %s" % wl_stats)
if set(counters) != {"meshlane_%s_total" % name for name in stats}:
    problems.append("counter families differ: %s vs %s" % (sorted(counters), sorted(stats)))
for name, value in stats.items():
    metric = "meshlane_%s_total" % name
    if counters.get(metric) != value:
        problems.append("%s = %s, meshlanectl stats says %s" % (metric, counters.get(metric), value))
    if types.get(metric) != "counter":
        problems.append("%s has TYPE %s" % (metric, types.get(metric)))
if stats["bytes_redirected"] < 8 << 20 or stats["intercepted_outbound"] < 1:
    problems.append("the traffic left no trace: %s" % stats)
expect = {'meshlane_workloads{source="live"}': 1, 'meshlane_workloads{source="config"}': 0,
          "meshlane_control_clients": 0}
for metric, value in expect.items():
    if samples.get(metric) != value:
        problems.append("%s = %s, expected %s" % (metric, samples.get(metric), value))
if not samples.get("meshlane_uptime_seconds", 0) > 0:
    problems.append("meshlane_uptime_seconds is %s" % samples.get("meshlane_uptime_seconds"))
if not any(k.startswith("meshlane_build_info{version=") and v == 1 for k, v in samples.items()):
    problems.append("no meshlane_build_info")
for gauge in ("meshlane_workloads", "meshlane_uptime_seconds", "meshlane_control_clients"):
    if types.get(gauge) != "gauge":
        problems.append("%s has TYPE %s" % (gauge, types.get(gauge)))
if problems:
    sys.exit("\n".join(problems))
print("metrics: %d samples, all %d counters equal to meshlanectl stats" % (len(samples), len(stats)))
EOF_PY
ml_log "scraped counters equal meshlanectl stats: bytes_redirected $(ctl_json "$STATS" 'j["counters"]["bytes_redirected"]'), intercepted_outbound $(ctl_json "$STATS" 'j["counters"]["intercepted_outbound"]')"

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
