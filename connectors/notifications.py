"""Notifications of alert activations: webhook, Slack, console and Kafka; and the dispatcher that
records activations in the SQL store and sends them without ever holding up the job.

* ``webhook`` ``{"url": ..., "headers": {...}}``: the activation as a JSON POST
  (:meth:`streamdrift.udfs.alerts.Activation.payload`).
* ``slack`` ``{"webhook": <incoming-webhook URL>}``: ``{"text": ..., "blocks": [...]}``.
* ``console``: one line on the job's standard output (the TaskManager log on a cluster).
* ``kafka`` ``{"topic": ..., "bootstrap": ...}``: the JSON payload on ``<project>.alerts`` (default
  topic) of the job's Kafka (default bootstrap), for other systems.

Every kind takes ``timeout`` (seconds per request, default 5), ``retries`` (default 3, after the
first attempt) and ``backoff`` (first wait, default 0.5 s, doubled each retry). A connection error,
a timeout, HTTP 408, 429 or 5xx is retried; another 4xx is not (the request is wrong, not the
moment). What happened ends up in the activation's ``notified`` JSON: one entry per notification,
``{"id", "kind", "target", "status": pending|sent|failed|suppressed, "attempts", "error", "at"}``.

Secrets: webhook and Slack URLs carry tokens. They are never logged nor stored in ``notified``
nor put in an error message: :func:`mask_url` keeps the scheme and host only.

:class:`NotificationSender` sends on a bounded thread pool: :meth:`~NotificationSender.submit`
returns at once; at most ``max_pending`` sends wait, more are recorded as failed ("dropped"), so a
receiver that hangs costs its own timeouts and a worker thread, never the job's time.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO
from urllib.parse import urlsplit

from streamdrift.connectors.errors import backoff_delays, wait_out
from streamdrift.udfs.alerts import Activation, iso_ms
from streamdrift.udfs.alert_config import NotificationTarget
from streamdrift.udfs.records import utc_from_ms

log = logging.getLogger("streamdrift.notifications")

DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 30.0
SEVERITY_EMOJI = {"low": ":information_source:", "medium": ":warning:", "high": ":rotating_light:"}


# --------------------------------------------------------------------------------- secrets


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/XYZ`` → ``https://hooks.slack.com/***``: the scheme
    and host (and port) stay, user info, path and query (where tokens live) do not."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    return f"{parts.scheme}://{host}{port}/***"


def _secrets(target: NotificationTarget) -> list[str]:
    """The strings of a target that must not appear anywhere: its URLs, their paths and queries,
    and its header values."""
    out = []
    for key in ("url", "webhook"):
        url = target.params.get(key)
        if url:
            out.append(str(url))
            try:
                parts = urlsplit(str(url))
            except ValueError:
                continue
            out += [p for p in (parts.path, parts.query, parts.netloc) if p and len(p) > 1 and p != "/"]
    for value in (target.params.get("headers") or {}).values():
        if value and len(str(value)) > 3:
            out.append(str(value))
    return sorted(set(out), key=len, reverse=True)


def scrub(text: str, target: NotificationTarget) -> str:
    """``text`` with every secret of ``target`` replaced by ``***``."""
    for secret in _secrets(target):
        text = text.replace(secret, "***")
    return text


def describe_target(target: NotificationTarget, project: str | None = None) -> str:
    """What a target is, safe to show: ``webhook https://host/***``, ``slack https://hooks.slack.com/***``,
    ``kafka <topic>``, ``console``."""
    if target.kind == "webhook":
        return f"webhook {mask_url(target.params.get('url', ''))}"
    if target.kind == "slack":
        return f"slack {mask_url(target.params.get('webhook', ''))}"
    if target.kind == "kafka":
        topic = target.params.get("topic") or (f"{project}.alerts" if project else "<project>.alerts")
        return f"kafka {topic}"
    return target.kind


def masked_config(target: NotificationTarget) -> dict[str, Any]:
    """A target's configuration for display: URLs masked, header values hidden."""
    out = target.to_config()
    for key in ("url", "webhook"):
        if key in out:
            out[key] = mask_url(out[key])
    if "headers" in out:
        out["headers"] = {k: "***" for k in out["headers"]}
    return out


# --------------------------------------------------------------------------------- messages


def slack_payload(activation: Activation) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the fallback and the notification line) and
    ``blocks`` (the summary and the facts)."""
    a = activation
    emoji = SEVERITY_EMOJI.get(a.severity, ":warning:")
    text = f"{emoji} [{a.severity}] {a.alert_name}: {a.summary}"
    value = "-" if a.value is None else f"{a.value:.4g}"
    fields = [("Project", a.project), ("Event", a.event_kind), ("Entity", a.entity), ("Value", value),
              ("Window", f"{iso_ms(a.window_start_ms)} – {iso_ms(a.window_end_ms)}"),
              ("Events counted", str(a.count))]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{a.alert_name} ({a.severity})"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": a.summary[:3000]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:2000]} for k, v in fields]},
    ]
    return {"text": text, "blocks": blocks}


def console_line(activation: Activation) -> str:
    a = activation
    value = "-" if a.value is None else f"{a.value:.4g}"
    return (f"ALERT [{a.severity}] {a.project}/{a.alert_name}: {a.summary} "
            f"(entity {a.entity}, {a.event_kind}, value {value}, window {iso_ms(a.window_start_ms)}"
            f"..{iso_ms(a.window_end_ms)})")


# --------------------------------------------------------------------------------- sending


@dataclasses.dataclass(frozen=True)
class SendResult:
    status: str  # "sent" or "failed"
    attempts: int
    error: str | None = None
    at: str = ""

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "attempts": self.attempts, "at": self.at}
        if self.error:
            out["error"] = self.error
        return out


class _Permanent(Exception):
    """A failure no retry can fix (HTTP 4xx other than 408/429, a bad target)."""


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _retrying(attempt: Callable[[], None], target: NotificationTarget,
              sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Call ``attempt()`` until it returns, at most ``1 + retries`` times, waiting ``backoff * 2**i``."""
    retries = int(target.params.get("retries", DEFAULT_RETRIES))
    backoff = float(target.params.get("backoff", DEFAULT_BACKOFF))
    error = None
    delays = backoff_delays(backoff, MAX_BACKOFF)
    for i in range(retries + 1):
        try:
            attempt()
            return SendResult("sent", i + 1, at=_now_iso())
        except _Permanent as exc:
            return SendResult("failed", i + 1, scrub(str(exc), target)[:500], _now_iso())
        except Exception as exc:  # noqa: BLE001 - every transport error is worth a retry
            error = scrub(_describe(exc), target)[:500]
            if i < retries:
                sleep(next(delays))
    return SendResult("failed", retries + 1, error, _now_iso())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    if isinstance(exc, TimeoutError) or type(exc).__name__ in ("timeout", "KafkaTimeoutError"):
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def post_json(url: str, body: Any, *, headers: dict[str, str] | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> int:
    """POST ``body`` as JSON; return the HTTP status. Raises urllib errors; a 4xx other than 408
    and 429 as :class:`_Permanent`."""
    data = json.dumps(body, ensure_ascii=False, default=str).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": "streamdrift-alerts",
        **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
            return response.status
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise _Permanent(f"HTTP {exc.code} {exc.reason} (not retried: the receiver refused the request)") from None
        raise


class NotificationSender:
    """Sends notifications on a bounded background thread pool.

    :param workers:         threads sending at the same time.
    :param max_pending:     sends queued or running at most; beyond, a send fails at once as dropped.
    :param kafka_bootstrap: default Kafka for ``kafka`` notifications (``host:port[,host:port]``).
    :param console:         where ``console`` notifications are written (standard output).
    """

    def __init__(self, workers: int = 4, max_pending: int = 256, kafka_bootstrap: str | None = None,
                 console: TextIO | None = None, sleep: Callable[[float], None] = time.sleep):
        self.workers = workers
        self.max_pending = max_pending
        self.kafka_bootstrap = kafka_bootstrap
        self.console = console
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="streamdrift-notify")
        self._pending = 0
        self._cond = threading.Condition()
        self._producers: dict[str, Any] = {}
        self._producer_lock = threading.Lock()
        self.closed = False

    # -- one send, in the calling thread

    def send(self, target: NotificationTarget, activation: Activation) -> SendResult:
        """Send one notification now (with its retries); never raises."""
        timeout = float(target.params.get("timeout", DEFAULT_TIMEOUT))
        try:
            if target.kind == "webhook":
                body = activation.payload()
                headers = dict(target.params.get("headers") or {})
                return _retrying(lambda: post_json(target.params["url"], body, headers=headers, timeout=timeout),
                                 target, self._sleep)
            if target.kind == "slack":
                body = slack_payload(activation)
                return _retrying(lambda: post_json(target.params["webhook"], body, timeout=timeout),
                                 target, self._sleep)
            if target.kind == "console":
                stream = self.console or sys.stdout
                print(console_line(activation), file=stream, flush=True)
                return SendResult("sent", 1, at=_now_iso())
            if target.kind == "kafka":
                return self._send_kafka(target, activation, timeout)
            return SendResult("failed", 0, f"unknown notification kind {target.kind!r}", _now_iso())
        except Exception as exc:  # noqa: BLE001 - a notification never fails the job
            return SendResult("failed", 1, scrub(_describe(exc), target)[:500], _now_iso())

    def _send_kafka(self, target: NotificationTarget, activation: Activation, timeout: float) -> SendResult:
        bootstrap = target.params.get("bootstrap") or self.kafka_bootstrap
        if not bootstrap:
            return SendResult("failed", 0, "no Kafka to send to: give 'bootstrap' or run the job on a "
                                           "kafka:// stream_path", _now_iso())
        topic = target.params.get("topic") or f"{activation.project}.alerts"
        body = json.dumps(activation.payload(), ensure_ascii=False, default=str).encode()
        key = f"{activation.alert_name}|{activation.entity}".encode()

        def attempt() -> None:
            self._producer(bootstrap, timeout).send(topic, body, key=key).get(timeout=timeout)

        return _retrying(attempt, target, self._sleep)

    def _producer(self, bootstrap: str, timeout: float):
        with self._producer_lock:
            producer = self._producers.get(bootstrap)
            if producer is None:
                from kafka import KafkaProducer

                ms = int(timeout * 1000)
                producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all",
                                         request_timeout_ms=max(ms, 1000), max_block_ms=max(ms, 1000),
                                         retries=0)
                self._producers[bootstrap] = producer
            return producer

    # -- in the background

    def submit(self, target: NotificationTarget, activation: Activation,
               on_done: Callable[[SendResult], None]) -> bool:
        """Send in the background and call ``on_done(result)`` from the sending thread; returns at
        once. False (and ``on_done`` called with a failure) when ``max_pending`` sends already wait."""
        with self._cond:
            full = self.closed or self._pending >= self.max_pending
            if not full:
                self._pending += 1
        if full:
            reason = "sender closed" if self.closed else f"dropped: {self.max_pending} notifications already pending"
            _call(on_done, SendResult("failed", 0, reason, _now_iso()))
            return False

        def run() -> None:
            try:
                result = self.send(target, activation)
                _call(on_done, result)
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

        self._pool.submit(run)
        return True

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every submitted send is done (True), or ``timeout`` seconds passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop taking sends, wait up to ``timeout`` s for those under way; True if all finished."""
        with self._cond:
            self.closed = True
        done = self.drain(timeout)
        self._pool.shutdown(wait=done, cancel_futures=True)
        with self._producer_lock:
            for producer in self._producers.values():
                try:
                    producer.close(timeout=1)
                except Exception:  # noqa: BLE001
                    pass
            self._producers.clear()
        return done


def _call(fn: Callable[[SendResult], None], result: SendResult) -> None:
    try:
        fn(result)
    except Exception as exc:  # noqa: BLE001 - a callback that fails is logged, nothing more
        log.warning("recording a notification result failed: %s", type(exc).__name__)


# --------------------------------------------------------------------------------- the dispatcher


def _transient(exc: BaseException) -> bool:
    from streamdrift.connectors.sql_store import StoreError, is_transient

    if isinstance(exc, StoreError):
        return exc.original is not None and is_transient(exc.original)
    return is_transient(exc)


class AlertDispatcher:
    """Records each activation in the SQL store (``alert_activations``) and sends its
    notifications in the background, updating the activation's ``notified`` JSON as they finish.

    Exactly one record per (alert, entity, window end): an activation already recorded is skipped
    (a replay), unless it is a resend of notifications the record shows as pending. A store that
    is down is waited for (0.5 s doubling up to ``max_backoff_s``), as the writer does: an
    activation is not dropped. Auto-reset activations are recorded reset at their activation time.
    """

    def __init__(self, store, sender: NotificationSender, max_backoff_s: float = 30.0):
        self.store = store
        self.sender = sender
        self.max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._entries: dict[int, list[dict[str, Any]]] = {}
        self.recorded = 0
        self.duplicates = 0
        self.failures = 0  # notifications that failed for good (after their retries), or were dropped

    @classmethod
    def open(cls, store_url: str, kafka_bootstrap: str | None = None, **sender_options) -> AlertDispatcher:
        from streamdrift.connectors.sql_store import SqlStore

        store = SqlStore(store_url)
        dispatcher = cls(store, NotificationSender(kafka_bootstrap=kafka_bootstrap, **sender_options))
        dispatcher._retry(store.create_schema)
        return dispatcher

    def _retry(self, fn, *args, **kwargs):
        def retried(exc: BaseException, delay: float) -> None:
            log.warning("alert store call failed (%s), retrying in %.1f s", type(exc).__name__, delay)

        return wait_out(lambda: fn(*args, **kwargs), _transient, max_backoff_s=self.max_backoff_s, on_retry=retried)

    def handle(self, activation: Activation) -> int | None:
        """Record and send; returns the activation id, or None for a duplicate (nothing done)."""
        a = activation
        window_end = utc_from_ms(a.window_end_ms)
        existing = self._retry(self.store.find_activation, a.project, a.alert_name, a.entity, window_end)
        if a.resend_id is None:
            if existing is not None:
                self.duplicates += 1
                return None
            entries = [{"id": t.id, "kind": t.kind, "target": describe_target(t, a.project), "status": "pending",
                        "attempts": 0} for t in a.send]
            entries += [{"id": t.id, "kind": t.kind, "target": describe_target(t, a.project), "status": "suppressed",
                         "until": iso_ms(until), "reason": "cooldown"} for t, until in a.suppressed]
            activated_at = utc_from_ms(a.activated_at_ms)
            activation_id = self._retry(
                self.store.add_activation, a.project, a.alert_name, activated_at=activated_at, entity=a.entity,
                event_kind=a.event_kind, severity=a.severity, summary=a.summary, value=a.value,
                window_end=window_end, notified=entries)
            if a.reset_policy == "auto":
                self._retry(self.store.reset_activation, activation_id, activated_at)
            self.recorded += 1
        else:
            if existing is None:
                return None
            activation_id = existing.id
            entries = [dict(e) for e in (existing.notified or []) if isinstance(e, dict)]
        with self._lock:
            self._entries[activation_id] = entries
        for target in a.send:
            self.sender.submit(target, a, lambda result, t=target: self._done(activation_id, t, result))
        if not a.send:
            with self._lock:
                self._entries.pop(activation_id, None)
        return activation_id

    def _done(self, activation_id: int, target: NotificationTarget, result: SendResult) -> None:
        with self._lock:  # one writer at a time: the store always gets the newest list
            entries = self._entries.get(activation_id)
            if entries is None:
                return
            for entry in entries:
                if entry.get("id") == target.id:
                    entry.update(result.entry())
            if result.status == "failed":
                self.failures += 1
                log.warning("notification %s of alert activation %d failed after %d attempt(s): %s",
                            describe_target(target), activation_id, result.attempts, result.error)
            snapshot = copy.deepcopy(entries)
            if all(e.get("status") != "pending" for e in entries):
                self._entries.pop(activation_id, None)
            try:  # the store retries transient errors itself; beyond that the entry stays "pending"
                self.store.set_activation_notified(activation_id, snapshot)
            except Exception as exc:  # noqa: BLE001 - the record stays "pending": resent on a replay
                log.warning("recording the notifications of activation %d failed: %s", activation_id,
                            type(exc).__name__)

    def close(self, timeout: float = 30.0) -> bool:
        """Wait up to ``timeout`` s for notifications under way (those that do not finish stay
        ``pending`` in the store and are sent again if the job replays their window)."""
        done = self.sender.close(timeout)
        try:
            self.store.close()
        except Exception:  # noqa: BLE001
            pass
        return done
