#!/usr/bin/env bash
# The benchmark as a newcomer runs it: `scripts/bench.sh --quick` from this tree must finish,
# print the ratio table, and every cell must have done what its mode says it does. That is
# checked from what the kernel counted, through report.py's sanity checks and results.json, not
# from speed (speed is measured by the benchmark itself, never asserted in a test):
#   - every cell of every mode ran and its tool's output parsed (no failed cell);
#   - b: both istio-init REDIRECT chains matched packets;
#   - c, d, dx: meshlane intercepted every connection and answered SO_ORIGINAL_DST itself;
#   - d and dx spliced bytes, c none; dx spliced no app -> sidecar hop and left sockets out by
#     port;
#   - the policy switch: no connect got the old verdict after `policy apply` returned;
#   - results.md, results.json and chart.png were written.
# Mode a (no mesh) adds nothing to check and d+ (splice_blocking_sockets, opt-in) can hit the
# documented ENOMEM of bulk transfers without back-pressure, so they are left out.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ml_require_root
ml_require_meshlane
for tool in haproxy sockperf iperf3 iptables-restore gnuplot python3; do
  ml_require_cmd "$tool"
done

out=$(mktemp -d /tmp/ml-bench-quick.XXXXXX)
ml_defer rm -rf -- "$out"

ml_log "scripts/bench.sh --quick --modes b,c,d,dx (about a minute)"
rc=0
MESHLANE_BIN=$MESHLANE_BIN bash "$MESHLANE_SRC/scripts/bench.sh" --quick --modes b,c,d,dx \
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
expected = {(m, c) for m in ("b", "c", "d") for c in quick_cells}
expected |= {("dx", c) for c in quick_cells if not c.startswith("ip")}
seen = {}
for r in res["cells_raw"]:
    seen[(r["mode"], r["cell"])] = seen.get((r["mode"], r["cell"]), 0) + 1
    if not r["ok"]:
        problems.append("%s/%s failed: %s" % (r["mode"], r["cell"], r["error"]))
missing = sorted(expected - set(seen))
extra = sorted(set(seen) - expected)
if missing:
    problems.append("cells that did not run: %s" % missing)
if extra:
    problems.append("cells that should not have run: %s" % extra)
for w in res["warnings"]:
    problems.append("round %s, %s/%s: %s" % (w["round"], w["mode"], w["cell"], w["warning"]))

counters = res["splicing_counters"]
def ctr(key, name):
    return counters.get(key, {}).get(name, 0)
for cell in quick_cells:
    if ctr("c/" + cell, "bytes_redirected"):
        problems.append("c/%s spliced bytes with acceleration off" % cell)
    if not ctr("d/" + cell, "bytes_redirected"):
        problems.append("d/%s spliced nothing" % cell)
    if cell.startswith("ip"):
        continue
    if not ctr("d/" + cell, "spliced_app_to_proxy"):
        problems.append("d/%s did not splice the app -> sidecar hop" % cell)
    if ctr("dx/" + cell, "spliced_app_to_proxy") or not ctr("dx/" + cell, "sockets_skipped_by_port"):
        problems.append("dx/%s did not leave the app -> sidecar hop on TCP: %s" % (cell, counters.get("dx/" + cell)))
    if not ctr("dx/" + cell, "bytes_redirected"):
        problems.append("dx/%s spliced nothing" % cell)
for rd, hits in res["iptables_redirect_hits"].items():
    if not all(hits.values()):
        problems.append("round %s: an istio-init REDIRECT chain matched nothing: %s" % (rd, hits))
if not res["iptables_redirect_hits"]:
    problems.append("no iptables REDIRECT counts for mode b")

ratios = [row for row in res["table"] if row["ratios"].get("d")]
if len(ratios) != len(res["table"]):
    problems.append("%d of %d rows have no d/b ratio" % (len(res["table"]) - len(ratios), len(res["table"])))

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
ml_pass
