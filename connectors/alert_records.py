"""Alert configurations and activations as people see them: JSON-ready forms shared by
``streamdrift alerts ... --json`` and the dashboard's API, and the reset both offer.

Notification URLs are masked (:func:`streamdrift.connectors.notifications.mask_url`: only scheme and host stay)
and header values hidden, so no webhook token reaches a terminal, a page or an API answer.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the store (SQLAlchemy) is imported when used: `streamdrift --help` stays quick
    from streamdrift.connectors.sql_store import AlertActivation, AlertConfig, SqlStore

__all__ = ["iso_time", "alert_state", "masked_notifications", "config_dict", "activation_dict", "alerts_json",
           "alert_json", "reset_alert"]


def iso_time(value: dt.datetime | None) -> str:
    """``2026-11-26T12:00:00Z`` (seconds, UTC), ``-`` for None."""
    return "-" if value is None else value.isoformat(timespec="seconds").replace("+00:00", "Z")


def alert_state(config: AlertConfig, activations: list[AlertActivation]) -> str:
    """``active`` while a manual alert has an activation not reset yet; else ``inactive``."""
    if config.reset_policy == "manual" and any(a.reset_at is None for a in activations):
        return "active"
    return "inactive"


def masked_notifications(config: AlertConfig) -> list[Any]:
    """The notification targets of an alert with URLs masked and header values hidden."""
    from streamdrift.connectors.notifications import mask_url, masked_config
    from streamdrift.udfs.alert_config import NotificationTarget

    out = []
    for n in config.notifications or []:
        try:
            out.append(masked_config(NotificationTarget.from_config(n)))
        except ValueError:
            out.append({k: (mask_url(v) if isinstance(v, str) and "://" in v else v)
                        for k, v in (n.items() if isinstance(n, dict) else [])})
    return out


def config_dict(config: AlertConfig) -> dict[str, Any]:
    return {"project": config.project, "name": config.name, "summary": config.summary,
            "severity": config.severity, "entities": config.entities, "trigger_kinds": config.trigger_kinds,
            "criteria": config.criteria, "reset_policy": config.reset_policy,
            "notifications": masked_notifications(config), "created": iso_time(config.created),
            "updated": iso_time(config.updated)}


def activation_dict(a: AlertActivation) -> dict[str, Any]:
    return {"id": a.id, "activated_at": iso_time(a.activated_at), "entity": a.entity, "event_kind": a.event_kind,
            "severity": a.severity, "summary": a.summary, "value": a.value, "window_end": iso_time(a.window_end),
            "notified": a.notified, "reset_at": iso_time(a.reset_at) if a.reset_at else None}


def alerts_json(store: SqlStore, project: str) -> list[dict[str, Any]]:
    """``streamdrift alerts list --json``: every configuration with its state and activation count."""
    configs = store.list_alert_configs(project)
    by_alert: dict[str, list[AlertActivation]] = {}
    for a in store.list_activations(project):
        by_alert.setdefault(a.alert_name, []).append(a)
    return [{**config_dict(c), "state": alert_state(c, by_alert.get(c.name, [])),
             "activations": len(by_alert.get(c.name, []))} for c in configs]


def alert_json(store: SqlStore, project: str, name: str, limit: int | None = 50) -> dict[str, Any]:
    """``streamdrift alerts show NAME --json``: the configuration, its state and newest activations.
    NotFoundError when there is no such alert."""
    from streamdrift.connectors.sql_store import NotFoundError

    config = store.get_alert_config(project, name)
    if config is None:
        raise NotFoundError(f"no alert {name!r} in project {project!r}")
    activations = store.list_activations(project, name, limit=limit)
    return {**config_dict(config), "state": alert_state(config, activations),
            "activations": [activation_dict(a) for a in activations]}


def reset_alert(store: SqlStore, project: str, name: str) -> list[int]:
    """Reset an alert: a held (manual) alert counts and notifies again. Advances the configuration's
    ``updated`` time (a running job resets its state at the entity's next event) and closes the open
    activations; returns their ids. NotFoundError when there is no such alert."""
    from streamdrift.connectors.sql_store import NotFoundError

    if store.get_alert_config(project, name) is None:
        raise NotFoundError(f"no alert {name!r} in project {project!r}")
    store.set_alert_state(project, name, "inactive")
    open_ones = [a for a in store.list_activations(project, name) if a.reset_at is None]
    for a in open_ones:
        store.reset_activation(a.id)
    return [a.id for a in open_ones]
