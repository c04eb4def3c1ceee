"""Local services for development and tests: a Kafka KRaft broker, MariaDB and a Flink cluster.

Each service keeps its data and logs under one folder, :func:`run_dir` (``.run/<service>`` at the
root of a checkout, git-ignored; see :func:`home` for an installed package), listens on 127.0.0.1
only, and has ``start`` / ``stop`` / ``status`` that are idempotent: ``start`` on a running service
does nothing, ``stop`` on a stopped one does nothing, and ``start`` returns only once the service
answers.

Ports (environment overrides): Kafka ``STREAMDRIFT_KAFKA_PORT`` (9092, controller on port + 1),
MariaDB ``STREAMDRIFT_MYSQL_PORT`` (3307), Flink REST ``STREAMDRIFT_FLINK_PORT`` (8081) and RPC
``STREAMDRIFT_FLINK_RPC_PORT`` (6123).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

#: The folder of the package's folders: a checkout's root, or ``site-packages/streamdrift`` when
#: installed from a wheel (it holds ``jars/pom.xml`` either way).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def kafka_cluster_id() -> str:
    """A random Kafka cluster id (16 bytes, URL-safe base64) that does not start with ``-``: the
    storage tool would read such an id as an option (one id in 64 did, and the broker never started).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def is_checkout(root: Path = PROJECT_ROOT) -> bool:
    """Whether the package runs from a checkout (its root has ``setup.py``), not from an install."""
    return (root / "setup.py").is_file()


def home(root: Path = PROJECT_ROOT, environ: Mapping[str, str] = os.environ) -> tuple[Path, str, str]:
    """``(folder, name of the run folder in it, name of the jars folder in it)``, the defaults of
    :func:`run_dir` and :func:`jars_dir`: ``$STREAMDRIFT_HOME`` (``run``, ``jars``) when set; else
    a checkout's root (``.run``, ``.jars``); else, installed, ``~/.streamdrift`` (``run``,
    ``jars``): never inside ``site-packages``."""
    if environ.get("STREAMDRIFT_HOME"):
        return Path(environ["STREAMDRIFT_HOME"]).expanduser(), "run", "jars"
    if is_checkout(root):
        return root, ".run", ".jars"
    return Path(environ.get("HOME") or Path.home()) / ".streamdrift", "run", "jars"


def run_dir() -> Path:
    """The services' data and logs, the job's zip: ``$STREAMDRIFT_RUN_DIR``, else in :func:`home`."""
    folder, run, _ = home()
    return Path(os.environ.get("STREAMDRIFT_RUN_DIR") or folder / run).expanduser().resolve()


def jars_dir() -> Path:
    """The JVM jars ``streamdrift jars`` fetches: ``$STREAMDRIFT_JARS_DIR``, else in :func:`home`."""
    folder, _, jars = home()
    return Path(os.environ.get("STREAMDRIFT_JARS_DIR") or folder / jars).expanduser().resolve()


def plugins_dir() -> Path:
    """Flink plugins fetched by ``make jars`` (the Prometheus reporter): the ``FLINK_PLUGINS_DIR``
    of the local cluster and of local runs."""
    return jars_dir() / "plugins"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(f"STREAMDRIFT_{name}_PORT", default))


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says where its log is."""


@dataclass(frozen=True)
class Status:
    name: str
    up: bool
    detail: str


# ----------------------------------------------------------------------------- process helpers
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> list[str]:
    """A process's arguments (Linux /proc), [] when they cannot be read."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _owned_pids(pid_file: Path, folder: Path) -> list[int]:
    """The live processes a pid file names that are the service of ``folder``: their arguments name
    a path in it (its config, data or log folder). A number reused by another process (the machine
    restarted, the service died long ago) is someone else's, never to be waited on or killed. Told
    by the arguments, not by start times: /proc's start times are read against a boot time that
    moves when the wall clock is stepped, which made a live service look like a stranger."""
    try:
        text = pid_file.read_text()
    except OSError:
        return []
    # the path as an argument or an option's value (--datadir=…, file:…), never inside another path
    inside = re.compile(rf"(^|[=:]){re.escape(str(folder))}(/|$)")
    pids = [int(word) for word in text.split() if word.isdigit()]
    return [pid for pid in pids if _pid_alive(pid)
            and any(inside.search(arg) for arg in _cmdline(pid))]


def _read_pid(pid_file: Path, folder: Path) -> int | None:
    pids = _owned_pids(pid_file, folder)
    return pids[-1] if pids else None


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the service is still coming up
            pass
        time.sleep(0.5)
    where = f"; see its log {log}" if log else ""
    raise ServiceError(f"{what} did not answer within {timeout:.0f} s{where}")


def _spawn(cmd: list[str], log: Path, pid_file: Path, env: dict | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env, cwd=str(log.parent),
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def _terminate(pid_file: Path, folder: Path, timeout: float = 30.0) -> None:
    pid = _read_pid(pid_file, folder)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def _run(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise ServiceError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc


def apt_install(package: str, what: str) -> None:
    """``apt-get install`` Debian's ``package`` (needs root and apt); ``apt-get update`` first when
    apt does not know the package yet (a fresh machine's empty package lists)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServiceError(f"{what} is not installed and cannot be installed here: "
                           f"run `apt-get install {package}` as root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", package]
    if subprocess.run(["apt-cache", "show", package], capture_output=True, env=env).returncode == 0:
        if subprocess.run(install, capture_output=True, env=env).returncode == 0:
            return
    # unknown package, or stale lists pointing at files the mirror no longer has
    _run(["apt-get", "update", "-q"], "apt-get update", env=env)
    _run(install, f"apt-get install {package}", env=env)


CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> str:
    """The path of Debian's ``chromium`` (the dashboard's browser tests drive it headless),
    installed with apt-get when missing: no browser is downloaded by a test tool."""
    if not CHROMIUM.exists():
        apt_install("chromium", "Chromium")
    return str(CHROMIUM)


# ----------------------------------------------------------------------------- Kafka (KRaft)
class Kafka:
    name = "kafka"

    def __init__(self) -> None:
        self.port = _port("KAFKA", 9092)
        self.controller_port = self.port + 1
        self.home = run_dir() / "kafka"
        self.pid_file = self.home / "kafka.pid"
        self.log = self.home / "kafka.out"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def stream_path(self) -> str:
        return f"kafka://{self.bootstrap}"

    def _config(self) -> Path:
        data = self.home / "data"
        config = self.home / "server.properties"
        config.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=2",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Flink's exactly-once Kafka sink keeps transactions open up to its checkpoint timeout
            "transaction.max.timeout.ms=3600000",
            "message.max.bytes=16777216",
            "",
        ]))
        return config

    def _java(self, main: str, *args: str) -> list[str]:
        jars = jars_dir() / "kafka"
        if not any(jars.glob("kafka_*.jar")):
            raise ServiceError(f"the Kafka broker jars are missing from {jars}: run `make jars` first")
        return ["java", "-Xms256m", "-Xmx768m", "-cp", f"{jars}/*", main, *args]

    def _answers(self) -> bool:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        try:
            admin.list_topics()
            return True
        finally:
            admin.close()

    def status(self) -> Status:
        pid = _read_pid(self.pid_file, self.home)
        if pid is None:
            return Status(self.name, False, "not running")
        up = _port_open(self.port)
        return Status(self.name, up, f"pid {pid}, {self.stream_path}" + ("" if up else " (not answering)"))

    def start(self) -> Status:
        if _read_pid(self.pid_file, self.home) is None:
            self.home.mkdir(parents=True, exist_ok=True)
            config = self._config()
            if not (self.home / "data" / "meta.properties").exists():
                cluster_id = kafka_cluster_id()
                _run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
                     "formatting the Kafka storage")
            _spawn(self._java("kafka.Kafka", str(config)), self.log, self.pid_file)
        _wait(self._answers, 90, f"Kafka on {self.bootstrap}", self.log)
        return self.status()

    def stop(self) -> Status:
        _terminate(self.pid_file, self.home)
        return self.status()


# ----------------------------------------------------------------------------- MariaDB
class MariaDB:
    name = "mysql"
    database = "streamdrift"
    user = "streamdrift"

    def __init__(self) -> None:
        self.port = _port("MYSQL", 3307)
        self.password = os.environ.get("STREAMDRIFT_MYSQL_PASSWORD", "streamdrift")
        self.home = run_dir() / "mysql"
        self.data = self.home / "data"
        self.socket = self.home / "mysqld.sock"
        self.pid_file = self.home / "mysqld.pid"
        self.log = self.home / "mysqld.log"

    @property
    def url(self) -> str:
        return f"mysql+pymysql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    @staticmethod
    def _binary(name: str) -> str | None:
        return shutil.which(name) or next(
            (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None)

    def ensure_installed(self) -> None:
        """Install Debian's mariadb-server when its binaries are missing (needs root and apt)."""
        if self._binary("mariadbd") and self._binary("mariadb-install-db"):
            return
        apt_install("mariadb-server", "MariaDB")

    def _client(self, sql: str) -> None:
        _run([self._binary("mariadb") or "mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot",
              "-e", sql], "provisioning MariaDB")

    def _answers(self) -> bool:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                               database=self.database, connect_timeout=3)
        conn.close()
        return True

    def status(self) -> Status:
        pid = _read_pid(self.pid_file, self.home)
        if pid is None:
            return Status(self.name, False, "not running")
        up = _port_open(self.port)
        return Status(self.name, up, f"pid {pid}, 127.0.0.1:{self.port} database {self.database}"
                      + ("" if up else " (not answering)"))

    def start(self) -> Status:
        if _read_pid(self.pid_file, self.home) is None:
            self.ensure_installed()
            self.home.mkdir(parents=True, exist_ok=True)
            if not (self.data / "mysql").exists():
                _run([self._binary("mariadb-install-db"), "--no-defaults", f"--datadir={self.data}",
                      "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"],
                     "initialising the MariaDB data directory")
            self.socket.unlink(missing_ok=True)
            _spawn([self._binary("mariadbd"), "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
                    "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.home / 'mariadbd.pid'}",
                    "--user=root", f"--log-error={self.home / 'mariadbd.err'}", "--skip-name-resolve",
                    "--innodb-buffer-pool-size=128M", "--max-allowed-packet=64M"],
                   self.log, self.pid_file)
            _wait(self.socket.exists, 60, "the MariaDB socket", self.home / "mariadbd.err")
            _wait(lambda: self._client("SELECT 1") is None, 30, "MariaDB as root", self.home / "mariadbd.err")
            self._client(
                f"CREATE DATABASE IF NOT EXISTS `{self.database}`;"
                f"CREATE USER IF NOT EXISTS '{self.user}'@'127.0.0.1' IDENTIFIED BY '{self.password}';"
                f"CREATE USER IF NOT EXISTS '{self.user}'@'localhost' IDENTIFIED BY '{self.password}';"
                f"GRANT ALL ON `{self.database}`.* TO '{self.user}'@'127.0.0.1', '{self.user}'@'localhost';"
                f"GRANT ALL ON `{self.database}\\_%`.* TO '{self.user}'@'127.0.0.1', '{self.user}'@'localhost';"
                "FLUSH PRIVILEGES;")
        _wait(self._answers, 60, f"MariaDB on 127.0.0.1:{self.port}", self.home / "mariadbd.err")
        return self.status()

    def stop(self) -> Status:
        _terminate(self.pid_file, self.home, timeout=60)
        return self.status()


# ----------------------------------------------------------------------------- Flink
def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


class Flink:
    name = "flink"

    def __init__(self) -> None:
        self.port = _port("FLINK", 8081)
        self.home = run_dir() / "flink"
        self.conf = self.home / "conf"
        self.log_dir = self.home / "log"
        self.lib = self.home / "lib"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_conf(self) -> None:
        """flink-conf/ of the project plus the keys that depend on this machine (paths, ports)."""
        self.conf.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        template = PROJECT_ROOT / "flink-conf"
        for path in template.iterdir():
            if path.is_file() and path.name != "config.yaml":
                shutil.copy(path, self.conf / path.name)
        for path in (flink_home() / "conf").glob("log*"):
            if not (self.conf / path.name).exists():
                shutil.copy(path, self.conf / path.name)
        (self.conf / "masters").write_text(f"127.0.0.1:{self.port}\n")
        # the cluster runs Python functions: PyFlink ships flink-python in opt/, the cluster needs it in lib/
        shutil.rmtree(self.lib, ignore_errors=True)
        self.lib.mkdir(parents=True)
        # and the connector jars (Kafka, Parquet): loaded once by Flink's own class loader, not again by
        # each job's (a job's class loader is made anew at every restart: its classes filled metaspace)
        for jar in [*(flink_home() / "lib").glob("*.jar"), *(flink_home() / "opt").glob("flink-python*.jar"),
                    *(jars_dir() / "flink").glob("*.jar")]:
            (self.lib / jar.name).symlink_to(jar)
        metrics_port = _port("FLINK_METRICS", 9249)  # the job manager's; the task manager's is the next
        local = {
            "rest.port": self.port,
            "jobmanager.rpc.port": _port("FLINK_RPC", 6123),
            "python.executable": sys.executable,
            "python.client.executable": sys.executable,
            "env.pid.dir": str(self.home),
            "env.log.dir": str(self.log_dir),
            "io.tmp.dirs": str(self.home / "tmp"),
            "state.checkpoints.dir": (self.home / "checkpoints").as_uri(),
            "metrics.reporter.prom.port": f"{metrics_port}-{metrics_port + 1}",
        }
        (self.home / "tmp").mkdir(exist_ok=True)
        lines = [(template / "config.yaml").read_text().rstrip(), "", "# written by streamdrift services"]
        lines += [f"{key}: {json.dumps(value)}" for key, value in local.items()]
        (self.conf / "config.yaml").write_text("\n".join(lines) + "\n")

    def env(self) -> dict[str, str]:
        env = dict(os.environ, FLINK_CONF_DIR=str(self.conf), FLINK_LOG_DIR=str(self.log_dir),
                   FLINK_PID_DIR=str(self.home), FLINK_HOME=str(flink_home()),
                   FLINK_LIB_DIR=str(self.lib), FLINK_PLUGINS_DIR=str(plugins_dir()))
        env.pop("FLINK_ENV_JAVA_OPTS", None)
        return env

    def rest(self, path: str, timeout: float = 3.0) -> dict:
        with urllib.request.urlopen(f"http://{self.address}{path}", timeout=timeout) as response:
            return json.loads(response.read())

    def _ready(self) -> bool:
        return self.rest("/overview").get("slots-total", 0) >= 1

    def _pids(self) -> list[int]:
        pids = []
        for pid_file in self.home.glob("flink-*.pid"):
            pids += _owned_pids(pid_file, self.home)
        return pids

    def status(self) -> Status:
        pids = self._pids()
        if not pids:
            return Status(self.name, False, "not running")
        try:
            overview = self.rest("/overview")
        except Exception:
            return Status(self.name, False, f"pids {pids}, REST on {self.address} not answering")
        return Status(self.name, True, f"http://{self.address}, {overview.get('taskmanagers')} taskmanager(s), "
                                       f"{overview.get('slots-total')} slots, Flink {overview.get('flink-version')}")

    def start(self) -> Status:
        if not self._pids():
            self._write_conf()
            _run(["bash", str(flink_home() / "bin" / "start-cluster.sh")], "start-cluster.sh", env=self.env())
        _wait(self._ready, 120, f"the Flink cluster on http://{self.address}", self.log_dir)
        return self.status()

    def taskmanagers(self) -> list[str]:
        """The ids of the TaskManagers registered with the cluster."""
        return [tm["id"] for tm in self.rest("/taskmanagers").get("taskmanagers", [])]

    def add_taskmanager(self, timeout: float = 120) -> str:
        """Start one more TaskManager on this machine (Flink's ``taskmanager.sh start``, the
        cluster's configuration) and wait until it is registered; its id. With
        ``taskmanager.load-balance.mode: slots`` the scheduler spreads a job's slots over them."""
        before = set(self.taskmanagers())
        _run(["bash", str(flink_home() / "bin" / "taskmanager.sh"), "start"], "taskmanager.sh start", env=self.env())
        _wait(lambda: set(self.taskmanagers()) - before, timeout, "the added TaskManager", self.log_dir)
        return sorted(set(self.taskmanagers()) - before)[0]

    def remove_taskmanager(self) -> None:
        """Stop the TaskManager started last (``taskmanager.sh stop``)."""
        subprocess.run(["bash", str(flink_home() / "bin" / "taskmanager.sh"), "stop"], env=self.env(),
                       capture_output=True, text=True)

    def stop(self) -> Status:
        if self._pids():
            subprocess.run(["bash", str(flink_home() / "bin" / "stop-cluster.sh")], env=self.env(),
                           capture_output=True, text=True)
            deadline = time.monotonic() + 30
            while self._pids() and time.monotonic() < deadline:
                time.sleep(0.3)
            for pid in self._pids():
                os.kill(pid, signal.SIGKILL)
        return self.status()


SERVICES: dict[str, Callable[[], object]] = {"kafka": Kafka, "mysql": MariaDB, "flink": Flink}


def services(names: list[str] | None = None) -> list:
    """The service objects for ``names`` (all, in start order, when empty)."""
    names = names or list(SERVICES)
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise ServiceError(f"unknown service(s) {unknown}; known: {list(SERVICES)}")
    return [SERVICES[n]() for n in names]
