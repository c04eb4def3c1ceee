"""Alerts: from a monitoring result to an activation a person acts on (pure: no Flink, no I/O).
The configurations (:class:`~streamdrift.udfs.alert_config.AlertSpec`, its notifications, the
events it matches) are :mod:`streamdrift.udfs.alert_config`; this module is the state machine.

The names follow MLRun's alert schemas (``mlrun.common.schemas.alert``): event kinds, severities,
reset policies, criteria (``count`` events within ``period``), notifications with a
``cooldown_period``, and the result entity ``<endpoint_id>.<app>.result.<result_name>``.

The pieces, in the order the job uses them:

* :func:`events_from_output` — a window's output → :class:`AlertEvent` s: a result of status 2
  raises ``<kind>-detected``, status 1 ``<kind>-suspected``, a failed application
  ``mm-app-failed``. Late-only outputs (revision -1) raise nothing.
* :class:`AlertSpec` — one alert configuration, validated (:meth:`AlertSpec.from_config`).
  :class:`AlertBook` keeps the specs of a project, reloaded from a ``load()`` callable.
* :func:`evaluate` — one event on the state of one (alert, entity) → the new state and perhaps an
  :class:`Activation`. :class:`AlertState` is the state kept in Flink (``to_bytes``/``from_bytes``).
* :func:`settle` — when the activation turns out to be recorded already (a replay), the state
  follows the record and nothing is sent twice.

Semantics (all times are event time: window ends, in epoch ms, so a replay decides the same):

* **Count within period.** An (alert, entity) counts the windows whose result raised one of the
  alert's trigger kinds. It activates when ``count`` windows ending less than ``period`` apart
  have been counted (no period: ``count`` windows since the last activation). A window counts
  once: a replay of the same window, or a correction (a later revision of the same window end),
  is not counted again.
* **Settled windows.** After an activation, windows ending at or before the newest counted one
  are settled and count no more; the count starts again from zero.
* **Reset policy.** ``auto``: the alert is ready again right after it activated. ``manual``: it
  holds (no counting, no activation, no notification) until it is reset. A reset is a change of
  the configuration's version (its ``updated`` time in the SQL store, which ``streamdrift alerts
  reset`` and re-adding the alert both advance); the held state is released at the entity's next
  event, which then counts.
* **Cooldown.** Each notification has an optional cooldown: after it was sent for an activation
  at window end ``t``, activations before ``t + cooldown`` are recorded but not sent to it
  (``suppressed``). Cooldown survives resets (it is about not repeating a message).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from streamdrift.udfs.alert_config import APP_FAILED, AlertEvent, AlertSpec, NotificationTarget, render_summary
from streamdrift.udfs.histogram_drift import APP_NAME as HISTOGRAM_DATA_DRIFT
from streamdrift.udfs.records import ResultKindApp, ResultStatusApp, utc_from_ms

log = logging.getLogger("streamdrift.alerts")


#: result kind → the prefix of its event kinds
KIND_PREFIX: dict[int, str] = {
    ResultKindApp.data_drift: "data-drift",
    ResultKindApp.concept_drift: "concept-drift",
    ResultKindApp.model_performance: "model-performance",
    ResultKindApp.system_performance: "system-performance",
    ResultKindApp.mm_app_anomaly: "mm-app-anomaly",
}


# --------------------------------------------------------------------------------- small helpers


def iso_ms(ms: int | None) -> str:
    """Epoch ms → ``2024-01-01T00:10:00Z`` (milliseconds shown only when there are some).

    >>> iso_ms(1_764_158_400_000), iso_ms(1_764_158_400_250), iso_ms(None)
    ('2025-11-26T12:00:00Z', '2025-11-26T12:00:00.250Z', '-')
    """
    if ms is None:
        return "-"
    when = utc_from_ms(ms)
    return when.isoformat(timespec="milliseconds" if ms % 1000 else "seconds").replace("+00:00", "Z")


def event_kind(result_kind: int, status: int) -> str | None:
    """``(data_drift, 2)`` → ``"data-drift-detected"``, status 1 → ``-suspected``, else None.

    >>> event_kind(ResultKindApp.data_drift, 2), event_kind(ResultKindApp.model_performance, 1)
    ('data-drift-detected', 'model-performance-suspected')
    >>> event_kind(ResultKindApp.data_drift, 0) is None
    True
    """
    prefix = KIND_PREFIX.get(int(result_kind))
    if prefix is None:
        return None
    if status == ResultStatusApp.detected:
        return f"{prefix}-detected"
    if status == ResultStatusApp.potential_detection:
        return f"{prefix}-suspected"
    return None


# --------------------------------------------------------------------------------- events


VERDICT_RESULTS = ("general_drift", "feature_drift")
"""The default application's two drift results: the project's ``drift_verdict`` names the one that
raises data-drift events (the other is stored, not alerted on)."""


def events_from_output(out, verdict: str | None = None) -> list[AlertEvent]:
    """The events of one :class:`streamdrift.udfs.monitor.WindowOutput` (late-only outputs raise none).
    ``verdict``: the default application's result that raises data-drift events (one of
    :data:`VERDICT_RESULTS`; None: both).

    Examples
    --------
    >>> import datetime as dt
    >>> from streamdrift.udfs.monitor import WindowOutput
    >>> from streamdrift.udfs.records import ResultRecord
    >>> t0, t1 = utc_from_ms(1_764_158_400_000), utc_from_ms(1_764_158_460_000)
    >>> results = (ResultRecord('p', 'ep1', HISTOGRAM_DATA_DRIFT, 'general_drift', 0, 2, 0.8, t0, t1),
    ...            ResultRecord('p', 'ep1', HISTOGRAM_DATA_DRIFT, 'feature_drift', 0, 1, 0.5, t0, t1),
    ...            ResultRecord('p', 'ep1', 'latency-app', 'p99', 3, 0, 120.0, t0, t1))
    >>> out = WindowOutput('p', 'ep1', 1_764_158_400_000, 1_764_158_460_000, 0, 0, None, results)
    >>> [(e.result_name, e.kind) for e in events_from_output(out)]  # status 0 raises nothing
    [('general_drift', 'data-drift-detected'), ('feature_drift', 'data-drift-suspected')]
    >>> [(e.result_name, e.kind) for e in events_from_output(out, verdict='feature_drift')]
    [('feature_drift', 'data-drift-suspected')]
    """
    if out.revision < 0:
        return []
    events = []
    for r in out.results:
        if (verdict is not None and r.application_name == HISTOGRAM_DATA_DRIFT and r.result_name in VERDICT_RESULTS
                and r.result_name != verdict):
            continue
        kind = event_kind(r.kind, r.status)
        if kind is not None:
            value = None if r.value is None or not math.isfinite(float(r.value)) else float(r.value)
            events.append(AlertEvent(r.project or out.project, out.endpoint_id, r.application_name, r.result_name,
                                     kind, value, out.start_ms, out.end_ms, out.revision))
    for e in out.errors:
        if e.error_type == APP_FAILED:
            events.append(AlertEvent(e.project or out.project, out.endpoint_id, e.application_name, None,
                                     APP_FAILED, None, out.start_ms, out.end_ms, out.revision, e.message))
    return events


# --------------------------------------------------------------------------------- state and evaluation


@dataclasses.dataclass(frozen=True)
class AlertState:
    """What one (alert, entity) remembers between events; kept in Flink keyed state as bytes.

    Examples
    --------
    >>> state = AlertState(version=7, counted=(60_000, 120_000), last_sent=(('ops', 60_000),))
    >>> state.to_bytes()
    b'{"v":7,"c":[60000,120000],"s":null,"h":false,"hw":null,"ls":[["ops",60000]],"n":0}'
    >>> AlertState.from_bytes(state.to_bytes()) == state, AlertState.from_bytes(None) == AlertState()
    (True, True)
    """

    version: int | None = None  # the spec version this state belongs to
    counted: tuple[int, ...] = ()  # window ends counted towards the criteria, ascending
    settled_ms: int | None = None  # windows ending at or before this are accounted for
    held: bool = False  # manual reset policy: activated, waiting for a reset
    held_window_end: int | None = None
    last_sent: tuple[tuple[str, int], ...] = ()  # notification id → window end of its last send
    activations: int = 0

    def to_bytes(self) -> bytes:
        return json.dumps({"v": self.version, "c": list(self.counted), "s": self.settled_ms, "h": self.held,
                           "hw": self.held_window_end, "ls": [list(p) for p in self.last_sent],
                           "n": self.activations}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | None) -> AlertState:
        if not data:
            return cls()
        d = json.loads(bytes(data))
        return cls(d.get("v"), tuple(d.get("c") or ()), d.get("s"), bool(d.get("h")), d.get("hw"),
                   tuple((str(k), int(v)) for k, v in d.get("ls") or ()), int(d.get("n") or 0))


@dataclasses.dataclass(frozen=True)
class Activation:
    """An alert fired for one entity at one window: what to record and whom to tell."""

    project: str
    alert_name: str
    entity: str
    endpoint_id: str
    application: str
    result_name: str | None
    event_kind: str
    severity: str
    summary: str
    value: float | None
    window_start_ms: int
    window_end_ms: int
    count: int  # events counted towards the criteria
    activated_at_ms: int  # processing time
    reset_policy: str
    send: tuple[NotificationTarget, ...] = ()
    suppressed: tuple[tuple[NotificationTarget, int], ...] = ()  # held back by cooldown, until (window end ms)
    resend_id: int | None = None  # a recorded activation whose pending notifications are sent again

    def payload(self) -> dict[str, Any]:
        """The JSON body of webhook and Kafka messages (no secrets).

        >>> spec = AlertSpec('p', 'drift', '{{entity}}: {{value}}', 'high', ('*',), ('data-drift-detected',))
        >>> event = AlertEvent('p', 'ep1', 'app', 'r', 'data-drift-detected', 0.8, 0, 60_000, 0)
        >>> body = evaluate(spec, AlertState(), event, now_ms=61_000).activation.payload()
        >>> body['summary'], body['window_end'], body['activated_at'], body['count']
        ('ep1.app.result.r: 0.8', '1970-01-01T00:01:00Z', '1970-01-01T00:01:01Z', 1)
        """
        return {
            "project": self.project, "alert": self.alert_name, "severity": self.severity,
            "summary": self.summary, "event_kind": self.event_kind, "entity": self.entity,
            "endpoint_id": self.endpoint_id, "application": self.application, "result_name": self.result_name,
            "value": self.value, "window_start": iso_ms(self.window_start_ms), "window_end": iso_ms(self.window_end_ms),
            "count": self.count, "activated_at": iso_ms(self.activated_at_ms), "reset_policy": self.reset_policy,
        }


@dataclasses.dataclass(frozen=True)
class Recorded:
    """An activation already in the SQL store for the same (alert, entity, window end)."""

    id: int
    reset: bool  # its reset time is set
    notified: Any  # its ``notified`` JSON: a list of {"id", "status", ...}


@dataclasses.dataclass(frozen=True)
class Step:
    """What :func:`evaluate` or :func:`settle` decided: the new state, the activation if any, and why."""

    state: AlertState
    activation: Activation | None
    reason: str  # what happened, for counters and tests


def summary_values(spec: AlertSpec, event: AlertEvent, count: int) -> dict[str, Any]:
    """The values of the summary's placeholders (:data:`~streamdrift.udfs.alert_config.PLACEHOLDERS`)
    for an activation of ``spec`` by ``event`` after ``count`` counted windows.

    >>> spec = AlertSpec('p', 'drift', 's', 'high', ('*',), ('data-drift-detected',))
    >>> event = AlertEvent('p', 'ep1', 'app', 'r', 'data-drift-detected', 0.8, 0, 60_000, 0)
    >>> values = summary_values(spec, event, 3)
    >>> values['entity'], values['severity'], values['window_start'], values['count']
    ('ep1.app.result.r', 'high', '1970-01-01T00:00:00Z', 3)
    """
    return {
        "project": event.project, "name": spec.name, "entity": event.entity, "endpoint_id": event.endpoint_id,
        "application": event.application, "result_name": event.result_name, "kind": event.kind,
        "severity": spec.severity, "value": event.value, "window_start": iso_ms(event.start_ms),
        "window_end": iso_ms(event.end_ms), "count": count, "message": event.message,
    }


def evaluate(spec: AlertSpec, state: AlertState, event: AlertEvent, now_ms: int) -> Step:
    """One event of an entity on the state of (``spec``, that entity). See the module docstring.

    Examples
    --------
    Two windows within 30 minutes activate; the next window starts counting again:

    >>> spec = AlertSpec('p', 'drift', '{{entity}} drifts', 'high', ('ep1',), ('data-drift-detected',),
    ...                  count=2, period_ms=1_800_000)
    >>> def event(end_ms):
    ...     return AlertEvent('p', 'ep1', 'app', 'r', 'data-drift-detected', 0.8, end_ms - 60_000, end_ms, 0)
    >>> state, reasons = AlertState(), []
    >>> for end in (60_000, 60_000, 120_000, 180_000):
    ...     step = evaluate(spec, state, event(end), now_ms=end)
    ...     state = step.state
    ...     reasons.append(step.reason)
    >>> reasons
    ['counted', 'already counted', 'activated', 'counted']
    >>> state.counted, state.settled_ms, state.activations
    ((180000,), 120000, 1)

    Windows farther apart than the period do not add up:

    >>> step = evaluate(spec, AlertState(counted=(60_000,), version=0), event(60_000 + 1_800_000), now_ms=0)
    >>> step.reason, step.state.counted
    ('counted', (1860000,))
    """
    if state.version != spec.version:  # new, reset or reconfigured: start over, keep what was settled/sent
        state = AlertState(spec.version, settled_ms=state.settled_ms, last_sent=state.last_sent,
                           activations=state.activations)
    if not spec.matches(event):
        return Step(state, None, "no match")
    end = event.end_ms
    if state.held:
        return Step(state, None, "held")
    if state.settled_ms is not None and end <= state.settled_ms:
        return Step(state, None, "settled")
    if end in state.counted:
        return Step(state, None, "already counted")
    counted = sorted({*state.counted, end})
    if spec.period_ms is not None:
        newest = counted[-1]
        counted = [e for e in counted if newest - e < spec.period_ms]
        if end not in counted:
            return Step(dataclasses.replace(state, counted=tuple(counted)), None, "outside the period")
    if len(counted) < spec.count:
        return Step(dataclasses.replace(state, counted=tuple(counted)), None, "counted")

    last = dict(state.last_sent)
    send, suppressed = [], []
    for target in spec.notifications:
        before = last.get(target.id)
        if target.cooldown_ms is not None and before is not None and end - before < target.cooldown_ms:
            suppressed.append((target, before + target.cooldown_ms))
        else:
            send.append(target)
            last[target.id] = end
    settled = max(counted[-1], state.settled_ms if state.settled_ms is not None else counted[-1])
    manual = spec.reset_policy == "manual"
    new_state = AlertState(spec.version, (), settled, manual, end if manual else None,
                           tuple(sorted(last.items())), state.activations + 1)
    activation = Activation(
        event.project, spec.name, event.entity, event.endpoint_id, event.application, event.result_name,
        event.kind, spec.severity, render_summary(spec.summary, summary_values(spec, event, len(counted))),
        event.value, event.start_ms, end, len(counted), int(now_ms), spec.reset_policy, tuple(send),
        tuple(suppressed))
    return Step(new_state, activation, "activated")


def settle(spec: AlertSpec, before: AlertState, step: Step, recorded: Recorded) -> Step:
    """``step`` activated, but the store already has that activation (a replay with fresh state, or
    a restart from a checkpoint older than the record). Nothing is recorded or sent again, except
    notifications the record still shows as pending (the job stopped while sending them); the
    state follows the record: released if it was reset, cooldowns as it was sent.

    Examples
    --------
    The record shows the webhook as sent and the console notification as pending: only the
    console one is sent again.

    >>> console = NotificationTarget('console', {})
    >>> webhook = NotificationTarget('webhook', {'url': 'https://hooks.example/x'}, name='ops')
    >>> spec = AlertSpec('p', 'drift', 's', 'high', ('*',), ('data-drift-detected',), notifications=(console, webhook))
    >>> event = AlertEvent('p', 'ep1', 'app', 'r', 'data-drift-detected', 0.8, 0, 60_000, 0)
    >>> step = evaluate(spec, AlertState(), event, now_ms=61_000)
    >>> recorded = Recorded(17, reset=False, notified=[{'id': 'ops', 'status': 'sent'},
    ...                                                 {'id': console.id, 'status': 'pending'}])
    >>> again = settle(spec, AlertState(), step, recorded)
    >>> again.reason, again.activation.send == (console,), again.activation.resend_id
    ('resend', True, 17)
    >>> settle(spec, AlertState(), step, Recorded(17, False, [{'id': 'ops', 'status': 'sent'},
    ...                                                       {'id': console.id, 'status': 'sent'}])).reason
    'already recorded'
    """
    act = step.activation
    if act is None:
        return step
    statuses = {e.get("id"): e.get("status") for e in (recorded.notified or []) if isinstance(e, Mapping)}
    last = dict(before.last_sent)
    for target in spec.notifications:
        status = statuses.get(target.id)
        if status in ("sent", "failed", "pending") or (status is None and target in act.send):
            last[target.id] = act.window_end_ms
    state = dataclasses.replace(step.state, last_sent=tuple(sorted(last.items())))
    if recorded.reset:
        state = dataclasses.replace(state, held=False, held_window_end=None)
    pending = tuple(t for t in spec.notifications if statuses.get(t.id) == "pending")
    if pending:
        return Step(state, dataclasses.replace(act, send=pending, suppressed=(), resend_id=recorded.id), "resend")
    return Step(state, None, "already recorded")


def state_key(alert_name: str, entity: str) -> str:
    """The key of an (alert, entity) state within the state of its endpoint.

    >>> state_key('drift', 'ep1.app.result.r')
    'drift\\x1fep1.app.result.r'
    """
    return f"{alert_name}\x1f{entity}"
