"""A free TCP port for a server a test starts."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_DRAW = random.SystemRandom()  # not the tests' seeded random: each worker draws its own


def free_port() -> int:
    """A port on 127.0.0.1 that nothing holds, drawn below the kernel's ephemeral range: a
    port ``bind(0)`` hands out lies inside it, where the machine's outgoing connections (the
    tests' own HTTP and database clients) may take it before the server binds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = _DRAW.randrange(max(1024, low - 16384), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {low} on 127.0.0.1 after 200 draws")
