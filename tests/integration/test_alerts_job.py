"""Alerts in the real monitoring job: Kafka in, drift injected, notifications out to real HTTP
receivers on the loopback and to the ``<project>.alerts`` topic; then the whole topic replayed
by a second run with a fresh consumer group and fresh state: nothing is notified twice."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.notifications import AlertDispatcher, NotificationSender
from streamdrift.connectors.settings import load_settings, topic_names
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.jobs.alerts_wiring import load_alerts, lookup_activation
from streamdrift.jobs.monitoring_job import JobOptions, build
from streamdrift.udfs.alerts import AlertState, evaluate
from streamdrift.udfs.alert_config import AlertBook, AlertEvent
from tests.integration.jobkit import consume, new_project

WINDOW_MS = 60_000
T0 = 1_700_000_040_000 - (1_700_000_040_000 % WINDOW_MS)
FEATURES = ["f_a", "f_b", "f_c"]
TOKEN = "hook-token-8d1e"


class Receiver:
    """HTTP server on 127.0.0.1:0 recording POSTed JSON; answers 200, or never (``hang=True``)."""

    def __init__(self, hang: bool = False):
        self.bodies: list[dict] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                receiver.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if hang:
                    receiver.release.wait(60)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/{TOKEN}"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def project(kafka):
    return new_project(kafka, "it-alerts")


@pytest.fixture()
def receivers():
    made = {"hook": Receiver(), "slack": Receiver(), "stuck": Receiver(hang=True)}
    yield made
    for r in made.values():
        r.close()


def _wait_until_sent(store: SqlStore, project: str, alerts, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        activations = [a for name in alerts for a in store.list_activations(project, name)]
        if activations and all(e["status"] != "pending" for a in activations for e in a.notified):
            return
        assert time.monotonic() < deadline, [a.notified for a in activations]
        time.sleep(0.2)


def test_drift_notifies_once_per_activation_even_when_the_job_replays(tmp_path, kafka, project, receivers):
    rng = np.random.default_rng(7)
    # MLRun's rule as the verdict: general_drift raises the data-drift events these alerts watch
    settings = load_settings({"data_dir": str(tmp_path), "project": project, "stream_path": kafka.stream_path,
                              "base_period": 1, "drift_verdict": "mlrun"}, env={})
    reference = pd.DataFrame(rng.normal(size=(2000, 3)), columns=FEATURES)
    endpoint = get_or_create_model_endpoint(project, "model-a", "serving", reference=reference,
                                            feature_names=FEATURES, store=settings.endpoint_store_connection)
    store = SqlStore(settings.endpoint_store_connection)
    # the answering receivers get 5 s (a stall past the timeout would be retried and delivered twice)
    fast = {"timeout": 5.0, "retries": 1, "backoff": 0.1}
    store.add_alert_config(
        project, "drift-any", summary="{{endpoint_id}} drifts: {{kind}} {{value}} until {{window_end}}",
        severity="high", entities=[f"{endpoint.endpoint_id}.histogram-data-drift.result.general_drift"],
        trigger_kinds=["data-drift-detected", "data-drift-suspected"],
        criteria={"count": 1}, reset_policy="auto",
        notifications=[{"kind": "webhook", "url": receivers["hook"].url, **fast},
                       {"kind": "slack", "webhook": receivers["slack"].url, **fast},
                       {"kind": "kafka"},
                       {"kind": "webhook", "url": receivers["stuck"].url, "name": "stuck", **fast, "timeout": 1.0}])
    store.add_alert_config(
        project, "drift-twice", summary="{{name}}: {{count}} drifted windows of {{entity}}", severity="medium",
        entities=[f"{endpoint.endpoint_id}.histogram-data-drift.result.general_drift"],
        trigger_kinds=["data-drift-detected", "data-drift-suspected"], criteria={"count": 2, "period": "3m"},
        reset_policy="manual", notifications=[{"kind": "webhook", "url": receivers["hook"].url, **fast}])

    # five windows of a minute: no drift, drift, drift, no drift, drift
    shifts = [0.0, 3.0, 3.0, 0.0, 3.0]
    events = [{"endpoint_id": endpoint.endpoint_id, "timestamp": T0 + w * WINDOW_MS + i * 500, "request_id": f"{w}-{i}",
               "inputs": [(rng.normal(size=3) + shift).round(5).tolist()]}
              for w, shift in enumerate(shifts) for i in range(100)]
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for e in events:
        producer.send(topic_names(project)["events"], json.dumps(e).encode())
    producer.flush()
    producer.close()

    def run(group: str) -> None:
        build(settings, JobOptions(bounded=True, window_ms=WINDOW_MS, checkpoint_interval_ms=2_000, parallelism=2,
                                   group_id=group)).env.execute(f"it-alerts-{group}")

    run(f"{project}-first")
    # notifications go out in the background: wait until no activation has one pending
    _wait_until_sent(store, project, ("drift-any", "drift-twice"))
    results = sorted(open_tsdb(settings.tsdb_connection).query_results(project, endpoint.endpoint_id,
                                                                       result_name="general_drift"),
                     key=lambda r: r.end_infer_time)
    assert [r.status >= 1 for r in results] == [False, True, True, False, True]
    drifted = [r for r in results if r.status >= 1]
    ends = [r.end_infer_time.isoformat().replace("+00:00", "Z") for r in drifted]

    def by_alert(name):
        return [b for b in receivers["hook"].bodies if b["alert"] == name]

    # drift-any: one activation per drifted window, each with one webhook, one Slack message, one Kafka record
    assert sorted(b["window_end"] for b in by_alert("drift-any")) == ends
    for body, result in zip(sorted(by_alert("drift-any"), key=lambda b: b["window_end"]), drifted):
        kind = "data-drift-detected" if result.status == 2 else "data-drift-suspected"
        assert body["summary"] == f"{endpoint.endpoint_id} drifts: {kind} {result.value:.4g} until {body['window_end']}"
    assert sorted(b["blocks"][1]["text"]["text"] for b in receivers["slack"].bodies) == \
        sorted(b["summary"] for b in by_alert("drift-any"))
    # drift-twice: windows 2 and 3 activate it; manual, so window 5 is held
    (twice,) = by_alert("drift-twice")
    assert twice["window_end"] == ends[1] and twice["count"] == 2
    assert twice["summary"] == f"drift-twice: 2 drifted windows of {endpoint.endpoint_id}.histogram-data-drift.result.general_drift"

    history = {name: store.list_activations(project, name) for name in ("drift-any", "drift-twice")}
    assert len(history["drift-any"]) == 3 and len(history["drift-twice"]) == 1
    for activation in history["drift-any"]:
        status = {e["target"].split()[0] + ("-stuck" if e["id"] == "stuck" else ""): e["status"]
                  for e in activation.notified}
        assert status == {"webhook": "sent", "slack": "sent", "kafka": "sent", "webhook-stuck": "failed"}
        assert TOKEN not in json.dumps(activation.notified)
    assert history["drift-twice"][0].reset_at is None  # held until `streamdrift alerts reset`

    # a replay of every window with fresh state (new consumer group, no checkpoint): nothing sent again
    hook_before, slack_before = len(receivers["hook"].bodies), len(receivers["slack"].bodies)
    run(f"{project}-replay")
    _wait_until_sent(store, project, ("drift-any", "drift-twice"))
    time.sleep(1.0)  # anything sent again would have arrived by now
    assert len(receivers["hook"].bodies) == hook_before and len(receivers["slack"].bodies) == slack_before
    assert [len(store.list_activations(project, n)) for n in ("drift-any", "drift-twice")] == [3, 1]
    on_kafka = consume(kafka, topic_names(project)["alerts"], timeout_ms=5_000)
    assert sorted(m["window_end"] for m in on_kafka) == ends and {m["alert"] for m in on_kafka} == {"drift-any"}
    store.close()


@pytest.fixture()
def mariadb_url(mysql):
    name = f"streamdrift_alerts_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(mysql.url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    try:
        yield mysql.url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def test_activations_on_mariadb_are_recorded_once_and_reset_by_version(mariadb_url, receivers):
    """The alert stage's store calls on MariaDB: the dedupe lookup by (alert, entity, window end),
    the notified JSON written from the sending thread, and a reset seen as a new version."""
    store = SqlStore(mariadb_url)
    store.create_schema()
    store.add_alert_config("shop", "held", summary="{{entity}} {{value}}", severity="high", entities="*",
                           trigger_kinds=["data-drift-detected"], reset_policy="manual",
                           notifications=[{"kind": "webhook", "url": receivers["hook"].url, "timeout": 2}])
    book = AlertBook(lambda: load_alerts(mariadb_url, "shop"))
    event = AlertEvent("shop", "ep", "app", "drift", "data-drift-detected", 0.9, T0, T0 + WINDOW_MS, 0)
    (spec,) = book.matching(event)
    step = evaluate(spec, AlertState(), event, T0 + 2 * WINDOW_MS)
    dispatcher = AlertDispatcher(store, NotificationSender())
    activation_id = dispatcher.handle(step.activation)
    assert dispatcher.handle(step.activation) is None  # the same activation again: nothing
    assert dispatcher.sender.drain(10)
    assert len(receivers["hook"].bodies) == 1 and receivers["hook"].bodies[0]["summary"] == "ep.app.result.drift 0.9"
    recorded = lookup_activation(mariadb_url, "shop", "held", event.entity, event.end_ms)
    assert recorded.id == activation_id and not recorded.reset and recorded.notified[0]["status"] == "sent"
    assert lookup_activation(mariadb_url, "shop", "held", event.entity, event.end_ms + 1) is None
    # held until reset; `alerts reset` advances the configuration's time, microseconds and all
    later = AlertEvent("shop", "ep", "app", "drift", "data-drift-detected", 0.9, T0 + WINDOW_MS,
                       T0 + 2 * WINDOW_MS, 0)
    assert evaluate(spec, step.state, later, 0).reason == "held"
    store.set_alert_state("shop", "held", "inactive")
    book.refresh(force=True)
    (reset,) = book.matching(later)
    assert reset.version > spec.version
    assert evaluate(reset, step.state, later, 0).reason == "activated"
    dispatcher.close(5)
