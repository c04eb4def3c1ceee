"""Alerts: from a monitoring result to an activation a person acts on (pure: no Flink, no I/O).

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
import datetime as dt
import fnmatch
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from streamdrift.udfs.histogram_drift import APP_NAME as HISTOGRAM_DATA_DRIFT
from streamdrift.udfs.records import ResultKindApp, ResultStatusApp, utc_from_ms
from streamdrift.udfs.reloading import Reloading

log = logging.getLogger("streamdrift.alerts")

#: MLRun's ``EventKind`` values that model monitoring raises.
EVENT_KINDS: tuple[str, ...] = (
    "data-drift-detected", "data-drift-suspected",
    "concept-drift-detected", "concept-drift-suspected",
    "model-performance-detected", "model-performance-suspected",
    "system-performance-detected", "system-performance-suspected",
    "mm-app-anomaly-detected", "mm-app-anomaly-suspected",
    "mm-app-failed",
)
APP_FAILED = "mm-app-failed"

#: result kind → the prefix of its event kinds
KIND_PREFIX: dict[int, str] = {
    ResultKindApp.data_drift: "data-drift",
    ResultKindApp.concept_drift: "concept-drift",
    ResultKindApp.model_performance: "model-performance",
    ResultKindApp.system_performance: "system-performance",
    ResultKindApp.mm_app_anomaly: "mm-app-anomaly",
}
SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
RESET_POLICIES: tuple[str, ...] = ("auto", "manual")
NOTIFICATION_KINDS: tuple[str, ...] = ("webhook", "slack", "console", "kafka")

#: what a summary template may use, as ``{{name}}``
PLACEHOLDERS: tuple[str, ...] = (
    "project", "name", "entity", "endpoint_id", "application", "result_name", "kind", "severity",
    "value", "window_start", "window_end", "count", "message",
)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_PERIOD_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


# --------------------------------------------------------------------------------- small helpers


def parse_period(value: str | int | float | None, what: str = "period") -> int | None:
    """``"30m"`` → 1 800 000 ms. Units ``ms s m h d``, combinable (``"1h30m"``); a bare number is
    seconds; ``None`` or ``""`` is no period. Raises ValueError naming ``what`` otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not a period: use e.g. '30m', '1h', '1d' or seconds")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{what} {value!r} must be a positive number of seconds")
        return int(round(value * 1000))
    text = str(value).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return parse_period(float(text), what)
    parts = _PERIOD_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{what} {value!r} is not a period: use e.g. '15s', '30m', '3h', '1d' or '1h30m'")
    total = int(round(sum(float(n) * _UNIT_MS[u] for n, u in parts)))
    if total <= 0:
        raise ValueError(f"{what} {value!r} must be longer than 0")
    return total


def format_period(ms: int | None) -> str:
    """1 800 000 → ``"30m"`` (the largest unit that divides it); None → ``"-"``."""
    if ms is None:
        return "-"
    for unit in ("d", "h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


def iso_ms(ms: int | None) -> str:
    """Epoch ms → ``2024-01-01T00:10:00Z`` (milliseconds shown only when there are some)."""
    if ms is None:
        return "-"
    when = utc_from_ms(ms)
    return when.isoformat(timespec="milliseconds" if ms % 1000 else "seconds").replace("+00:00", "Z")


def result_fqn(endpoint_id: str, application: str, result_name: str) -> str:
    """MLRun's result entity id: ``<endpoint_id>.<app>.result.<result_name>``."""
    return f"{endpoint_id}.{application}.result.{result_name}"


def event_kind(result_kind: int, status: int) -> str | None:
    """``(data_drift, 2)`` → ``"data-drift-detected"``, status 1 → ``-suspected``, else None."""
    prefix = KIND_PREFIX.get(int(result_kind))
    if prefix is None:
        return None
    if status == ResultStatusApp.detected:
        return f"{prefix}-detected"
    if status == ResultStatusApp.potential_detection:
        return f"{prefix}-suspected"
    return None


def render_summary(template: str, values: Mapping[str, Any]) -> str:
    """Replace each ``{{name}}`` with ``values[name]``; a float value is shown with 4 significant
    digits, None as ``-``. Unknown names stay as written (:func:`check_template` refuses them)."""

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    return _PLACEHOLDER.sub(one, template)


def check_template(template: str) -> str:
    """Return ``template`` if every ``{{name}}`` in it is one of :data:`PLACEHOLDERS`."""
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"summary uses unknown placeholder(s) {', '.join('{{' + u + '}}' for u in unknown)}; "
                         f"known: {', '.join('{{' + p + '}}' for p in PLACEHOLDERS)}")
    return template


# --------------------------------------------------------------------------------- events


@dataclasses.dataclass(frozen=True)
class AlertEvent:
    """Something a window raised for one entity (a result of one app, or a failed app)."""

    project: str
    endpoint_id: str
    application: str
    result_name: str | None  # None for mm-app-failed
    kind: str  # an EVENT_KINDS value
    value: float | None
    start_ms: int
    end_ms: int
    revision: int
    message: str = ""

    @property
    def entity(self) -> str:
        """The MLRun entity id of a result; ``<endpoint_id>.<app>`` for a failed application."""
        if self.result_name is None:
            return f"{self.endpoint_id}.{self.application}"
        return result_fqn(self.endpoint_id, self.application, self.result_name)


VERDICT_RESULTS = ("general_drift", "feature_drift")
"""The default application's two drift results: the project's ``drift_verdict`` names the one that
raises data-drift events (the other is stored, not alerted on)."""


def events_from_output(out, verdict: str | None = None) -> list[AlertEvent]:
    """The events of one :class:`streamdrift.udfs.monitor.WindowOutput` (late-only outputs raise none).
    ``verdict``: the default application's result that raises data-drift events (one of
    :data:`VERDICT_RESULTS`; None: both)."""
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


# --------------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True, repr=False)
class NotificationTarget:
    """Where an activation is sent. ``params`` may hold secrets (webhook URLs): never log them
    (the ``repr`` leaves them out, so an error message that shows a record does not leak them)."""

    kind: str
    params: Mapping[str, Any]
    cooldown_ms: int | None = None
    name: str | None = None

    def __repr__(self) -> str:
        return f"NotificationTarget(kind={self.kind!r}, id={self.id!r}, cooldown_ms={self.cooldown_ms!r})"

    @property
    def id(self) -> str:
        """Stable identity (``name``, else kind + a hash of the params): the key of its cooldown."""
        if self.name:
            return self.name
        digest = hashlib.sha1(json.dumps(dict(self.params), sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.kind}-{digest[:10]}"

    @classmethod
    def from_config(cls, value: Mapping[str, Any]) -> NotificationTarget:
        """``{"kind": "webhook", "url": ..., "cooldown": "1h", "name": ...}``; MLRun's
        ``{"notification": {"kind": ..., "params"/"secret_params": {...}}, "cooldown_period": ...}``
        is accepted too."""
        if not isinstance(value, Mapping):
            raise ValueError(f"a notification must be an object with a 'kind', got {value!r:.60}")
        value = dict(value)
        if isinstance(value.get("notification"), Mapping):  # MLRun's AlertNotification
            inner = dict(value["notification"])
            params = {**(inner.get("params") or {}), **(inner.get("secret_params") or {})}
            value = {"kind": inner.get("kind"), "name": inner.get("name"),
                     "cooldown": value.get("cooldown_period"), **params}
        kind = value.pop("kind", None)
        if kind not in NOTIFICATION_KINDS:
            raise ValueError(f"notification kind {kind!r} is not one of {', '.join(NOTIFICATION_KINDS)}")
        cooldown = parse_period(value.pop("cooldown", value.pop("cooldown_period", None)), "cooldown")
        name = value.pop("name", None)
        if kind == "slack" and "url" in value and "webhook" not in value:
            value["webhook"] = value.pop("url")
        if kind == "webhook" and not value.get("url"):
            raise ValueError("a webhook notification needs a 'url'")
        if kind == "slack" and not value.get("webhook"):
            raise ValueError("a slack notification needs a 'webhook' (the incoming-webhook URL)")
        for key in ("url", "webhook"):
            if key in value and not re.match(r"https?://[^/\s]+", str(value[key])):
                raise ValueError(f"notification {key} must be an http:// or https:// URL")
        for key in ("timeout", "backoff"):
            if key in value and not (isinstance(value[key], (int, float)) and value[key] > 0):
                raise ValueError(f"notification {key} must be a positive number of seconds")
        if "retries" in value and not (isinstance(value["retries"], int) and 0 <= value["retries"] <= 20):
            raise ValueError("notification retries must be an integer from 0 to 20")
        return cls(kind, value, cooldown, str(name) if name else None)

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, **self.params}
        if self.cooldown_ms is not None:
            out["cooldown"] = format_period(self.cooldown_ms)
        if self.name:
            out["name"] = self.name
        return out


@dataclasses.dataclass(frozen=True)
class AlertSpec:
    """One alert configuration, validated."""

    project: str
    name: str
    summary: str
    severity: str
    entities: tuple[str, ...]
    trigger_kinds: tuple[str, ...]
    count: int = 1
    period_ms: int | None = None
    reset_policy: str = "auto"
    notifications: tuple[NotificationTarget, ...] = ()
    version: int = 0  # the configuration's ``updated`` time (µs): a change resets the alert's state

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AlertSpec:
        """From an ``alert_configs`` row (or the same keys as a dict). Raises ValueError saying
        what is wrong. ``entities`` is ``"*"``, an endpoint id, a result entity
        ``<endpoint_id>.<app>.result.<name>`` (``*`` wildcards allowed), a list of these, or MLRun's
        ``{"kind": ..., "project": ..., "ids": [...]}``; ``trigger_kinds`` a list of event kinds
        (or MLRun's ``{"events": [...]}``); ``criteria`` ``{"count": 3, "period": "30m"}``."""
        c = dict(config)
        project, name = c.get("project"), c.get("name")
        if not isinstance(project, str) or not project:
            raise ValueError(f"alert {name!r}: project must be a non-empty string")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("alert name must be a non-empty string")
        summary = c.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise ValueError(f"alert {name!r}: summary must be a non-empty text, e.g. "
                             "'Model {{project}}/{{entity}} is drifting ({{value}})'")
        check_template(summary)
        severity = str(c.get("severity") or "medium").lower()
        if severity not in SEVERITIES:
            raise ValueError(f"alert {name!r}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        entities = _entities(c.get("entities", "*"), name)
        triggers = c.get("trigger_kinds", c.get("trigger"))
        if isinstance(triggers, Mapping):
            triggers = triggers.get("events")
        if isinstance(triggers, str):
            triggers = [t.strip() for t in triggers.split(",") if t.strip()]
        if not triggers:
            raise ValueError(f"alert {name!r}: give at least one trigger event kind: {', '.join(EVENT_KINDS)}")
        triggers = tuple(dict.fromkeys(str(t) for t in triggers))
        unknown = [t for t in triggers if t not in EVENT_KINDS]
        if unknown:
            raise ValueError(f"alert {name!r}: unknown event kind(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(EVENT_KINDS)}")
        criteria = c.get("criteria") or {}
        if not isinstance(criteria, Mapping):
            raise ValueError(f"alert {name!r}: criteria must be like {{'count': 3, 'period': '30m'}}")
        count = criteria.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
            raise ValueError(f"alert {name!r}: criteria count {count!r} must be an integer from 1 to 10000")
        period_ms = parse_period(criteria.get("period"), f"alert {name!r}: criteria period")
        reset_policy = str(c.get("reset_policy") or "auto").lower()
        if reset_policy not in RESET_POLICIES:
            raise ValueError(f"alert {name!r}: reset policy {reset_policy!r} is not one of {', '.join(RESET_POLICIES)}")
        raw = c.get("notifications") or []
        if isinstance(raw, Mapping):
            raw = [raw]
        try:
            targets = tuple(NotificationTarget.from_config(n) for n in raw)
        except ValueError as exc:
            raise ValueError(f"alert {name!r}: {exc}") from None
        ids = [t.id for t in targets]
        if len(set(ids)) != len(ids):
            raise ValueError(f"alert {name!r}: two notifications are the same; give them different 'name's")
        version = c.get("version")
        if version is None:
            updated = c.get("updated")
            version = 0 if updated is None else _datetime_us(updated)
        return cls(project, name, summary, severity, entities, triggers, count, period_ms, reset_policy,
                   targets, int(version))

    def to_config(self) -> dict[str, Any]:
        """The keyword arguments of ``SqlStore.add_alert_config`` (besides project and name)."""
        criteria: dict[str, Any] = {"count": self.count}
        if self.period_ms is not None:
            criteria["period"] = format_period(self.period_ms)
        return {"summary": self.summary, "severity": self.severity, "entities": list(self.entities),
                "trigger_kinds": list(self.trigger_kinds), "criteria": criteria,
                "reset_policy": self.reset_policy, "notifications": [n.to_config() for n in self.notifications]}

    def matches(self, event: AlertEvent) -> bool:
        """Does ``event`` trigger this alert (its project, one of its kinds, one of its entities)?"""
        if event.project != self.project or event.kind not in self.trigger_kinds:
            return False
        return any(_entity_matches(p, event) for p in self.entities)


def _datetime_us(value: Any) -> int:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(value)


def _entities(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, Mapping):  # MLRun's EventEntities
        value = value.get("ids") or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not value:
        raise ValueError(f"alert {name!r}: entities must be '*', an endpoint id or "
                         "'<endpoint_id>.<app>.result.<result_name>' (or a list of these)")
    out = []
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"alert {name!r}: entity {v!r} must be a non-empty string")
        out.append(v.strip())
    return tuple(dict.fromkeys(out))


def _entity_matches(pattern: str, event: AlertEvent) -> bool:
    """``*`` matches all; a pattern without a dot is an endpoint id (wildcards allowed) and matches
    every result and application of that endpoint; otherwise it is matched against the entity."""
    if pattern == "*":
        return True
    if "." not in pattern:
        return fnmatch.fnmatchcase(event.endpoint_id, pattern)
    return fnmatch.fnmatchcase(event.entity, pattern)


class AlertBook:
    """The alert specs a running job knows, reloaded from ``load()`` (mappings as
    :meth:`AlertSpec.from_config` takes) at most every ``refresh_seconds``. A configuration that
    is not valid is left out, with the reason in ``errors``; a failed reload keeps the known specs
    (the first load must succeed)."""

    def __init__(self, load: Callable[[], Iterable[Mapping[str, Any]]], refresh_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self._loading = Reloading(lambda: list(load()), refresh_seconds, "alert configurations", clock)
        self.specs: dict[tuple[str, str], AlertSpec] = {}
        self.errors: dict[tuple[str, str], str] = {}

    def refresh(self, force: bool = False) -> None:
        if not self._loading.refresh(force):
            return
        specs, errors = {}, {}
        for config in self._loading.value:
            key = (str(config.get("project")), str(config.get("name")))
            try:
                specs[key] = AlertSpec.from_config(config)
            except ValueError as exc:
                errors[key] = str(exc)
        for key, reason in errors.items():
            if self.errors.get(key) != reason:
                log.warning("alert %r of project %r is not used: %s", key[1], key[0], reason)
        self.specs, self.errors = specs, errors

    def matching(self, event: AlertEvent) -> list[AlertSpec]:
        self.refresh()
        return [s for s in self.specs.values() if s.matches(event)]

    def get(self, project: str, name: str) -> AlertSpec | None:
        self.refresh()
        return self.specs.get((project, name))


# --------------------------------------------------------------------------------- state and evaluation


@dataclasses.dataclass(frozen=True)
class AlertState:
    """What one (alert, entity) remembers between events; kept in Flink keyed state as bytes."""

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
        """The JSON body of webhook and Kafka messages (no secrets)."""
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
    state: AlertState
    activation: Activation | None
    reason: str  # what happened, for counters and tests


def summary_values(spec: AlertSpec, event: AlertEvent, count: int) -> dict[str, Any]:
    return {
        "project": event.project, "name": spec.name, "entity": event.entity, "endpoint_id": event.endpoint_id,
        "application": event.application, "result_name": event.result_name, "kind": event.kind,
        "severity": spec.severity, "value": event.value, "window_start": iso_ms(event.start_ms),
        "window_end": iso_ms(event.end_ms), "count": count, "message": event.message,
    }


def evaluate(spec: AlertSpec, state: AlertState, event: AlertEvent, now_ms: int) -> Step:
    """One event of an entity on the state of (``spec``, that entity). See the module docstring."""
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
    state follows the record: released if it was reset, cooldowns as it was sent."""
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
    """The key of an (alert, entity) state within the state of its endpoint."""
    return f"{alert_name}\x1f{entity}"
