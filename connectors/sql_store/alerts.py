"""Alerts in the SQL store: their configurations and their activations (what fired and when)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from streamdrift.connectors.sql_store.base import SqlStoreBase, check_id, finite, utc_now


@dataclasses.dataclass(frozen=True)
class AlertConfig:
    project: str
    name: str
    summary: str
    severity: str
    entities: Any
    trigger_kinds: list[str]
    criteria: dict[str, Any]
    reset_policy: str
    notifications: list[Any]
    state: str
    created: dt.datetime
    updated: dt.datetime


@dataclasses.dataclass(frozen=True)
class AlertActivation:
    id: int
    project: str
    alert_name: str
    activated_at: dt.datetime
    entity: str
    event_kind: str
    severity: str
    summary: str
    value: float | None
    window_end: dt.datetime | None
    notified: Any
    reset_at: dt.datetime | None


class AlertsMixin(SqlStoreBase):
    """Alert configurations and activations."""

    def add_alert_config(
        self,
        project: str,
        name: str,
        *,
        summary: str,
        severity: str,
        entities: Any,
        trigger_kinds: Sequence[str],
        criteria: dict[str, Any] | None = None,
        reset_policy: str = "auto",
        notifications: Sequence[Any] = (),
        state: str = "inactive",
    ) -> AlertConfig:
        """Create or replace an alert configuration (its ``created`` time is kept)."""
        row = {
            "project": check_id(project, "project"), "name": check_id(name, "alert name"),
            "summary": str(summary), "severity": str(severity), "entities": entities,
            "trigger_kinds": [str(k) for k in trigger_kinds], "criteria": dict(criteria or {}),
            "reset_policy": str(reset_policy), "notifications": list(notifications), "state": str(state),
        }
        now = utc_now()
        update = [c for c in row if c not in ("project", "name")] + ["updated"]

        def write(conn: sa.Connection) -> AlertConfig:
            self._upsert(conn, self._t["alert_configs"], [dict(row, created=now, updated=now)], update)
            return self._named(conn, "alert_configs", AlertConfig, project, name)

        return self._run(f"writing alert {name!r}", write)

    def get_alert_config(self, project: str, name: str) -> AlertConfig | None:
        return self._run(f"reading alert {name!r}",
                         lambda conn: self._named(conn, "alert_configs", AlertConfig, project, name))

    def list_alert_configs(self, project: str) -> list[AlertConfig]:
        t = self._t["alert_configs"]
        query = sa.select(t).where(t.c.project == project).order_by(t.c.name)
        return self._run("listing alerts", lambda conn: [AlertConfig(**r) for r in conn.execute(query).mappings()])

    def set_alert_state(self, project: str, name: str, state: str) -> None:
        self._update_named("alert_configs", project, name, {"state": str(state)},
                           f"setting the state of alert {name!r}", "alert")

    def delete_alert_config(self, project: str, name: str) -> bool:
        """Delete an alert configuration (its activations stay, as history)."""
        return self._delete_named("alert_configs", project, name, f"deleting alert {name!r}")

    def add_activation(
        self,
        project: str,
        alert_name: str,
        *,
        activated_at: dt.datetime,
        entity: str,
        event_kind: str,
        severity: str,
        summary: str,
        value: float | None = None,
        window_end: dt.datetime | None = None,
        notified: Any = None,
    ) -> int:
        """Record that an alert fired; returns the activation's id."""
        row = {
            "project": check_id(project, "project"), "alert_name": check_id(alert_name, "alert name"),
            "activated_at": activated_at, "entity": str(entity), "event_kind": str(event_kind),
            "severity": str(severity), "summary": str(summary), "value": finite(value),
            "window_end": window_end, "notified": notified if notified is not None else {},
        }
        t = self._t["alert_activations"]
        return self._run(f"recording an activation of alert {alert_name!r}", lambda conn: int(
            conn.execute(sa.insert(t).values(**row)).inserted_primary_key[0]))

    def reset_activation(self, activation_id: int, reset_at: dt.datetime | None = None) -> bool:
        t = self._t["alert_activations"]
        return self._run(f"resetting activation {activation_id}", lambda conn: conn.execute(
            sa.update(t).where(t.c.id == activation_id).values(reset_at=reset_at or utc_now())).rowcount > 0)

    def find_activation(self, project: str, alert_name: str, entity: str,
                        window_end: dt.datetime) -> AlertActivation | None:
        """The activation of an alert for one entity and window end, if recorded (the alert stage's
        dedupe: a replayed window does not notify twice). The oldest one if several."""
        t = self._t["alert_activations"]
        query = (sa.select(t).where(t.c.project == project, t.c.alert_name == alert_name, t.c.entity == str(entity),
                                    t.c.window_end == window_end).order_by(t.c.id).limit(1))

        def read(conn: sa.Connection) -> AlertActivation | None:
            row = conn.execute(query).mappings().first()
            return None if row is None else AlertActivation(**row)

        return self._run(f"finding an activation of alert {alert_name!r}", read)

    def set_activation_notified(self, activation_id: int, notified: Any) -> bool:
        """Replace the ``notified`` JSON of an activation (what was sent, failed, suppressed)."""
        t = self._t["alert_activations"]
        return self._run(f"updating activation {activation_id}", lambda conn: conn.execute(
            sa.update(t).where(t.c.id == activation_id).values(notified=notified)).rowcount > 0)

    def list_activations(self, project: str, alert_name: str | None = None, *,
                         since: dt.datetime | None = None, limit: int | None = None) -> list[AlertActivation]:
        """Activations of a project (or one alert), oldest first; ``limit`` keeps the newest ones."""
        t = self._t["alert_activations"]
        query = sa.select(t).where(t.c.project == project)
        if alert_name is not None:
            query = query.where(t.c.alert_name == alert_name)
        if since is not None:
            query = query.where(t.c.activated_at >= since)
        query = query.order_by(t.c.activated_at.desc(), t.c.id.desc())
        if limit is not None:
            query = query.limit(int(limit))

        def read(conn: sa.Connection) -> list[AlertActivation]:
            return [AlertActivation(**r) for r in conn.execute(query).mappings()][::-1]

        return self._run("listing alert activations", read)
