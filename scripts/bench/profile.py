#!/usr/bin/env python3
"""Where the CPU of one benchmark cell goes, from a `perf record -a -g` profile.

    profile.py categorize PERF_DATA [FREQ_HZ]  -> JSON on stdout: {"category": CPU-us, ...}

Every sample of the benchmark's processes (sidecars, clients, servers, meshlaned) and of the
kernel threads that do their deferred work (softirq, kworker, RCU) is put in one category,
checked in this order on its call stack:

  meshlane BPF programs      a frame of an ml_* BPF program (with the helpers it calls)
  sockmap splicing           psock, sockhash, tcp_bpf and sk_msg code (set-up, redirect,
                             receive, tear-down)
  netfilter                  conntrack, NAT and iptables/nftables rule evaluation
  user space (<process>)     the process's own code and libraries
  scheduler and wakeups      schedule(), wakeups and epoll near the top of the stack
  TCP/IP and sockets         the rest of the kernel's work for those processes and their
                             softirqs
  kernel threads             the rest of kworker and RCU thread time (e.g. freeing sockets)

Samples of other processes (anything else running on the machine) are left out. Each sample is
worth 1/FREQ_HZ seconds. On a VM without a PMU perf samples with the cpu-clock timer, which
cannot fire while interrupts are disabled: time in irq-off sections (wakeups, IPIs) lands on the
instruction that re-enables them. The categories keep that time with the code that disabled
them, which is why "scheduler and wakeups" is large.
"""
import collections
import json
import re
import subprocess
import sys

BENCH_PROCESSES = ("haproxy", "ml_connrate", "sockperf", "iperf3", "meshlaned")
SPLICE_PREFIXES = ("sk_psock", "sock_map", "sock_hash", "tcp_bpf", "sk_msg", "__sk_msg",
                   "bpf_tcp_ingress", "bpf_msg_", "bpf_sk_redirect", "sk_redirect")
NETFILTER_PREFIXES = ("nf_", "__nf_", "nft_", "ipt_", "iptable_", "ipv4_conntrack", "nf_nat",
                      "xt_")
SCHED_PREFIXES = ("schedule", "__schedule", "finish_task_switch", "try_to_wake_up", "ep_",
                  "do_epoll", "__wake_up", "wake_up", "ttwu", "enqueue_task", "dequeue_task",
                  "pick_next_task", "update_curr", "select_task_rq")
SOFTIRQ_MARKERS = ("net_rx_action", "__do_softirq", "handle_softirqs", "do_softirq")
CATEGORIES = ["meshlane BPF programs", "sockmap splicing", "netfilter", "TCP/IP and sockets",
              "scheduler and wakeups", "kernel threads"]


def classify(comm, frames):
    """frames: [(symbol, is_kernel)] from the leaf up. Returns a category or None."""
    syms = [s for s, _ in frames]
    base = re.sub(r"[/:].*", "", comm)
    bench = comm in BENCH_PROCESSES
    helper = base in ("kworker", "ksoftirqd", "rcu_preempt", "rcu_sched", "rcuc", "rcuog")
    idle_softirq = base == "swapper" and any(s.startswith(SOFTIRQ_MARKERS) for s in syms)
    if not (bench or helper or idle_softirq):
        return None
    if any(s.startswith("bpf_prog_") and "_ml_" in s for s in syms):
        return "meshlane BPF programs"
    if any(s.startswith(SPLICE_PREFIXES) for s in syms):
        return "sockmap splicing"
    if any(s.startswith(NETFILTER_PREFIXES) for s in syms):
        return "netfilter"
    if bench and frames and not frames[0][1]:
        return "user space (%s)" % comm
    if any(s.startswith(SCHED_PREFIXES) for s in syms[:8]):
        return "scheduler and wakeups"
    if bench or idle_softirq or base == "ksoftirqd":
        return "TCP/IP and sockets"
    return "kernel threads"


def parse_frame(line):
    # "ffffffff8123 tcp_v4_rcv+0x12 ([kernel.kallsyms])" or "7f12 epoll_wait+0x3 (/lib/...)"
    parts = line.strip().split(None, 1)
    if len(parts) < 2:
        return ("", False)
    rest = parts[1]
    m = re.match(r"(.*?)\s+\(([^()]*)\)$", rest)
    sym, dso = (m.group(1), m.group(2)) if m else (rest, "")
    sym = sym.split("+0x")[0]
    kernel = dso.startswith("[kernel") or dso.startswith("[bpf") or sym.startswith("bpf_prog_")
    return (sym, kernel)


def categorize(path, freq):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,ip,sym,dso"],
                         capture_output=True, text=True, check=False).stdout
    cpu_us = collections.Counter()
    for block in out.split("\n\n"):
        lines = [l for l in block.split("\n") if l.strip()]
        if len(lines) < 2:
            continue
        comm = lines[0].strip().split()[0] if lines[0].strip() else ""
        cat = classify(comm, [parse_frame(l) for l in lines[1:]])
        if cat:
            cpu_us[cat] += 1e6 / freq
    return dict(cpu_us)


def main():
    if len(sys.argv) < 3 or sys.argv[1] != "categorize":
        print(__doc__, file=sys.stderr)
        return 2
    freq = float(sys.argv[3]) if len(sys.argv) > 3 else 997.0
    json.dump(categorize(sys.argv[2], freq), sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
