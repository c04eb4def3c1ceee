"""What the integration tests of the job share: a project with its topics, settings, producing and
reading records, waiting, and the processes of a running job."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
import uuid
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streamdrift.connectors.settings import load_settings, topic_names


def new_project(kafka, prefix: str = "it", partitions: int = 2) -> str:
    """A project name of its own, its topics created with ``partitions`` partitions."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1)
                         for t in topic_names(name).values()])
    admin.close()
    return name


def job_settings(tmp_path, kafka, project, **extra):
    """Settings of a test job: embedded stores under ``tmp_path``, the stream on ``kafka``, 1-minute windows."""
    stream = {"stream_path": kafka.stream_path} if kafka is not None else {}
    return load_settings({"data_dir": str(tmp_path), "project": project, "base_period": 1, **stream, **extra}, env={})


def produce(kafka, topic: str, records: list, partition: int | None = None) -> None:
    """Send records (dicts as JSON, bytes as they are) and wait until the broker has them all."""
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", max_request_size=16 << 20)
    for record in records:
        producer.send(topic, record if isinstance(record, bytes) else json.dumps(record).encode(),
                      partition=partition)
    producer.flush()
    producer.close()


def consume(kafka, topic: str, timeout_ms: int = 10_000) -> list[dict]:
    """Every committed record of ``topic`` as JSON (the job writes dead letters in transactions)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest",
                             isolation_level="read_committed", consumer_timeout_ms=timeout_ms,
                             fetch_max_bytes=32 << 20, max_partition_fetch_bytes=32 << 20)
    out = [json.loads(m.value) for m in consumer]
    consumer.close()
    return out


def utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


def wait_for(check, timeout: float, what: str) -> None:
    """Call ``check`` until it is true (an exception counts as not yet); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (a JVM starts processes from many threads)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def python_workers(root_pid: int) -> list[int]:
    """The PyFlink Python worker processes below ``root_pid`` (a TaskManager, or this process for a
    local job)."""
    def cmdline(pid):
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    return [pid for pid in descendants(root_pid) if "beam_boot" in cmdline(pid) or "fn_execution" in cmdline(pid)]


def kill_python_workers(root_pid: int) -> int:
    """kill -9 every Python worker below ``root_pid``; how many were killed."""
    killed = 0
    for pid in python_workers(root_pid):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def taskmanager_pid(flink) -> int:
    """The pid of the local standalone cluster's TaskManager."""
    for pid_file in flink.home.glob("flink-*taskexecutor*.pid"):
        for line in pid_file.read_text().split():
            if line.isdigit() and Path(f"/proc/{line}").exists():
                return int(line)
    raise AssertionError(f"no TaskManager pid file in {flink.home}")


def cancel_job(flink, job_id: str) -> None:
    """Cancel a job of the local standalone cluster (REST ``PATCH /jobs/<id>?mode=cancel``)."""
    import urllib.request

    request = urllib.request.Request(f"http://{flink.address}/jobs/{job_id}?mode=cancel", method="PATCH")
    with urllib.request.urlopen(request, timeout=10):
        pass


def mariadb_user(mysql, database: str, user: str, password: str) -> str:
    """A database and a user of its own with ``password`` (root over the server's socket); its URL."""
    import subprocess

    sql = (f"CREATE DATABASE `{database}`; CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'; "
           f"GRANT ALL ON `{database}`.* TO '{user}'@'127.0.0.1';")
    subprocess.run(["mariadb", "--no-defaults", f"--socket={mysql.socket}", "-uroot", "-e", sql], check=True,
                   capture_output=True)
    return f"mysql+pymysql://{user}:{password}@127.0.0.1:{mysql.port}/{database}"


def drop_mariadb_user(mysql, database: str, user: str) -> None:
    import subprocess

    subprocess.run(["mariadb", "--no-defaults", f"--socket={mysql.socket}", "-uroot", "-e",
                    f"DROP DATABASE IF EXISTS `{database}`; DROP USER IF EXISTS '{user}'@'127.0.0.1';"],
                   capture_output=True)
