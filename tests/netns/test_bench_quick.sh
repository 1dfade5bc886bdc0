#!/usr/bin/env bash
# The benchmark as a newcomer runs it: `scripts/bench.sh --quick` from this tree must finish,
# print the ratio table, and every cell must have done what its mode says it does. That is
# checked from what the kernel counted, not from speed (speed is measured by the benchmark
# itself, never asserted in a test). report.py turns every such check into a warning (its
# sanity_checks), and this test requires none:
#   - every expected cell of every mode ran and its tool's output parsed (no failed cell);
#   - b: both istio-init REDIRECT chains matched packets;
#   - c, d, dx: meshlane intercepted every connection and answered SO_ORIGINAL_DST itself;
#   - d and dx spliced bytes, c none; d spliced the app -> sidecar hop, dx left it on TCP
#     (spliced_app_to_proxy flat, sockets_skipped_by_port up);
#   - f: the connections took the fast path and no sidecar carried one (report.py's
#     fast_path_checks);
#   - the policy switch: no connect got the old verdict after `policy apply` returned;
#   - results.md, results.json and chart.png were written;
#   - the demo's part 2 report (scripts/demo/fast_path_report.py) reads these results, prints
#     its table and accepts them, and rejects them once a fast-path connection is shown as
#     intercepted for a sidecar or no connection as having taken the fast path.
# Mode a (no mesh) runs for the demo's report, which compares with it. d+, f+ and fn are left
# out: d+ and f+ (splice_blocking_sockets, opt-in) can hit the documented ENOMEM of bulk
# transfers without back-pressure, and fn adds nothing that f does not check.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ml_require_root
ml_require_meshlane
for tool in haproxy sockperf iperf3 iptables-restore gnuplot python3; do
  ml_require_cmd "$tool"
done

out=$(mktemp -d /tmp/ml-bench-quick.XXXXXX)
host_defer rm -rf -- "$out"

ml_log "scripts/bench.sh --quick --modes a,b,c,d,dx,f (about two minutes)"
rc=0
MESHLANE_BIN=$MESHLANE_BIN bash "$MESHLANE_SRC/scripts/bench.sh" --quick --modes a,b,c,d,dx,f \
  --out "$out/run" >"$out/stdout" 2>"$out/stderr" </dev/null || rc=$?
[[ $rc -eq 0 ]] || ml_fail "bench.sh --quick exited $rc: $(tail -n 5 "$out/stderr")"
grep -q '^#### Ratios against b' "$out/stdout" || ml_fail "bench.sh printed no ratio table"
grep -q '^#### Issue-5 targets' "$out/stdout" || ml_fail "bench.sh printed no targets"

python3 - "$out/run" <<'EOF' || ml_fail "the benchmark's results do not hold (above)"
import json
import os
import sys

run = sys.argv[1]
res = json.load(open(os.path.join(run, "results.json")))
problems = []
quick_cells = ["sp64", "spe64", "ip1x1k", "ip1x64k", "ip8x1k", "ip8x64k", "cr1", "cr16", "rr1"]
expected = {(m, c) for m in ("a", "b", "c", "d", "f") for c in quick_cells}
expected |= {("dx", c) for c in quick_cells if not c.startswith("ip")}
seen = set()
for r in res["cells_raw"]:
    seen.add((r["mode"], r["cell"]))
    if not r["ok"]:
        problems.append("%s/%s failed: %s" % (r["mode"], r["cell"], r["error"]))
missing = sorted(expected - seen)
extra = sorted(seen - expected)
if missing:
    problems.append("cells that did not run: %s" % missing)
if extra:
    problems.append("cells that should not have run: %s" % extra)
for w in res["warnings"]:
    problems.append("round %s, %s/%s: %s" % (w["round"], w["mode"], w["cell"], w["warning"]))

for mode in ("a", "d", "f"):
    ratios = [row for row in res["table"] if row["ratios"].get(mode)]
    if len(ratios) != len(res["table"]):
        problems.append("%d of %d rows have no %s/b ratio" % (len(res["table"]) - len(ratios), len(res["table"]), mode))

ps = json.load(open(os.path.join(run, "policy_switch.json")))
if ps["rounds"] != 40 or ps["stale_verdicts_after_return"] != 0:
    problems.append("policy switch: %d applies, %d stale verdicts after return" % (ps["rounds"], ps["stale_verdicts_after_return"]))

for name in ("results.md", "chart.png", "meta.txt"):
    p = os.path.join(run, name)
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        problems.append("%s missing or empty" % name)

for p in problems:
    print("problem:", p, file=sys.stderr)
print("cells: %d, rows: %d, problems: %d" % (len(res["cells_raw"]), len(res["table"]), len(problems)), file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
# The demo's part 2 reads what the benchmark wrote: it must accept this run, print its table, and
# refuse the same results doctored to show a sidecar carrying a fast-path connection, or no
# connection taking the fast path.
report=$MESHLANE_SRC/scripts/demo/fast_path_report.py
python3 "$report" "$out/run/results.json" 1 >"$out/report.out" 2>&1 ||
  ml_fail "the demo's fast-path report rejected this run: $(tail -n 5 "$out/report.out")"
for row in "sockperf 64 B round trip, p50" "requests/s, one keep-alive conn." \
  "new connections/s, 16 at once" " 0 intercepted for a sidecar."; do
  grep -qF -- "$row" "$out/report.out" || ml_fail "the demo's report lacks '$row': $(cat "$out/report.out")"
done
python3 - "$out/run/results.json" "$out" <<'EOF' || ml_fail "could not write the doctored results"
import json, os, sys
res = json.load(open(sys.argv[1]))
intercepted = json.loads(json.dumps(res))
intercepted["splicing_counters"]["f/cr16"]["intercepted_outbound"] = 1
json.dump(intercepted, open(os.path.join(sys.argv[2], "intercepted.json"), "w"))
for counters in res["splicing_counters"].values():
    counters["fast_path_connections"] = 0
json.dump(res, open(os.path.join(sys.argv[2], "not-taken.json"), "w"))
EOF
for doctored in intercepted:5 not-taken:3; do
  rc=0
  python3 "$report" "$out/${doctored%%:*}.json" 1 >/dev/null 2>&1 || rc=$?
  [[ $rc -eq ${doctored##*:} ]] ||
    ml_fail "the demo's report exited $rc on ${doctored%%:*}.json, expected ${doctored##*:}"
done
ml_pass
