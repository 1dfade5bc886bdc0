#!/usr/bin/env python3
"""How fast a policy change is enforced: applies a RULES-rule policy on pod-b over the control
socket, alternately allowing and denying pod-a's connects to DST:PORT, and after each apply
returns, connects at once and measures when the kernel first gives the new verdict.

Run inside pod A's namespace and the benchmark cgroup (its connects must be judged).
Usage: policy_switch.py SOCKET DST PORT ROUNDS RULES OUT_JSON
"""
import errno
import json
import socket
import sys
import time


def policy(allow, port, rules):
    # RULES - 1 rules that never match the probe (other sources, other ports), and the one that
    # decides it. With the allow variant pod-b is ingress-isolated: only the rule lets pod-a in.
    body = [{"action": "deny", "from": [{"cidr": "198.19.%d.%d/32" % (i // 250, i % 250 + 1)}],
             "ports": [1000 + i]} for i in range(rules - 1)]
    body.append({"action": "allow" if allow else "deny", "from": [{"workload": "pod-a"}],
                 "ports": [port]})
    return {"name": "bench-switch", "workload": "pod-b", "ingress": body}


def call(sock, reader, request_id, method, params):
    line = json.dumps({"v": 1, "id": request_id, "method": method, "params": params})
    sock.sendall(line.encode() + b"\n")
    reply = json.loads(reader.readline())
    if "error" in reply:
        sys.exit("%s failed: %s" % (method, reply["error"]))
    return reply["result"]


def verdict(dst, port):
    """'allow' or 'deny' as connect() says at once (EPERM is the policy's refusal)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        code = s.connect_ex((dst, port))
    finally:
        s.close()
    if code == errno.EPERM:
        return "deny"
    if code in (0, errno.EINPROGRESS):
        return "allow"
    sys.exit("unexpected connect result %s" % errno.errorcode.get(code, code))


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def main():
    path, dst, port, rounds, rules, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    reader = sock.makefile("r")
    documents = {v: policy(v, port, rules) for v in (True, False)}
    apply_ms, lag_us, stale, entries = [], [], 0, 0
    for r in range(rounds + 1):
        allow = r % 2 == 0
        want = "allow" if allow else "deny"
        t0 = time.monotonic()
        result = call(sock, reader, r + 1, "policy.apply",
                      {"policies": [documents[allow]], "replace": True})
        returned = time.monotonic()
        while True:
            started = time.monotonic()
            if verdict(dst, port) == want:
                break
            stale += 1  # the old policy answered after apply returned
            if started - returned > 5:
                sys.exit("the new policy was not enforced within 5 s")
        if r == 0:
            continue  # warm-up: the first apply also creates pod-b's isolation
        apply_ms.append((returned - t0) * 1000)
        lag_us.append((started - returned) * 1e6)
        entries = result["kernel_entries"]
    call(sock, reader, rounds + 2, "policy.del", {"name": "bench-switch"})
    report = {
        "rules": rules, "rounds": rounds, "kernel_entries": entries,
        "apply_ms": {"p50": percentile(apply_ms, 50), "p99": percentile(apply_ms, 99),
                     "max": max(apply_ms)},
        "enforce_lag_us": {"p50": percentile(lag_us, 50), "p99": percentile(lag_us, 99),
                           "max": max(lag_us)},
        "stale_verdicts_after_return": stale,
    }
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report))


main()
