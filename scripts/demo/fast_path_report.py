#!/usr/bin/env python3
"""Part 2 of scripts/demo.sh: the L4 fast path against the sidecar mesh and against no mesh,
from the results.json of `scripts/bench.sh --modes a,b,f --workloads spe64,rr1,cr16`.

Usage: fast_path_report.py RESULTS_JSON ROUNDS
Prints the table and the fast-path counters. Exit status: 0 when the fast-path pods' connections
took the fast path (and some were spliced); 1 on results it cannot read; 3 when no connection
took the fast path or none was spliced; 4 when benchmark cells failed; 5 when a connection of
the fast-path pods was intercepted for a sidecar.
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
SIDECAR_COUNTERS = ("intercepted_outbound", "intercepted_inbound_local", "intercepted_inbound_tc")


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


def check_counters(results):
    """Prints the fast-path runs' counters; returns the exit status they call for."""
    counters = results.get("splicing_counters", {})
    fast = [counters.get(f"f/{cell}") or {} for cell in CELLS]
    taken = sum(c.get("fast_path_connections", 0) for c in fast)
    spliced = sum(c.get("spliced_fast_path", 0) for c in fast)
    through_sidecars = sum(c.get(name, 0) for c in fast for name in SIDECAR_COUNTERS)
    print()
    print(f"meshlane counters of the fast-path runs: {taken:,} connections took the fast path")
    print(f"(fast_path_connections), {spliced:,} of them spliced (spliced_fast_path), "
          f"{through_sidecars:,} intercepted for a sidecar.")
    print("Connections that carry one request each stay unspliced once meshlane has seen that their port's")
    print("connections are short (adaptive splicing, docs/datapath.md); they skip the sidecars all the same.")
    if through_sidecars:
        return 5
    if taken == 0 or spliced == 0:
        return 3
    return 0


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        results = json.load(f)
    rounds = int(sys.argv[2])
    failures = results.get("failures") or []
    if failures:
        print("FAILED benchmark cells:")
        for failure in failures:
            print(f"  round {failure['round']} mode {failure['mode']} {failure['cell']}: "
                  f"{failure['error']}")
        return 4
    print_table(results, rounds)
    return check_counters(results)


if __name__ == "__main__":
    sys.exit(main())
