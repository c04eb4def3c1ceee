"""Notifications against a real HTTP receiver on the loopback (http.server in a thread), and the
dispatcher on a real SQLite store: delivery, retries, timeouts, masking, dedupe of replays."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streamdrift.connectors.notifications import (
    AlertDispatcher,
    NotificationSender,
    describe_target,
    mask_url,
    slack_payload,
)
from streamdrift.jobs.alerts_wiring import lookup_activation
from streamdrift.udfs.alerts import AlertState, evaluate, events_from_output, settle, state_key
from streamdrift.udfs.alert_config import AlertBook
from streamdrift.udfs.monitor import WindowOutput
from streamdrift.udfs.records import ResultRecord

UTC = dt.timezone.utc
MIN = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
TOKEN = "tok-5f3a9c"
# receivers here answer at once: a stall past the timeout would be retried and counted twice
FAST = {"timeout": 5.0, "retries": 2, "backoff": 0.01}


class Receiver:
    """A real HTTP server on 127.0.0.1 (port 0) recording every POST. ``script`` gives the answer
    to each request in turn (an HTTP status, or ``"hang"``: never answer); then 200."""

    def __init__(self, script=()):
        self.script = list(script)
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.arrived:
                    action = receiver.script.pop(0) if receiver.script else 200
                    receiver.requests.append({"path": self.path, "body": json.loads(body), "answer": action,
                                              "headers": dict(self.headers)})
                    receiver.arrived.notify_all()
                if action == "hang":
                    receiver.release.wait(30)
                    return
                self.send_response(action)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/{TOKEN}?key={TOKEN}"

    def delivered(self) -> list[dict]:
        """Bodies of the requests answered with a 2xx."""
        return [r["body"] for r in self.requests if isinstance(r["answer"], int) and r["answer"] < 300]

    def wait_for(self, n: int, timeout: float = 5.0) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= n, timeout), \
                f"{len(self.requests)} request(s) arrived, expected {n}"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receivers():
    made = []

    def make(script=()):
        made.append(Receiver(script))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _spec_config(notifications, **kw):
    config = {"project": "shop", "name": "drift", "severity": "high", "entities": "*",
              "summary": "{{project}}/{{entity}} drifts: {{value}} ({{window_start}}..{{window_end}})",
              "trigger_kinds": ["data-drift-detected", "data-drift-suspected"], "criteria": {"count": 1},
              "reset_policy": "auto", "notifications": notifications}
    config.update(kw)
    return config


def _output(end_min, status, value, endpoint="ep1", revision=0):
    end = T0 + end_min * MIN
    start = end - 10 * MIN
    result = ResultRecord("shop", endpoint, "histogram-data-drift", "general_drift", 0, status, value,
                          dt.datetime.fromtimestamp(start / 1000, UTC), dt.datetime.fromtimestamp(end / 1000, UTC))
    return WindowOutput("shop", endpoint, start, end, revision, 0, None, (result,))


class AlertStage:
    """The job's alert stage without Flink: what streamdrift.operators.alerts does per event, with the state
    map of each endpoint in a dict (bytes, as Flink keeps it), and the real dispatcher."""

    def __init__(self, configs, store, sender):
        self.book = AlertBook(lambda: configs)
        self.url = store.url
        self.states: dict[tuple[str, str], bytes] = {}
        self.dispatcher = AlertDispatcher(store, sender)

    def feed(self, outputs):
        ids = []
        for out in outputs:
            for event in events_from_output(out):
                for spec in self.book.matching(event):
                    key = (event.endpoint_id, state_key(spec.name, event.entity))
                    before = AlertState.from_bytes(self.states.get(key))
                    step = evaluate(spec, before, event, int(time.time() * 1000))
                    if step.activation is not None:
                        recorded = lookup_activation(self.url, step.activation.project, spec.name,
                                                     step.activation.entity, step.activation.window_end_ms)
                        if recorded is not None:
                            step = settle(spec, before, step, recorded)
                    self.states[key] = step.state.to_bytes()
                    if step.activation is not None:
                        ids.append(self.dispatcher.handle(step.activation))
        return ids


# --------------------------------------------------------------------------------- single sends


def _activation(receivers_or_none=None, **kw):
    from streamdrift.udfs.alert_config import AlertSpec

    spec = AlertSpec.from_config(_spec_config([]))
    event = events_from_output(_output(10, 2, 0.91234))[0]
    return evaluate(spec, AlertState(), event, T0 + 11 * MIN).activation


def _target(kind, url=None, **params):
    from streamdrift.udfs.alert_config import NotificationTarget

    key = "webhook" if kind == "slack" else "url"
    return NotificationTarget.from_config({"kind": kind, **({key: url} if url else {}), **FAST, **params})


def test_webhook_posts_the_activation_as_json(receivers):
    hook = receivers()
    sender = NotificationSender()
    result = sender.send(_target("webhook", hook.url, headers={"Authorization": "Bearer xyz-secret"}), _activation())
    assert (result.status, result.attempts) == ("sent", 1)
    (request,) = hook.requests
    body = request["body"]
    assert body["summary"] == "shop/ep1.histogram-data-drift.result.general_drift drifts: 0.9123 " \
                              "(2024-01-01T00:00:00Z..2024-01-01T00:10:00Z)"
    assert body["alert"] == "drift" and body["severity"] == "high" and body["event_kind"] == "data-drift-detected"
    assert body["value"] == 0.91234 and body["window_end"] == "2024-01-01T00:10:00Z"
    assert request["headers"]["Authorization"] == "Bearer xyz-secret"
    assert request["headers"]["Content-Type"].startswith("application/json")
    sender.close()


def test_slack_gets_an_incoming_webhook_message(receivers):
    chat = receivers()
    result = NotificationSender().send(_target("slack", chat.url), _activation())
    assert result.status == "sent"
    (body,) = chat.delivered()
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith(":rotating_light: [high] drift: shop/ep1.histogram-data-drift.result.general_drift")
    assert body == slack_payload(_activation())
    assert body["blocks"][1] == {"type": "section", "text": {"type": "mrkdwn", "text": _activation().summary}}
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in body["blocks"][2]["fields"]}
    assert fields["*Value*"] == "0.9123" and fields["*Event*"] == "data-drift-detected"


def test_console_prints_one_line():
    out = io.StringIO()
    result = NotificationSender(console=out).send(_target("console"), _activation())
    assert result.status == "sent"
    assert out.getvalue().startswith("ALERT [high] shop/drift: shop/ep1.histogram-data-drift.result.general_drift")
    assert out.getvalue().count("\n") == 1


def test_a_500_then_200_delivers_once(receivers):
    hook = receivers([500, 200])
    result = NotificationSender().send(_target("webhook", hook.url), _activation())
    assert (result.status, result.attempts) == ("sent", 2)
    assert [r["answer"] for r in hook.requests] == [500, 200] and len(hook.delivered()) == 1


def test_a_refusal_is_not_retried(receivers):
    hook = receivers([404])
    result = NotificationSender().send(_target("webhook", hook.url), _activation())
    assert (result.status, result.attempts) == ("failed", 1) and "HTTP 404" in result.error
    assert len(hook.requests) == 1


def test_failures_never_show_the_secret(receivers, caplog):
    hook = receivers([503] * 10)
    result = NotificationSender().send(_target("webhook", hook.url), _activation())
    assert (result.status, result.attempts) == ("failed", 3) and "HTTP 503" in result.error
    dead = f"http://127.0.0.1:1/hooks/{TOKEN}"  # nothing listens on port 1
    result = NotificationSender().send(_target("webhook", dead), _activation())
    assert result.status == "failed" and "cannot connect" in result.error and TOKEN not in result.error
    assert mask_url(hook.url) == f"http://127.0.0.1:{hook.server.server_port}/***"
    assert mask_url("https://user:pw@hooks.slack.com/services/T/B/X") == "https://hooks.slack.com/***"
    assert describe_target(_target("slack", hook.url)).endswith("/***")
    assert TOKEN not in caplog.text


def test_a_hanging_receiver_does_not_hold_up_the_caller(receivers, store):
    """The job thread only submits: a receiver that never answers costs its own timeout in a
    background thread; the other notification of the same activation arrives at once."""
    stuck, fine = receivers(["hang"] * 10), receivers()
    sender = NotificationSender(workers=2)
    dispatcher = AlertDispatcher(store, sender)
    act = _activation()
    act = type(act)(**{**act.__dict__, "send": (_target("webhook", stuck.url, timeout=0.5, retries=1),
                                                _target("slack", fine.url))})
    started = time.perf_counter()
    activation_id = dispatcher.handle(act)
    handled_in = time.perf_counter() - started
    assert handled_in < 0.5, f"handling took {handled_in:.2f} s"  # a store write, no network wait
    fine.wait_for(1, timeout=2)
    assert time.perf_counter() - started < 1.0  # the good receiver did not wait for the stuck one
    assert sender.drain(timeout=10)
    entries = {e["kind"]: e for e in store.find_activation("shop", "drift", act.entity,
                                                           dt.datetime.fromtimestamp(act.window_end_ms / 1000, UTC)).notified}
    assert entries["slack"]["status"] == "sent"
    assert entries["webhook"]["status"] == "failed" and entries["webhook"]["attempts"] == 2
    assert "timed out" in entries["webhook"]["error"] and TOKEN not in json.dumps(entries)
    sender.close()


def test_a_full_queue_fails_fast_instead_of_blocking(receivers):
    stuck = receivers(["hang"] * 5)
    sender = NotificationSender(workers=1, max_pending=1)
    results = []
    assert sender.submit(_target("webhook", stuck.url, timeout=2.0, retries=0), _activation(), results.append)
    started = time.perf_counter()
    assert not sender.submit(_target("webhook", stuck.url), _activation(), results.append)
    assert time.perf_counter() - started < 0.1
    assert results[0].status == "failed" and "already pending" in results[0].error
    stuck.release.set()
    sender.close(5)


# --------------------------------------------------------------------------------- the whole stage


def test_drift_gives_one_webhook_and_one_slack_message_per_activation(receivers, store):
    hook, chat = receivers(), receivers()
    configs = [_spec_config([{"kind": "webhook", "url": hook.url, **FAST},
                             {"kind": "slack", "webhook": chat.url, **FAST}])]
    sender = NotificationSender()
    stage = AlertStage(configs, store, sender)
    # windows: no drift, drift detected, suspected (corrected twice by late data), none, detected
    outputs = [_output(10, 0, 0.2), _output(20, 2, 0.81), _output(30, 1, 0.55), _output(30, 1, 0.56, revision=1),
               _output(30, 2, 0.72, revision=2), _output(40, 0, 0.3), _output(50, 2, 0.9)]
    ids = stage.feed(outputs)
    assert sender.drain(5)
    assert len(ids) == 3 and None not in ids
    want = [f"shop/ep1.histogram-data-drift.result.general_drift drifts: {v} "
            f"(2024-01-01T00:{s}:00Z..2024-01-01T00:{e}:00Z)" for v, s, e in
            (("0.81", "10", "20"), ("0.55", "20", "30"), ("0.9", "40", "50"))]
    assert sorted(b["summary"] for b in hook.delivered()) == sorted(want)
    assert sorted(b["blocks"][1]["text"]["text"] for b in chat.delivered()) == sorted(want)
    assert len(hook.requests) == 3 and len(chat.requests) == 3
    history = store.list_activations("shop", "drift")
    assert [a.summary for a in history] == want
    assert all([e["status"] for e in a.notified] == ["sent", "sent"] for a in history)
    assert all(a.reset_at == a.activated_at for a in history)  # auto reset


def test_a_replay_with_fresh_state_sends_nothing_again(receivers, store):
    hook = receivers()
    configs = [_spec_config([{"kind": "webhook", "url": hook.url, **FAST}], criteria={"count": 2, "period": "30m"})]
    outputs = [_output(m, 2, 0.8) for m in (10, 20, 30, 40, 50)]
    first = AlertStage(configs, store, NotificationSender())
    assert len([i for i in first.feed(outputs) if i]) == 2  # windows 20 and 40
    assert first.dispatcher.sender.drain(5)
    again = AlertStage(configs, store, NotificationSender())  # a restart that lost its state: all windows again
    assert again.feed(outputs) == []
    assert again.dispatcher.sender.drain(5)
    assert len(hook.requests) == 2 and len(store.list_activations("shop", "drift")) == 2
    # the replay's state continues from the records (window 50 counted): window 60 activates, as it would have
    assert len(again.feed([_output(60, 2, 0.8)])) == 1


def test_cooldown_suppresses_repeats_and_says_so(receivers, store):
    hook = receivers()
    configs = [_spec_config([{"kind": "webhook", "url": hook.url, "cooldown": "30m", **FAST}])]
    stage = AlertStage(configs, store, NotificationSender())
    stage.feed([_output(m, 2, 0.8) for m in (10, 20, 30, 40, 50)])
    assert stage.dispatcher.sender.drain(5)
    # the sender's workers deliver distinct activations in any order; each body names its window
    assert sorted(b["window_end"][11:16] for b in hook.delivered()) == ["00:10", "00:40"]
    statuses = [a.notified[0]["status"] for a in store.list_activations("shop", "drift")]
    assert statuses == ["sent", "suppressed", "suppressed", "sent", "suppressed"]


def test_manual_alert_notifies_once_until_reset(receivers, store):
    hook = receivers()
    configs = [_spec_config([{"kind": "webhook", "url": hook.url, **FAST}], reset_policy="manual",
                            updated=dt.datetime(2024, 1, 1, tzinfo=UTC))]
    stage = AlertStage(configs, store, NotificationSender())
    stage.feed([_output(m, 2, 0.8) for m in (10, 20, 30)])
    configs[0] = {**configs[0], "updated": dt.datetime(2024, 1, 2, tzinfo=UTC)}  # what `alerts reset` does
    stage.book.refresh(force=True)
    stage.feed([_output(m, 2, 0.8) for m in (40, 50)])
    assert stage.dispatcher.sender.drain(5)
    assert sorted(b["window_end"][11:16] for b in hook.delivered()) == ["00:10", "00:40"]


def test_a_resend_sends_only_what_was_pending(receivers, store):
    hook, chat = receivers(), receivers()
    configs = [_spec_config([{"kind": "webhook", "url": hook.url, "name": "w", **FAST},
                             {"kind": "slack", "webhook": chat.url, "name": "s", **FAST}])]
    stage = AlertStage(configs, store, NotificationSender())
    (activation_id,) = stage.feed([_output(20, 2, 0.8)])
    assert stage.dispatcher.sender.drain(5)
    # the job stopped before the Slack message went out: the record still says pending
    (record,) = store.list_activations("shop", "drift")
    store.set_activation_notified(activation_id, [{**record.notified[0]}, {**record.notified[1], "status": "pending"}])
    replay = AlertStage(configs, store, NotificationSender())
    assert replay.feed([_output(20, 2, 0.8)]) == [activation_id]
    assert replay.dispatcher.sender.drain(5)
    assert len(hook.requests) == 1 and len(chat.requests) == 2
    assert [e["status"] for e in store.list_activations("shop", "drift")[0].notified] == ["sent", "sent"]


def test_notification_failures_are_logged_masked(receivers, store, caplog):
    hook = receivers([500] * 10)
    configs = [_spec_config([{"kind": "webhook", "url": hook.url, **FAST}])]
    stage = AlertStage(configs, store, NotificationSender())
    with caplog.at_level(logging.WARNING, logger="streamdrift.notifications"):
        stage.feed([_output(20, 2, 0.8)])
        assert stage.dispatcher.sender.drain(5)
    (record,) = store.list_activations("shop", "drift")
    assert record.notified[0]["status"] == "failed" and record.notified[0]["attempts"] == 3
    assert "failed after 3 attempt(s): HTTP 500" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in json.dumps(record.notified)
