#!/usr/bin/env python3
"""Listeners of both modes on one port: which one accepted each connection, and did it work.

  listener_modes.py SCENARIO --port PORT [--bytes N] [--timeout SECONDS]

Runs ONE scenario in this process: opens its listeners on PORT (in the order the scenario
names them), then makes its connections one at a time from non-blocking, select-driven
clients, each sending N pseudo-random bytes (default 4 MiB, in chunks) while reading the echo,
comparing every byte, then shutting down its write side and reading the server's EOF. A
client sends nothing before the server has accepted its connection, so the server end is
always established (and the datapath has decided about it) before the first byte.

Servers:
  blocking      a plain blocking socket (no timeout: Python's timeouts set O_NONBLOCK); a thread
                does blocking accept(), a thread per accepted socket echoes with blocking
                recv()/sendall(). A BlockingIOError (EAGAIN) from its recv() is counted and
                retried: a blocking reader must never see one.
  nonblocking   setblocking(False) before listen(); one thread runs a selectors loop that
                accepts and echoes on non-blocking accepted sockets.

Scenarios:
  v4nb-v6blk      non-blocking 0.0.0.0:P first, then blocking [::]:P (IPV6_V6ONLY=1);
                  2 connections to 127.0.0.1:P, 2 to [::1]:P
  v6blk-v4nb      the same listeners, opened in the reverse order
  v6nb-v4blk      non-blocking [::]:P (V6ONLY) first, then blocking 0.0.0.0:P
  v4blk-v6nb      blocking 0.0.0.0:P first, then non-blocking [::]:P (V6ONLY)
  dualstack-nb    one non-blocking [::]:P with IPV6_V6ONLY=0; 2 IPv4, 2 IPv6 clients
  dualstack-blk   the same, blocking
  reuseport-mixed blocking and non-blocking listeners on 127.0.0.1:P with SO_REUSEPORT;
                  24 connections; fails if either listener accepted none
  reuse-after-close
                  non-blocking 127.0.0.1:P, 2 connections, closed (handlers finished); then
                  blocking on the same port, 2 connections, closed; then non-blocking, 2
  reuseport-17    17 non-blocking SO_REUSEPORT listeners on 127.0.0.1:P (one more than the
                  datapath's listener registry holds per port); 34 connections

Prints one JSON line: the summary first (connections, accepted_nonblocking,
accepted_blocking, bytes_per_connection, blocking_reader_eagain, all_verified, ok, ...) and
then "listeners" and "results" (one object per connection: the listener that accepted it by
index, family and mode, bytes sent/received/verified by the client, bytes echoed by the
server, errors). Exits 0 only if every connection carried every byte intact both ways (EOF
included), no error happened and no blocking reader saw EAGAIN; 1 otherwise; 2 on bad usage;
3 when the overall timeout fired. For tests/netns/test_listener_modes.sh.
"""
import errno
import json
import os
import random
import select
import selectors
import socket
import sys
import threading
import time

CHUNK = 64 * 1024
RECV_SIZE = 256 * 1024

SCENARIOS = (
    "v4nb-v6blk", "v6blk-v4nb", "v6nb-v4blk", "v4blk-v6nb", "dualstack-nb", "dualstack-blk",
    "reuseport-mixed", "reuse-after-close", "reuseport-17",
)


class Failure(Exception):
    pass


class Registry:
    """Accepted connections by the client's local port (client and servers share a process,
    and connections are made one at a time, so the port names one connection)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.records = {}
        self.errors = []

    def accepted(self, listener, sock):
        peer = sock.getpeername()
        rec = {
            "listener": listener.index,
            "listener_family": listener.family_name,
            "listener_mode": listener.mode,
            "server_peer": ("[%s]:%d" if ":" in peer[0] else "%s:%d") % (peer[0], peer[1]),
            "server_echoed": 0,
            "server_eof": False,
            "server_eagain": 0,
            "server_error": None,
            "done": False,
        }
        with self.cond:
            self.records.setdefault(peer[1], []).append(rec)
            listener.accepted += 1
            self.cond.notify_all()
        return rec

    def finish(self, rec):
        with self.cond:
            rec["done"] = True
            self.cond.notify_all()

    def error(self, text):
        with self.cond:
            self.errors.append(text)
            self.cond.notify_all()

    def wait(self, port, predicate, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                recs = self.records.get(port, [])
                if recs and predicate(recs[0]):
                    return recs[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    return recs[0] if recs else None
                self.cond.wait(left)

    def pop(self, port):
        with self.cond:
            recs = self.records.get(port, [])
            rec = recs.pop(0) if recs else None
            if not recs:
                self.records.pop(port, None)
            return rec


class Listener:
    def __init__(self, index, registry, family, addr, port, mode, v6only=None, reuseport=False):
        self.index = index
        self.registry = registry
        self.family = family
        self.family_name = "ipv4" if family == socket.AF_INET else "ipv6"
        self.mode = mode
        self.accepted = 0
        self.desc = {"index": index, "family": self.family_name, "mode": mode,
                     "address": addr, "port": port}
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self.desc["reuseport"] = True
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
            self.desc["v6only"] = bool(v6only)
        sock.bind((addr, port))
        if mode == "nonblocking":
            sock.setblocking(False)  # O_NONBLOCK on the file before listen()
        else:
            sock.settimeout(None)  # plain blocking: no O_NONBLOCK
        sock.listen(128)
        self.sock = sock
        self.threads = []
        if mode == "nonblocking":
            self.wake_r, self.wake_w = os.pipe()
            self.stopping = False
            t = threading.Thread(target=self._nb_loop, daemon=True)
        else:
            t = threading.Thread(target=self._blk_accept, daemon=True)
        self.main_thread = t
        t.start()

    # -- blocking server ---------------------------------------------------------------------
    def _blk_accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError as error:
                if getattr(self, "closing", False):
                    return
                self.registry.error("listener %d: accept: %s" % (self.index, error))
                return
            conn.settimeout(None)
            try:
                rec = self.registry.accepted(self, conn)
            except OSError as error:
                self.registry.error("listener %d: getpeername: %s" % (self.index, error))
                conn.close()
                continue
            t = threading.Thread(target=self._blk_echo, args=(conn, rec), daemon=True)
            self.threads.append(t)
            t.start()

    def _blk_echo(self, conn, rec):
        try:
            with conn:
                if conn.getblocking() is not True:
                    raise Failure("accepted socket of a blocking listener is not blocking")
                eagain = 0
                while True:
                    try:
                        data = conn.recv(RECV_SIZE)
                    except BlockingIOError:
                        # The failure under test: a blocking recv() returned EAGAIN.
                        eagain += 1
                        rec["server_eagain"] = eagain
                        if eagain > 100000:
                            raise Failure("blocking recv() returned EAGAIN %d times" % eagain)
                        continue
                    if not data:
                        rec["server_eof"] = True
                        break
                    conn.sendall(data)
                    rec["server_echoed"] += len(data)
                conn.shutdown(socket.SHUT_WR)
        except (OSError, Failure) as error:
            rec["server_error"] = "%s: %s" % (type(error).__name__, error)
        finally:
            self.registry.finish(rec)

    # -- non-blocking server -----------------------------------------------------------------
    def _nb_loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, None)
        sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        conns = {}

        def close(conn, state, error=None):
            if error is not None:
                state["rec"]["server_error"] = "%s: %s" % (type(error).__name__, error)
            try:
                sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            conns.pop(conn, None)
            conn.close()
            self.registry.finish(state["rec"])

        def update(conn, state):
            events = 0
            if not state["eof"] and len(state["out"]) < 4 * RECV_SIZE:
                events |= selectors.EVENT_READ
            if state["out"]:
                events |= selectors.EVENT_WRITE
            if events == 0:
                # EOF read and everything echoed: pass the EOF on and finish.
                try:
                    conn.shutdown(socket.SHUT_WR)
                    close(conn, state)
                except OSError as error:
                    close(conn, state, error)
                return
            if events != state["events"]:
                sel.modify(conn, events, state)
                state["events"] = events

        try:
            while True:
                for key, events in sel.select():
                    if key.data == "wake":
                        os.read(self.wake_r, 64)
                        if self.stopping:
                            for conn, state in list(conns.items()):
                                close(conn, state, Failure("listener stopped mid-connection"))
                            sel.close()
                            return
                        continue
                    if key.data is None:
                        while True:
                            try:
                                conn, _ = self.sock.accept()
                            except (BlockingIOError, InterruptedError):
                                break
                            # Python leaves a socket accepted from a non-blocking listener
                            # blocking: make it non-blocking like the listener.
                            conn.setblocking(False)
                            rec = self.registry.accepted(self, conn)
                            state = {"rec": rec, "out": bytearray(), "eof": False,
                                     "events": selectors.EVENT_READ}
                            conns[conn] = state
                            sel.register(conn, selectors.EVENT_READ, state)
                        continue
                    conn, state = key.fileobj, key.data
                    if conn not in conns:
                        continue
                    try:
                        if events & selectors.EVENT_READ:
                            try:
                                data = conn.recv(RECV_SIZE)
                                if data:
                                    state["out"] += data
                                else:
                                    state["eof"] = True
                                    state["rec"]["server_eof"] = True
                            except (BlockingIOError, InterruptedError):
                                state["rec"]["server_eagain"] += 1  # allowed: non-blocking
                        if events & selectors.EVENT_WRITE and state["out"]:
                            try:
                                n = conn.send(state["out"])
                                del state["out"][:n]
                                state["rec"]["server_echoed"] += n
                            except (BlockingIOError, InterruptedError):
                                pass
                        update(conn, state)
                    except OSError as error:
                        close(conn, state, error)
        except Exception as error:  # pylint: disable=broad-except
            self.registry.error("listener %d: select loop: %s: %s"
                                % (self.index, type(error).__name__, error))

    # -- closing -----------------------------------------------------------------------------
    def close(self, timeout):
        """Stops accepting, waits for the handlers, closes the listening socket."""
        self.closing = True
        if self.mode == "nonblocking":
            self.stopping = True
            os.write(self.wake_w, b"x")
        else:
            # Wakes the blocking accept() (Linux: shutdown of a listener makes it fail).
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.main_thread.join(timeout)
        if self.main_thread.is_alive():
            raise Failure("listener %d did not stop within %ss" % (self.index, timeout))
        for t in self.threads:
            t.join(timeout)
            if t.is_alive():
                raise Failure("listener %d: a handler did not finish within %ss"
                              % (self.index, timeout))
        self.sock.close()
        if self.mode == "nonblocking":
            os.close(self.wake_r)
            os.close(self.wake_w)


def run_client(index, registry, target, size, seed, timeout):
    """One connection from a non-blocking, select-driven client. Returns its result."""
    host, port = target
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    res = {"conn": index, "target": ("[%s]:%d" if family == socket.AF_INET6 else "%s:%d")
           % (host, port), "client_family": "ipv4" if family == socket.AF_INET else "ipv6",
           "client_port": None, "sent": 0, "received": 0, "verified": 0, "intact": False,
           "eof": False, "client_eagain": 0, "error": None}
    payload = random.Random(seed).randbytes(size)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)  # O_NONBLOCK before connect()
    rec = None
    try:
        err = sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            raise Failure("connect: %s" % os.strerror(err))
        _, w, _ = select.select([], [sock], [], timeout)
        if not w:
            raise Failure("connect timed out after %ss" % timeout)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise Failure("connect: %s" % os.strerror(err))
        res["client_port"] = sock.getsockname()[1]
        # The server end is established once it is accepted: only then send.
        rec = registry.wait(res["client_port"], lambda r: True, timeout)
        if rec is None:
            raise Failure("no listener accepted the connection within %ss" % timeout)
        sent = received = 0
        shut = False
        while not res["eof"]:
            want_w = [sock] if sent < size else []
            r, w, _ = select.select([sock], want_w, [], timeout)
            if not r and not w:
                raise Failure("no progress for %ss (sent %d, received %d)"
                              % (timeout, sent, received))
            if w:
                try:
                    n = sock.send(payload[sent:sent + CHUNK])
                    sent += n
                    res["sent"] = sent
                except (BlockingIOError, InterruptedError):
                    pass
                if sent == size and received == size and not shut:
                    sock.shutdown(socket.SHUT_WR)
                    shut = True
            if r:
                try:
                    data = sock.recv(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    res["client_eagain"] += 1  # allowed: non-blocking
                    continue
                if not data:
                    res["eof"] = True
                    break
                end = received + len(data)
                if end > size:
                    raise Failure("received %d bytes, more than the %d sent" % (end, size))
                if data != payload[received:end]:
                    bad = next(i for i in range(len(data)) if data[i] != payload[received + i])
                    raise Failure("echoed byte %d differs" % (received + bad))
                received = end
                res["received"] = res["verified"] = received
                if sent == size and received == size and not shut:
                    sock.shutdown(socket.SHUT_WR)
                    shut = True
        if received != size:
            raise Failure("EOF after %d of %d bytes" % (received, size))
        res["intact"] = True
    except (OSError, Failure) as error:
        res["error"] = "%s: %s" % (type(error).__name__, error)
    finally:
        sock.close()
    if res["client_port"] is not None:
        rec = registry.wait(res["client_port"], lambda r: r["done"], timeout)
        if rec is not None:
            registry.pop(res["client_port"])
    if rec is None:
        res["listener"] = None
        res["error"] = res["error"] or "no server record"
        return res
    if not rec["done"]:
        res["error"] = res["error"] or "server handler did not finish within %ss" % timeout
    for key in ("listener", "listener_family", "listener_mode", "server_peer",
                "server_echoed", "server_eof", "server_eagain", "server_error"):
        res[key] = rec[key]
    return res


def run(scenario, port, size, timeout, registry, listeners, results):
    """Runs SCENARIO, appending to LISTENERS and RESULTS as it goes (kept on an exception)."""
    v4 = ("127.0.0.1", port)
    v6 = ("::1", port)

    def open_(family, addr, mode, **kw):
        lst = Listener(len(listeners), registry, family, addr, port, mode, **kw)
        listeners.append(lst)
        return lst

    def connect(targets):
        for target in targets:
            index = len(results)
            results.append(run_client(index, registry, target, size,
                                      seed=port * 1000 + index, timeout=timeout))

    def pair(first, second):
        # (family, mode) of the listener opened first and of the second one.
        for family, mode in (first, second):
            if family == "v4":
                open_(socket.AF_INET, "0.0.0.0", mode)
            else:
                open_(socket.AF_INET6, "::", mode, v6only=True)
        connect([v4, v4, v6, v6])

    if scenario == "v4nb-v6blk":
        pair(("v4", "nonblocking"), ("v6", "blocking"))
    elif scenario == "v6blk-v4nb":
        pair(("v6", "blocking"), ("v4", "nonblocking"))
    elif scenario == "v6nb-v4blk":
        pair(("v6", "nonblocking"), ("v4", "blocking"))
    elif scenario == "v4blk-v6nb":
        pair(("v4", "blocking"), ("v6", "nonblocking"))
    elif scenario in ("dualstack-nb", "dualstack-blk"):
        open_(socket.AF_INET6, "::", "nonblocking" if scenario == "dualstack-nb" else "blocking",
              v6only=False)
        connect([v4, v6, v4, v6])
    elif scenario == "reuseport-mixed":
        open_(socket.AF_INET, "127.0.0.1", "blocking", reuseport=True)
        open_(socket.AF_INET, "127.0.0.1", "nonblocking", reuseport=True)
        connect([v4] * 24)
    elif scenario == "reuseport-17":
        for _ in range(17):
            open_(socket.AF_INET, "127.0.0.1", "nonblocking", reuseport=True)
        connect([v4] * 34)
    elif scenario == "reuse-after-close":
        for mode in ("nonblocking", "blocking", "nonblocking"):
            lst = open_(socket.AF_INET, "127.0.0.1", mode)
            connect([v4, v4])
            lst.close(timeout)
    else:
        raise AssertionError(scenario)

    for lst in listeners:
        if lst.sock.fileno() != -1:
            lst.close(timeout)


def main(argv):
    args = argv[1:]
    if not args or args[0] not in SCENARIOS:
        sys.stderr.write(__doc__)
        return 2
    scenario, args = args[0], args[1:]
    port, size, timeout = None, 4 << 20, 30.0
    while args:
        if len(args) < 2:
            sys.stderr.write("option %s needs a value\n" % args[0])
            return 2
        flag, value, args = args[0], args[1], args[2:]
        if flag == "--port":
            port = int(value)
        elif flag == "--bytes":
            mult = {"K": 1 << 10, "M": 1 << 20}.get(value[-1:].upper(), 1)
            size = int(value[:-1] if mult > 1 else value) * mult
        elif flag == "--timeout":
            timeout = float(value)
        else:
            sys.stderr.write("unknown option %s\n" % flag)
            return 2
    if port is None or size <= 0:
        sys.stderr.write("--port is required, --bytes must be positive\n")
        return 2

    # Hang guard for the whole run (every wait above also has its own timeout).
    def watchdog():
        print(json.dumps({"scenario": scenario, "ok": False,
                          "error": "overall timeout (%ss)" % (timeout * 10)}), flush=True)
        os._exit(3)

    guard = threading.Timer(timeout * 10, watchdog)
    guard.daemon = True
    guard.start()

    errors = []
    registry, listeners, results = Registry(), [], []
    try:
        run(scenario, port, size, timeout, registry, listeners, results)
    except (OSError, Failure) as error:
        errors.append("%s: %s" % (type(error).__name__, error))
    guard.cancel()
    with registry.cond:
        errors.extend(registry.errors)

    nb = sum(1 for r in results if r.get("listener_mode") == "nonblocking")
    blk = sum(1 for r in results if r.get("listener_mode") == "blocking")
    blocking_eagain = sum(r.get("server_eagain", 0) for r in results
                          if r.get("listener_mode") == "blocking")
    for r in results:
        if r.get("error"):
            errors.append("conn %d: %s" % (r["conn"], r["error"]))
        if r.get("server_error"):
            errors.append("conn %d server: %s" % (r["conn"], r["server_error"]))
        if r.get("server_echoed") != size or not r.get("server_eof"):
            errors.append("conn %d: server echoed %s of %d bytes (EOF seen: %s)"
                          % (r["conn"], r.get("server_echoed"), size, r.get("server_eof")))
    all_verified = bool(results) and all(r["intact"] and r["verified"] == size
                                         and r.get("server_echoed") == size for r in results)
    if blocking_eagain:
        errors.append("a blocking reader saw EAGAIN %d times" % blocking_eagain)
    per_listener = [lst.accepted for lst in listeners]
    if scenario == "reuseport-mixed" and listeners and min(per_listener) == 0:
        errors.append("a SO_REUSEPORT listener accepted no connection: %s" % per_listener)
    ok = not errors and all_verified
    summary = {
        "scenario": scenario,
        "port": port,
        "connections": len(results),
        "accepted_nonblocking": nb,
        "accepted_blocking": blk,
        "bytes_per_connection": size,
        "blocking_reader_eagain": blocking_eagain,
        "nonblocking_reader_eagain": sum(r.get("client_eagain", 0) for r in results)
        + sum(r.get("server_eagain", 0) for r in results
              if r.get("listener_mode") == "nonblocking"),
        "all_verified": all_verified,
        "ok": ok,
        "accepted_per_listener": per_listener,
        "errors": errors,
        "listeners": [lst.desc for lst in listeners],
        "results": results,
    }
    print(json.dumps(summary), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
