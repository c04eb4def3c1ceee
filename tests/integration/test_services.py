"""`streamdrift services`: idempotent start, status, stop — on a second set of services of its own
(separate run folder and ports), so the shared ones of the test session are not disturbed."""

import os
import subprocess
import sys
import urllib.request

import pytest

PORTS = {"STREAMDRIFT_KAFKA_PORT": "19092", "STREAMDRIFT_MYSQL_PORT": "13307",
         "STREAMDRIFT_FLINK_PORT": "18081", "STREAMDRIFT_FLINK_RPC_PORT": "16123"}


@pytest.fixture()
def cli(tmp_path):
    env = dict(os.environ, STREAMDRIFT_RUN_DIR=str(tmp_path / "run"), **PORTS)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "streamdrift.jobs.cli", "services", *args], env=env,
                              capture_output=True, text=True, timeout=600)

    yield run
    run("down")


def lines(proc: subprocess.CompletedProcess) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if line.strip()}


def test_up_twice_is_harmless_and_down_reports_down(cli):
    first = cli("up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert lines(first) == {"kafka": "up", "mysql": "up", "flink": "up"}
    lines_with_pids = first.stdout

    second = cli("up")
    assert second.returncode == 0, second.stdout + second.stderr
    assert lines(second) == {"kafka": "up", "mysql": "up", "flink": "up"}
    # the same processes: a second `up` started nothing new
    assert [l.split(",")[0] for l in second.stdout.splitlines()[:2]] == \
           [l.split(",")[0] for l in lines_with_pids.splitlines()[:2]]

    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['STREAMDRIFT_FLINK_PORT']}/overview", timeout=5) as r:
        assert r.status == 200

    status = cli("status")
    assert lines(status) == {"kafka": "up", "mysql": "up", "flink": "up"}

    down = cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert lines(cli("status")) == {"kafka": "down", "mysql": "down", "flink": "down"}
    assert lines(cli("down")) == {"kafka": "down", "mysql": "down", "flink": "down"}  # down twice is harmless


def test_one_service_by_name(cli):
    assert lines(cli("up", "kafka")) == {"kafka": "up"}
    assert lines(cli("status")) == {"kafka": "up", "mysql": "down", "flink": "down"}
    assert lines(cli("down", "kafka")) == {"kafka": "down"}


def test_unknown_service_is_refused(cli):
    proc = cli("up", "postgres")
    assert proc.returncode != 0
    assert "unknown service" in proc.stderr and "postgres" in proc.stderr
