#!/usr/bin/env python3
"""Turns the raw output of scripts/bench.sh into results.json, results.md and chart.png.

  report.py summarize RAW_PREFIX   one line about one cell (the progress line of bench.sh)
  report.py summarize-lines        the same for each RAW_PREFIX read from stdin, one per line
                                   (bench.sh keeps one running: a Python start per cell cost
                                   more than a quick cell itself on a loaded machine)
  report.py build OUT_DIR          OUT_DIR/raw/* -> OUT_DIR/results.{json,md}, chart.png

Over 600 lines on purpose: one parser per tool's output, the sanity checks per mode and the
report's tables live together so that a new mode or cell is added in one place.

Raw files per cell (prefix raw/r<round>-<mode>-<cell>): .meta (key=value: round, mode, cell,
command, rc, server_rc), .out/.err (the client's output), .stat0/.stat1 (first line of
/proc/stat), .cg0/.cg1 (bench cgroup usage_usec), .t0/.t1 (ns), .sock0/.sock1 (TCP line of
/proc/net/sockstat), .ml0/.ml1 (meshlaned --stats -o json, modes c, d, dx, d+, f).

Statistics: for every metric and mode, median, min and max over the rounds. Ratios against
mode b are paired per round (x_r / b_r) and reported as the median [min-max] of those ratios;
mode f (the L4 fast path) is also paired against mode a (direct, no mesh), the floor it nears.
"""

import json
import math
import os
import re
import statistics
import subprocess
import sys

MODES = ["a", "b", "c", "d", "dx", "d+", "f", "f+", "fn", "ft"]
MODE_NAMES = {
    "a": "a: direct",
    "b": "b: iptables + HAProxy",
    "c": "c: meshlane intercept, accel off",
    "d": "d: meshlane intercept + accel",
    "dx": "dx: d, hop app -> sidecar on TCP",
    "d+": "d+: d + splice blocking sockets",
    "f": "f: d + L4 fast path (app to app)",
    "f+": "f+: f + splice blocking sockets",
    "fn": "fn: f without splicing",
    "ft": "ft: f, steering by tc",
}
MESHLANE_MODES = ("c", "d", "dx", "d+")
SPLICING_MODES = ("d", "dx", "d+")
# The L4 fast path: d's sidecars and splicing, both pods opted in (docs/fast-path.md). The
# client's connections to the server pod skip both sidecars, so its evidence is another one
# (sanity_checks); its figures are also paired against a, the no-mesh floor.
FAST_PATH_MODES = ("f", "f+", "fn", "ft")
# Variants of d shown next to it in the targets, for the cells they ran.
D_VARIANTS = ("dx", "d+", "f", "f+")
CELLS = ["sp64", "sp4k", "spe64", "spe4k", "rr1", "cr1", "cr16", "ip1x1k", "ip1x64k", "ip8x1k", "ip8x64k"]
CELL_NAMES = {
    "sp64": "sockperf ping-pong 64 B, client busy-polls",
    "sp4k": "sockperf ping-pong 4 KiB, client busy-polls",
    "spe64": "sockperf ping-pong 64 B, client in epoll",
    "spe4k": "sockperf ping-pong 4 KiB, client in epoll",
    "rr1": "ml_connrate req/resp 64 B, 1 persistent conn",
    "cr1": "ml_connrate connect+req+close, c=1",
    "cr16": "ml_connrate connect+req+close, c=16",
    "ip1x1k": "iperf3 1 stream, 1 KiB writes",
    "ip1x64k": "iperf3 1 stream, 64 KiB writes",
    "ip8x1k": "iperf3 8 streams, 1 KiB writes",
    "ip8x64k": "iperf3 8 streams, 64 KiB writes",
}

# metric key -> (label, unit, better)
METRICS = {
    "p50_us": ("RTT p50", "us", "lower"),
    "p99_us": ("RTT p99", "us", "lower"),
    "lat_p50_us": ("latency p50", "us", "lower"),
    "lat_p99_us": ("latency p99", "us", "lower"),
    "req_per_s": ("requests/s", "1/s", "higher"),
    "conn_per_s": ("connections/s", "1/s", "higher"),
    "gbps": ("throughput", "Gbit/s", "higher"),
    "cpu_sys_us_per_req": ("CPU per request, system", "us", "lower"),
    "cpu_cg_us_per_req": ("CPU per request, cgroup", "us", "lower"),
    "cpu_sys_s_per_gib": ("CPU per GiB, system", "CPU-s", "lower"),
    "cpu_cg_s_per_gib": ("CPU per GiB, cgroup", "CPU-s", "lower"),
}


def cell_metrics(cell):
    if cell.startswith("sp"):
        return ["p50_us", "p99_us", "cpu_sys_us_per_req", "cpu_cg_us_per_req"]
    if cell.startswith("cr"):
        return ["conn_per_s", "lat_p50_us", "lat_p99_us", "cpu_sys_us_per_req",
                "cpu_cg_us_per_req"]
    if cell == "rr1":
        return ["req_per_s", "lat_p50_us", "lat_p99_us", "cpu_sys_us_per_req",
                "cpu_cg_us_per_req"]
    return ["gbps", "cpu_sys_s_per_gib", "cpu_cg_s_per_gib"]


# (name, threshold, comparison on the raw ratio x/b, [(cell, metric)])
TARGETS = [
    ("p50 latency <= 0.70", 0.70, "le", [(c, "p50_us") for c in ["sp64", "sp4k", "spe64", "spe4k"]]),
    ("p99 latency <= 0.75", 0.75, "le", [(c, "p99_us") for c in ["sp64", "sp4k", "spe64", "spe4k"]]),
    ("throughput >= 1.3", 1.3, "ge",
     [("ip1x1k", "gbps"), ("ip1x64k", "gbps"), ("ip8x1k", "gbps"), ("ip8x64k", "gbps")]),
    ("connection rate >= 1.3", 1.3, "ge", [("cr1", "conn_per_s"), ("cr16", "conn_per_s")]),
    ("CPU per request <= 0.7 (system, /proc/stat)", 0.7, "le",
     [(c, "cpu_sys_us_per_req") for c in ["sp64", "sp4k", "spe64", "spe4k", "rr1", "cr1", "cr16"]]),
    ("CPU per request <= 0.7 (bench cgroup)", 0.7, "le",
     [(c, "cpu_cg_us_per_req") for c in ["sp64", "sp4k", "spe64", "spe4k", "rr1", "cr1", "cr16"]]),
    ("CPU per GiB <= 0.7 (system, /proc/stat)", 0.7, "le",
     [(c, "cpu_sys_s_per_gib") for c in ["ip1x1k", "ip1x64k", "ip8x1k", "ip8x64k"]]),
    ("CPU per GiB <= 0.7 (bench cgroup)", 0.7, "le",
     [(c, "cpu_cg_s_per_gib") for c in ["ip1x1k", "ip1x64k", "ip8x1k", "ip8x64k"]]),
]

COUNTER_KEYS = [
    "sockets_added", "sockets_add_failed", "sockets_skipped_blocking", "messages_redirected",
    "bytes_redirected", "redirect_failed", "spliced_app_to_proxy", "spliced_proxy_to_proxy",
    "spliced_proxy_to_app", "spliced_other", "intercepted_outbound", "intercepted_inbound_local",
    "orig_dst_answered", "sockets_skipped_peer", "redirect_reader_behind", "sockets_skipped_by_port",
    "intercepted_inbound_tc", "fast_path_connections", "spliced_fast_path", "fast_path_bytes",
]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def read_meta(path):
    meta = {}
    for line in read(path).splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            meta[k] = v
    return meta


def cpu_busy_jiffies(line):
    f = line.split()
    if len(f) < 8 or f[0] != "cpu":
        return None
    v = [int(x) for x in f[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = user+nice+system+irq+softirq
    return v[0] + v[1] + v[2] + v[5] + v[6]


def to_int(s):
    try:
        return int(s.strip())
    except (ValueError, AttributeError):
        return None


def load_json(s):
    try:
        return json.loads(s)
    except (ValueError, TypeError):
        return None


def parse_cell(prefix, clk_tck=100):
    """Parses one cell; returns a dict with metrics, ok, error, cpu and counters."""
    meta = read_meta(prefix + ".meta")
    cell = meta.get("cell", "")
    rec = {
        "round": to_int(meta.get("round", "0")),
        "mode": meta.get("mode", ""),
        "cell": cell,
        "command": meta.get("command", ""),
        "rc": to_int(meta.get("rc", "")),
        "ok": False,
        "error": "",
        "metrics": {},
    }
    out = read(prefix + ".out")
    err = read(prefix + ".err")
    units = None  # requests (or connections) for CPU per request; GiB for CPU per GiB
    per = "req"
    if rec["rc"] is None:
        rec["error"] = "did not finish"
    elif cell.startswith("sp"):
        text = ANSI.sub("", out + "\n" + err)
        m50 = re.search(r"percentile 50\.000 =\s*([0-9.]+)", text)
        m99 = re.search(r"percentile 99\.000 =\s*([0-9.]+)", text)
        mavg = re.search(r"avg-rtt=([0-9.]+)", text)
        mtot = re.search(r"\[Total Run\].*ReceivedMessages=(\d+)", text)
        if rec["rc"] == 0 and m50 and m99:
            rec["ok"] = True
            rec["metrics"]["p50_us"] = float(m50.group(1))
            rec["metrics"]["p99_us"] = float(m99.group(1))
            if mavg:
                rec["avg_us"] = float(mavg.group(1))
            units = int(mtot.group(1)) if mtot else None
        else:
            lines = [l for l in text.splitlines() if "ERROR" in l or "rror" in l]
            rec["error"] = "sockperf exit %s: %s" % (rec["rc"], (lines or ["no statistics"])[-1])
    elif cell.startswith("ip"):
        j = load_json(out)
        if j is None:
            rec["error"] = "iperf3 exit %s, no JSON: %s" % (rec["rc"], (err.strip() or out.strip())[-200:])
        else:
            end = j.get("end", {})
            recv = end.get("sum_received", {})
            if j.get("error"):
                rec["error"] = "iperf3: " + j["error"]
            if rec["rc"] != 0 and not rec["error"]:
                rec["error"] = "iperf3 exit %s" % rec["rc"]
            if recv.get("bytes"):
                rec["metrics"]["gbps"] = recv["bits_per_second"] / 1e9
                units = recv["bytes"] / float(1 << 30)
                per = "gib"
                rec["bytes"] = recv["bytes"]
            rec["ok"] = not rec["error"] and "gbps" in rec["metrics"]
            if not rec["ok"] and "gbps" in rec["metrics"]:
                rec["partial_gbps"] = rec["metrics"].pop("gbps")
        srv_rc = meta.get("server_rc")
        if srv_rc not in (None, "0") and rec["ok"]:
            rec.setdefault("warnings", []).append("iperf3 server exit %s" % srv_rc)
    else:  # ml_connrate
        lines = [l for l in out.splitlines() if l.startswith("{")]
        j = load_json(lines[-1]) if lines else None
        if j is None:
            rec["error"] = "ml_connrate exit %s: %s" % (rec["rc"], err.strip()[-200:])
        else:
            lat = j.get("latency_us", {})
            rec["metrics"]["lat_p50_us"] = lat.get("p50", 0.0)
            rec["metrics"]["lat_p99_us"] = lat.get("p99", 0.0)
            if cell == "rr1":
                rec["metrics"]["req_per_s"] = j.get("req_per_s", 0.0)
                units = j.get("requests", 0)
            else:
                rec["metrics"]["conn_per_s"] = j.get("conn_per_s", 0.0)
                units = j.get("connections", 0)
            rec["ok"] = bool(j.get("ok")) and rec["rc"] == 0
            if not rec["ok"]:
                rec["error"] = "ml_connrate: %d errors, first: %s" % (j.get("errors", 0),
                                                                     j.get("first_error", ""))
                # Keep the figures (they are real), but mark the cell failed.
                rec["failed_metrics"] = rec.pop("metrics")
                rec["metrics"] = {}

    # CPU
    s0, s1 = read(prefix + ".stat0"), read(prefix + ".stat1")
    b0, b1 = cpu_busy_jiffies(s0), cpu_busy_jiffies(s1)
    c0, c1 = to_int(read(prefix + ".cg0")), to_int(read(prefix + ".cg1"))
    t0, t1 = to_int(read(prefix + ".t0")), to_int(read(prefix + ".t1"))
    cpu = {}
    if b0 is not None and b1 is not None:
        cpu["system_busy_s"] = (b1 - b0) / float(clk_tck)
    if c0 is not None and c1 is not None:
        cpu["cgroup_s"] = (c1 - c0) / 1e6
    if t0 and t1:
        cpu["wall_s"] = (t1 - t0) / 1e9
    rec["cpu"] = cpu
    if rec["ok"] and units:
        if per == "gib":
            if "system_busy_s" in cpu:
                rec["metrics"]["cpu_sys_s_per_gib"] = cpu["system_busy_s"] / units
            if "cgroup_s" in cpu:
                rec["metrics"]["cpu_cg_s_per_gib"] = cpu["cgroup_s"] / units
        else:
            if "system_busy_s" in cpu:
                rec["metrics"]["cpu_sys_us_per_req"] = cpu["system_busy_s"] * 1e6 / units
            if "cgroup_s" in cpu:
                rec["metrics"]["cpu_cg_us_per_req"] = cpu["cgroup_s"] * 1e6 / units
        rec["units"] = units
        # --perf: CPU-us per category, per request (connection) or per GiB.
        prof = load_json(read(prefix + ".profile.json"))
        if isinstance(prof, dict):
            rec["profile_per_unit"] = {k: v / units for k, v in prof.items()}
            rec["profile_unit"] = "CPU-s per GiB" if per == "gib" else "CPU-us per request"
            if per == "gib":
                rec["profile_per_unit"] = {k: v / 1e6 for k, v in rec["profile_per_unit"].items()}

    # meshlane counters (delta over the cell)
    m0, m1 = load_json(read(prefix + ".ml0")), load_json(read(prefix + ".ml1"))
    if isinstance(m0, dict) and isinstance(m1, dict):
        flat0, flat1 = flatten(m0), flatten(m1)
        rec["counters"] = {k: flat1[k] - flat0.get(k, 0) for k in flat1
                           if isinstance(flat1[k], int) and not isinstance(flat1[k], bool)}
    # Per-program BPF run statistics (--bpf-stats): the ml_* programs using this daemon's maps.
    b0, b1 = load_json(read(prefix + ".bpf0")), load_json(read(prefix + ".bpf1"))
    if isinstance(b0, list) and isinstance(b1, list):
        mine = daemon_map_ids(prefix)
        before = {p["id"]: p for p in b0}
        progs = {}
        for p in b1:
            if not p.get("name", "").startswith("ml_") or not mine & set(p.get("map_ids", [])):
                continue
            q = before.get(p["id"], {})
            cnt = p.get("run_cnt", 0) - q.get("run_cnt", 0)
            ns = p.get("run_time_ns", 0) - q.get("run_time_ns", 0)
            if cnt > 0:
                name = p["name"]
                acc = progs.setdefault(name, {"run_cnt": 0, "run_time_ns": 0})
                acc["run_cnt"] += cnt
                acc["run_time_ns"] += ns
        for acc in progs.values():
            acc["ns_per_run"] = acc["run_time_ns"] / acc["run_cnt"]
        rec["bpf_programs"] = progs
    sk0, sk1 = read(prefix + ".sock0"), read(prefix + ".sock1")
    mm = re.search(r"mem (\d+)", sk1)
    if mm:
        rec["tcp_mem_pages_after"] = int(mm.group(1))
    return rec


def daemon_map_ids(prefix):
    """IDs of the maps pinned by the daemon of this cell's mode run (raw/r<R>-<mode>.maps.json)."""
    m = re.match(r"(.*/r\d+-[a-z+]+)-[a-z0-9]+$", prefix)
    ids = set()
    if not m:
        return ids
    for line in read(m.group(1) + ".maps.json").splitlines():
        j = load_json(line)
        if isinstance(j, dict) and "id" in j:
            ids.add(j["id"])
    return ids


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def sanity_checks(r):
    """Evidence that each mode did what it claims; problems become warnings in the report."""
    w = r.setdefault("warnings", [])
    if r["mode"] in MESHLANE_MODES:
        if r.get("counters") is None:
            w.append("no meshlane counters")
            return
        out = counter(r, "intercepted_outbound") or 0
        inb = counter(r, "intercepted_inbound_local") or 0
        ans = counter(r, "orig_dst_answered") or 0
        if out == 0:
            w.append("nothing was intercepted (intercepted_outbound did not rise)")
        # Every intercepted connection is asked about twice (sidecar a outbound, sidecar b
        # inbound); fewer answers mean the kernel (conntrack) answered some instead.
        if ans < out + inb - 2 * r["cell"].startswith("cr") * 16:
            w.append("orig_dst_answered rose by %d for %d intercepted connections: some "
                     "SO_ORIGINAL_DST answers did not come from meshlane" % (ans, out + inb))
    if r["mode"] in SPLICING_MODES and r["ok"] and not judged_short(r):
        if not counter(r, "bytes_redirected"):
            w.append("nothing was spliced (bytes_redirected did not rise)")
    # iperf3's client is blocking, so d splices its app hop only in the other cells.
    if r["mode"] == "d" and r["ok"] and not r["cell"].startswith("ip") and not judged_short(r):
        if not counter(r, "spliced_app_to_proxy"):
            w.append("the hop app -> sidecar was not spliced (spliced_app_to_proxy did not rise)")
    if r["mode"] == "c" and counter(r, "bytes_redirected"):
        w.append("bytes were spliced with acceleration off")
    if r["mode"] == "dx" and r["ok"]:
        if counter(r, "spliced_app_to_proxy"):
            w.append("the excluded hop app -> sidecar was spliced (spliced_app_to_proxy rose)")
        if not counter(r, "sockets_skipped_by_port"):
            w.append("no socket was left out by port (sockets_skipped_by_port did not rise)")
    if r["mode"] in FAST_PATH_MODES:
        fast_path_checks(r, w)


def judged_short(r):
    """A cr cell whose connections adaptive splicing left unspliced as short: one request per
    connection, so once the port is judged (by the first 32 connections after the daemon
    starts) none is spliced, and the evidence that the datapath saw them is
    sockets_skipped_short instead (docs/datapath.md, "Short connections are not spliced")."""
    return r["cell"].startswith("cr") and bool(counter(r, "sockets_skipped_short"))


def fast_path_checks(r, w):
    """Mode f: the workload's connections took the fast path and no sidecar carried any. The
    sidecars only ever get a connection that meshlane redirected to them (outbound at the
    client's connect, inbound_local at a sidecar's connect, inbound_tc at the server pod's tc),
    and each such connection is counted there; the fast path counts its own at connect."""
    if r.get("counters") is None:
        w.append("no meshlane counters")
        return
    if not counter(r, "fast_path_connections"):
        w.append("no connection took the fast path (fast_path_connections did not rise)")
    carried = sum(counter(r, k) or 0 for k in ("intercepted_outbound", "intercepted_inbound_local",
                                               "intercepted_inbound_tc"))
    if carried:
        w.append("the sidecars carried %d of the workload's connections (intercepted_outbound, "
                 "intercepted_inbound_local, intercepted_inbound_tc rose)" % carried)
    if counter(r, "orig_dst_answered"):
        w.append("a sidecar asked for an original destination (orig_dst_answered rose)")
    hops = sum(counter(r, k) or 0 for k in ("spliced_app_to_proxy", "spliced_proxy_to_proxy",
                                            "spliced_proxy_to_app"))
    if hops:
        w.append("%d sidecar hop(s) were spliced: a sidecar was in the path" % hops)
    if r["mode"] == "fn":
        if counter(r, "bytes_redirected"):
            w.append("bytes were spliced with acceleration off")
        return
    # iperf3's sockets are blocking: f does not splice them, f+ does; every other cell is spliced.
    # A cr cell may have been judged short instead (judged_short).
    if r["ok"] and (r["mode"] == "f+" or not r["cell"].startswith("ip")) and not judged_short(r):
        if not counter(r, "spliced_fast_path"):
            w.append("no fast-path connection was spliced (spliced_fast_path did not rise)")
        if not counter(r, "fast_path_bytes"):
            w.append("no byte went over a spliced fast-path connection (fast_path_bytes did not rise)")


def counter(rec, key):
    c = rec.get("counters") or {}
    for k, v in c.items():
        if k == key or k.endswith("." + key):
            return v
    return None


def fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a >= 1000:
        return "%.0f" % v
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3f" % v


def summarize(prefix):
    rec = parse_cell(prefix)
    m = rec["metrics"]
    parts = []
    for key in cell_metrics(rec["cell"]):
        if key in m and not key.startswith("cpu_cg"):
            label, unit, _ = METRICS[key]
            parts.append("%s %s %s" % (label.replace("CPU per request, system", "CPU/req")
                                       .replace("CPU per GiB, system", "CPU/GiB"),
                                       fmt(m[key]), unit))
    if not rec["ok"]:
        parts.insert(0, "FAILED (%s)" % rec["error"][:160])
    red = counter(rec, "bytes_redirected")
    if red is not None and rec["mode"] in SPLICING_MODES:
        parts.append("spliced %s" % human_bytes(red))
    if rec["mode"] in FAST_PATH_MODES and rec.get("counters") is not None:
        parts.append("fast path %d conn(s), %s spliced, sidecars %d conn(s)" % (
            counter(rec, "fast_path_connections") or 0,
            human_bytes(counter(rec, "fast_path_bytes") or 0),
            sum(counter(rec, k) or 0 for k in ("intercepted_outbound",
                                                "intercepted_inbound_local",
                                                "intercepted_inbound_tc"))))
    print(", ".join(parts))


def human_bytes(n):
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"]:
        if abs(n) < 1024 or unit == "TiB":
            return ("%.0f %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024.0
    return str(n)


def stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "samples": vals}


def improvement(ratio, better):
    """Improvement factor from a raw x/b ratio: > 1 means better than b."""
    if ratio is None or ratio <= 0:
        return None
    return 1.0 / ratio if better == "lower" else ratio


def build(out_dir):
    raw = os.path.join(out_dir, "raw")
    meta = read_meta(os.path.join(out_dir, "meta.txt"))
    clk = to_int(meta.get("clk_tck", "100")) or 100
    recs = []
    for name in sorted(os.listdir(raw)):
        if name.endswith(".meta"):
            recs.append(parse_cell(os.path.join(raw, name[:-5]), clk))
    modes = [m for m in MODES if any(r["mode"] == m for r in recs)]
    cells = [c for c in CELLS if any(r["cell"] == c for r in recs)]
    rounds = sorted({r["round"] for r in recs})

    by = {}  # (cell, mode, round) -> rec
    for r in recs:
        by[(r["cell"], r["mode"], r["round"])] = r

    table = []
    for cell in cells:
        for key in cell_metrics(cell):
            label, unit, better = METRICS[key]
            row = {"cell": cell, "workload": CELL_NAMES[cell], "metric": key, "label": label,
                   "unit": unit, "better": better, "values": {}, "ratios": {},
                   "improvement": {}, "ratios_vs_c": {}, "ratios_vs_a": {}}
            for mode in modes:
                vals = [by[(cell, mode, rd)]["metrics"].get(key) for rd in rounds
                        if (cell, mode, rd) in by]
                row["values"][mode] = stats(vals)
                if mode in FAST_PATH_MODES and "a" in modes:
                    # Against the floor: how much of the mesh's cost is left.
                    ra = []
                    for rd in rounds:
                        x = by.get((cell, mode, rd), {}).get("metrics", {}).get(key)
                        a = by.get((cell, "a", rd), {}).get("metrics", {}).get(key)
                        if x is not None and a:
                            ra.append(x / a)
                    row["ratios_vs_a"][mode] = stats(ra)
                if "b" in modes and mode != "b":
                    ratios = []
                    for rd in rounds:
                        x = by.get((cell, mode, rd), {}).get("metrics", {}).get(key)
                        b = by.get((cell, "b", rd), {}).get("metrics", {}).get(key)
                        if x is not None and b:
                            ratios.append(x / b)
                    st = stats(ratios)
                    row["ratios"][mode] = st
                    if mode in SPLICING_MODES and "c" in modes:
                        # What splicing adds on top of interception alone.
                        rc = []
                        for rd in rounds:
                            x = by.get((cell, mode, rd), {}).get("metrics", {}).get(key)
                            c = by.get((cell, "c", rd), {}).get("metrics", {}).get(key)
                            if x is not None and c:
                                rc.append(x / c)
                        row["ratios_vs_c"][mode] = stats(rc)
                    if st:
                        imp = [improvement(v, better) for v in st["samples"]]
                        row["improvement"][mode] = stats(imp)
            table.append(row)

    def find(cell, key):
        for row in table:
            if row["cell"] == cell and row["metric"] == key:
                return row
        return None

    targets = []
    for name, thr, cmp, items in TARGETS:
        t = {"target": name, "threshold": thr, "items": [], "met": None}
        all_met = True
        any_val = False
        for cell, key in items:
            row = find(cell, key)
            for mode in ("d",) + D_VARIANTS:
                st = row["ratios"].get(mode) if row else None
                if st is None:
                    if mode == "d":
                        t["items"].append({"cell": cell, "metric": key, "mode": mode,
                                           "ratio": None, "met": False})
                        all_met = False
                    continue
                v = st["median"]
                met = v <= thr if cmp == "le" else v >= thr
                t["items"].append({"cell": cell, "metric": key, "mode": mode, "ratio": v,
                                   "min": st["min"], "max": st["max"], "met": met})
                if mode == "d":
                    any_val = True
                    all_met = all_met and met
        t["met"] = all_met and any_val
        targets.append(t)
    # No cell of the matrix slower than b by more than 3% (mode d; CPU from both sources).
    worst = []
    for row in table:
        st = row["improvement"].get("d")
        if st is not None and st["median"] < 0.97:
            worst.append({"cell": row["cell"], "metric": row["metric"],
                          "improvement": st["median"], "ratio": row["ratios"]["d"]["median"]})
    missing_d = [row["cell"] + "." + row["metric"] for row in table
                 if "d" in modes and row["improvement"].get("d") is None]
    targets.append({"target": "no cell below 0.97 (mode d, as improvement vs b)",
                    "threshold": 0.97, "below": worst, "missing": missing_d,
                    "met": not worst and not missing_d and "d" in modes})

    failures = [{"round": r["round"], "mode": r["mode"], "cell": r["cell"], "error": r["error"],
                 "command": r["command"]} for r in recs if not r["ok"]]
    for r in recs:
        sanity_checks(r)
    warnings = [{"round": r["round"], "mode": r["mode"], "cell": r["cell"],
                 "warning": w} for r in recs for w in r.get("warnings", [])]
    iptables_hits = {}
    for rd in rounds:
        p = os.path.join(raw, "r%d-b.iptables" % rd)
        if os.path.exists(p):
            hits = {k: to_int(v) for k, v in read_meta(p).items()}
            iptables_hits[str(rd)] = hits
            if not hits or any(v == 0 for v in hits.values()):
                warnings.append({"round": rd, "mode": "b", "cell": "*",
                                 "warning": "an iptables REDIRECT chain matched no packet: %s" % hits})
        elif "b" in modes:
            warnings.append({"round": rd, "mode": "b", "cell": "*",
                             "warning": "no iptables REDIRECT counts (%s missing)" % p})

    # Splicing evidence per mode and cell: counter deltas summed over rounds.
    splicing = {}
    for r in recs:
        if r.get("counters") is None:
            continue
        key = "%s/%s" % (r["mode"], r["cell"])
        acc = splicing.setdefault(key, {})
        for ck in COUNTER_KEYS:
            v = counter(r, ck)
            if v is not None:
                acc[ck] = acc.get(ck, 0) + v

    result = {
        "meta": meta,
        "modes": {m: MODE_NAMES[m] for m in modes},
        "cells": {c: CELL_NAMES[c] for c in cells},
        "rounds": rounds,
        "table": table,
        "targets": targets,
        "failures": failures,
        "warnings": warnings,
        "splicing_counters": splicing,
        "iptables_redirect_hits": iptables_hits,
        "cells_raw": recs,
    }
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=False)
    md = markdown(result, modes, cells, table, targets, failures, warnings, splicing)
    md += policy_switch_markdown(os.path.join(out_dir, "policy_switch.json"))
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    chart(out_dir, result, modes, table)


def policy_switch_markdown(path):
    """The policy-switch section, from policy_switch.json (written by scripts/bench.sh when the
    run had mode d); "" when there is none."""
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        r = json.load(f)
    return "".join([
        "\n## Policy switch (%d rules, %d kernel entries, %d applies)\n\n"
        % (r["rules"], r["kernel_entries"], r["rounds"]),
        "| | p50 | p99 | max |\n|---|---|---|---|\n",
        "| `policy apply` round trip (ms) | %.2f | %.2f | %.2f |\n"
        % (r["apply_ms"]["p50"], r["apply_ms"]["p99"], r["apply_ms"]["max"]),
        "| apply returned -> new verdict seen (us) | %.1f | %.1f | %.1f |\n"
        % (r["enforce_lag_us"]["p50"], r["enforce_lag_us"]["p99"], r["enforce_lag_us"]["max"]),
        "\nConnects that still got the old verdict after apply returned: %d "
        "(target p99 lag < 1 ms).\n" % r["stale_verdicts_after_return"],
    ])


def rng(st, f=fmt):
    if st is None:
        return "-"
    if st["n"] == 1:
        return f(st["median"])
    return "%s [%s-%s]" % (f(st["median"]), f(st["min"]), f(st["max"]))


def markdown(result, modes, cells, table, targets, failures, warnings, splicing):
    meta = result["meta"]
    nr = len(result["rounds"])
    L = []
    quick = meta.get("quick") == "1"
    L.append("### meshlane benchmark%s: %s" % (" (--quick)" if quick else "", meta.get("date", "")))
    L.append("")
    L.append("`%s`; %d round(s), %s s per cell, modes interleaved. Machine: %s vCPU %s, %s, "
             "kernel %s, cpuidle %s; git %s; load average %s at the start, %s at the end." % (
                 meta.get("command", "scripts/bench.sh"), nr, meta.get("duration", "?"),
                 meta.get("cpus", "?"), meta.get("cpu_model", "?"), meta.get("mem_total", "?"),
                 meta.get("kernel", "?"), meta.get("cpuidle", "?"), meta.get("git", "?"),
                 meta.get("loadavg_start", "?"), meta.get("loadavg_end", "?")))
    L.append("")
    if "guest_halt_poll_ns=0" in meta.get("cpuidle", ""):
        L.append("Note: this VM's idle vCPUs halt at once (haltpoll, `guest_halt_poll_ns=0`), so "
                 "every wake-up that crosses to an idle vCPU waits for the hypervisor. That costs "
                 "the faster modes most: see \"Idle vCPUs\" in docs/performance.md.")
        L.append("")
    L.append("Modes: " + "; ".join(result["modes"][m] for m in modes) + ".")
    L.append("")
    L.append("#### Absolute figures (median [min-max] over the rounds)")
    L.append("")
    L.append("| workload | metric | unit | better | " + " | ".join(modes) + " |")
    L.append("|---|---|---|---|" + "---|" * len(modes))
    for row in table:
        L.append("| %s | %s | %s | %s | %s |" % (
            row["workload"], row["label"], row["unit"], row["better"],
            " | ".join(rng(row["values"].get(m)) for m in modes)))
    L.append("")
    others = [m for m in modes if m != "b"]
    if "b" in modes and others:
        L.append("#### Ratios against b (x / b, median [min-max] of the per-round ratios)")
        L.append("")
        L.append("`better` says which way is an improvement. `d improvement` is mode d as an "
                 "improvement factor (> 1 better than b; the target for every cell is >= 0.97). "
                 "`d/c` isolates what splicing adds to interception alone (same sidecars, no "
                 "iptables in either)." +
                 (" `f/a` is the L4 fast path against the direct floor (1.00: no mesh cost "
                  "left)." if "f" in modes and "a" in modes else ""))
        L.append("")
        vs_c = [m for m in SPLICING_MODES if m in modes and "c" in modes]
        vs_a = [m for m in FAST_PATH_MODES if m in modes and "a" in modes]
        L.append("| workload | metric | better | " + " | ".join(m + "/b" for m in others) +
                 " | d improvement |" + "".join(" %s/c |" % m for m in vs_c) +
                 "".join(" %s/a |" % m for m in vs_a))
        L.append("|---|---|---|" + "---|" * len(others) + "---|" + "---|" * len(vs_c) +
                 "---|" * len(vs_a))
        for row in table:
            imp = row["improvement"].get("d")
            mark = ""
            if imp is not None:
                mark = " ok" if imp["median"] >= 0.97 else " **below 0.97**"
            L.append("| %s | %s | %s | %s | %s |%s" % (
                row["workload"], row["label"], row["better"],
                " | ".join(rng(row["ratios"].get(m), lambda v: "%.2f" % v) for m in others),
                ("%.2f%s" % (imp["median"], mark)) if imp else "-",
                "".join(" %s |" % rng(row["ratios_vs_c"].get(m), lambda v: "%.2f" % v)
                        for m in vs_c) +
                "".join(" %s |" % rng(row["ratios_vs_a"].get(m), lambda v: "%.2f" % v)
                        for m in vs_a)))
        L.append("")
    L.append("#### Issue-5 targets (mode d against b; dx, d+ and f shown for the cells they run, "
             "not counted in the verdict)")
    L.append("")
    for t in targets:
        if "items" in t:
            parts = []
            for it in t["items"]:
                if it["ratio"] is None:
                    parts.append("%s%s: n/a" % (it["cell"], variant_tag(it["mode"])))
                else:
                    parts.append("%s%s %.2f%s" % (it["cell"], variant_tag(it["mode"]),
                                                  it["ratio"], "" if it["met"] else "✗"))
            L.append("- %s: **%s** — %s" % (t["target"], "met" if t["met"] else "not met",
                                            ", ".join(parts)))
        else:
            below = ", ".join("%s %s %.2f" % (b["cell"], b["metric"], b["improvement"])
                              for b in t["below"])
            L.append("- %s: **%s**%s%s" % (t["target"], "met" if t["met"] else "not met",
                                           (" — below: " + below) if below else "",
                                           (" — missing: " + ", ".join(t["missing"]))
                                           if t["missing"] else ""))
    L.append("")
    if splicing:
        L.append("#### meshlane counters (summed over the rounds)")
        L.append("")
        keys = ["intercepted_outbound", "intercepted_inbound_local", "sockets_added",
                "sockets_skipped_blocking", "sockets_skipped_peer", "messages_redirected",
                "bytes_redirected", "redirect_failed", "redirect_reader_behind"]
        if any(k.startswith("dx/") for k in splicing):
            keys += ["spliced_app_to_proxy", "sockets_skipped_by_port"]
        if any(k.startswith("f/") for k in splicing):
            keys += ["fast_path_connections", "spliced_fast_path", "fast_path_bytes",
                     "intercepted_inbound_tc"]
        L.append("| mode/cell | " + " | ".join(keys) + " |")
        L.append("|---|" + "---|" * len(keys))
        for k in sorted(splicing, key=lambda s: (MODES.index(s.split("/")[0]),
                                                 CELLS.index(s.split("/")[1]))):
            L.append("| %s | %s |" % (k, " | ".join(str(splicing[k].get(c, "-")) for c in keys)))
        L.append("")
    bpf = {}
    for r in result["cells_raw"]:
        for name, acc in (r.get("bpf_programs") or {}).items():
            a = bpf.setdefault((r["mode"], r["cell"], name), {"run_cnt": 0, "run_time_ns": 0,
                                                              "units": 0.0})
            a["run_cnt"] += acc["run_cnt"]
            a["run_time_ns"] += acc["run_time_ns"]
            a["units"] += r.get("units") or 0
    if bpf:
        L.append("#### meshlane BPF programs (--bpf-stats, summed over the rounds)")
        L.append("")
        L.append("| mode | cell | program | runs | ns per run | runs per request (per GiB for iperf3) |")
        L.append("|---|---|---|---|---|---|")
        for (mode, cell, name) in sorted(bpf, key=lambda k: (MODES.index(k[0]), CELLS.index(k[1]), k[2])):
            a = bpf[(mode, cell, name)]
            L.append("| %s | %s | %s | %d | %.0f | %s |" % (
                mode, cell, name, a["run_cnt"], a["run_time_ns"] / max(a["run_cnt"], 1),
                fmt(a["run_cnt"] / a["units"]) if a["units"] else "-"))
        L.append("")
    L.extend(profile_tables(result["cells_raw"], modes, cells))
    if failures or warnings:
        L.append("#### Failed cells (excluded from the figures above) and warnings")
        L.append("")
        for f in failures:
            L.append("- round %s, mode %s, %s: %s" % (f["round"], f["mode"], f["cell"], f["error"]))
        for w in warnings:
            L.append("- round %s, mode %s, %s: warning: %s" % (w["round"], w["mode"], w["cell"],
                                                             w["warning"]))
        L.append("")
    return "\n".join(L) + "\n"


def variant_tag(mode):
    return "" if mode == "d" else " (%s)" % mode


def profile_tables(recs, modes, cells):
    """--perf: per cell, where the CPU goes in each mode (median over rounds)."""
    per = {}  # (cell, mode) -> list of dicts
    unit = {}
    for r in recs:
        if r.get("profile_per_unit"):
            per.setdefault((r["cell"], r["mode"]), []).append(r["profile_per_unit"])
            unit[r["cell"]] = r["profile_unit"]
    if not per:
        return []
    L = ["#### Where the CPU goes (--perf: perf record -a -g, median over the rounds)", "",
         "Categories: scripts/bench/profile.py. perf's own cost is not in these figures, but "
         "it slows the run down: compare modes within a table, not with the tables above.", ""]
    for cell in cells:
        ms = [m for m in modes if (cell, m) in per]
        if not ms:
            continue
        cats = sorted({k for m in ms for d in per[(cell, m)] for k in d})
        L.append("%s (%s)" % (CELL_NAMES[cell], unit[cell]))
        L.append("")
        L.append("| category | " + " | ".join(ms) + " |")
        L.append("|---|" + "---|" * len(ms))
        totals = {m: stats([sum(d.values()) for d in per[(cell, m)]]) for m in ms}
        for k in cats:
            L.append("| %s | %s |" % (k, " | ".join(
                fmt(stats([d.get(k, 0.0) for d in per[(cell, m)]])["median"]) for m in ms)))
        L.append("| **total** | %s |" % " | ".join(fmt(totals[m]["median"]) for m in ms))
        L.append("")
    return L


CHART_ROWS = [
    ("sp64", "p50_us", "sockperf busy 64B p50"), ("sp64", "p99_us", "sockperf busy 64B p99"),
    ("sp4k", "p50_us", "sockperf busy 4K p50"), ("sp4k", "p99_us", "sockperf busy 4K p99"),
    ("spe64", "p50_us", "sockperf epoll 64B p50"), ("spe64", "p99_us", "sockperf epoll 64B p99"),
    ("spe4k", "p50_us", "sockperf epoll 4K p50"), ("spe4k", "p99_us", "sockperf epoll 4K p99"),
    ("rr1", "req_per_s", "req/resp rate"), ("cr1", "conn_per_s", "conn/s c=1"),
    ("cr16", "conn_per_s", "conn/s c=16"), ("ip1x1k", "gbps", "iperf3 1x1K"),
    ("ip1x64k", "gbps", "iperf3 1x64K"), ("ip8x1k", "gbps", "iperf3 8x1K"),
    ("ip8x64k", "gbps", "iperf3 8x64K"), ("rr1", "cpu_sys_us_per_req", "CPU/req rr"),
    ("cr16", "cpu_sys_us_per_req", "CPU/conn c=16"),
    ("ip1x64k", "cpu_sys_s_per_gib", "CPU/GiB 1x64K"),
    ("ip8x64k", "cpu_sys_s_per_gib", "CPU/GiB 8x64K"),
]
TARGET_IMPROVEMENT = {"p50_us": 1 / 0.70, "p99_us": 1 / 0.75, "conn_per_s": 1.3, "gbps": 1.3,
                      "cpu_sys_us_per_req": 1 / 0.7, "cpu_sys_s_per_gib": 1 / 0.7}


def chart(out_dir, result, modes, table):
    others = [m for m in modes if m != "b"]
    if "b" not in modes or not others:
        return
    rows = {(r["cell"], r["metric"]): r for r in table}
    dat = os.path.join(out_dir, "chart.dat")
    with open(dat, "w") as f:
        f.write("# label " + " ".join("%s_med %s_min %s_max" % (m, m, m) for m in others) +
                " target\n")
        n = 0
        for cell, key, label in CHART_ROWS:
            row = rows.get((cell, key))
            if row is None:
                continue
            cols = []
            for m in others:
                st = row["improvement"].get(m)
                cols += (["%.4f" % st["median"], "%.4f" % st["min"], "%.4f" % st["max"]]
                         if st else ["NaN"] * 3)
            tgt = TARGET_IMPROVEMENT.get(key)
            f.write('"%s" %s %s\n' % (label, " ".join(cols), ("%.4f" % tgt) if tgt else "NaN"))
            n += 1
    if n == 0:
        return
    meta = result["meta"]
    title = "meshlane vs Istio-style iptables + HAProxy sidecars (b = 1.0), %s, %d round(s) x %s s%s" % (
        meta.get("date", "")[:10], len(result["rounds"]), meta.get("duration", "?"),
        " (--quick)" if meta.get("quick") == "1" else "")
    colors = {"a": "#9e9e9e", "c": "#6baed6", "d": "#2171b5", "dx": "#fd8d3c", "d+": "#74c476",
              "f": "#6a51a3", "f+": "#9e9ac8", "fn": "#bcbddc", "ft": "#54278f"}
    plots = []
    for i, m in enumerate(others):
        base = 2 + 3 * i
        src = "'chart.dat'" if i == 0 else "''"
        plots.append("%s using %d:%d:%d%s title '%s' lc rgb '%s'" % (
            src, base, base + 1, base + 2, ":xtic(1)" if i == 0 else "",
            MODE_NAMES[m].replace("'", ""), colors.get(m, "#444444")))
    ncol = 2 + 3 * len(others)
    gp = """set terminal pngcairo size 1600,820 noenhanced font "DejaVu Sans,11"
set output 'chart.png'
set datafile missing "NaN"
set title "%s"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -30 scale 0 nomirror
set ylabel "improvement factor vs b, log scale  (>1 = better; bars: min-max over rounds)"
set grid ytics
set key outside top center horizontal
set logscale y 2
set yrange [0.125:64]
set ytics ("1/8" 0.125, "1/4" 0.25, "1/2" 0.5, "1" 1, "1.3" 1.3, "2" 2, "4" 4, "8" 8, "16" 16, "32" 32, "64" 64)
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb "black" front
set label "b" at graph 1.003, first 1 left
set bmargin 8
plot %s, \\
     '' using 0:%d with points pt 7 ps 1.6 lc rgb "#d62728" title 'target for d'
""" % (title, ", \\\n     ".join(plots), ncol)
    with open(os.path.join(out_dir, "chart.gp"), "w") as f:
        f.write(gp)
    try:
        subprocess.run(["gnuplot", "chart.gp"], cwd=out_dir, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        msg = getattr(e, "stderr", b"") or b""
        print("report.py: gnuplot failed: %s %s" % (e, msg.decode(errors="replace")[-400:]),
              file=sys.stderr)


def summarize_lines():
    for line in sys.stdin:
        try:
            summarize(line.rstrip("\n"))
        except Exception as e:  # one bad cell must not end the progress lines of the others
            print("no summary (%s: %s)" % (type(e).__name__, e))
        sys.stdout.flush()


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "summarize-lines":
        summarize_lines()
        return 0
    if len(sys.argv) != 3 or sys.argv[1] not in ("summarize", "build"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "summarize":
        summarize(sys.argv[2])
    else:
        build(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
