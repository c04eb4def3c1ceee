"""``streamdrift demo`` honours the settings: on the user's own Kafka and MariaDB (``STREAMDRIFT_*``
variables, a password in the store's URL that it never prints), and on the embedded defaults under
the flags' data dir."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from streamdrift.connectors.settings import ENV_PREFIX, topic_names
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.jobs.cli import build_parser
from tests.integration.jobkit import consume, drop_mariadb_user, mariadb_user, new_project

WINDOW_LINE = re.compile(r"^[0-9a-f]{8}\s+\d\d:\d\d-\d\d:\d\d\s+(\d+)\s")


def _demo(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamdrift.jobs.cli", "demo", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=500)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) or k.endswith("_PORT")}
    return env


def _windows(stdout: str) -> list[int]:
    return [int(m.group(1)) for m in map(WINDOW_LINE.match, stdout.splitlines()) if m]


def test_demo_takes_the_settings_flags_of_run():
    def flags(command):
        sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
        return {o for a in sub._actions for o in a.option_strings}

    settings_flags = {f for f in flags("settings") if f not in ("-h", "--help")}
    assert settings_flags <= flags("demo") and settings_flags <= flags("run")


def test_demo_on_your_own_kafka_and_mariadb_never_prints_the_password(tmp_path, kafka, mysql):
    project = new_project(kafka, "demo")
    password = "Sekr3t-demo-pw"
    url = mariadb_user(mysql, "demo_own", "demo_own", password)
    try:
        env = _clean_env()
        env.update({f"{ENV_PREFIX}STREAM_PATH": kafka.stream_path, f"{ENV_PREFIX}ENDPOINT_STORE_CONNECTION": url,
                    f"{ENV_PREFIX}TSDB_CONNECTION": f"sqlite:///{tmp_path / 'own-tsdb.sqlite'}",
                    f"{ENV_PREFIX}PROJECT": project})
        proc = _demo(["--data-dir", str(tmp_path / "data")], env, tmp_path)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:]
        assert password not in out
        assert f"mysql+pymysql://demo_own:***@127.0.0.1:{mysql.port}/demo_own" in proc.stdout.splitlines()[-1]
        assert _windows(proc.stdout) == [250] * 8
        # it used those services: the endpoint is in MariaDB, the events and dead letters on the broker
        (endpoint,) = SqlStore(url).list_endpoints(project, with_stats=False)
        assert endpoint.model_name == "breast-cancer-rf"
        from kafka import KafkaConsumer  # the events topic holds a record that is not JSON: count them raw

        consumer = KafkaConsumer(topic_names(project)["events"], bootstrap_servers=kafka.bootstrap,
                                 auto_offset_reset="earliest", consumer_timeout_ms=5_000)
        assert sum(1 for _ in consumer) == 8 * 250 + 3
        consumer.close()
        assert len(consume(kafka, topic_names(project)["dead_letters"])) == 3
        assert not (tmp_path / "data" / "stream").exists()  # nothing went to the embedded stream
    finally:
        drop_mariadb_user(mysql, "demo_own", "demo_own")


def test_demo_on_the_embedded_defaults_of_the_flags(tmp_path):
    data = tmp_path / "flags"
    proc = _demo(["--data-dir", str(data), "--project", "flags-demo"], _clean_env(), tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert _windows(proc.stdout) == [250] * 8
    assert (data / "tsdb.sqlite").exists() and (data / "store.sqlite").exists()
    assert (data / "stream" / "flags-demo.inference-events").is_dir()
    assert f"results in sqlite:///{data / 'tsdb.sqlite'}" in proc.stdout.splitlines()[-1]
