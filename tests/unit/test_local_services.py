"""The local services' pid files: a number reused by another process after a restart of the
machine is not taken for the service (never waited on, never killed)."""
import os
import socket
import subprocess
import sys
import time

import pytest

from streamdrift.connectors.local_services import Flink, Kafka, MariaDB


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


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


@pytest.mark.parametrize("service", [Kafka, MariaDB])
def test_a_pid_file_older_than_its_process_names_someone_else(run_dir, sleeper, service):
    svc = service()
    _pid_file(svc.pid_file, sleeper.pid, age_s=3600)  # written an hour before this process started
    assert not svc.status().up and svc.status().detail == "not running"
    svc.stop()  # must not kill the stranger
    assert sleeper.poll() is None


@pytest.mark.parametrize("service", [Kafka, MariaDB])
def test_a_pid_file_written_after_its_process_started_names_it(run_dir, sleeper, service):
    svc = service()
    _pid_file(svc.pid_file, sleeper.pid, age_s=0)
    assert f"pid {sleeper.pid}" in svc.status().detail


def test_flink_pid_files_with_a_reused_number_count_as_not_running(run_dir, sleeper):
    flink = Flink()
    _pid_file(flink.home / "flink--taskexecutor.pid", sleeper.pid, age_s=3600)
    assert flink.status().detail == "not running"
    _pid_file(flink.home / "flink--standalonesession.pid", sleeper.pid, age_s=0)
    assert f"pids [{sleeper.pid}]" in flink.status().detail


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
