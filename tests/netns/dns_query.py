#!/usr/bin/env python3
"""DNS queries from one unconnected UDP socket (sendto/recvfrom), for test_dns_capture.sh.

    dns_query.py NAME TYPE SERVER [SERVER...]

Sends one query for NAME (TYPE A or AAAA) to each SERVER (an IPv4 or IPv6 address, port 53)
from a single unconnected socket (AF_INET6 when any server is IPv6, AF_INET otherwise), all
before reading any reply, then reads one reply per server and prints one line per reply:

    reply from ADDR PORT id ID rcode RCODE answers A1,A2,...

ADDR PORT is what recvfrom() reported as the sender: what a resolver that checks the reply's
source compares with the server it asked. Exits 1 when a reply does not arrive in 10 s.
"""
import ipaddress
import random
import socket
import struct
import sys


def build_query(qid, name, qtype):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return header + labels + b"\0" + struct.pack("!HH", qtype, 1)


def skip_name(data, pos):
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length


def parse_reply(data):
    qid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    pos = 12
    for _ in range(qd):
        pos = skip_name(data, pos) + 4
    answers = []
    for _ in range(an):
        pos = skip_name(data, pos)
        rtype, _, _, rdlen = struct.unpack("!HHIH", data[pos:pos + 10])
        pos += 10
        rdata = data[pos:pos + rdlen]
        pos += rdlen
        if rtype == 1:
            answers.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28:
            answers.append(socket.inet_ntop(socket.AF_INET6, rdata))
    return qid, flags & 0xF, answers


# Every query here is answered; the wait is for a slow machine, not a lost datagram.
WAIT_S = 20


def main():
    name, qtype_text, servers = sys.argv[1], sys.argv[2], sys.argv[3:]
    qtype = {"A": 1, "AAAA": 28}[qtype_text]
    v6 = any(ipaddress.ip_address(s).version == 6 for s in servers)
    family = socket.AF_INET6 if v6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(WAIT_S)
    for server in servers:
        qid = random.randrange(1, 65536)
        address = server
        if v6 and ipaddress.ip_address(server).version == 4:
            address = "::ffff:" + server
        sock.sendto(build_query(qid, name, qtype), (address, 53))
    for _ in servers:
        try:
            data, sender = sock.recvfrom(4096)
        except socket.timeout:
            print(f"no reply within {WAIT_S} s", file=sys.stderr)
            return 1
        qid, rcode, answers = parse_reply(data)
        print(f"reply from {sender[0]} {sender[1]} id {qid} rcode {rcode} "
              f"answers {','.join(answers) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
