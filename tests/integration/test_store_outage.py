"""MariaDB stops while the job runs: the writer waits and retries; nothing is lost when it is back."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.settings import load_settings, topic_names
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.jobs.monitoring_job import JobOptions, build
from tests.integration.jobkit import wait_for as _wait_for

WINDOW_MS = 3_000


@pytest.fixture()
def database(mysql):
    name = f"streamdrift_outage_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(mysql.url, pool_pre_ping=True)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    yield mysql.url.rsplit("/", 1)[0] + "/" + name
    if not mysql.status().up:
        mysql.start()
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


def _send(kafka, topic, endpoint_id, start_ms, n, rng):
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for i in range(n):
        producer.send(topic, json.dumps({"endpoint_id": endpoint_id, "timestamp": start_ms + i * 5,
                                         "request_id": f"{start_ms}-{i}",
                                         "inputs": [rng.normal(size=2).tolist()]}).encode())
    producer.flush()
    producer.close()


def test_mariadb_stopped_mid_run_loses_nothing(tmp_path, kafka, mysql, database):
    project = f"outage-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in topic_names(project).values()])
    admin.close()
    settings = load_settings({"data_dir": str(tmp_path), "project": project, "stream_path": kafka.stream_path,
                              "endpoint_store_connection": database}, env={})
    rng = np.random.default_rng(5)
    endpoint = get_or_create_model_endpoint(project, "m", "f", reference=pd.DataFrame(rng.normal(size=(500, 2)),
                                                                                      columns=["x", "y"]),
                                            store=database)
    topic = topic_names(project)["events"]
    client = build(settings, JobOptions(window_ms=WINDOW_MS, idle_grace_ms=1_000, max_disorder_ms=200,
                                        checkpoint_interval_ms=1_000, endpoint_refresh_seconds=3600)
                   ).env.execute_async("it-outage")
    store, tsdb = SqlStore(database), open_tsdb(settings.tsdb_connection)
    try:
        now = int(time.time() * 1000)
        first = now - now % WINDOW_MS
        _send(kafka, topic, endpoint.endpoint_id, first, 40, rng)
        _wait_for(lambda: store.get_endpoint(endpoint.endpoint_id)["rows_count"] == 40, 90, "the first window")

        mysql.stop()
        assert not mysql.status().up
        # two more windows while the SQL store is down
        second, third = first + 10 * WINDOW_MS, first + 11 * WINDOW_MS
        _send(kafka, topic, endpoint.endpoint_id, second, 30, rng)
        _send(kafka, topic, endpoint.endpoint_id, third, 20, rng)
        time.sleep(10)  # the windows close and the writer meets the outage
        mysql.start()

        # the writer commits the two stores side by side: wait for both
        _wait_for(lambda: store.get_endpoint(endpoint.endpoint_id)["rows_count"] >= 90
                  and len(tsdb.query_predictions(project, endpoint.endpoint_id)) >= 3, 120,
                  "the windows written during the outage")
        assert store.get_endpoint(endpoint.endpoint_id)["rows_count"] == 90
        counts = sorted(p.count for p in tsdb.query_predictions(project, endpoint.endpoint_id))
        assert counts == [20, 30, 40]
        latest = store.latest_results(endpoint.endpoint_id)
        assert [r.end_infer_time.timestamp() * 1000 for r in latest] == [third + WINDOW_MS] * 2  # both results
        assert len(tsdb.query_results(project, endpoint.endpoint_id, result_name="general_drift")) == 3
    finally:
        if not mysql.status().up:
            mysql.start()
        client.cancel().result()
