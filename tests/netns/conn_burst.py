#!/usr/bin/env python3
"""N connections at once, each waited for to the end.

  conn_burst.py --connect HOST:PORT --count N [--request N] [--reply N] [--timeout S]

Opens N connections from N threads at the same moment; each sends a request of --request bytes
(default 100) and reads a reply of exactly --reply bytes (default 1000, ml_connrate server's
protocol), then closes. Unlike ml_connrate, a connection that takes long (a handshake stalled
at a proxy that does not accept) is waited for up to --timeout seconds (default 60; 0 waits
without a limit: the caller bounds the wait, e.g. from the moment it lets the proxy accept),
not abandoned. Prints one JSON line; exits 0 when every connection got its whole reply.
"""
import json
import socket
import sys
import threading
import time


def one(target, request, reply, timeout, results, index):
    start = time.monotonic()
    try:
        with socket.create_connection(target, timeout=timeout) as s:
            s.sendall(b"r" * request)
            got = 0
            while got < reply:
                data = s.recv(reply - got)
                if not data:
                    raise ConnectionError("closed after %d of %d reply bytes" % (got, reply))
                got += len(data)
        results[index] = (True, time.monotonic() - start, "")
    except (OSError, ConnectionError) as error:
        results[index] = (False, time.monotonic() - start, str(error))


def main(argv):
    opts = {"--request": "100", "--reply": "1000", "--timeout": "60"}
    args = argv[1:]
    while args:
        opts[args[0]] = args[1]
        args = args[2:]
    host, _, port = opts["--connect"].rpartition(":")
    target = (host.strip("[]"), int(port))
    count = int(opts["--count"])
    results = [None] * count
    threads = [threading.Thread(target=one, args=(target, int(opts["--request"]),
                                                  int(opts["--reply"]),
                                                  float(opts["--timeout"]) or None, results,
                                                  i))
               for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = [r[2] for r in results if not r[0]]
    print(json.dumps({"connections": count, "ok": count - len(failed), "errors": len(failed),
                      "first_error": failed[0] if failed else "",
                      "slowest_s": round(max(r[1] for r in results), 3)}), flush=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
