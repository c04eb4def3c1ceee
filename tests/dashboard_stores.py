"""Synthetic stores for the dashboard's unit tests and benchmark: endpoints, windows and results
written through ``connectors`` (SQLite SQL store and TSDB) as the job writes them, with the
drift computed by ``udfs`` on random window counts. Not the job: the browser tests use the real one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.udfs.accumulator import Accumulator
from streamdrift.udfs.histogram_drift import histogram_drift
from streamdrift.udfs.records import MetricRecord, PredictionRecord, ResultRecord
from streamdrift.udfs.reference import feature_stats

UTC = dt.timezone.utc
APP = "histogram-data-drift"
WINDOW = dt.timedelta(minutes=1)


@dataclasses.dataclass
class Written:
    store_url: str
    tsdb_url: str
    endpoint_ids: list[str]
    window_ends: list[dt.datetime]
    reports: list  # DriftReport of each window (the same for every endpoint)
    stats: dict  # the reference feature_stats
    events: dict  # endpoint id -> events per window


def write_project(data_dir: Path, project: str, *, endpoints: int, columns: int, windows: int,
                  rows_per_window: int = 200, seed: int = 0, names=None, first_end: dt.datetime | None = None,
                  latest_in_sql: bool = True) -> Written:
    """``endpoints`` endpoints of ``columns`` normal features each (one shared reference of 500
    rows), ``windows`` one-minute windows each: window w shifts every column by ``0.4 w`` standard
    deviations. Per window: general_drift and its metrics in the TSDB and the SQL store's latest,
    the predictions and the window counters (``rows_per_window`` rows, endpoint i has i % 7 errors
    per window). ``names(i)`` gives (model, function, version) of endpoint i."""
    rng = np.random.default_rng(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    store_url, tsdb_url = f"sqlite:///{data_dir}/store.sqlite", f"sqlite:///{data_dir}/tsdb.sqlite"
    feature_names = [f"feature_{j:04d}" for j in range(columns)]
    stats = feature_stats(pd.DataFrame(rng.normal(size=(500, columns)), columns=feature_names))
    reports = []
    for w in range(windows):
        acc = Accumulator.from_reference(stats)
        acc.add_batch(rng.normal(loc=0.4 * w, size=(rows_per_window, columns)))
        reports.append(histogram_drift(stats, acc.to_stats()))
    first_end = first_end or (dt.datetime.now(UTC).replace(second=0, microsecond=0) - windows * WINDOW)
    ends = [first_end + w * WINDOW for w in range(windows)]
    ids, events = [], {}
    names = names or (lambda i: (f"model-{i:04d}", f"serving-{i % 10}", f"v{i % 3}"))
    with SqlStore(store_url) as store, open_tsdb(tsdb_url, create_schema=True) as tsdb:
        store.create_schema()
        for i in range(endpoints):
            model, function, version = names(i)
            endpoint_id = f"ep-{i:05d}"
            store.upsert_endpoint(endpoint_id, project=project, model_name=model, function_name=function,
                                  function_tag="prod" if i % 2 else None, model_version=version,
                                  feature_names=feature_names, label_names=["label"] if i % 4 == 0 else [],
                                  feature_stats=stats, reference_rows=500)
            ids.append(endpoint_id)
            events[endpoint_id] = rows_per_window + i % 7
            results, metrics, predictions = [], [], []
            for end, report in zip(ends, reports):
                start = end - WINDOW
                result = ResultRecord(project, endpoint_id, APP, "general_drift", 0, int(report.status),
                                      report.general_drift, start, end, report.to_dict())
                window_metrics = [MetricRecord(project, endpoint_id, APP, name, value, start, end)
                                  for name, value in report.metrics.items()]
                prediction = PredictionRecord(project, endpoint_id, start, end, rows_per_window, events[endpoint_id],
                                              i % 7, rows_per_window, 800.0, 700.0, 1500.0, 2500.0, start, end)
                results.append(result)
                metrics += window_metrics
                predictions.append(prediction)
                if latest_in_sql or end == ends[-1]:
                    store.record_window([result], window_metrics, prediction)
            tsdb.write_window(results, metrics, [], predictions)
    return Written(store_url, tsdb_url, ids, ends, reports, stats, events)
