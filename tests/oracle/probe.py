# Probe helper of the kernel oracle (tests/kernel_oracle.rs). One copy runs inside each
# host namespace (public, perimeter, internal) for the whole test, started with
# `ip netns exec NS python3 -c <this file> IFACE`. It does two things:
#
# - sends hand-built IPv4 packets (TCP SYN, UDP, ESP, AH) from a raw socket, with any
#   source address, so one host namespace can speak for every host of its zone;
# - captures every IPv4 frame that arrives on IFACE (an AF_PACKET socket opened at
#   start, so nothing is missed between commands) and reports the probes it saw.
#
# Every probe carries the marker b"MLORACLE" + ruleset id + probe id right after its
# transport header, so a capture names the probe exactly, and a quoted copy inside an
# ICMP error (REJECT) is not mistaken for an arrival: the marker must sit at the offset
# the outer header's protocol implies.
#
# Commands, one a line on stdin; answers on stdout:
#   S proto src dst sport dport ruleset probe   send one probe (no answer)
#   F                                           answer "OK" once all sends are done
#   R ruleset                                   wait until the wire is quiet, then answer
#                                               "G probe" per arrival of that ruleset, "E"
# A failed send answers "X reason" at the next F and the test fails on it.
# Python 3 standard library only: CI installs nothing else.

import select
import socket
import struct
import sys
import time

MARK = b"MLORACLE"
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
# Offset of the marker after the IP header, per protocol: TCP header without options,
# UDP header, ESP SPI + sequence, AH fixed part + 12-byte ICV.
MARK_AT = {6: 20, 17: 8, 50: 8, 51: 24}


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def transport(proto, src, dst, sport, dport, payload):
    if proto == 6:
        head = struct.pack("!HHIIBBHHH", sport, dport, 1000 + sport, 0, 5 << 4, 0x02, 64240, 0, 0)
    elif proto == 17:
        head = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    elif proto == 50:
        # SPI 0 is reserved; the sport field carries a non-zero SPI.
        return struct.pack("!II", sport, 1) + payload
    elif proto == 51:
        # Next header 59 (none), length in 32-bit words minus 2: (12 + 12) / 4 - 2 = 4.
        return struct.pack("!BBHII", 59, 4, 0, sport, 1) + b"\0" * 12 + payload
    else:
        raise ValueError("protocol %d" % proto)
    segment = head + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, len(segment))
    csum = checksum(pseudo + segment)
    if proto == 17 and csum == 0:
        csum = 0xFFFF
    at = 16 if proto == 6 else 6
    return segment[:at] + struct.pack("!H", csum) + segment[at + 2:]


def packet(proto, src, dst, sport, dport, ruleset, probe):
    payload = MARK + struct.pack("!II", ruleset, probe)
    body = transport(proto, src, dst, sport, dport, payload)
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), probe & 0xFFFF, 0, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return head + body


def arrival(data):
    """The (ruleset, probe) a received IPv4 packet carries, or None."""
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    at = MARK_AT.get(data[9])
    if at is None:
        return None
    at += ihl
    if data[at:at + len(MARK)] != MARK or len(data) < at + len(MARK) + 8:
        return None
    return struct.unpack("!II", data[at + len(MARK):at + len(MARK) + 8])


def main():
    iface = sys.argv[1]
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    # SO_RCVBUFFORCE (33 on Linux; not every Python names it): root may exceed rmem_max.
    capture.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 16 << 20)
    capture.bind((iface, 0))
    capture.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    seen = set()
    errors = []
    out = sys.stdout

    def drain(quiet):
        while True:
            ready, _, _ = select.select([capture], [], [], quiet)
            if not ready:
                return
            while True:
                try:
                    data, addr = capture.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                hit = arrival(data)
                if hit is not None:
                    seen.add(hit)

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "S":
            proto, sport, dport, ruleset, probe = (int(words[i]) for i in (1, 4, 5, 6, 7))
            src, dst = words[2], words[3]
            try:
                sender.sendto(packet(proto, src, dst, sport, dport, ruleset, probe), (dst, 0))
            except OSError as e:
                errors.append("%s: %s" % (line.strip(), e))
        elif words[0] == "F":
            out.write("".join("X %s\n" % e for e in errors) + "OK\n")
            errors.clear()
            out.flush()
        elif words[0] == "R":
            ruleset = int(words[1])
            # Forwarding through veth pairs completes within the sender's system call or
            # the softirq right after it; the pause only covers a loaded CI machine.
            time.sleep(0.01)
            drain(0.03)
            mine = sorted(p for (r, p) in seen if r == ruleset)
            # Older rulesets' stragglers are of no use any more.
            seen.difference_update({hit for hit in seen if hit[0] <= ruleset})
            out.write("".join("G %d\n" % p for p in mine) + "E\n")
            out.flush()


main()
