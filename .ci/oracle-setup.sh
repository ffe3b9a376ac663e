#!/usr/bin/env bash
# Prepares a fresh Debian machine for tests/kernel_oracle.rs, the test that checks
# mislint's iptables verdicts against the Linux kernel. Run as root before `cargo test`;
# .ci/run calls it. The oracle test FAILS (it does not skip) when any of this is missing.
#   iproute2   `ip netns`, veth pairs, static neighbours
#   iptables   iptables-restore (Debian's default is the nf_tables backend)
#   conntrack  flushes the firewall namespace's connection table between rulesets
#   python3    the raw-socket probe sender and AF_PACKET capture (standard library only)
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "oracle-setup: must run as root (network namespaces, raw sockets)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends iptables iproute2 conntrack python3

# Prove that namespaces work here, not only that the tools exist.
probe="mlo-setup-$$"
ip netns add "$probe"
trap 'ip netns del "$probe" 2>/dev/null || true' EXIT
ip netns exec "$probe" ip link set lo up
printf '*filter\n:FORWARD DROP [0:0]\nCOMMIT\n' | ip netns exec "$probe" iptables-restore
ip netns exec "$probe" conntrack -F 2>/dev/null
ip netns exec "$probe" python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM).close()'

echo "== kernel oracle tools"
uname -r
ip -V
iptables-restore --version
conntrack --version
python3 --version
