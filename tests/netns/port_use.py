#!/usr/bin/env python3
"""Connections of a chosen length to one port, for the adaptive splicing test.

  port_use.py --port P --connections N --rounds R [--timeout S]
              [--role both|server|client] [--host ADDR] [--stream BYTES]

Listens on ADDR:P (default 127.0.0.1; a non-blocking listener: Python sockets with a timeout
are O_NONBLOCK, so the datapath may splice both ends), then makes N connections to ADDR:P one
after the other from non-blocking client sockets. --role server only serves the N connections
(it prints "listening" on stderr once it listens), --role client only makes them (the server
runs elsewhere, e.g. in another namespace). On each connection the server speaks first (a 16-byte greeting,
so the server end is established before the client sends), then the client sends R requests
of 64 bytes and the server echoes each; every byte is checked. The server end thus sends R + 1
messages and the client end R: with R = 1 each end sends fewer than 4 (a short connection),
with R = 8 both send more (a busy one).

--stream BYTES (role both only): the N connections are streams instead, opened one after the
other and all kept open: on each the client reads the greeting and sends one request, and the
server answers with BYTES of a pattern instead of an echo (the client end sends one segment, the
server end many). While all of them are still open, one more connection of R requests is made
(the probe); then every stream is closed.

Prints one JSON line; exits 0 when every connection completed and every byte matched.
"""
import json
import socket
import sys
import threading

GREETING = 16
REQUEST = 64


def payload(connection, round_no):
    head = ("c%06dr%04d:" % (connection, round_no)).encode()
    return (head * (REQUEST // len(head) + 1))[:REQUEST]


def recv_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), size))
        data += chunk
    return data


def stream_payload(connection, size):
    head = ("s%06d:" % connection).encode()
    return (head * (size // len(head) + 1))[:size]


def serve_streams(listener, connections, size, rounds, errors):
    """Answers each of `connections` streams with `size` bytes and keeps it open, serves the
    probe, then waits for every stream to close."""
    streams = []
    try:
        for index in range(connections):
            conn, _ = listener.accept()
            streams.append(conn)
            conn.sendall(b"g" * GREETING)
            recv_exact(conn, REQUEST)
            conn.sendall(stream_payload(index, size))
        serve(listener, 1, rounds, errors)
        for conn in streams:
            if conn.recv(1) != b"":
                errors.append("server: bytes after a stream's request")
    except (OSError, ConnectionError) as error:
        errors.append("server: %s" % error)
    finally:
        for conn in streams:
            conn.close()


def serve(listener, connections, rounds, errors):
    for _ in range(connections):
        try:
            conn, _ = listener.accept()
        except OSError as error:
            errors.append("accept: %s" % error)
            return
        with conn:
            try:
                conn.sendall(b"g" * GREETING)
                for _ in range(rounds):
                    conn.sendall(recv_exact(conn, REQUEST))
                if conn.recv(1) != b"":
                    errors.append("server: bytes after the last request")
            except (OSError, ConnectionError) as error:
                errors.append("server: %s" % error)


def one_connection(host, port, index, rounds, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if recv_exact(sock, GREETING) != b"g" * GREETING:
            raise ConnectionError("greeting corrupted")
        for round_no in range(rounds):
            sent = payload(index, round_no)
            sock.sendall(sent)
            if recv_exact(sock, REQUEST) != sent:
                raise ConnectionError("echo of round %d corrupted" % round_no)


def run_streams(host, port, connections, size, rounds, timeout, errors):
    """The client of --stream: returns the streams completed (the probe made, all checked)."""
    streams = []
    try:
        for index in range(connections):
            sock = socket.create_connection((host, port), timeout=timeout)
            streams.append(sock)
            if recv_exact(sock, GREETING) != b"g" * GREETING:
                raise ConnectionError("stream %d: greeting corrupted" % index)
            sock.sendall(payload(index, 0))
            if recv_exact(sock, size) != stream_payload(index, size):
                raise ConnectionError("stream %d corrupted" % index)
        one_connection(host, port, connections, rounds, timeout)
        return connections
    except (OSError, ConnectionError) as error:
        errors.append("client: %s" % error)
        return 0
    finally:
        for sock in streams:
            sock.close()


def main(argv):
    opts = {"--port": None, "--connections": None, "--rounds": None, "--timeout": "30",
            "--role": "both", "--host": "127.0.0.1", "--stream": "0"}
    args = argv[1:]
    while args:
        if args[0] not in opts or len(args) < 2:
            print(__doc__, file=sys.stderr)
            return 2
        opts[args[0]] = args[1]
        args = args[2:]
    if None in opts.values() or opts["--role"] not in ("both", "server", "client"):
        print(__doc__, file=sys.stderr)
        return 2
    port, connections = int(opts["--port"]), int(opts["--connections"])
    rounds, timeout = int(opts["--rounds"]), float(opts["--timeout"])
    role, host = opts["--role"], opts["--host"]
    stream = int(opts["--stream"])
    if stream and role != "both":
        print(__doc__, file=sys.stderr)
        return 2

    errors = []
    server = listener = None
    if role != "client":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.settimeout(timeout)  # O_NONBLOCK before listen(): the mode the datapath records
        listener.bind((host, port))
        listener.listen(64)
        print("listening", file=sys.stderr, flush=True)
        if stream:
            server = threading.Thread(target=serve_streams,
                                      args=(listener, connections, stream, rounds, errors))
        else:
            server = threading.Thread(target=serve, args=(listener, connections, rounds, errors))
        server.start()
    if role == "server":
        server.join()
        listener.close()
        ok = not errors
        print(json.dumps({"ok": ok, "served": connections, "errors": errors[:5]}))
        return 0 if ok else 1
    completed = 0
    if stream:
        completed = run_streams(host, port, connections, stream, rounds, timeout, errors)
    for index in range(0 if stream else connections):
        try:
            one_connection(host, port, index, rounds, timeout)
            completed += 1
        except (OSError, ConnectionError) as error:
            errors.append("client %d: %s" % (index, error))
            break
    if server:
        server.join(timeout)
        listener.close()
    ok = completed == connections and not errors and not (server and server.is_alive())
    print(json.dumps({"ok": ok, "connections": completed, "rounds": rounds,
                      "errors": errors[:5]}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
