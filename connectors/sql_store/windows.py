"""Windows in the SQL store: each window's serving counters, the latest results and metrics, and
:meth:`WindowsMixin.record_window`, what the job writes per window in one transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from streamdrift.connectors.sql_store.base import check_id, finite, utc_now
from streamdrift.connectors.sql_store.endpoints import EndpointsMixin
from streamdrift.connectors.sql_store.tables import COUNT_COLUMNS, UTC
from streamdrift.udfs.records import (
    MetricRecord,
    PredictionRecord,
    ResultRecord,
    check_name,
    utc_from_ms,
    validate_application_name,
)


class WindowsMixin(EndpointsMixin):
    """Window counters and latest results and metrics (a window also moves its endpoint's totals
    and drift status, hence the endpoints mixin underneath)."""

    def _window_counters_writer(self, predictions: Sequence[PredictionRecord], late: int | None = None,
                                read_back: bool = True):
        """The write of :meth:`add_window_counters` for the windows of ``predictions`` (any
        endpoints), to run in a transaction (checked now): the windows' old counters read (point
        lookups, locked), one multi-row upsert, then each endpoint's totals moved by the
        difference (:meth:`_move_totals`); it returns the totals by endpoint when ``read_back``."""
        now = utc_now()
        rows: dict[tuple[str, dt.datetime], dict[str, Any]] = {}  # the last given of a window wins
        for prediction in predictions:
            endpoint_id = check_id(prediction.endpoint_id, "endpoint id")
            rows[(endpoint_id, as_utc(prediction.end_infer_time))] = {
                "endpoint_id": endpoint_id,
                "window_end": prediction.end_infer_time,
                "window_start": prediction.start_infer_time,
                "rows_count": int(prediction.count),
                "events_count": int(prediction.events),
                "error_count": int(prediction.error_count),
                "late_count": 0 if late is None else int(late),
                "first_request": prediction.first_request,
                "last_request": prediction.last_request,
                "updated": now,
            }
        update = ["window_start", "rows_count", "events_count", "error_count", "first_request", "last_request",
                  "updated"] + (["late_count"] if late is not None else [])
        replaced = COUNT_COLUMNS if late is not None else tuple(c for c in COUNT_COLUMNS if c != "late_count")
        endpoints = list(dict.fromkeys(endpoint_id for endpoint_id, _ in rows))
        ends = list(dict.fromkeys(window_end for _, window_end in rows))

        def write(conn: sa.Connection) -> dict[str, dict[str, Any]]:
            self._lock_for_update(conn)
            # few window ends a batch (staggered windows: one per group at most): endpoints x ends,
            # then the exact pairs
            old = {}
            for endpoint_id, window_end, *counts in conn.execute(self._window_counts_select,
                                                                  {"ids": endpoints, "ends": ends}):
                key = (endpoint_id, as_utc(window_end))
                if key in rows:
                    old[key] = dict(zip(COUNT_COLUMNS, counts))
            self._upsert(conn, self._t["endpoint_windows"], list(rows.values()), update)
            return self._move_totals(conn, totals_deltas(rows, old, replaced), read_back)

        return write

    @functools.cached_property
    def _window_counts_select(self) -> sa.Select:
        """The counters of the stored windows of endpoints ``ids`` ending at ``ends``, locked
        (``FOR UPDATE`` on MySQL) until the transaction ends."""
        w = self._t["endpoint_windows"]
        return sa.select(w.c.endpoint_id, w.c.window_end, *(w.c[name] for name in COUNT_COLUMNS)).where(
            w.c.endpoint_id.in_(sa.bindparam("ids", expanding=True)),
            w.c.window_end.in_(sa.bindparam("ends", expanding=True))).with_for_update()

    def add_window_counters(self, endpoint_id: str, prediction: PredictionRecord,
                            late: int | None = None) -> dict[str, Any]:
        """Record one window's serving counters and move the endpoint's totals by what they changed.

        Keyed by (endpoint_id, window end): writing the same window again replaces its counters
        rather than adding them, so a replay or a late-data revision never double-counts. ``late``
        sets the window's late-row count; None keeps what :meth:`add_late_rows` recorded. The
        endpoint's ``rows_count``, ``events_count``, ``error_count``, ``late_count`` are the sums
        over its windows, ``first_request``/``last_request`` the earliest/latest recorded (below),
        ``last_window_end`` the newest window end; all in the same transaction. Returns those
        totals. Counters of an endpoint that is not registered yet are kept and counted when it is.

        The totals move by the difference this write makes (new minus old counters of the window),
        not by summing the endpoint's windows again: the cost does not grow with its history. So
        ``first_request``/``last_request`` are the earliest/latest ever recorded: a revision that
        moves a window's first request later leaves the endpoint's earlier one (registering the
        endpoint again derives all totals from the stored windows).
        """
        check_id(endpoint_id, "endpoint id")
        if prediction.endpoint_id != endpoint_id:
            raise ValueError(f"the prediction record is for endpoint {prediction.endpoint_id!r}, not {endpoint_id!r}")
        write = self._window_counters_writer([prediction], late)
        return self._run(f"adding window counters of {endpoint_id!r}", lambda conn: write(conn)[endpoint_id])

    def record_window(self, results: Iterable[ResultRecord], metrics: Iterable[MetricRecord],
                      prediction: PredictionRecord | Iterable[PredictionRecord] | None,
                      verdict: tuple[str, str] | None = None) -> None:
        """What the job writes per window, or per batch of windows, in one transaction: the
        latest results and metrics (:meth:`upsert_latest_results`, :meth:`upsert_latest_metrics`)
        and the windows' counters (:meth:`add_window_counters`).

        ``results``, ``metrics`` and ``prediction`` (one record, several, or None) may hold the
        records of many windows and endpoints: each table gets one multi-row upsert (PyMySQL
        sends it as one ``INSERT ... VALUES (...), (...)``), the newest window of a series wins
        whatever the order, and each endpoint's totals move once by what the batch changed
        (point lookups of the batch's windows, one multi-row upsert: nothing reads an endpoint's
        other windows once it has totals).

        ``verdict``: (application, result name) of the result that is an endpoint's drift verdict;
        each endpoint with such a result among ``results`` gets the status and value of its latest
        one as ``drift_status`` and ``drift_measure``."""
        results = list(results)
        if prediction is None:
            predictions: list[PredictionRecord] = []
        elif isinstance(prediction, PredictionRecord):
            predictions = [prediction]
        else:
            predictions = list(prediction)
        steps = [self._latest_writer("latest_results", results), self._latest_writer("latest_metrics", metrics)]
        if predictions:
            steps.append(self._window_counters_writer(predictions, read_back=False))
        if verdict is not None:
            judged = sorted({r.endpoint_id for r in results if (r.application_name, r.result_name) == verdict})
            if judged:
                steps.append(self._drift_status_writer(judged, verdict))

        def write(conn: sa.Connection) -> None:
            for step in steps:
                step(conn)

        self._run("recording a window", write)

    def add_late_rows(self, endpoint_id: str, window_end: dt.datetime | int, late_rows: int) -> dict[str, Any]:
        """Add rows that came after the window's allowed lateness to its late count (``window_end``
        a datetime or epoch milliseconds); returns the endpoint's totals.

        Additive, unlike :meth:`add_window_counters`: the same late rows given twice count twice.
        The endpoint's ``late_count`` grows by ``late_rows`` (and ``last_window_end`` becomes this
        window's end if later) without reading its other windows.
        """
        check_id(endpoint_id, "endpoint id")
        if isinstance(window_end, (int, float)) and not isinstance(window_end, bool):
            window_end = utc_from_ms(window_end)
        late_rows = int(late_rows)
        if late_rows < 0:
            raise ValueError(f"late_rows must be >= 0, got {late_rows}")
        w = self._t["endpoint_windows"]
        row = {"endpoint_id": endpoint_id, "window_end": window_end, "window_start": window_end, "rows_count": 0,
               "events_count": 0, "error_count": 0, "late_count": late_rows, "updated": utc_now()}

        delta = {**dict.fromkeys(COUNT_COLUMNS, 0), "late_count": late_rows, "first_request": None,
                 "last_request": None, "last_window_end": window_end}

        def write(conn: sa.Connection) -> dict[str, Any]:
            done = conn.execute(sa.update(w).where(w.c.endpoint_id == endpoint_id, w.c.window_end == window_end)
                                .values(late_count=w.c.late_count + late_rows, updated=row["updated"]))
            if done.rowcount == 0:  # the window's counters are not stored (yet): start its row
                conn.execute(sa.insert(w).values(**row))
            return self._move_totals(conn, {endpoint_id: delta})[endpoint_id]

        return self._run(f"adding late rows of {endpoint_id!r}", write)

    def window_counters(self, endpoint_id: str) -> list[dict[str, Any]]:
        """The stored counters of each window of an endpoint, oldest first."""
        w = self._t["endpoint_windows"]
        query = sa.select(w).where(w.c.endpoint_id == endpoint_id).order_by(w.c.window_end)
        return self._run(f"reading window counters of {endpoint_id!r}",
                         lambda conn: [dict(r) for r in conn.execute(query).mappings()])

    # ------------------------------------------------------------------ latest results and metrics

    def upsert_latest_results(self, results: Iterable[ResultRecord]) -> int:
        """Keep each result as the latest of its (endpoint, application, name) unless a later window
        is already stored. Returns the number of records given."""
        results = list(results)
        self._run("writing latest results", self._latest_writer("latest_results", results))
        return len(results)

    def upsert_latest_metrics(self, metrics: Iterable[MetricRecord]) -> int:
        """As :meth:`upsert_latest_results`, for metrics."""
        metrics = list(metrics)
        self._run("writing latest metrics", self._latest_writer("latest_metrics", metrics))
        return len(metrics)

    def _latest_writer(self, table: str, records: Iterable[ResultRecord] | Iterable[MetricRecord]):
        """The upsert of :meth:`upsert_latest_results` (``latest_results``) or of
        :meth:`upsert_latest_metrics` (``latest_metrics``), to run in a transaction (checked now)."""
        now = utc_now()
        rows = []
        for r in records:
            row = {
                "endpoint_id": check_id(r.endpoint_id, "endpoint id"),
                "application_name": validate_application_name(r.application_name),
                "project": check_id(r.project, "project"),
                "value": finite(r.value),
                "start_infer_time": r.start_infer_time, "end_infer_time": r.end_infer_time, "updated": now,
            }
            if table == "latest_results":
                row.update(result_name=check_name(r.result_name, "result name"), kind=int(r.kind),
                           status=int(r.status), extra_data=dict(r.extra_data or {}))
            else:
                row.update(metric_name=check_name(r.metric_name, "metric name"))
            rows.append(row)
        update = ["project", "value", "start_infer_time", "end_infer_time", "updated"]
        if table == "latest_results":
            update += ["kind", "status", "extra_data"]
        name = "result_name" if table == "latest_results" else "metric_name"
        newest: dict[tuple, dict[str, Any]] = {}  # per key the newest window; of equal ones the last given
        for row in rows:
            key = (row["endpoint_id"], row["application_name"], row[name])
            if key not in newest or row["end_infer_time"] >= newest[key]["end_infer_time"]:
                newest[key] = row
        rows = list(newest.values())

        def write(conn: sa.Connection) -> None:
            if rows:
                self._upsert(conn, self._t[table], rows, update, newer_only="end_infer_time")

        return write

    def latest_results(self, endpoint_id: str) -> list[ResultRecord]:
        """The latest result of each (application, name) of an endpoint, sorted by both."""
        return self._latest(endpoint_id, "latest_results", ResultRecord, "result_name")

    def latest_metrics(self, endpoint_id: str) -> list[MetricRecord]:
        """The latest value of each (application, metric) of an endpoint, sorted by both."""
        return self._latest(endpoint_id, "latest_metrics", MetricRecord, "metric_name")

    def _latest(self, endpoint_id: str, table: str, record: type, name: str) -> list[Any]:
        """The rows of a latest_* table of an endpoint as ``record``s (its fields are columns of
        the table), sorted by application and ``name``."""
        t = self._t[table]
        query = sa.select(t).where(t.c.endpoint_id == endpoint_id).order_by(t.c.application_name, t.c[name])
        fields = [f.name for f in dataclasses.fields(record)]

        def read(conn: sa.Connection) -> list[Any]:
            return [record(**{f: r[f] for f in fields}) for r in conn.execute(query).mappings()]

        return self._run(f"reading {table.replace('_', ' ')} of {endpoint_id!r}", read)


def as_utc(when: dt.datetime) -> dt.datetime:
    """``when`` as an aware UTC datetime (a naive one is taken as UTC, as the store does)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def totals_deltas(rows: Mapping[tuple[str, dt.datetime], Mapping[str, Any]],
                  old: Mapping[tuple[str, dt.datetime], Mapping[str, int]],
                  replaced: Sequence[str]) -> dict[str, dict[str, Any]]:
    """How writing window rows moves each endpoint's totals (:meth:`EndpointsMixin._move_totals`).

    ``rows`` by (endpoint, window end): the window rows written; ``old`` the counters they
    replace (a window missing there was not stored); ``replaced`` the count columns the write
    sets (the others keep their stored value: no change). Per endpoint, for each count column
    c: Σ_windows (new_c − old_c) over ``replaced``, 0 otherwise; ``first_request`` the minimum
    and ``last_request`` the maximum over its windows (None if none has one), ``last_window_end``
    the maximum window end."""
    deltas: dict[str, dict[str, Any]] = {}
    for (endpoint_id, window_end), row in rows.items():
        d = deltas.setdefault(endpoint_id, {**dict.fromkeys(COUNT_COLUMNS, 0), "first_request": None,
                                            "last_request": None, "last_window_end": None})
        before = old.get((endpoint_id, window_end))
        for name in replaced:
            d[name] += row[name] - (before[name] if before else 0)
        d["first_request"] = _extreme(min, d["first_request"], row["first_request"])
        d["last_request"] = _extreme(max, d["last_request"], row["last_request"])
        d["last_window_end"] = _extreme(max, d["last_window_end"], window_end)
    return deltas


def _extreme(pick, a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    """``pick`` (min or max) of two times, None standing for none; naive ones taken as UTC."""
    if a is None or b is None:
        return b if a is None else a
    return pick(as_utc(a), as_utc(b))
