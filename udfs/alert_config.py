"""Alert configurations (pure: no Flink, no I/O): what an alert watches, when it activates and
whom it tells, as MLRun's alert schemas name them (``mlrun.common.schemas.alert``), and the
events it matches.

* :class:`AlertSpec` — one alert configuration, validated (:meth:`AlertSpec.from_config`), with
  its :class:`NotificationTarget` s; :class:`AlertBook` keeps the specs of a project, reloaded from
  a ``load()`` callable.
* :class:`AlertEvent` — something a window raised for one entity, which specs match.

What the job does with them (counting, activation, cooldown) is :mod:`streamdrift.udfs.alerts`.
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


def parse_period(value: str | int | float | None, what: str = "period") -> int | None:
    """``"30m"`` → 1 800 000 ms. Units ``ms s m h d``, combinable (``"1h30m"``); a bare number is
    seconds; ``None`` or ``""`` is no period. Raises ValueError naming ``what`` otherwise.

    Examples
    --------
    >>> parse_period('30m'), parse_period('1h30m'), parse_period(90), parse_period('')
    (1800000, 5400000, 90000, None)
    >>> parse_period('soon', 'cooldown')
    Traceback (most recent call last):
    ...
    ValueError: cooldown 'soon' is not a period: use e.g. '15s', '30m', '3h', '1d' or '1h30m'
    """
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
    """A period in milliseconds as :func:`parse_period` reads it: each unit from days down to
    milliseconds that it holds, largest first (``5 400 000`` → ``"1h30m"``); None → ``"-"``.

    >>> format_period(1_800_000), format_period(5_400_000), format_period(86_400_000), format_period(1_500)
    ('30m', '1h30m', '1d', '1s500ms')
    >>> format_period(None), parse_period(format_period(93_784_005))
    ('-', 93784005)
    """
    if ms is None:
        return "-"
    if ms <= 0:
        return f"{ms}ms"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        count, ms = divmod(ms, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def result_fqn(endpoint_id: str, application: str, result_name: str) -> str:
    """MLRun's result entity id: ``<endpoint_id>.<app>.result.<result_name>``.

    >>> result_fqn('ep1', 'histogram-data-drift', 'general_drift')
    'ep1.histogram-data-drift.result.general_drift'
    """
    return f"{endpoint_id}.{application}.result.{result_name}"


def render_summary(template: str, values: Mapping[str, Any]) -> str:
    """Replace each ``{{name}}`` with ``values[name]``; a float value is shown with 4 significant
    digits, None as ``-``. Unknown names stay as written (:func:`check_template` refuses them).

    >>> render_summary('{{entity}} drifts: {{ value }} ({{count}} windows, {{message}}) {{other}}',
    ...                {'entity': 'ep1', 'value': 0.7251234, 'count': 3, 'message': None})
    'ep1 drifts: 0.7251 (3 windows, -) {{other}}'
    """

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
    """Return ``template`` if every ``{{name}}`` in it is one of :data:`PLACEHOLDERS`; else
    ValueError naming the unknown ones.

    >>> check_template('{{entity}} is drifting ({{value}})')
    '{{entity}} is drifting ({{value}})'
    >>> check_template('{{entity}} at {{when}}')
    Traceback (most recent call last):
    ...
    ValueError: summary uses unknown placeholder(s) {{when}}; known: ...
    """
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"summary uses unknown placeholder(s) {', '.join('{{' + u + '}}' for u in unknown)}; "
                         f"known: {', '.join('{{' + p + '}}' for p in PLACEHOLDERS)}")
    return template


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
        """The MLRun entity id of a result; ``<endpoint_id>.<app>`` for a failed application.

        >>> AlertEvent('p', 'ep1', 'my-app', 'accuracy', 'model-performance-detected', 0.6, 0, 60_000, 0).entity
        'ep1.my-app.result.accuracy'
        >>> AlertEvent('p', 'ep1', 'my-app', None, 'mm-app-failed', None, 0, 60_000, 0).entity
        'ep1.my-app'
        """
        if self.result_name is None:
            return f"{self.endpoint_id}.{self.application}"
        return result_fqn(self.endpoint_id, self.application, self.result_name)


@dataclasses.dataclass(frozen=True, repr=False)
class NotificationTarget:
    """Where an activation is sent. ``params`` may hold secrets (webhook URLs): never log them
    (the ``repr`` leaves them out, so an error message that shows a record does not leak them).

    Examples
    --------
    >>> target = NotificationTarget.from_config({'kind': 'webhook', 'url': 'https://hooks.example/T0k3n',
    ...                                          'cooldown': '1h', 'name': 'ops'})
    >>> target
    NotificationTarget(kind='webhook', id='ops', cooldown_ms=3600000)
    >>> target.to_config()
    {'kind': 'webhook', 'url': 'https://hooks.example/T0k3n', 'cooldown': '1h', 'name': 'ops'}
    """

    kind: str
    params: Mapping[str, Any]
    cooldown_ms: int | None = None
    name: str | None = None

    def __repr__(self) -> str:
        return f"NotificationTarget(kind={self.kind!r}, id={self.id!r}, cooldown_ms={self.cooldown_ms!r})"

    @property
    def id(self) -> str:
        """Stable identity (``name``, else kind + a hash of the params): the key of its cooldown.

        >>> import hashlib
        >>> target = NotificationTarget('console', {})
        >>> target.id == 'console-' + hashlib.sha1(b'{}').hexdigest()[:10]
        True
        """
        if self.name:
            return self.name
        digest = hashlib.sha1(json.dumps(dict(self.params), sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.kind}-{digest[:10]}"

    @classmethod
    def from_config(cls, value: Mapping[str, Any]) -> NotificationTarget:
        """``{"kind": "webhook", "url": ..., "cooldown": "1h", "name": ...}``; MLRun's
        ``{"notification": {"kind": ..., "params"/"secret_params": {...}}, "cooldown_period": ...}``
        is accepted too.

        >>> NotificationTarget.from_config({'notification': {'kind': 'slack', 'secret_params':
        ...                                 {'webhook': 'https://hooks.slack.com/services/X'}},
        ...                                 'cooldown_period': '10m'}).cooldown_ms
        600000
        >>> NotificationTarget.from_config({'kind': 'webhook'})
        Traceback (most recent call last):
        ...
        ValueError: a webhook notification needs a 'url'
        """
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
        """The configuration :meth:`from_config` reads back (the cooldown as a period).

        >>> NotificationTarget('console', {}, cooldown_ms=90_000).to_config()
        {'kind': 'console', 'cooldown': '1m30s'}
        """
        out: dict[str, Any] = {"kind": self.kind, **self.params}
        if self.cooldown_ms is not None:
            out["cooldown"] = format_period(self.cooldown_ms)
        if self.name:
            out["name"] = self.name
        return out


@dataclasses.dataclass(frozen=True)
class AlertSpec:
    """One alert configuration, validated.

    Examples
    --------
    >>> spec = AlertSpec.from_config({'project': 'p', 'name': 'drift', 'summary': '{{entity}} drifts',
    ...                               'entities': 'ep1', 'trigger_kinds': ['data-drift-detected'],
    ...                               'criteria': {'count': 3, 'period': '30m'}})
    >>> spec.count, spec.period_ms, spec.severity, spec.reset_policy
    (3, 1800000, 'medium', 'auto')
    """

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
        (or MLRun's ``{"events": [...]}``); ``criteria`` ``{"count": 3, "period": "30m"}``.

        >>> AlertSpec.from_config({'project': 'p', 'name': 'a', 'summary': 's', 'trigger_kinds': ['drift']})
        Traceback (most recent call last):
        ...
        ValueError: alert 'a': unknown event kind(s) 'drift'; known: data-drift-detected, ...
        >>> AlertSpec.from_config({'project': 'p', 'name': 'a', 'summary': 's', 'trigger': {'events': ['mm-app-failed']},
        ...                        'entities': {'kind': 'model-endpoint-result', 'ids': ['ep1.*']}}).entities
        ('ep1.*',)
        """
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
        """The keyword arguments of ``SqlStore.add_alert_config`` (besides project and name).

        >>> spec = AlertSpec('p', 'a', 's', 'high', ('*',), ('data-drift-detected',), 2, 3_600_000)
        >>> spec.to_config()['criteria']
        {'count': 2, 'period': '1h'}
        >>> AlertSpec.from_config({'project': 'p', 'name': 'a', **spec.to_config()}) == spec
        True
        """
        criteria: dict[str, Any] = {"count": self.count}
        if self.period_ms is not None:
            criteria["period"] = format_period(self.period_ms)
        return {"summary": self.summary, "severity": self.severity, "entities": list(self.entities),
                "trigger_kinds": list(self.trigger_kinds), "criteria": criteria,
                "reset_policy": self.reset_policy, "notifications": [n.to_config() for n in self.notifications]}

    def matches(self, event: AlertEvent) -> bool:
        """Does ``event`` trigger this alert (its project, one of its kinds, one of its entities)?

        An entity without a dot is an endpoint id and matches all its results; ``*`` wildcards:

        >>> event = AlertEvent('p', 'ep1', 'histogram-data-drift', 'general_drift', 'data-drift-detected',
        ...                    0.8, 0, 60_000, 0)
        >>> def spec(entities, kinds=('data-drift-detected',)):
        ...     return AlertSpec('p', 'a', 's', 'medium', entities, kinds)
        >>> spec(('ep1',)).matches(event), spec(('*.histogram-data-drift.result.*',)).matches(event)
        (True, True)
        >>> spec(('ep2',)).matches(event), spec(('*',), ('data-drift-suspected',)).matches(event)
        (False, False)
        """
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
    (the first load must succeed).

    Examples
    --------
    >>> configs = [{'project': 'p', 'name': 'drift', 'summary': 's', 'trigger_kinds': ['data-drift-detected']},
    ...            {'project': 'p', 'name': 'bad', 'summary': 's', 'trigger_kinds': []}]
    >>> import logging; logging.disable(logging.WARNING)
    >>> book = AlertBook(lambda: configs)
    >>> book.refresh()
    >>> logging.disable(logging.NOTSET)
    >>> sorted(book.specs), book.errors
    ([('p', 'drift')], {('p', 'bad'): "alert 'bad': give at least one trigger event kind: data-drift-detected, ..."})
    >>> event = AlertEvent('p', 'ep1', 'app', 'r', 'data-drift-detected', 0.9, 0, 60_000, 0)
    >>> [s.name for s in book.matching(event)], book.get('p', 'drift').name, book.get('p', 'bad')
    (['drift'], 'drift', None)
    """

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
