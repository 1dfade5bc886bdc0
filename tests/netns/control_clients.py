#!/usr/bin/env python3
"""Many simultaneous clients of meshlaned's control socket (tests/netns/test_control_clients.sh).

Phase 1: CLIENTS connections are opened and held at once; then every one sends its request
(a mix: status, stats, workload.get/list, conns, pipelined pairs, an unknown method, malformed
JSON, a request stalled halfway, a client that vanishes mid-request) and every answer is
checked: the right id, a result or the expected error code, the connection closed exactly when
the protocol says so. Phase 2: with the daemon's client limit filled, EXTRA more clients each
get a too_many_clients error and are disconnected, and the held ones are still served.
Prints one JSON summary line; exits 1 with the reasons when anything is off.
"""
import argparse
import json
import resource
import selectors
import socket
import sys
import time

KINDS = ["status", "stats", "get", "list", "unknown", "malformed", "conns", "pipelined",
         "stall", "vanish"]


def request(id_, method, params=None):
    message = {"v": 1, "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return (json.dumps(message) + "\n").encode()


class Client:
    def __init__(self, path, index, workload):
        self.index = index
        self.kind = KINDS[index % len(KINDS)]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.workload = workload
        self.received = b""
        self.closed = False
        base = index * 10
        self.payload, self.expected = self.plan(base)

    def plan(self, base):
        """The bytes to send and, per answer line, (id, check) in order."""
        w = self.workload
        if self.kind == "status":
            return request(base, "status"), [(base, lambda r: r["result"]["protocol"] == 1)]
        if self.kind == "stats":
            return request(base, "stats"), [
                (base, lambda r: isinstance(r["result"]["counters"]["sockets_added"], int))]
        if self.kind == "get":
            return request(base, "workload.get", {"name": w}), [
                (base, lambda r: r["result"]["name"] == w and r["result"]["source"] == "live")]
        if self.kind == "list":
            return request(base, "workload.list"), [
                (base, lambda r: any(x["name"] == w for x in r["result"]["workloads"]))]
        if self.kind == "unknown":
            return request(base, "workload.rm"), [
                (base, lambda r: r["error"]["code"] == "unknown_method")]
        if self.kind == "malformed":
            return b'{"v":1,"id":' + str(base).encode() + b',"method":\n', [
                (None, lambda r: r["error"]["code"] == "parse_error")]
        if self.kind == "conns":
            return request(base, "conns", {"limit": 1}), [
                (base, lambda r: isinstance(r["result"]["connections"], list))]
        if self.kind == "pipelined":
            return request(base, "status") + request(base + 1, "workload.get", {"name": w}), [
                (base, lambda r: r["result"]["protocol"] == 1),
                (base + 1, lambda r: r["result"]["name"] == w)]
        # stall and vanish: half a request, no answer expected while the test runs.
        return request(base, "status")[:10], []

    def must_close(self):
        return self.kind == "malformed"


def fail(problems, summary):
    summary["problems"] = problems[:20]
    summary["problem_count"] = len(problems)
    print(json.dumps(summary))
    sys.exit(1)


def read_answers(clients, timeout):
    """Reads until every client has its answers (and the closing ones are closed)."""
    selector = selectors.DefaultSelector()
    pending = 0
    for c in clients:
        c.sock.setblocking(False)
        if c.expected or c.must_close():
            selector.register(c.sock, selectors.EVENT_READ, c)
            pending += 1
    deadline = time.time() + timeout
    while pending and time.time() < deadline:
        for key, _ in selector.select(timeout=1):
            c = key.data
            try:
                chunk = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                chunk = b""
            if chunk:
                c.received += chunk
            else:
                c.closed = True
            done = c.received.count(b"\n") >= len(c.expected) and (c.closed or not c.must_close())
            if done or c.closed:
                selector.unregister(c.sock)
                pending -= 1
    selector.close()


def check(clients):
    problems = []
    for c in clients:
        lines = c.received.split(b"\n")[:-1]
        if len(lines) != len(c.expected):
            problems.append("client %d (%s): %d answer(s), expected %d: %r"
                            % (c.index, c.kind, len(lines), len(c.expected), c.received[:200]))
            continue
        for line, (id_, ok) in zip(lines, c.expected):
            try:
                answer = json.loads(line)
                good = answer.get("v") == 1 and answer.get("id") == id_ and ok(answer)
            except (ValueError, KeyError, TypeError):
                good = False
            if not good:
                problems.append("client %d (%s): unexpected answer %r" % (c.index, c.kind, line[:200]))
        if c.must_close() and not c.closed:
            problems.append("client %d (%s): the daemon kept the connection" % (c.index, c.kind))
        if c.expected and not c.must_close() and c.closed:
            problems.append("client %d (%s): the daemon closed the connection" % (c.index, c.kind))
    return problems


def call(sock, id_, method, params=None):
    sock.setblocking(True)
    sock.settimeout(60)
    sock.sendall(request(id_, method, params))
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data) if data else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--extra", type=int, default=5)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    summary = {"clients": args.clients}

    # ---- Phase 1: all connected at once, then all requests at once ----
    begin = time.time()
    clients = [Client(args.socket, i, args.workload) for i in range(args.clients)]
    summary["connect_seconds"] = round(time.time() - begin, 3)
    begin = time.time()
    for c in clients:
        c.sock.sendall(c.payload)
    for c in clients:
        if c.kind == "vanish":
            c.sock.close()
    live = [c for c in clients if c.kind != "vanish"]
    read_answers(live, args.timeout)
    summary["answer_seconds"] = round(time.time() - begin, 3)
    problems = check(live)
    stalled = [c for c in live if c.kind == "stall"]
    if any(c.received for c in stalled):
        problems.append("a stalled client got an answer to half a request")
    summary["answered"] = sum(1 for c in live if c.expected and
                              c.received.count(b"\n") == len(c.expected))
    summary["expected_answered"] = sum(1 for c in live if c.expected)
    if problems:
        fail(problems, summary)
    # The stalled clients can still finish their request and be answered.
    for c in stalled:
        c.sock.setblocking(True)
        c.sock.sendall(request(c.index * 10, "status")[10:])
        c.received = b""
        c.expected = [(c.index * 10, lambda r: r["result"]["protocol"] == 1)]
    read_answers(stalled, args.timeout)
    problems = check(stalled)
    if problems:
        fail(problems, summary)
    for c in live:
        c.sock.close()

    # ---- Phase 2: the client limit ----
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.connect(args.socket)
    deadline = time.time() + 60  # a hang guard: the daemon sees the closes soon
    while True:
        status = call(probe, 1, "status")
        control = status["result"]["control"]
        if control["clients"] == 1 or time.time() > deadline:
            break
        time.sleep(0.2)
    if control["clients"] != 1:
        fail(["the daemon still counts %d clients after all but one left" % control["clients"]],
             summary)
    limit = control["max_clients"]
    summary["max_clients"] = limit
    held = [probe]
    for i in range(limit - 1):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(args.socket)
        held.append(s)
    # Every held client is served (which also proves the daemon registered it).
    for i, s in enumerate(held):
        s.setblocking(True)
        s.sendall(request(i, "status"))
    problems = []
    for i, s in enumerate(held):
        data = b""
        s.settimeout(60)
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        try:
            ok = json.loads(data)["id"] == i
        except ValueError:
            ok = False
        if not ok:
            problems.append("held client %d: %r" % (i, data[:200]))
    rejected = 0
    for _ in range(args.extra):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(args.socket)
        s.settimeout(60)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        try:
            answer = json.loads(data.split(b"\n")[0])
            if answer["error"]["code"] == "too_many_clients" and answer["id"] is None:
                rejected += 1
            else:
                problems.append("client over the limit got %r" % data[:200])
        except (ValueError, KeyError, TypeError):
            problems.append("client over the limit got %r" % data[:200])
        s.close()
    summary["rejected_over_limit"] = rejected
    answer = call(held[0], 7, "workload.get", {"name": args.workload})
    if not answer or answer.get("result", {}).get("name") != args.workload:
        problems.append("a held client is not served after the rejections: %r" % answer)
    for s in held:
        s.close()
    if problems:
        fail(problems, summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
