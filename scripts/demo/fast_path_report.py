#!/usr/bin/env python3
"""Part 2 of scripts/demo.sh: the L4 fast path against the sidecar mesh and against no mesh,
from the results.json of `scripts/bench.sh --modes a,b,f --workloads spe64,rr1,cr16`.

Usage: fast_path_report.py RESULTS_JSON ROUNDS
Whether the fast path did its job is the benchmark's own verdict: report.py checks every f cell
(fast_path_checks: the connections took the fast path, no sidecar carried one, the persistent
ones were spliced) and records what it finds as a warning. Exit status: 0 when no cell failed
and no check warned (the table and the counters are printed); 1 on results it cannot read; 4
when a cell failed or a check warned (they are listed).
"""
import json
import sys

# (cell, metric, label, unit, format)
ROWS = [
    ("spe64", "p50_us", "sockperf 64 B round trip, p50", "us", "{:.1f}"),
    ("spe64", "p99_us", "sockperf 64 B round trip, p99", "us", "{:.1f}"),
    ("rr1", "req_per_s", "requests/s, one keep-alive conn.", "", "{:,.0f}"),
    ("cr16", "conn_per_s", "new connections/s, 16 at once", "", "{:,.0f}"),
    ("cr16", "cpu_sys_us_per_req", "CPU per new connection", "us", "{:.1f}"),
]
CELLS = ("spe64", "rr1", "cr16")


def print_table(results, rounds):
    table = {(row["cell"], row["metric"]): row for row in results["table"]}
    print()
    print(f"Results: the L4 fast path, two pods on one node, median of {rounds} interleaved round(s)")
    print()
    header = f"{'metric':<32} {'sidecar mesh':>13} {'fast path':>13} {'ratio':>7} {'no mesh':>13}"
    print(header)
    print("-" * len(header))
    for cell, metric, label, unit, fmt in ROWS:
        row = table.get((cell, metric))
        if row is None:
            sys.exit(f"no {metric} for {cell} in the benchmark's results")
        value = {mode: row["values"].get(mode, {}).get("median") for mode in "abf"}
        if None in value.values():
            sys.exit(f"{cell} {metric}: a mode has no result (see the benchmark's log)")
        shown = {mode: fmt.format(v) + (" " + unit if unit else "") for mode, v in value.items()}
        print(f"{label:<32} {shown['b']:>13} {shown['f']:>13} {value['f'] / value['b']:>6.2f}x"
              f" {shown['a']:>13}")
    print()
    print("sidecar mesh: every request crosses app -> sidecar -> sidecar -> app (three TCP connections,")
    print("two user-space proxies). fast path: the client app connects to the server app directly, under")
    print("meshlane's L4 policy, spliced where that pays (below). ratio = fast path / sidecar mesh.")
    print("What an operator gives up for that traffic (mTLS, L7 policy, proxy telemetry): docs/fast-path.md.")


def print_counters(results):
    counters = results.get("splicing_counters", {})
    fast = [counters.get(f"f/{cell}") or {} for cell in CELLS]
    taken = sum(c.get("fast_path_connections", 0) for c in fast)
    spliced = sum(c.get("spliced_fast_path", 0) for c in fast)
    print()
    print(f"meshlane counters of the fast-path runs: {taken:,} connections took the fast path")
    print(f"(fast_path_connections), {spliced:,} of them spliced (spliced_fast_path), none intercepted")
    print("for a sidecar. Connections that carry one request each stay unspliced once meshlane has seen")
    print("that their port's connections are short (adaptive splicing, docs/datapath.md); they skip the")
    print("sidecars all the same.")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        results = json.load(f)
    rounds = int(sys.argv[2])
    problems = [(f["round"], f["mode"], f["cell"], "failed: " + f["error"])
                for f in results.get("failures") or []]
    problems += [(w["round"], w["mode"], w["cell"], w["warning"])
                 for w in results.get("warnings") or []]
    if problems:
        print("The benchmark's cells failed, or its checks of what each mode did found a problem:")
        for rnd, mode, cell, what in problems:
            print(f"  round {rnd} mode {mode} {cell}: {what}")
        return 4
    print_table(results, rounds)
    print_counters(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
