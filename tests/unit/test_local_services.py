"""The local services' pid files: a process is the service only when its arguments name the
service's folder, so a number reused by another process after a restart of the machine is not
taken for the service (never waited on, never killed), and the service's own process is found
whatever the pid file's time says (a stepped wall clock once made it look like a stranger)."""
import os
import socket
import subprocess
import sys
import time

import pytest

from streamdrift.connectors.local_services import Flink, Kafka, MariaDB

SLEEP = "import time; print('started', flush=True); time.sleep(60)"


@pytest.fixture
def spawn():
    """Start a sleeping process with the given extra arguments; all are killed after the test."""
    procs = []

    def start(*args):
        procs.append(subprocess.Popen([sys.executable, "-c", SLEEP, *map(str, args)], stdout=subprocess.PIPE))
        # Popen can return before the child has exec'd (its /proc cmdline still empty here)
        assert procs[-1].stdout.readline() == b"started\n"
        return procs[-1]

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMDRIFT_RUN_DIR", str(tmp_path))
    # ports nothing listens on: the services the test run started answer on the usual ones
    for name in ("KAFKA", "MYSQL", "FLINK"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            monkeypatch.setenv(f"STREAMDRIFT_{name}_PORT", str(sock.getsockname()[1]))
    return tmp_path


def _pid_file(path, pid, age_s):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")
    written = time.time() - age_s
    os.utime(path, (written, written))


def _stopped(proc, timeout=10.0):
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


@pytest.mark.parametrize("service", [Kafka, MariaDB])
@pytest.mark.parametrize("age_s", [3600, 0])
def test_a_pid_file_naming_a_process_that_is_not_the_service_counts_as_not_running(
        run_dir, spawn, service, age_s):
    svc = service()
    # the same folder's name in another place, and a folder whose name starts like the service's
    stranger = spawn(f"/elsewhere{svc.home}/data", f"{svc.home}2/data")
    _pid_file(svc.pid_file, stranger.pid, age_s=age_s)
    assert not svc.status().up and svc.status().detail == "not running"
    svc.stop()  # must not kill the stranger
    assert stranger.poll() is None


@pytest.mark.parametrize("service", [Kafka, MariaDB])
@pytest.mark.parametrize("age_s", [3600, 0, -3600])  # a wall clock stepped back or forward
def test_the_services_own_process_is_found_and_stopped_whatever_its_pid_files_time(
        run_dir, spawn, service, age_s):
    svc = service()
    own = spawn(f"--datadir={svc.home / 'data'}")
    _pid_file(svc.pid_file, own.pid, age_s=age_s)
    assert f"pid {own.pid}" in svc.status().detail
    svc.stop()
    assert _stopped(own) and svc.status().detail == "not running"


def test_flink_counts_only_the_processes_that_name_its_folder(run_dir, spawn):
    flink = Flink()
    stranger, own = spawn(), spawn("--configDir", flink.conf)
    _pid_file(flink.home / "flink--taskexecutor.pid", stranger.pid, age_s=0)
    assert flink.status().detail == "not running"
    _pid_file(flink.home / "flink--standalonesession.pid", own.pid, age_s=3600)
    assert f"pids [{own.pid}]" in flink.status().detail
    assert stranger.poll() is None


# --------------------------------------------------------------------------------- default folders


def test_a_checkout_keeps_run_and_jars_at_its_root(monkeypatch):
    from streamdrift.connectors import local_services

    for name in ("STREAMDRIFT_HOME", "STREAMDRIFT_RUN_DIR", "STREAMDRIFT_JARS_DIR"):
        monkeypatch.delenv(name, raising=False)
    root = local_services.PROJECT_ROOT
    assert (root / "setup.py").is_file() and (root / "udfs").is_dir()  # this test runs from a checkout
    assert (local_services.run_dir(), local_services.jars_dir()) == (root / ".run", root / ".jars")


def test_an_installed_package_keeps_run_and_jars_in_the_users_home_never_beside_its_code(tmp_path):
    from streamdrift.connectors.local_services import home

    installed = tmp_path / "site-packages" / "streamdrift"  # no setup.py: not a checkout
    (installed / "connectors").mkdir(parents=True)
    user = tmp_path / "user"
    assert home(installed, {"HOME": str(user)}) == (user / ".streamdrift", "run", "jars")
    assert home(installed, {"HOME": str(user), "STREAMDRIFT_HOME": str(tmp_path / "sd")}) == (
        tmp_path / "sd", "run", "jars")


def test_the_folder_variables_win_over_every_default(monkeypatch, tmp_path):
    from streamdrift.connectors import local_services

    monkeypatch.setenv("STREAMDRIFT_HOME", str(tmp_path / "home"))
    assert local_services.run_dir() == tmp_path / "home" / "run"
    assert local_services.jars_dir() == tmp_path / "home" / "jars"
    monkeypatch.setenv("STREAMDRIFT_RUN_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("STREAMDRIFT_JARS_DIR", str(tmp_path / "j"))
    assert (local_services.run_dir(), local_services.jars_dir()) == (tmp_path / "r", tmp_path / "j")
