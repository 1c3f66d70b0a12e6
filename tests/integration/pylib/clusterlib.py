"""Helpers of the cluster tests: loopback ports for replicas and the
replicas' placement, computed here independently of the server."""

import hashlib
import socket


def free_ports(n):
    """n ports p free with p + 1 (the peer port, --peer-port-offset 1) free too."""
    ports, socks = [], []
    while len(ports) < n:
        a, b = socket.socket(), socket.socket()
        a.bind(("127.0.0.1", 0))
        try:
            b.bind(("127.0.0.1", a.getsockname()[1] + 1))
        except OSError:
            a.close()
            b.close()
            continue
        socks += [a, b]
        ports.append(a.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def score(peer, key):
    """Rendezvous score: the first 8 bytes of SHA-256(peer '\\0' key)."""
    return int.from_bytes(hashlib.sha256(peer.encode() + b"\0" + key).digest()[:8], "big")


def owners(peers, key, replication):
    """The replication peers that own key (ties broken by list order)."""
    ranked = sorted(range(len(peers)), key=lambda i: (-score(peers[i], key), i))
    return set(peers[i] for i in ranked[:replication])
