"""Target resources: parsed from /metrics, and measured on the processes behind a local port."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from loadtests.resources import TargetProbe, listening_processes, parse_metrics
from local_processes import free_port

METRICS = """\
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total{pid="11"} 12.5
process_cpu_seconds_total{pid="12"} 7.5
# HELP shop_db_pool_connections Database pool connections by state.
# TYPE shop_db_pool_connections gauge
shop_db_pool_connections{state="checked_out"} 6.0
shop_db_pool_connections{state="idle"} 4.0
shop_db_pool_connections{state="max"} 30.0
"""


def test_metrics_are_parsed_and_summed_over_workers():
    scrape = parse_metrics(METRICS)
    assert scrape.cpu_seconds == 20.0
    assert (scrape.pool_checked_out, scrape.pool_max) == (6.0, 30.0)
    assert parse_metrics("").cpu_seconds is None


# A pre-fork server in miniature: the parent listens, forks two busy children that
# inherit the socket, as gunicorn does with its workers.
PREFORK = """
import os, socket, sys, time
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen()
print(sock.getsockname()[1], flush=True)
for _ in range(2):
    if os.fork() == 0:
        end = time.time() + 60
        while time.time() < end:
            pass
        os._exit(0)
time.sleep(60)
"""


@pytest.fixture()
def prefork_server():
    process = subprocess.Popen([sys.executable, "-c", PREFORK], stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    yield process, port
    for child in listening_processes(port):
        if child.pid != process.pid:
            child.kill()
    process.kill()
    process.wait()


def test_the_whole_prefork_tree_behind_a_port_is_found(prefork_server):
    process, port = prefork_server
    found = {p.pid for p in listening_processes(port)}
    assert process.pid in found and len(found) == 3


def test_probe_measures_the_busy_workers(prefork_server):
    _, port = prefork_server
    probe = TargetProbe(
        f"http://127.0.0.1:{port}", port, is_local=True, on_this_machine=True, exclude_pids=set()
    )
    probe.sample()  # starts the measurement
    time.sleep(1.0)
    reading = probe.sample()
    # two children spinning got some CPU, however busy the machine is
    assert reading.target_cpu_pct is not None and reading.target_cpu_pct > 0
    assert reading.target_cpu_source == f"processes on port {port}"
    assert reading.machine_cpu_pct is not None
    assert reading.db_pool_used_share is None  # no /metrics behind this port


def test_nothing_listening_means_no_figure():
    port = free_port()
    probe = TargetProbe(
        f"http://127.0.0.1:{port}", port, is_local=True, on_this_machine=False, exclude_pids=set()
    )
    reading = probe.sample()
    assert reading.target_cpu_pct is None and reading.machine_cpu_pct is None
