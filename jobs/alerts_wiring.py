"""Wiring of the alert stage after the applications stage (called by ``streamdrift.jobs.monitoring_job``).

    alert events (the window stage's side output: endpoint id, AlertEvent) → keyed by endpoint (JVM)
      → EvaluateAlerts (keyed state) → NotifyActivations (SQL store + webhook / Slack / console / Kafka
        in the background)

The configurations come from the SQL store (``alert_configs`` of the job's project), reloaded every
``refresh_seconds``; activations go to ``alert_activations``. ``streamdrift alerts reset`` advances
a configuration's ``updated`` time, which the job reads at its next reload (see ``streamdrift.udfs.alerts``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from streamdrift.connectors.settings import Settings, kafka_bootstrap
from streamdrift.udfs.alerts import Recorded
from streamdrift.udfs.records import utc_from_ms

_STORES: dict[str, Any] = {}  # one store per URL and worker process


def _store(url: str):
    store = _STORES.get(url)
    if store is None:
        from streamdrift.connectors.sql_store import SqlStore

        store = SqlStore(url)
        store.create_schema()
        _STORES[url] = store
    return store


def load_alerts(store_url: str, project: str) -> list[dict[str, Any]]:
    """The alert configurations of ``project`` as dicts (``AlertSpec.from_config`` takes them)."""
    return [dataclasses.asdict(c) for c in _store(store_url).list_alert_configs(project)]


def lookup_activation(store_url: str, project: str, alert_name: str, entity: str, window_end_ms: int) -> Recorded | None:
    """The recorded activation of (alert, entity, window end), if any."""
    found = _store(store_url).find_activation(project, alert_name, entity, utc_from_ms(window_end_ms))
    if found is None:
        return None
    return Recorded(found.id, found.reset_at is not None, found.notified)


def open_dispatcher(store_url: str, bootstrap: str | None, sender_options: dict[str, Any] | None = None):
    from streamdrift.connectors.notifications import AlertDispatcher

    return AlertDispatcher.open(store_url, bootstrap, **(sender_options or {}))


def attach_alerts(events, settings: Settings, refresh_seconds: float = 30.0,
                  sender_options: dict[str, Any] | None = None):
    """Add the alert stage to ``events`` (a DataStream of rows: endpoint id, pickled
    ``AlertEvent``: :data:`streamdrift.operators.monitor.ALERT_EVENTS`); returns the DataStream of
    one JSON line per activation handled."""
    from pyflink.common import Types

    from streamdrift.jobs.pyflink_internals import keyed_by_first_field
    from streamdrift.operators.alerts import EvaluateAlerts, NotifyActivations

    url = settings.endpoint_store_connection
    bootstrap = kafka_bootstrap(settings.stream_path) if settings.stream_path.startswith("kafka://") else None
    activations = (keyed_by_first_field(events, Types.PICKLED_BYTE_ARRAY(), declare=False)
                   .process(EvaluateAlerts(functools.partial(load_alerts, url, settings.project),
                                           functools.partial(lookup_activation, url), refresh_seconds),
                            output_type=Types.PICKLED_BYTE_ARRAY()).name("alerts").uid("alerts"))
    return (activations.map(NotifyActivations(functools.partial(open_dispatcher, url, bootstrap, sender_options)),
                            output_type=Types.STRING()).name("notifications").uid("notifications"))
