#!/usr/bin/env python3
"""Two TCP connections at once from one client address and port to two ports of one server.

  same_port_pair.py server PORT [PORT ...]
      echoes every byte on each PORT (all addresses, dual stack); prints "listening" once
      every port listens. Runs until killed.
  same_port_pair.py client --bind ADDR:PORT --connect HOST:PORT --connect HOST:PORT [--bytes N]
      binds both sockets to ADDR:PORT (SO_REUSEADDR), connects both, and only then sends N
      random bytes (default 1 MiB) through each, interleaved, reading every echoed byte back
      and comparing. Prints one JSON line; exits 0 when both connections carried every byte
      intact, 1 otherwise.

For tests/netns/test_tc_flows.sh: tc steering keys a flow by (client address, client port,
pod address), so these two connections share a key.
"""
import json
import os
import select
import socket
import sys
import threading


def serve(ports):
    listeners = []
    for port in ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
        s.listen(64)
        listeners.append(s)
    print("listening", flush=True)

    def echo(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    while True:
        ready, _, _ = select.select(listeners, [], [])
        for s in ready:
            conn, _ = s.accept()
            threading.Thread(target=echo, args=(conn,), daemon=True).start()


def split(hostport):
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


def client(bind, targets, size):
    family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
    conns = []
    for target in targets:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(bind)
        s.settimeout(60)
        s.connect(target)
        conns.append(s)
    payloads = [os.urandom(size) for _ in conns]
    received = [bytearray() for _ in conns]
    chunk = 16384
    result = {"bind": "%s:%d" % bind, "connections": []}
    ok = True
    try:
        for offset in range(0, size, chunk):
            for i, s in enumerate(conns):
                s.sendall(payloads[i][offset:offset + chunk])
            for i, s in enumerate(conns):
                want = min(offset + chunk, size)
                while len(received[i]) < want:
                    data = s.recv(want - len(received[i]))
                    if not data:
                        raise ConnectionError("connection %d closed early" % i)
                    received[i].extend(data)
    except (OSError, ConnectionError) as error:
        ok = False
        result["error"] = str(error)
    for i, s in enumerate(conns):
        intact = bytes(received[i]) == payloads[i]
        ok = ok and intact
        result["connections"].append({"to": "%s:%d" % targets[i], "bytes": len(received[i]),
                                      "intact": intact})
        s.close()
    result["ok"] = ok
    print(json.dumps(result), flush=True)
    return 0 if ok else 1


def main(argv):
    if len(argv) >= 2 and argv[1] == "server":
        serve([int(p) for p in argv[2:]])
        return 0
    if len(argv) >= 2 and argv[1] == "client":
        bind, targets, size = None, [], 1 << 20
        args = argv[2:]
        while args:
            flag, value, args = args[0], args[1], args[2:]
            if flag == "--bind":
                bind = split(value)
            elif flag == "--connect":
                targets.append(split(value))
            elif flag == "--bytes":
                size = int(value)
            else:
                raise SystemExit("unknown option " + flag)
        return client(bind, targets, size)
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
