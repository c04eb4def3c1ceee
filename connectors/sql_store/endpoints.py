"""Endpoints in the SQL store: their definition and reference, their totals (over the window
counters: derived from all of them at registration, moved by each window write), drift status and
problems."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from streamdrift.connectors.settings import mask_password
from streamdrift.connectors.sql_store.base import NotFoundError, SqlStoreBase, check_id, finite, utc_now
from streamdrift.connectors.sql_store.tables import COUNT_COLUMNS, STATUS_COLUMNS, UTCDateTime


DRIFT_COLUMNS = ("drift_status", "drift_measure")
TOTAL_COLUMNS = tuple(name for name in STATUS_COLUMNS if name not in DRIFT_COLUMNS)


@dataclasses.dataclass(frozen=True)
class ModelEndpoint:
    """An endpoint as the SQL store holds it (the reference sample is read apart)."""

    endpoint_id: str
    project: str
    model_name: str
    model_version: str | None
    function_name: str | None
    function_tag: str | None
    feature_names: list[str]
    output_names: list[str]
    label_names: list[str]
    feature_stats: dict[str, Any]
    reference_rows: int | None
    has_reference_sample: bool
    created: dt.datetime
    updated: dt.datetime
    first_request: dt.datetime | None
    last_request: dt.datetime | None
    rows_count: int
    events_count: int
    error_count: int
    late_count: int
    last_window_end: dt.datetime | None
    drift_status: int | None
    drift_measure: float | None
    monitoring_mode: str

    # a mapping too: dict(endpoint) gives the fields with their Python values
    def keys(self) -> list[str]:
        return list(_ENDPOINT_FIELDS)

    def __getitem__(self, key: str) -> Any:
        if key not in _ENDPOINT_FIELD_SET:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self, with_stats: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 strings)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "feature_stats" and not with_stats:
                continue
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out


_ENDPOINT_FIELDS = tuple(f.name for f in dataclasses.fields(ModelEndpoint))
_ENDPOINT_FIELD_SET = frozenset(_ENDPOINT_FIELDS)


class EndpointsMixin(SqlStoreBase):
    """Endpoints, their totals and problems."""

    def upsert_endpoint(
        self,
        endpoint_id: str,
        *,
        project: str,
        model_name: str,
        model_version: str | None = None,
        function_name: str | None = None,
        function_tag: str | None = None,
        feature_names: Sequence[str] = (),
        output_names: Sequence[str] = (),
        label_names: Sequence[str] = (),
        feature_stats: dict[str, Any] | None = None,
        reference_sample: bytes | None = None,
        reference_rows: int | None = None,
        monitoring_mode: str = "enabled",
    ) -> ModelEndpoint:
        """Create the endpoint or replace its definition and reference; return it as stored.

        The counters, request times and drift status of an existing endpoint are kept; the totals
        are (re)derived from the window counters already stored for this id.
        """
        rows, update = self._endpoint_rows([dict(
            endpoint_id=endpoint_id, project=project, model_name=model_name, model_version=model_version,
            function_name=function_name, function_tag=function_tag, feature_names=feature_names,
            output_names=output_names, label_names=label_names, feature_stats=feature_stats,
            reference_sample=reference_sample, reference_rows=reference_rows, monitoring_mode=monitoring_mode)])

        def write(conn: sa.Connection) -> ModelEndpoint:
            self._upsert(conn, self._t["endpoints"], rows, update)
            self._refresh_totals(conn, endpoint_id)
            return self._get_endpoint(conn, endpoint_id)

        return self._run(f"writing endpoint {endpoint_id!r}", write)

    def upsert_endpoints(self, endpoints: Sequence[Mapping[str, Any]], chunk: int = 500) -> int:
        """Create or replace many endpoints (each a mapping of :meth:`upsert_endpoint`'s arguments,
        ``endpoint_id`` included), ``chunk`` at a time, each chunk in one transaction with one
        multi-row upsert and one set-based refresh of the totals; returns the number written.

        Every endpoint is checked before anything is written (ValueError naming the first bad one);
        a later id given twice replaces the earlier one. Registering 10,000 endpoints one by one
        with :meth:`upsert_endpoint` costs one transaction and four statements each."""
        rows, update = self._endpoint_rows(endpoints)
        for lo in range(0, len(rows), chunk):
            part = rows[lo:lo + chunk]

            def write(conn: sa.Connection, part=part) -> None:
                self._upsert(conn, self._t["endpoints"], part, update)
                self._refresh_totals_many(conn, [r["endpoint_id"] for r in part])

            self._run(f"writing endpoints {lo + 1}-{lo + len(part)} of {len(rows)}", write)
        return len(rows)

    def _endpoint_rows(self, endpoints: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """Checked rows of the ``endpoints`` table (new endpoints' counters at zero) and the columns
        an existing endpoint's row takes from them."""
        now = utc_now()
        rows: dict[str, dict[str, Any]] = {}
        for e in endpoints:
            def opt(name: str, what: str):
                value = e.get(name)
                return None if value is None else check_id(value, what)

            row = {
                "endpoint_id": check_id(e["endpoint_id"], "endpoint id"),
                "project": check_id(e["project"], "project"),
                "model_name": check_id(e["model_name"], "model name"),
                "model_version": opt("model_version", "model version"),
                "function_name": opt("function_name", "function name"),
                "function_tag": opt("function_tag", "function tag"),
                "feature_names": _str_list(e.get("feature_names", ()), "feature_names"),
                "output_names": _str_list(e.get("output_names", ()), "output_names"),
                "label_names": _str_list(e.get("label_names", ()), "label_names"),
                "feature_stats": dict(e.get("feature_stats") or {}),
                "reference_sample": e.get("reference_sample"),
                "reference_rows": e.get("reference_rows"),
                "monitoring_mode": _check_mode(e.get("monitoring_mode", "enabled")),
            }
            rows[row["endpoint_id"]] = dict(row, created=now, updated=now)
        update = [c for c in row if c != "endpoint_id"] + ["updated"] if rows else []
        return list(rows.values()), update

    def update_reference(
        self,
        endpoint_id: str,
        feature_stats: dict[str, Any],
        *,
        reference_sample: bytes | None = None,
        reference_rows: int | None = None,
        feature_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> ModelEndpoint:
        """Replace an endpoint's reference statistics (and sample, and names when given).

        Raises :class:`NotFoundError` when the endpoint does not exist.
        """
        values: dict[str, Any] = {
            "feature_stats": dict(feature_stats),
            "reference_sample": reference_sample,
            "reference_rows": reference_rows,
            "updated": utc_now(),
        }
        for key, names in (("feature_names", feature_names), ("output_names", output_names),
                           ("label_names", label_names)):
            if names is not None:
                values[key] = _str_list(names, key)
        t = self._t["endpoints"]

        def write(conn: sa.Connection) -> ModelEndpoint:
            done = conn.execute(sa.update(t).where(t.c.endpoint_id == endpoint_id).values(**values))
            if done.rowcount == 0:
                raise NotFoundError(f"no endpoint {endpoint_id!r} in the SQL store {self.masked_url}")
            return self._get_endpoint(conn, endpoint_id)

        return self._run(f"updating the reference of endpoint {endpoint_id!r}", write)

    def set_monitoring_mode(self, endpoint_id: str, mode: str) -> None:
        t = self._t["endpoints"]
        mode = _check_mode(mode)

        def write(conn: sa.Connection) -> None:
            done = conn.execute(sa.update(t).where(t.c.endpoint_id == endpoint_id)
                                .values(monitoring_mode=mode, updated=utc_now()))
            if done.rowcount == 0:
                raise NotFoundError(f"no endpoint {endpoint_id!r} in the SQL store {self.masked_url}")

        self._run(f"setting the monitoring mode of {endpoint_id!r}", write)

    def set_drift_status(self, endpoint_id: str, drift_status: int | None, drift_measure: float | None) -> bool:
        """Record the endpoint's current drift status and measure; False when it does not exist."""
        t = self._t["endpoints"]

        def write(conn: sa.Connection) -> bool:
            if conn.execute(sa.select(t.c.endpoint_id).where(t.c.endpoint_id == endpoint_id)).first() is None:
                return False
            self._upsert(conn, self._t["endpoint_status"], [{
                "endpoint_id": endpoint_id, "drift_status": None if drift_status is None else int(drift_status),
                "drift_measure": finite(drift_measure)}], DRIFT_COLUMNS)
            return True

        return self._run(f"setting the drift status of {endpoint_id!r}", write)

    def _drift_status_writer(self, endpoint_ids: list[str], verdict: tuple[str, str]):
        """Each endpoint's drift status and measure from its latest verdict result (``latest_results``
        keeps the newest window's), to run in a transaction after the latest results are written."""
        latest = self._t["latest_results"]
        # copied in the database: no row comes back to Python (on SQLite each would be one more
        # step of the statement, and one more wait for the GIL beside the worker's other threads)
        copy = self._upsert_from_select(
            self._t["endpoint_status"], ("endpoint_id", *DRIFT_COLUMNS), DRIFT_COLUMNS,
            sa.select(latest.c.endpoint_id, latest.c.status, latest.c.value).where(
                latest.c.endpoint_id.in_(endpoint_ids), latest.c.application_name == verdict[0],
                latest.c.result_name == verdict[1]))

        def write(conn: sa.Connection) -> None:
            conn.execute(copy)

        return write

    def get_endpoint(self, endpoint_id: str) -> ModelEndpoint | None:
        """The endpoint, or None when there is none with this id."""
        return self._run(f"reading endpoint {endpoint_id!r}", lambda conn: self._get_endpoint(conn, endpoint_id))

    def _select_endpoints(self, with_stats: bool = True) -> sa.Select:
        """Endpoints with their status (totals 0 and no status before their first window)."""
        t, status = self._t["endpoints"], self._t["endpoint_status"]
        cols = [c for c in t.c if c.name != "reference_sample" and (with_stats or c.name != "feature_stats")]
        cols += [sa.func.coalesce(status.c[name], 0).label(name) if name in COUNT_COLUMNS else status.c[name]
                 for name in STATUS_COLUMNS]
        return (sa.select(*cols, t.c.reference_sample.is_not(None).label("has_reference_sample"))
                .select_from(t.outerjoin(status, status.c.endpoint_id == t.c.endpoint_id)))

    def _get_endpoint(self, conn: sa.Connection, endpoint_id: str) -> ModelEndpoint | None:
        t = self._t["endpoints"]
        row = conn.execute(self._select_endpoints().where(t.c.endpoint_id == endpoint_id)).mappings().first()
        return None if row is None else _endpoint_from_row(row)

    def get_reference_sample(self, endpoint_id: str) -> bytes | None:
        """The stored sample of the reference rows (Parquet bytes), None when there is none."""
        t = self._t["endpoints"]
        return self._run(f"reading the reference sample of {endpoint_id!r}", lambda conn: conn.execute(
            sa.select(t.c.reference_sample).where(t.c.endpoint_id == endpoint_id)).scalar())

    def list_endpoints(self, project: str | None = None, *, with_stats: bool = True) -> list[ModelEndpoint]:
        """Endpoints of ``project`` (all projects when None), by project, model, version and id.

        ``with_stats=False`` leaves ``feature_stats`` empty (cheaper for long lists).
        """
        t = self._t["endpoints"]
        query = self._select_endpoints(with_stats).order_by(
            t.c.project, t.c.model_name, t.c.model_version, t.c.endpoint_id)
        if project is not None:
            query = query.where(t.c.project == project)

        def read(conn: sa.Connection) -> list[ModelEndpoint]:
            return [_endpoint_from_row(r) for r in conn.execute(query).mappings()]

        return self._run("listing endpoints", read)

    def delete_endpoint(self, endpoint_id: str) -> bool:
        """Delete the endpoint with its window counters and latest results and metrics.

        Returns False when there was no such endpoint (nothing else is left behind either way).
        """

        def write(conn: sa.Connection) -> bool:
            for name in ("latest_results", "latest_metrics", "endpoint_windows", "endpoint_problems", "endpoint_status"):
                t = self._t[name]
                conn.execute(sa.delete(t).where(t.c.endpoint_id == endpoint_id))
            t = self._t["endpoints"]
            return conn.execute(sa.delete(t).where(t.c.endpoint_id == endpoint_id)).rowcount > 0

        return self._run(f"deleting endpoint {endpoint_id!r}", write)

    def endpoints_version(self) -> tuple[int, dt.datetime | None]:
        """``(number of endpoints, newest 'updated')``: changes whenever an endpoint is created,
        deleted, or its definition or reference changes. One cheap query, for polling."""
        t = self._t["endpoints"]

        def read(conn: sa.Connection):
            count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(t.c.updated))).one()
            return int(count), UTCDateTime().process_result_value(newest, None)

        return self._run("reading the endpoints version", read)

    def endpoints_changed_since(self, since: dt.datetime | None, project: str | None = None,
                                inclusive: bool = False) -> list[ModelEndpoint]:
        """Endpoints created or changed (definition, reference, mode) after ``since`` (at or after
        with ``inclusive``; all if None)."""
        t = self._t["endpoints"]
        query = self._select_endpoints().order_by(t.c.updated, t.c.endpoint_id)
        if since is not None:
            query = query.where(t.c.updated >= since if inclusive else t.c.updated > since)
        if project is not None:
            query = query.where(t.c.project == project)
        return self._run("listing changed endpoints",
                         lambda conn: [_endpoint_from_row(r) for r in conn.execute(query).mappings()])

    def endpoint_ids(self) -> list[str]:
        """The ids of every endpoint (cheap: no reference read)."""
        t = self._t["endpoints"]
        return self._run("listing endpoint ids", lambda conn: [r[0] for r in conn.execute(sa.select(t.c.endpoint_id))])

    # ------------------------------------------------------------------ totals over the window counters

    @functools.cached_property
    def _totals_select(self) -> sa.Select:
        """Each endpoint's totals over its window counters (built once; ``ids`` binds the endpoints).

        A locking read on MySQL (``LOCK IN SHARE MODE``): it waits for a writer that is moving the
        same endpoints' totals by a delta (:meth:`_move_totals`) and reads what that one committed,
        so the totals it then stores cannot leave that delta out."""
        w = self._t["endpoint_windows"]
        return sa.select(
            w.c.endpoint_id,
            *(sa.func.coalesce(sa.func.sum(w.c[name]), 0) for name in COUNT_COLUMNS),
            sa.func.min(w.c.first_request),
            sa.func.max(w.c.last_request),
            sa.func.max(w.c.window_end),
        ).where(w.c.endpoint_id.in_(sa.bindparam("ids", expanding=True))).group_by(
            w.c.endpoint_id).with_for_update(read=True)

    @functools.cached_property
    def _counted_select(self) -> sa.Select:
        """The endpoints among ``ids`` whose totals have counted a window, their status rows locked
        (``FOR UPDATE`` on MySQL) until the transaction ends."""
        status = self._t["endpoint_status"]
        return sa.select(status.c.endpoint_id).where(
            status.c.endpoint_id.in_(sa.bindparam("ids", expanding=True)),
            status.c.last_window_end.is_not(None)).with_for_update()

    @functools.cached_property
    def _counted_count_select(self) -> sa.Select:
        """How many of the endpoints ``ids`` (distinct) have totals that counted a window, their
        status rows locked as by :attr:`_counted_select`."""
        status = self._t["endpoint_status"]
        return sa.select(sa.func.count()).select_from(status).where(
            status.c.endpoint_id.in_(sa.bindparam("ids", expanding=True)),
            status.c.last_window_end.is_not(None)).with_for_update()

    @functools.cached_property
    def _stored_totals_select(self) -> sa.Select:
        status = self._t["endpoint_status"]
        return sa.select(status.c.endpoint_id, *(status.c[name] for name in TOTAL_COLUMNS)).where(
            status.c.endpoint_id.in_(sa.bindparam("ids", expanding=True)))

    def _move_totals(self, conn: sa.Connection, deltas: Mapping[str, Mapping[str, Any]],
                     read_back: bool = True) -> dict[str, dict[str, Any]]:
        """Move endpoints' totals by what a write of their window counters changed, reading none of
        their other windows; returns the totals by endpoint when ``read_back``.

        ``deltas`` by endpoint: for each of :data:`COUNT_COLUMNS` new minus old summed over the
        windows written (old = 0 for a window not stored before), ``first_request`` the earliest
        and ``last_request``, ``last_window_end`` the latest of those windows (None for none). To
        run in the write's transaction, after the windows are written, with their old counters
        read under :meth:`_lock_for_update`.

        Counts are added in the database (``rows_count = rows_count + d``, one multi-row upsert);
        ``first_request``/``last_request``/``last_window_end`` become the earlier/later of stored
        and given. An endpoint whose totals have counted no window yet (no ``endpoint_status`` row,
        or one without ``last_window_end``: new, unregistered, carried over from an older schema,
        or holding a drift status only) gets :meth:`_refresh_totals_many` over all its windows
        instead, so that a delta is only ever added to totals that were exact."""
        ids = list(deltas)
        if not ids:
            return {}
        # once its endpoints have counted a window (every batch but their first), a batch reads one
        # number here, not one row per endpoint
        if conn.execute(self._counted_count_select, {"ids": ids}).scalar_one() == len(ids):
            counted = set(ids)
        else:
            counted = set(conn.execute(self._counted_select, {"ids": ids}).scalars())
        self._accumulate(conn, self._t["endpoint_status"],
                         [dict(deltas[e], endpoint_id=e) for e in ids if e in counted], add=COUNT_COLUMNS,
                         earliest=("first_request",), latest=("last_request", "last_window_end"))
        totals = self._refresh_totals_many(conn, [e for e in ids if e not in counted])
        if read_back and counted:
            for endpoint_id, *values in conn.execute(self._stored_totals_select, {"ids": list(counted)}):
                totals[endpoint_id] = dict(zip(TOTAL_COLUMNS, values))
        return totals

    def _refresh_totals(self, conn: sa.Connection, endpoint_id: str) -> dict[str, Any]:
        """The endpoint's totals derived from its window counters, stored and returned."""
        return self._refresh_totals_many(conn, [endpoint_id])[endpoint_id]

    def _refresh_totals_many(self, conn: sa.Connection, endpoint_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """:meth:`_refresh_totals` of many endpoints: one query, one multi-row upsert."""
        if not endpoint_ids:
            return {}
        as_time = UTCDateTime().process_result_value
        totals = {endpoint_id: {"endpoint_id": endpoint_id, **dict.fromkeys(COUNT_COLUMNS, 0), "first_request": None,
                                "last_request": None, "last_window_end": None} for endpoint_id in endpoint_ids}
        for endpoint_id, *sums, first, last, window_end in conn.execute(self._totals_select,
                                                                        {"ids": list(totals)}):
            totals[endpoint_id].update(zip(COUNT_COLUMNS, map(int, sums)), first_request=as_time(first, None),
                                       last_request=as_time(last, None), last_window_end=as_time(window_end, None))
        rows = list(totals.values())
        self._upsert(conn, self._t["endpoint_status"], rows, TOTAL_COLUMNS)
        return {row["endpoint_id"]: {k: v for k, v in row.items() if k != "endpoint_id"} for row in rows}

    # ------------------------------------------------------------------ problems

    def record_problem(self, project: str, endpoint_id: str, kind: str, message: str) -> None:
        """Note that ``kind`` of problem happened to an endpoint (e.g. ``store-write-failed``):
        its message and time replace the last ones, its occurrences grow by one."""
        check_id(project, "project")
        check_id(endpoint_id, "endpoint id")
        t, now = self._t["endpoint_problems"], utc_now()
        message = mask_password(str(message))[:4000]

        def write(conn: sa.Connection) -> None:
            done = conn.execute(sa.update(t).where(t.c.endpoint_id == endpoint_id, t.c.kind == kind)
                                .values(message=message, last_seen=now, occurrences=t.c.occurrences + 1))
            if done.rowcount == 0:
                conn.execute(sa.insert(t).values(endpoint_id=endpoint_id, kind=kind, project=project,
                                                 message=message, occurrences=1, first_seen=now, last_seen=now))

        self._run(f"recording a problem of {endpoint_id!r}", write)

    def problems(self, endpoint_id: str | None = None, project: str | None = None) -> list[dict[str, Any]]:
        """The problems recorded (:meth:`record_problem`), newest first: dicts of endpoint_id, kind,
        project, message, occurrences, first_seen, last_seen."""
        t = self._t["endpoint_problems"]
        query = sa.select(t).order_by(t.c.last_seen.desc())
        if endpoint_id is not None:
            query = query.where(t.c.endpoint_id == endpoint_id)
        if project is not None:
            query = query.where(t.c.project == project)
        return self._run("reading problems", lambda conn: [dict(r) for r in conn.execute(query).mappings()])

    def clear_problem(self, endpoint_id: str, kind: str) -> bool:
        """Forget a problem (fixed); True when there was one."""
        t = self._t["endpoint_problems"]
        return self._run(f"clearing a problem of {endpoint_id!r}", lambda conn: conn.execute(
            sa.delete(t).where(t.c.endpoint_id == endpoint_id, t.c.kind == kind)).rowcount > 0)



def _str_list(names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"{what} must be a list of names, not the string {names!r}")
    out = [str(n) for n in names]
    if len(set(out)) != len(out):
        dup = sorted({n for n in out if out.count(n) > 1})
        raise ValueError(f"{what} has duplicates: {dup}")
    return out


def _check_mode(mode: str) -> str:
    if mode not in ("enabled", "disabled"):
        raise ValueError(f"monitoring mode must be 'enabled' or 'disabled', got {mode!r}")
    return mode


def _endpoint_from_row(row) -> ModelEndpoint:
    data = dict(row)
    data["has_reference_sample"] = bool(data.get("has_reference_sample"))
    data.setdefault("feature_stats", {})
    if data["feature_stats"] is None:
        data["feature_stats"] = {}
    return ModelEndpoint(**data)
