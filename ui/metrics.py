"""``/metrics`` of the dashboard: the monitoring results for Prometheus, read from the stores at each scrape.

* ``streamdrift_general_drift`` and ``streamdrift_feature_drift`` (gauges): the newest value of
  each result of the default application, per endpoint; ``streamdrift_drift_status`` (gauge): that
  result's status (-1 irrelevant, 0 no drift, 1 potential, 2 detected); labels ``project``,
  ``endpoint_id``, ``model`` and (status only) ``result``; ``streamdrift_result_window_end_seconds``:
  the end of the window the value is from (Unix time), so a stale endpoint can be told from a calm one;
* ``streamdrift_alert_activations_total`` (counter): activations recorded per alert, labels
  ``project``, ``alert``, ``severity`` (activations are kept when an alert is deleted: it only grows).

The job's own counters (records, dead letters, windows, ...) come from Flink's Prometheus reporter
(``--metrics-port`` of a local run, ``flink-conf/config.yaml`` on a cluster), not from here.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

DEFAULT_APP = "histogram-data-drift"
DRIFT_RESULTS = ("general_drift", "feature_drift")


class ResultsCollector(Collector):
    """A Prometheus collector over the dashboard's stores (``streamdrift.ui.data.Dashboard``)."""

    def __init__(self, dashboard):
        self.dashboard = dashboard

    def collect(self) -> Iterator:
        labels = ["project", "endpoint_id", "model"]
        drift = {name: GaugeMetricFamily(f"streamdrift_{name}", f"Newest {name} of an endpoint "
                                         f"({DEFAULT_APP}, the window ending at streamdrift_result_window_end_seconds)",
                                         labels=labels)
                 for name in DRIFT_RESULTS}
        status = GaugeMetricFamily("streamdrift_drift_status", "Status of the newest drift result: -1 irrelevant, "
                                   "0 no drift, 1 potential drift, 2 drift detected", labels=labels + ["result"])
        window_end = GaugeMetricFamily("streamdrift_result_window_end_seconds", "End of the window of the newest "
                                       "drift result (Unix time)", labels=labels + ["result"])
        activations = CounterMetricFamily("streamdrift_alert_activations", "Alert activations recorded",
                                          labels=["project", "alert", "severity"])
        store, tsdb = self.dashboard.store, self.dashboard.tsdb
        for project in self.dashboard.projects():
            models = {e.endpoint_id: e.model_name for e in store.list_endpoints(project, with_stats=False)}
            for r in tsdb.latest_status(project):
                if r.application_name != DEFAULT_APP or r.result_name not in DRIFT_RESULTS:
                    continue
                values = [project, r.endpoint_id, models.get(r.endpoint_id, "")]
                drift[r.result_name].add_metric(values, r.value)
                status.add_metric(values + [r.result_name], r.status)
                window_end.add_metric(values + [r.result_name], r.end_infer_time.timestamp())
            counts = collections.Counter((a.alert_name, a.severity) for a in store.list_activations(project))
            for (alert, severity), n in sorted(counts.items()):
                activations.add_metric([project, alert, severity], n)
        yield from (*drift.values(), status, window_end, activations)


def registry_of(dashboard) -> CollectorRegistry:
    """A registry holding only :class:`ResultsCollector` (no process metrics of the dashboard)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResultsCollector(dashboard))
    return registry


__all__ = ["ResultsCollector", "registry_of"]
