#!/usr/bin/env python3
"""One TCP connection held open, checked at both ends of the hold.

  held_conn.py HOST PORT HOLD

Connects, sends 4 KiB of random bytes and reads them back (an echo server), prints
"ready LOCAL_PORT", holds the connection, exchanges and checks another 4 KiB, prints "ok" and
exits 0; any difference, reset or timeout (60 s without progress) exits 1. HOLD is how long to
hold: seconds, "-1" (until killed), or the path of a file whose creation ends the hold (the
test decides when, however long its steps took). For tests/netns/test_tc_flow_sweep.sh.
"""
import os
import socket
import sys
import time


def exchange(sock):
    data = os.urandom(4096)
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(len(data) - len(got))
        if not chunk:
            raise ConnectionError("connection closed by the peer")
        got += chunk
    if got != data:
        raise ValueError("echoed bytes differ")


def main():
    host, port, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    try:
        sock = socket.create_connection((host, port), timeout=60)
        exchange(sock)
        print("ready", sock.getsockname()[1], flush=True)
        try:
            seconds = float(hold)
        except ValueError:
            while not os.path.exists(hold):
                time.sleep(0.05)
        else:
            if seconds < 0:
                while True:
                    time.sleep(3600)
            time.sleep(seconds)
        exchange(sock)
    except (OSError, ValueError) as error:
        print("error", error, flush=True)
        return 1
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
