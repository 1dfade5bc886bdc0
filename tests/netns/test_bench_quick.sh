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
host_defer rm -rf -- "$out"

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
