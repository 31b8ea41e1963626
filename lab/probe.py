"""TCP probes from inside a lab host: which (address, port) pairs answer.

The probe runs in the source host's own network namespace (podman exec of the
host's python3), so it sees exactly what a process on that host would:
its routes, its firewall's output chain, and every firewall on the way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal

from . import podman

Outcome = Literal["open", "refused", "filtered"]

# Runs inside the host: connect to every target at once, report how each ended.
_PROBE_SCRIPT = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
targets = json.loads(sys.argv[1])
timeout = float(sys.argv[2])
def probe(target):
    address, port = target
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "filtered"
with ThreadPoolExecutor(max_workers=64) as pool:
    outcomes = list(pool.map(probe, [tuple(t) for t in targets]))
print(json.dumps([[a, p, o] for (a, p), o in zip(targets, outcomes)]))
"""


def tcp_probe(
    container: str, targets: Iterable[tuple[str, int]], timeout_seconds: float = 1.5
) -> dict[tuple[str, int], Outcome]:
    """(address, port) -> open | refused (a RST: nothing listens) | filtered (no answer)."""
    pairs = sorted(set(targets))
    if not pairs:
        return {}
    result = podman.exec_in(
        container,
        ["python3", "-c", _PROBE_SCRIPT, json.dumps(pairs), str(timeout_seconds)],
        timeout=60 + timeout_seconds * len(pairs) / 32,
    )
    return {(address, port): outcome for address, port, outcome in json.loads(result.stdout)}
