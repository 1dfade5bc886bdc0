#!/usr/bin/env python3
# Paced bidirectional TCP transfer with end-to-end verification (tests/netns/test_mesh_reload.sh).
#   mesh_reload_stream.py server|client --addr HOST:PORT --seed S --finish-file F --progress-file F
#                                    [--ready-file F] [--timeout SEC]
# Each side sends a deterministic stream (keyed by seed and role) in writes of 1..16 KiB, one
# every 20 ms, until --finish-file exists, however long that takes; then it sends another 1 MiB
# at full speed and shuts down its write side. The reader checks every byte against the peer's
# stream; the caller checks that each side received exactly what the other sent. Sockets are
# non-blocking from their creation (listener before listen(), client before connect()). The
# server accepts one connection. --progress-file holds "SENT RECEIVED", rewritten every 100 ms.
# --timeout (default 60) is a hang guard: no connection after that long, or nothing received
# for that long before the peer's EOF, is a timeout. Last stdout line: JSON
# {"role","ok","error","bytes_sent","bytes_received","peer","local"}.
# Exit: 0 ok, 1 data or connection error, 2 setup error, 3 timeout.
import errno, json, os, random, selectors, socket, sys, time

BLOCK = 65536
INTERVAL = 0.02
CHUNK_MAX = 16384
TAIL = 1 << 20

def parse(argv):
    o = {"role": argv[1], "timeout": 60.0, "ready-file": None}
    i = 2
    while i < len(argv):
        o[argv[i][2:]] = argv[i + 1]
        i += 2
    o["seed"] = int(o["seed"]); o["timeout"] = float(o["timeout"])
    return o

def split_addr(a):
    host, port = a.rsplit(":", 1)
    return host.strip("[]"), int(port)

def fmt(sa):
    host, port = sa[0], sa[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

class Stream:
    def __init__(self, seed, role):
        self.key = seed * 4 + role
        self.cache = {}
    def block(self, k):
        b = self.cache.get(k)
        if b is None:
            if len(self.cache) > 8:
                self.cache.clear()
            b = random.Random(self.key * 1000003 + k).randbytes(BLOCK)
            self.cache[k] = b
        return b
    def get(self, off, n):
        out = bytearray()
        while n > 0:
            k, o = divmod(off, BLOCK)
            part = self.block(k)[o:o + n]
            out += part
            off += len(part); n -= len(part)
        return bytes(out)

def main():
    o = parse(sys.argv)
    role = 0 if o["role"] == "client" else 1
    start = time.monotonic()
    deadline = start + o["timeout"]
    result = {"role": o["role"], "ok": False, "error": "", "bytes_sent": 0,
              "bytes_received": 0, "peer": "", "local": ""}
    def finish(code, err=""):
        result["error"] = err
        result["ok"] = code == 0
        print(json.dumps(result), flush=True)
        sys.exit(code)
    host, port = split_addr(o["addr"])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        if role == 1:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((host, port))
            s.listen(4)
            if o["ready-file"]:
                open(o["ready-file"], "w").close()
            sel = selectors.DefaultSelector()
            sel.register(s, selectors.EVENT_READ)
            if not sel.select(max(0.0, deadline - time.monotonic())):
                finish(3, "timeout waiting for the connection")
            conn, peer = s.accept()
            conn.setblocking(False)
            s.close()
            sel.close()
        else:
            rc = s.connect_ex((host, port))
            if rc not in (0, errno.EINPROGRESS):
                finish(2, f"connect: {os.strerror(rc)}")
            sel = selectors.DefaultSelector()
            sel.register(s, selectors.EVENT_WRITE)
            if not sel.select(max(0.0, deadline - time.monotonic())):
                finish(3, "timeout connecting")
            sel.close()
            rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc != 0:
                finish(2, f"connect: {os.strerror(rc)}")
            conn, peer = s, s.getpeername()
    except OSError as e:
        finish(2, f"setup: {e}")
    result["peer"] = fmt(peer)
    result["local"] = fmt(conn.getsockname())
    print(f"{o['role']}: connected local={result['local']} peer={result['peer']}",
          file=sys.stderr, flush=True)

    tx = Stream(o["seed"], role)
    rx = Stream(o["seed"], 1 - role)
    sizes = random.Random(o["seed"] * 4 + role + 2)
    sent = received = quota = 0
    total = None  # what this side sends in all, known once it finishes
    shut = eof = False
    next_send = time.monotonic()
    last_progress = 0.0
    last_received = time.monotonic()
    sel = selectors.DefaultSelector()
    sel.register(conn, selectors.EVENT_READ)

    def progress():
        tmp = o["progress-file"] + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{sent} {received}\n")
        os.replace(tmp, o["progress-file"])

    try:
        while not (shut and eof):
            now = time.monotonic()
            if not eof and now - last_received > o["timeout"]:
                result["bytes_sent"], result["bytes_received"] = sent, received
                progress()
                finish(3, f"timeout: nothing received for {o['timeout']} s (sent {sent}, received {received})")
            if total is None and os.path.exists(o["finish-file"]):
                total = quota + TAIL
            if total is not None:
                quota = total
            else:
                if next_send < now - 1.0:
                    next_send = now
                while now >= next_send:
                    quota += sizes.randint(1, CHUNK_MAX)
                    next_send += INTERVAL
            while not shut and sent < quota:
                try:
                    w = conn.send(tx.get(sent, min(quota - sent, BLOCK)))
                except BlockingIOError:
                    break
                sent += w
            if not shut and sent == total:
                conn.shutdown(socket.SHUT_WR)
                shut = True
            events = 0 if eof else selectors.EVENT_READ
            if not shut and sent < quota:
                events |= selectors.EVENT_WRITE
            wait = 0.05
            if total is None:
                wait = min(wait, max(0.0, next_send - now))
            if events:
                sel.modify(conn, events)
                ready = sel.select(wait)
            else:
                time.sleep(wait)
                ready = []
            for _, ev in ready:
                if not ev & selectors.EVENT_READ:
                    continue
                try:
                    data = conn.recv(BLOCK)
                except BlockingIOError:
                    continue
                if not data:
                    eof = True
                    continue
                last_received = time.monotonic()
                want = rx.get(received, len(data))
                if data != want:
                    bad = next(i for i in range(len(data)) if data[i] != want[i])
                    raise ValueError(f"data mismatch at byte {received + bad}")
                received += len(data)
            if time.monotonic() - last_progress >= 0.1:
                progress()
                last_progress = time.monotonic()
    except (OSError, ValueError) as e:
        result["bytes_sent"], result["bytes_received"] = sent, received
        progress()
        finish(1, str(e))
    conn.close()
    result["bytes_sent"], result["bytes_received"] = sent, received
    progress()
    finish(0)

main()
