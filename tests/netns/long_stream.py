#!/usr/bin/env python3
"""Long-lived, paced, verified TCP connections and a connect probe, for the netns tests that keep
connections open across changes (test_fast_path.sh, test_mesh_reload.sh; started and checked
through long_conns.sh).

  long_stream.py server --listen HOST:PORT --seed S --finish-file F --progress-file F
                        [--ready-file F] [--blocking] [--timeout SEC]
  long_stream.py client --connect HOST:PORT --seed S --finish-file F --progress-file F
                        [--blocking] [--timeout SEC]
  long_stream.py probe HOST:PORT [--timeout SEC]

server/client: one connection (the server accepts one). Each side sends a deterministic
pseudo-random stream (keyed by the seed and its role) in writes of 1..16 KiB, one every 20 ms,
until --finish-file exists, however long that takes; then another 1 MiB at full speed, and
shuts down its write side. A reader thread checks every byte against the peer's stream and that
EOF comes right after it. The caller checks that each side received exactly what the other
sent. --progress-file holds "SENT RECEIVED", rewritten every 100 ms.
Modes: non-blocking (default) as a mesh app: the listener is O_NONBLOCK before listen(), the
client before connect(), the accepted socket too (so meshlane may splice the connection);
--blocking: every socket blocking, no timeout (Python's timeouts set O_NONBLOCK), which
meshlane never splices: the connection's packets keep crossing the pods' interfaces.
--timeout (default 60) is a hang guard only: no connection for that long, or nothing received
for that long before the peer's EOF, ends the process with status 3.
Last stdout line: JSON {"role","ok","error","bytes_sent","bytes_received","local","peer",
"nonblocking"}. Once connected, each side prints "ROLE: connected local=ADDR peer=ADDR" on
stderr (the server's peer is the client address its app sees).
Exit: 0 ok, 1 data or connection error, 2 usage or setup error, 3 timeout.

probe: one connect (blocking, --timeout seconds at most, default 30) and close; prints
{"result": "ok" | errno name | "timeout", "local": ..., "peer": ...}; exits 0 whatever the
result (the test judges it).
"""
import errno
import json
import os
import random
import select
import socket
import sys
import threading
import time

INTERVAL = 0.02
CHUNK_MIN = 1024
CHUNK_MAX = 16384
TAIL = 1 << 20
BLOCK = 65536


def split_addr(text):
    host, port = text.rsplit(":", 1)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def endpoint(addr):
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:"):]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


class Stream:
    """The deterministic byte stream of one (seed, role); read sequentially."""

    def __init__(self, seed, role):
        self.rng = random.Random("%d-%s" % (seed, role))
        self.buf = b""

    def take(self, n):
        while len(self.buf) < n:
            self.buf += self.rng.randbytes(BLOCK)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def parse(argv):
    if len(argv) < 2 or argv[1] not in ("server", "client", "probe"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    o = {"role": argv[1], "timeout": None, "ready-file": None, "blocking": False}
    rest = argv[2:]
    if o["role"] == "probe":
        if not rest:
            sys.exit("probe: HOST:PORT missing")
        o["addr"] = rest.pop(0)
    i = 0
    while i < len(rest):
        key = rest[i]
        if key == "--blocking":
            o["blocking"] = True
            i += 1
            continue
        if not key.startswith("--") or i + 1 >= len(rest):
            sys.exit("bad argument %r (see --help)" % key)
        o[key[2:]] = rest[i + 1]
        i += 2
    o["timeout"] = float(o["timeout"]) if o["timeout"] is not None else (
        30.0 if o["role"] == "probe" else 60.0)
    if o["role"] != "probe":
        for k in ("seed", "finish-file", "progress-file"):
            if k not in o:
                sys.exit("--%s is required" % k)
        o["seed"] = int(o["seed"])
        o["addr"] = o.get("listen" if o["role"] == "server" else "connect")
        if not o["addr"]:
            sys.exit("--listen/--connect is required")
    return o


def probe(o):
    host, port = split_addr(o["addr"])
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.settimeout(o["timeout"])
    out = {"result": "ok", "local": None, "peer": None}
    try:
        s.connect((host, port))
        out["local"] = endpoint(s.getsockname())
        out["peer"] = endpoint(s.getpeername())
    except socket.timeout:
        out["result"] = "timeout"
    except OSError as e:
        out["result"] = errno.errorcode.get(e.errno, str(e.errno))
    s.close()
    print(json.dumps(out), flush=True)
    return 0


class Conn:
    def __init__(self, o, sock):
        self.o = o
        self.sock = sock
        self.nonblocking = not o["blocking"]
        self.sent = 0
        self.received = 0
        self.error = None
        self.eof = False
        self.last_rx = time.monotonic()
        self.lock = threading.Lock()
        peer_role = "client" if o["role"] == "server" else "server"
        self.tx = Stream(o["seed"], o["role"])
        self.rx = Stream(o["seed"], peer_role)
        self.done = threading.Event()
        self.local = endpoint(sock.getsockname())
        self.peer = endpoint(sock.getpeername())

    def fail(self, text):
        with self.lock:
            if self.error is None:
                self.error = text
        self.done.set()

    def progress(self):
        tmp = self.o["progress-file"] + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d\n" % (self.sent, self.received))
        os.replace(tmp, self.o["progress-file"])

    def send_all(self, data):
        view = memoryview(data)
        while view:
            if self.error:
                return
            if self.nonblocking:
                select.select([], [self.sock], [], 1.0)
                try:
                    n = self.sock.send(view)
                except BlockingIOError:
                    continue
            else:
                n = self.sock.send(view)
            view = view[n:]
            self.sent += n

    def sender(self):
        sizes = random.Random("sizes-%d-%s" % (self.o["seed"], self.o["role"]))
        try:
            while not os.path.exists(self.o["finish-file"]):
                self.send_all(self.tx.take(sizes.randint(CHUNK_MIN, CHUNK_MAX)))
                if self.error:
                    return
                time.sleep(INTERVAL)
            left = TAIL
            while left > 0 and not self.error:
                n = min(left, BLOCK)
                self.send_all(self.tx.take(n))
                left -= n
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.fail("send: %s" % e)

    def receiver(self):
        try:
            while True:
                if self.error:
                    return
                if self.nonblocking:
                    r, _, _ = select.select([self.sock], [], [], 1.0)
                    if not r:
                        continue
                    try:
                        data = self.sock.recv(262144)
                    except BlockingIOError:
                        continue
                else:
                    data = self.sock.recv(262144)
                if not data:
                    self.eof = True
                    self.done.set()
                    return
                want = self.rx.take(len(data))
                if data != want:
                    bad = next(i for i in range(len(data)) if data[i] != want[i])
                    self.fail("data mismatch at byte %d of the peer's stream" % (self.received + bad))
                    return
                self.received += len(data)
                self.last_rx = time.monotonic()
        except OSError as e:
            self.fail("recv: %s" % e)

    def run(self):
        threads = [threading.Thread(target=self.sender, daemon=True),
                   threading.Thread(target=self.receiver, daemon=True)]
        for t in threads:
            t.start()
        while not self.done.wait(0.1):
            self.progress()
            if time.monotonic() - self.last_rx > self.o["timeout"]:
                self.progress()
                finish(self.o, self, 3, "nothing received for %.0f s" % self.o["timeout"])
        # EOF from the peer (or an error): let the sender finish its tail and shutdown.
        threads[0].join(self.o["timeout"])
        if threads[0].is_alive() and not self.error:
            self.fail("the sender did not finish within %.0f s of the peer's EOF" % self.o["timeout"])
        self.progress()
        finish(self.o, self, 1 if self.error else 0, self.error)


def finish(o, conn, code, error=None):
    out = {"role": o["role"], "ok": code == 0, "error": error,
           "bytes_sent": conn.sent if conn else 0,
           "bytes_received": conn.received if conn else 0,
           "local": None, "peer": None, "nonblocking": not o["blocking"]}
    if conn:
        out["local"], out["peer"] = conn.local, conn.peer
    print(json.dumps(out), flush=True)
    os._exit(code)


def main():
    o = parse(sys.argv)
    if o["role"] == "probe":
        return probe(o)
    host, port = split_addr(o["addr"])
    fam = family_of(host)
    try:
        if o["role"] == "server":
            lsock = socket.socket(fam, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            lsock.setblocking(o["blocking"])  # before listen(): meshlane records the mode
            lsock.bind((host, port))
            lsock.listen(8)
            if o["ready-file"]:
                open(o["ready-file"], "w").close()
            r, _, _ = select.select([lsock], [], [], o["timeout"])
            if not r:
                finish(o, None, 3, "no connection within %.0f s" % o["timeout"])
            sock, peer = lsock.accept()
            sock.setblocking(o["blocking"])
            lsock.close()
        else:
            sock = socket.socket(fam, socket.SOCK_STREAM)
            if o["blocking"]:
                # No socket timeout (it would make the socket O_NONBLOCK at connect): a
                # watchdog bounds the wait instead.
                connected = threading.Event()

                def watchdog():
                    if not connected.wait(o["timeout"]):
                        finish(o, None, 3, "connect did not complete within %.0f s" % o["timeout"])

                threading.Thread(target=watchdog, daemon=True).start()
                sock.connect((host, port))
                connected.set()
            else:
                sock.setblocking(False)  # before connect(): meshlane may splice it
                rc = sock.connect_ex((host, port))
                if rc not in (0, errno.EINPROGRESS):
                    raise OSError(rc, os.strerror(rc))
                _, w, _ = select.select([], [sock], [], o["timeout"])
                if not w:
                    finish(o, None, 3, "connect did not complete within %.0f s" % o["timeout"])
                rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if rc:
                    raise OSError(rc, os.strerror(rc))
    except OSError as e:
        finish(o, None, 1, "setup: %s" % e)
    sys.stderr.write("%s: connected local=%s peer=%s\n" % (o["role"], endpoint(sock.getsockname()),
                                                          endpoint(sock.getpeername())))
    sys.stderr.flush()
    Conn(o, sock).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
