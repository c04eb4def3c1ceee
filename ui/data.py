"""What the dashboard shows, read from the stores through ``connectors``: one function per view,
each returning a JSON-ready dict (the page renders it; ``/api/v1/`` returns it as it is).

Sources, per view:

* the SQL store (:class:`streamdrift.connectors.sql_store.SqlStore`): endpoints with their reference statistics
  and counters, the latest result and metric of each series (their ``extra_data`` whole), the
  applications, the alert configurations and activations;
* the TSDB (:func:`streamdrift.connectors.tsdb.open_tsdb`): results, metrics and per-window predictions over
  time, application errors, and per-feature drift rows where the TSDB has them;
* the raw rows in Parquet (:func:`streamdrift.connectors.raw_rows.read_window_rows`), when reachable: a window's
  rows for the drill-down, and the window's per-column statistics (counted on the reference bins
  with :class:`streamdrift.udfs.accumulator.Accumulator`, as the job counts them) for Features analysis.

Times in the answers are ISO 8601 UTC strings (``2026-11-26T12:01:00Z``); a window is named by its
end time. Statuses are MLRun's: -1 irrelevant, 0 no detection, 1 potential, 2 detected.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import fnmatch
import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streamdrift.connectors.settings import Settings, mask_password
from streamdrift.connectors.sql_store import ModelEndpoint, NotFoundError, SqlStore
from streamdrift.connectors.tsdb.base import TSDB
from streamdrift.udfs.events import Tumbling
from streamdrift.udfs.records import ResultRecord, utc_from_ms

log = logging.getLogger("streamdrift.ui")

UTC = dt.timezone.utc
DEFAULT_APP = "histogram-data-drift"
GENERAL_DRIFT = "general_drift"
FEATURE_DRIFT = "feature_drift"
APP_FAILED = "mm-app-failed"

#: status → (css class, words); None: no window yet
STATUS = {2: ("detected", "drift detected"), 1: ("potential", "potential drift"), 0: ("ok", "no drift"),
          -1: ("irrelevant", "irrelevant"), None: ("none", "no window yet")}
STATUS_COLORS = {"detected": "#d62728", "potential": "#f39c12", "ok": "#2ca02c", "irrelevant": "#8c8c8c",
                 "none": "#c7c7c7"}
KIND_NAMES = {0: "data drift", 1: "concept drift", 2: "model performance", 3: "system performance",
              4: "application anomaly"}

#: thresholds of the built-in results, drawn on their timelines (general_drift's may be re-tuned
#: by the registration's ``potential`` / ``detected`` parameters)
GENERAL_DRIFT_THRESHOLDS = {"potential": 0.5, "detected": 0.7}
#: the verdict's test levels: false discovery rates of Benjamini-Hochberg over the columns
FEATURE_DRIFT_LEVELS = {"potential": 0.01, "detected": 0.001}

RANGES = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(days=7),
          "month": dt.timedelta(days=30)}
DEFAULT_RANGE = "day"
SPARKLINE_WINDOWS = 12
WINDOW_PICKER_LIMIT = 200
ROWS_STATS_LIMIT = 50_000  # window statistics from Parquet only for windows up to this many rows
SECRET_KEY = re.compile(r"(?i)pass|secret|token|credential|api[-_]?key|auth")


class BadRequest(ValueError):
    """A query parameter the dashboard cannot use; the message says which and what is expected."""


# --------------------------------------------------------------------------------- formatting


def iso(value: dt.datetime | None) -> str | None:
    """``2026-11-26T12:01:00Z`` (microseconds only when there are some); None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str | None, what: str) -> dt.datetime | None:
    """An ISO 8601 time (a naive one is UTC) or epoch milliseconds; None for empty. BadRequest otherwise."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    # a "+02:00" offset typed into a URL arrives with its "+" decoded as a space
    text = re.sub(r"(\d) (\d\d:?\d\d)$", r"\1+\2", text)
    try:
        if re.fullmatch(r"-?\d{1,16}", text):
            return utc_from_ms(int(text))
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"{what}={text!r} is not a time: use ISO 8601 (2026-11-26T12:00:00Z) "
                         "or epoch milliseconds") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def status_of(status: int | None) -> dict[str, Any]:
    """``{"status": 2, "class": "detected", "label": "drift detected"}``."""
    css, label = STATUS.get(status, STATUS[None] if status is None else ("irrelevant", str(status)))
    return {"status": status, "class": css, "label": label}


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def masked_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Application parameters for display: values under secret-looking keys hidden, URL passwords masked."""
    out = {}
    for key, value in (params or {}).items():
        if SECRET_KEY.search(str(key)):
            out[key] = "***"
        elif isinstance(value, str):
            out[key] = mask_password(value)
        else:
            out[key] = value
    return out


def _page(items: list, page: int, per_page: int) -> tuple[list, dict[str, int]]:
    total = len(items)
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    return items[(page - 1) * per_page: page * per_page], {"page": page, "pages": pages, "per_page": per_page,
                                                            "total": total}


def positive_int(value: Any, what: str, default: int, maximum: int | None = None) -> int:
    """A query parameter as a whole number ≥ 1 (``default`` when absent); BadRequest otherwise."""
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{what}={value!r} is not a whole number") from None
    if number < 1:
        raise BadRequest(f"{what}={value!r} must be at least 1")
    return min(number, maximum) if maximum else number


# --------------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class Verdict:
    """An endpoint's drift verdict: the status, the value and the result it comes from."""

    status: int | None
    value: float | None
    result_name: str | None
    time: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {**status_of(self.status), "value": self.value, "result_name": self.result_name, "time": iso(self.time)}


def _result_dict(r: ResultRecord, with_extra: bool = False) -> dict[str, Any]:
    out = {"application_name": r.application_name, "result_name": r.result_name, "kind": r.kind,
           "kind_name": KIND_NAMES.get(r.kind, str(r.kind)), "value": r.value, **status_of(r.status),
           "start": iso(r.start_infer_time), "end": iso(r.end_infer_time)}
    if with_extra:
        out["extra_data"] = r.extra_data
    return out


def _window_seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None or end <= start:
        return None
    return (end - start).total_seconds()


# --------------------------------------------------------------------------------- the reader


class Dashboard:
    """Reads the stores for every view. Thread-safe: the stores are (one connection pool behind
    SQLAlchemy, one SQLite connection behind a lock), and so is the window-statistics cache.

    :param settings:   the resolved settings (project, stores, Parquet path, base period)
    :param store:      the SQL store
    :param tsdb:       the TSDB
    :param flink_rest: ``host:port`` of the Flink REST API whose jobs' health the overview shows
    :param clock:      now (UTC), for the time ranges; replaceable in tests
    """

    def __init__(self, settings: Settings, store: SqlStore, tsdb: TSDB, flink_rest: str | None = None,
                 clock=lambda: dt.datetime.now(UTC)):
        self.settings = settings
        self.store = store
        self.tsdb = tsdb
        self.flink_rest = flink_rest
        self.clock = clock
        self._stats_cache: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self._dead_letters: dict[str, tuple[float, dict[str | None, int]]] = {}

    DEAD_LETTERS_TTL_S = 30.0

    def dead_letter_counts(self, project: str) -> dict[str | None, int] | None:
        """The project's dead letters per endpoint (None: those naming none), read from its
        dead-letter stream at most every :attr:`DEAD_LETTERS_TTL_S` s; None when it cannot be read."""
        import time

        from streamdrift.connectors import dead_letters

        now = time.monotonic()
        with self._lock:
            cached = self._dead_letters.get(project)
        if cached is not None and now - cached[0] < self.DEAD_LETTERS_TTL_S:
            return cached[1]
        try:
            counts = dead_letters.counts(dead_letters.read(dataclasses.replace(self.settings, project=project),
                                                           timeout_s=2.0))
        except Exception as exc:  # noqa: BLE001 - the page still shows the rest
            log.warning("reading the dead letters of %s failed: %s", project, mask_password(str(exc)))
            return None
        with self._lock:
            self._dead_letters[project] = (now, counts)
        return counts

    # ------------------------------------------------------------------ shared reads

    def projects(self) -> list[str]:
        """Projects with endpoints in the store, and the configured one."""
        names = {e.project for e in self.store.list_endpoints(None, with_stats=False)}
        return sorted(names | {self.settings.project})

    def endpoint(self, project: str, endpoint_id: str, with_stats: bool = True) -> ModelEndpoint:
        endpoint = self.store.get_endpoint(endpoint_id)
        if endpoint is None or endpoint.project != project:
            raise NotFoundError(f"no model endpoint {endpoint_id!r} in project {project!r}: "
                                f"`streamdrift endpoints list --project {project}` lists them")
        return endpoint

    def problems(self, endpoint_id: str) -> list[dict[str, Any]]:
        """What the job recorded going wrong for an endpoint (e.g. a window the store refused), newest
        first; none from a store without that record."""
        read = getattr(self.store, "problems", None)
        return [] if read is None else read(endpoint_id)

    def _verdict_name(self, names: Iterable[str]) -> str | None:
        """The result the verdict comes from: the project's choice when the settings have one
        (``drift_verdict``: test → feature_drift, mlrun → general_drift), else feature_drift when
        written, else general_drift."""
        names = set(names)
        choice = getattr(self.settings, "drift_verdict", None)
        if choice == "mlrun" and GENERAL_DRIFT in names:
            return GENERAL_DRIFT
        for name in (FEATURE_DRIFT, GENERAL_DRIFT):
            if name in names:
                return name
        return None

    def _verdicts(self, project: str, endpoints: Sequence[ModelEndpoint]) -> dict[str, Verdict]:
        """Each endpoint's verdict: its stored ``drift_status`` when the job wrote one, else the
        status of the newest verdict result of the default application."""
        latest: dict[str, dict[str, ResultRecord]] = collections.defaultdict(dict)
        if any(e.drift_status is None for e in endpoints):
            for r in self.tsdb.latest_status(project):
                if r.application_name == DEFAULT_APP:
                    latest[r.endpoint_id][r.result_name] = r
        out = {}
        for e in endpoints:
            mine = latest.get(e.endpoint_id, {})
            name = self._verdict_name(mine)
            if e.drift_status is not None:
                chosen = GENERAL_DRIFT if getattr(self.settings, "drift_verdict", None) == "mlrun" else FEATURE_DRIFT
                out[e.endpoint_id] = Verdict(e.drift_status, e.drift_measure, chosen, e.last_window_end)
            elif name is not None:
                r = mine[name]
                out[e.endpoint_id] = Verdict(r.status, r.value, name, r.end_infer_time)
            else:
                out[e.endpoint_id] = Verdict(None, None, None, None)
        return out

    def _activations(self, project: str):
        """(configs by name, activations oldest first)."""
        configs = {c.name: c for c in self.store.list_alert_configs(project)}
        return configs, self.store.list_activations(project)

    @staticmethod
    def _open(configs, activations) -> list:
        """Activations that hold their alert: not reset, of an alert with the manual reset policy."""
        return [a for a in activations if a.reset_at is None and a.alert_name in configs
                and configs[a.alert_name].reset_policy == "manual"]

    @staticmethod
    def _of_endpoint(activations, endpoint_id: str) -> list:
        prefix = endpoint_id + "."
        return [a for a in activations if a.entity == endpoint_id or a.entity.startswith(prefix)]

    def _next_window_end(self, endpoint_id: str | None = None, staggered: bool = False) -> dt.datetime:
        """When the current window closes: on the epoch, or the endpoint's staggered one
        (``--stagger-windows``, a job flag the dashboard is not told)."""
        period_ms = self.settings.base_period_ms
        now_ms = math.floor(self.clock().timestamp() * 1000)
        return utc_from_ms(Tumbling(period_ms, staggered).start(now_ms, endpoint_id) + period_ms)

    def empty_states(self, project: str, endpoint_id: str | None = None) -> dict[str, str]:
        """What to do when there is nothing to show yet (``endpoint_id``: on that endpoint's pages)."""
        out = {
            "no_endpoint": (f"streamdrift endpoints create --project {project} --model MODEL --function FUNCTION "
                            "--reference training.parquet --outputs prediction"),
            "next_window_end": iso(self._next_window_end()),
            "base_period_minutes": self.settings.base_period,
        }
        if endpoint_id is not None:
            out["next_staggered_end"] = iso(self._next_window_end(endpoint_id, staggered=True))
        return out

    # ------------------------------------------------------------------ project overview

    def overview(self, project: str) -> dict[str, Any]:
        endpoints = self.store.list_endpoints(project, with_stats=False)
        verdicts = self._verdicts(project, endpoints)
        configs, activations = self._activations(project)
        last_end = max((e.last_window_end for e in endpoints if e.last_window_end), default=None)
        events_per_second = window = None
        if last_end is not None:
            # each endpoint's last window: with staggered windows (--stagger-windows) they end at
            # different times within the last period
            since = last_end - dt.timedelta(milliseconds=self.settings.base_period_ms - 1)
            latest: dict[str, Any] = {}
            for p in self.tsdb.query_predictions(project, start=since, end=last_end):
                if p.endpoint_id not in latest or p.end_infer_time > latest[p.endpoint_id].end_infer_time:
                    latest[p.endpoint_id] = p
            predictions = list(latest.values())
            seconds = max((_window_seconds(p.start_infer_time, p.end_infer_time) or 0 for p in predictions), default=0)
            if seconds:
                events_per_second = sum(p.events for p in predictions) / seconds
                window = {"start": iso(min(p.start_infer_time for p in predictions)), "end": iso(last_end),
                          "events": sum(p.events for p in predictions), "rows": sum(p.count for p in predictions)}
        by_status = collections.Counter(verdicts[e.endpoint_id].status for e in endpoints)
        since = self.clock() - dt.timedelta(days=1)
        dead = self.dead_letter_counts(project)
        health = None
        if self.flink_rest:
            from streamdrift.connectors.flink_rest import job_health

            health = job_health(self.flink_rest)
        return {
            "project": project,
            "endpoints": len(endpoints),
            "last_window": window,
            "events_per_second": events_per_second,
            "rows": sum(e.rows_count for e in endpoints),
            "events": sum(e.events_count for e in endpoints),
            "errors": sum(e.error_count for e in endpoints),
            "late_rows": sum(e.late_count for e in endpoints),
            "dead_letters": None if dead is None else sum(dead.values()),
            "open_alerts": len(self._open(configs, activations)),
            "activations_24h": sum(1 for a in activations if a.activated_at >= since),
            "alerts_configured": len(configs),
            "by_status": [{**status_of(s), "endpoints": by_status.get(s, 0)} for s in (2, 1, 0, -1, None)],
            "job_health": health,
            "empty": self.empty_states(project),
        }

    # ------------------------------------------------------------------ endpoints list

    ENDPOINT_SORTS = ("drift", "status", "name", "function", "version", "first_request", "last_request", "events",
                      "errors", "alerts")

    def endpoints(self, project: str, *, q: str = "", label: str = "", status: str = "", sort: str = "drift",
                  order: str = "desc", page: int = 1, per_page: int = 100, sparklines: bool = True) -> dict[str, Any]:
        """The endpoints of a project, filtered (name/id/function substring, label name, status class),
        sorted and paged; each with its verdict, open alerts and (for the page shown) a sparkline of
        the verdict's value over its last windows."""
        if sort not in self.ENDPOINT_SORTS:
            raise BadRequest(f"sort={sort!r}: use one of {', '.join(self.ENDPOINT_SORTS)}")
        if order not in ("asc", "desc"):
            raise BadRequest(f"order={order!r}: use asc or desc")
        if status and status not in {c for c, _ in STATUS.values()}:
            raise BadRequest(f"status={status!r}: use one of {', '.join(c for c, _ in STATUS.values())}")
        endpoints = self.store.list_endpoints(project, with_stats=False)
        verdicts = self._verdicts(project, endpoints)
        configs, activations = self._activations(project)
        open_by_endpoint = collections.Counter()
        for a in self._open(configs, activations):
            open_by_endpoint[a.entity.split(".", 1)[0]] += 1
        items = []
        needle, label_needle = q.strip().lower(), label.strip().lower()
        for e in endpoints:
            v = verdicts[e.endpoint_id]
            if needle and not any(needle in (s or "").lower() for s in
                                  (e.endpoint_id, e.model_name, e.function_name, e.model_version, e.function_tag)):
                continue
            if label_needle and not any(label_needle in n.lower() for n in e.label_names):
                continue
            if status and status_of(v.status)["class"] != status:
                continue
            items.append({**e.to_dict(with_stats=False), "drift": v.to_dict(),
                          "open_alerts": open_by_endpoint.get(e.endpoint_id, 0)})
        keys = {
            "drift": lambda i: (i["drift"]["value"] is not None, i["drift"]["value"] or 0.0),
            "status": lambda i: (i["drift"]["status"] is not None, i["drift"]["status"] or 0,
                                 i["drift"]["value"] or 0.0),
            "name": lambda i: (i["model_name"] or "").lower(),
            "function": lambda i: ((i["function_name"] or "").lower(), i["function_tag"] or ""),
            "version": lambda i: i["model_version"] or "",
            "first_request": lambda i: i["first_request"] or "",
            "last_request": lambda i: i["last_request"] or "",
            "events": lambda i: i["events_count"],
            "errors": lambda i: i["error_count"],
            "alerts": lambda i: i["open_alerts"],
        }
        items.sort(key=lambda i: i["endpoint_id"])
        items.sort(key=keys[sort], reverse=order == "desc")
        shown, paging = _page(items, page, per_page)
        if sparklines:
            for item in shown:
                item["sparkline"] = self._sparkline(project, item)
        return {"project": project, "endpoints": shown, "paging": paging, "total_in_project": len(endpoints),
                "filters": {"q": q, "label": label, "status": status, "sort": sort, "order": order},
                "empty": self.empty_states(project)}

    def _sparkline(self, project: str, item: Mapping[str, Any]) -> list[dict[str, Any]]:
        name, last = item["drift"]["result_name"], parse_time(item["last_window_end"], "last_window_end")
        if name is None or last is None:
            return []
        records = self.tsdb.query_results(project, item["endpoint_id"],
                                          start=last - SPARKLINE_WINDOWS * dt.timedelta(minutes=self.settings.base_period),
                                          end=last, application_name=DEFAULT_APP, result_name=name)
        return [{"t": iso(r.end_infer_time), "v": r.value, "s": r.status} for r in records[-SPARKLINE_WINDOWS:]]

    # ------------------------------------------------------------------ one endpoint: overview

    def endpoint_overview(self, project: str, endpoint_id: str) -> dict[str, Any]:
        e = self.endpoint(project, endpoint_id)
        verdict = self._verdicts(project, [e])[endpoint_id]
        last = None
        recent: list[dict[str, Any]] = []
        if e.last_window_end is not None:
            period = dt.timedelta(minutes=self.settings.base_period)
            predictions = self.tsdb.query_predictions(project, endpoint_id, start=e.last_window_end - 20 * period,
                                                      end=e.last_window_end)
            results = self.tsdb.query_results(project, endpoint_id, start=e.last_window_end - 20 * period,
                                              end=e.last_window_end, application_name=DEFAULT_APP)
            by_end = {(r.end_infer_time, r.result_name): r for r in results}
            name = verdict.result_name
            for p in reversed(predictions):
                r = by_end.get((p.end_infer_time, name))
                g = by_end.get((p.end_infer_time, GENERAL_DRIFT))
                recent.append({"start": iso(p.start_infer_time), "end": iso(p.end_infer_time), "rows": p.count,
                               "events": p.events, "errors": p.error_count,
                               "general_drift": None if g is None else g.value,
                               "verdict": status_of(None if r is None else r.status)})
            last = predictions[-1] if predictions else None
        app_errors = self.tsdb.query_errors(project, endpoint_id, start=self.clock() - dt.timedelta(days=7))
        roles = ([{"name": n, "role": "feature"} for n in e.feature_names]
                 + [{"name": n, "role": "output"} for n in e.output_names]
                 + [{"name": n, "role": "label"} for n in e.label_names])
        for column in roles:
            stats = e.feature_stats.get(column["name"])
            column["type"] = ("no statistics" if stats is None else "numeric" if "hist" in stats
                              else "categorical" if "categories" in stats else "not monitored")
        return {
            "endpoint": e.to_dict(with_stats=False),
            "verdict": verdict.to_dict(),
            "columns": roles,
            "last_window": None if last is None else {
                "start": iso(last.start_infer_time), "end": iso(last.end_infer_time), "rows": last.count,
                "events": last.events, "errors": last.error_count, "latency_mean_us": last.latency_mean_us,
                "latency_p50_us": last.latency_p50_us, "latency_p95_us": last.latency_p95_us,
                "latency_p99_us": last.latency_p99_us},
            "recent_windows": recent,
            "latest_results": [_result_dict(r) for r in self.store.latest_results(endpoint_id)],
            "latest_metrics": [{"application_name": m.application_name, "metric_name": m.metric_name,
                                "value": m.value, "end": iso(m.end_infer_time)}
                               for m in self.store.latest_metrics(endpoint_id)],
            "application_errors_7d": len(app_errors),
            "problems": [{"kind": p["kind"], "message": mask_password(p["message"]), "occurrences": p["occurrences"],
                          "first_seen": iso(p["first_seen"]), "last_seen": iso(p["last_seen"])}
                         for p in self.problems(endpoint_id)],
            "dead_letters": None if (dead := self.dead_letter_counts(project)) is None else dead.get(endpoint_id, 0),
            "empty": self.empty_states(project, endpoint_id),
        }

    # ------------------------------------------------------------------ one endpoint: features analysis

    def _windows(self, project: str, e: ModelEndpoint) -> list[dt.datetime]:
        """Window ends of the endpoint, newest first (at most :data:`WINDOW_PICKER_LIMIT`)."""
        if e.last_window_end is None:
            return []
        period = dt.timedelta(minutes=self.settings.base_period)
        predictions = self.tsdb.query_predictions(project, e.endpoint_id,
                                                  start=e.last_window_end - WINDOW_PICKER_LIMIT * period,
                                                  end=e.last_window_end)
        return [p.end_infer_time for p in reversed(predictions)][:WINDOW_PICKER_LIMIT]

    def _window_results(self, project: str, e: ModelEndpoint, end: dt.datetime) -> dict[str, ResultRecord]:
        """The default application's results of one window by name; the SQL store's latest copy
        when it is that window (its extra_data is whole; the TSDB's may be truncated)."""
        out = {r.result_name: r for r in self.tsdb.query_results(project, e.endpoint_id, start=end, end=end,
                                                                 application_name=DEFAULT_APP)}
        for r in self.store.latest_results(e.endpoint_id):
            if r.application_name == DEFAULT_APP and r.end_infer_time == end:
                out[r.result_name] = r
        return out

    def _feature_rows(self, project: str, endpoint_id: str, end: dt.datetime) -> dict[str, Any]:
        """Per-feature drift rows of the TSDB for one window (where the TSDB has them), by feature."""
        query = getattr(self.tsdb, "query_feature_drift", None)
        if query is None:
            return {}
        try:
            records = query(project, endpoint_id=endpoint_id, start=end, end=end, application_name=DEFAULT_APP)
        except NotImplementedError:
            return {}
        return {getattr(r, "feature_name", None): r for r in records}

    def window_stats(self, e: ModelEndpoint, start: dt.datetime, end: dt.datetime) -> dict[str, Any] | None:
        """The window's statistics per column (``feature_stats`` form: count, mean, std, min, max,
        hist on the reference edges) from its raw rows in Parquet, counted as the job counts them:
        rows of failed requests, and rows that came after the window closed (late), are left out, as
        they are from its results.
        None when no raw row of the window is found. Cached per (endpoint, window, reference)."""
        key = (e.endpoint_id, start, end, e.updated)
        with self._lock:
            if key in self._stats_cache:
                self._stats_cache.move_to_end(key)
                return self._stats_cache[key]
        import numpy as np

        from streamdrift.udfs.accumulator import Accumulator

        frame = self._raw_rows(e, start, end)
        if not len(frame) or not e.feature_stats:
            stats = None
        else:
            frame = frame[~frame["late"].astype(bool) & ~frame["error"].astype(bool)]
            acc = Accumulator.from_reference(e.feature_stats)
            numeric = {n: np.asarray(frame[n], dtype=float) if n in frame else np.full(len(frame), np.nan)
                       for n in acc.numeric_columns}
            categorical = {n: frame[n].tolist() if n in frame else [None] * len(frame) for n in acc.categorical_columns}
            acc.add_batch(numeric, categorical)
            stats = {"rows": int(len(frame)), "columns": acc.to_stats()}
        with self._lock:
            self._stats_cache[key] = stats
            while len(self._stats_cache) > 32:
                self._stats_cache.popitem(last=False)
        return stats

    def _raw_rows(self, e: ModelEndpoint, start: dt.datetime, end: dt.datetime):
        """The window's raw rows (:func:`streamdrift.connectors.raw_rows.read_window_rows`), named as the job names them."""
        from streamdrift.connectors.raw_rows import read_window_rows
        from streamdrift.udfs.events import row_columns

        columns = row_columns({"feature_names": e.feature_names, "output_names": e.output_names})
        return read_window_rows(self.settings.parquet_path, e.endpoint_id, start, end, lambda _: columns)

    def features(self, project: str, endpoint_id: str, *, window: dt.datetime | None = None, q: str = "",
                 sort: str = "drift", page: int = 1, per_page: int = 100, with_rows: bool = True) -> dict[str, Any]:
        """Features analysis of one window (default the newest): per column the expected (reference)
        and actual (window) count, mean, std, min and max, TVD, Hellinger, KLD, the per-feature test's
        p-value and verdict, both histograms; most drifted first; unmonitored columns with the reason."""
        if sort not in FEATURE_SORT_KEYS:
            raise BadRequest(f"sort={sort!r}: use one of {', '.join(FEATURE_SORT_KEYS)}")
        e = self.endpoint(project, endpoint_id)
        windows = self._windows(project, e)
        chosen = window or (windows[0] if windows else None)
        out: dict[str, Any] = {"endpoint": e.to_dict(with_stats=False), "windows": [iso(w) for w in windows],
                               "window": None, "columns": [], "unmonitored": [], "paging": _page([], 1, per_page)[1],
                               "notes": [], "filters": {"q": q, "sort": sort}, "column_verdict": None,
                               "empty": self.empty_states(project, endpoint_id)}
        if chosen is None:
            return out
        results = self._window_results(project, e, chosen)
        general, verdict_test = results.get(GENERAL_DRIFT), results.get(FEATURE_DRIFT)
        if not results and chosen not in windows:
            raise NotFoundError(f"endpoint {endpoint_id!r} has no results for the window ending {iso(chosen)}")
        start = next((r.start_infer_time for r in results.values()),
                     chosen - dt.timedelta(minutes=self.settings.base_period))
        rows = next((p.count for p in self.tsdb.query_predictions(project, endpoint_id, start=chosen, end=chosen)), None)
        g_extra = general.extra_data if general is not None else {}
        t_extra = verdict_test.extra_data if verdict_test is not None else {}
        for name, extra in ((GENERAL_DRIFT, g_extra), (FEATURE_DRIFT, t_extra)):
            if extra.get("truncated"):
                out["notes"].append(f"{name}'s per-column details of this window were larger than the TSDB keeps "
                                    f"({extra.get('bytes')} bytes); the newest window always has them whole")
        g_cols, t_cols = g_extra.get("columns") or {}, t_extra.get("columns") or {}
        per_feature = self._feature_rows(project, endpoint_id, chosen)
        p_values = {name: (t_cols.get(name) or {}).get("p_value") for name in t_cols}
        for name, record in per_feature.items():
            if getattr(record, "p_value", None) is not None:
                p_values[name] = record.p_value
        q_values = adjusted_p_values(p_values)
        out["column_verdict"] = ("test" if q_values or any(getattr(f, "rejected", None) is not None
                                                           for f in per_feature.values()) else "thresholds")
        actual = None
        if with_rows and (rows is None or rows <= ROWS_STATS_LIMIT):
            try:
                actual = self.window_stats(e, start, chosen)
            except (OSError, ValueError) as exc:
                out["notes"].append(f"the raw rows of this window could not be read ({type(exc).__name__})")
        if actual is None:
            out["notes"].append("window statistics (mean, std, min, max, histogram) come from the raw rows in "
                                "Parquet, which hold no row of this window here")
        skipped = dict(g_extra.get("skipped") or {})
        for name in g_extra.get("missing_in_window") or []:
            skipped.setdefault(name, "not in the window")
        for name in g_extra.get("missing_in_reference") or []:
            skipped.setdefault(name, "not in the reference statistics")
        columns = []
        for name in [*e.feature_names, *e.output_names,
                     *[n for n in e.feature_stats if n not in e.feature_names and n not in e.output_names]]:
            ref = e.feature_stats.get(name)
            g, t, f = g_cols.get(name), t_cols.get(name), per_feature.get(name)
            monitorable = ref is not None and ("hist" in ref or "categories" in ref)
            if monitorable and (g is not None or t is not None or f is not None):
                win = (actual or {}).get("columns", {}).get(name)
                columns.append(self._column(name, ref, win, g, t, f, q_values.get(name)))
            elif results or not monitorable:
                out["unmonitored"].append({"name": name, "reason": _unmonitored_reason(name, ref, skipped)})
        needle = q.strip().lower()
        if needle:
            columns = [c for c in columns if needle in c["name"].lower()]
        columns.sort(key=FEATURE_SORT_KEYS[sort])
        shown, out["paging"] = _page(columns, page, per_page)
        out["columns"] = shown
        at = windows.index(chosen) if chosen in windows else None
        out["window"] = {
            "start": iso(start), "end": iso(chosen), "rows": rows,
            "rows_read": None if actual is None else actual["rows"],
            "general_drift": None if general is None else _result_dict(general),
            "feature_drift": None if verdict_test is None else _result_dict(verdict_test),
            "index": at,
            "newer": iso(windows[at - 1]) if at is not None and at > 0 else None,
            "older": iso(windows[at + 1]) if at is not None and at + 1 < len(windows) else None,
        }
        return out

    @staticmethod
    def _column(name: str, ref: Mapping[str, Any], win: Mapping[str, Any] | None, g: Mapping[str, Any] | None,
                t: Mapping[str, Any] | None, f: Any, q_value: float | None) -> dict[str, Any]:
        """One row of Features analysis (see :meth:`features`): ``g`` general_drift's entry of the
        column, ``t`` feature_drift's, ``f`` the TSDB's per-feature row, ``q_value`` the column's
        Benjamini-Hochberg adjusted p-value (None without a test)."""

        def pick(key: str, *sources):
            for source in sources:
                if source is None:
                    continue
                value = source.get(key) if isinstance(source, Mapping) else getattr(source, key, None)
                if value is not None:
                    return value
            return None

        categorical = "categories" in ref
        tvd, hel, kld = (_finite(pick(k, f, g)) for k in ("tvd", "hellinger", "kld"))
        drift = _finite(pick("drift", g))
        if drift is None and tvd is not None and hel is not None:
            drift = (tvd + hel) / 2
        p_value = _finite(pick("p_value", f, t))
        rejected = pick("rejected", f, t)
        if rejected is not None or q_value is not None:  # the per-feature test decides
            status = column_status(bool(rejected), q_value)
        else:  # MLRun's thresholds on the column's (TVD + Hellinger) / 2
            status = pick("status", g)
        expected = {k: _finite(ref.get(k)) for k in ("count", "mean", "std", "min", "max")}
        actual = {k: _finite((win or {}).get(k)) for k in ("count", "mean", "std", "min", "max")}
        if actual["count"] is None:
            actual["count"] = _finite(pick("window_count", f, g)) or _finite(pick("n", t))
        ref_counts, labels = _reference_counts(ref)
        win_counts = _window_counts(win, categorical)
        return {
            "name": name, "kind": "categorical" if categorical else "numeric",
            "expected": expected, "actual": actual,
            "tvd": tvd, "hellinger": hel, "kld": kld, "drift": drift,
            "p_value": p_value, "q_value": q_value, "rejected": rejected,
            "effect_size": _finite(pick("effect_size", f) if f is not None else pick("effect", t)),
            "status": status_of(status),
            "histogram": {"reference": ref_counts, "window": win_counts, "labels": labels},
        }

    # ------------------------------------------------------------------ one endpoint: metrics

    def time_range(self, preset: str | None, start: str | None, end: str | None) -> tuple[str, dt.datetime | None,
                                                                                          dt.datetime | None]:
        """(preset, start, end) of a Metrics view: hour, day, week, month (ending now), all, or custom."""
        preset = preset or (("custom" if start or end else DEFAULT_RANGE))
        if preset == "all":
            return preset, None, None
        if preset == "custom":
            s, t = parse_time(start, "start"), parse_time(end, "end")
            if s is None and t is None:
                raise BadRequest("a custom range needs start and/or end (ISO 8601 or epoch ms)")
            if s is not None and t is not None and s > t:
                raise BadRequest(f"start {iso(s)} is after end {iso(t)}")
            return preset, s, t
        if preset not in RANGES:
            raise BadRequest(f"range={preset!r}: use hour, day, week, month, all or custom")
        now = self.clock()
        return preset, now - RANGES[preset], now

    def _thresholds(self, project: str) -> dict[str, Any]:
        from streamdrift.connectors.app_registry import list_registered

        thresholds = dict(GENERAL_DRIFT_THRESHOLDS)
        for app in list_registered(self.store, project):
            if app.name == DEFAULT_APP:
                for key in thresholds:
                    if _finite(app.params.get(key)) is not None:
                        thresholds[key] = float(app.params[key])
        return thresholds

    def metrics(self, project: str, endpoint_id: str, *, preset: str | None = None, start: str | None = None,
                end: str | None = None) -> dict[str, Any]:
        """Results and metrics of an endpoint in a time range, grouped by application: per series the
        points (window end, value, status), the worst status with its time and value, the threshold
        lines, and the alert activations of the endpoint in the range."""
        e = self.endpoint(project, endpoint_id, with_stats=False)
        preset, t0, t1 = self.time_range(preset, start, end)
        results = self.tsdb.query_results(project, endpoint_id, start=t0, end=t1)
        metrics = self.tsdb.query_metrics(project, endpoint_id, start=t0, end=t1)
        apps: dict[str, dict[str, Any]] = collections.defaultdict(lambda: {"results": {}, "metrics": {}})
        general_thresholds = self._thresholds(project)
        for r in results:
            series = apps[r.application_name]["results"].setdefault(r.result_name, {
                "name": r.result_name, "kind": r.kind, "kind_name": KIND_NAMES.get(r.kind, str(r.kind)),
                "points": [], "thresholds": []})
            point = {"t": iso(r.end_infer_time), "start": iso(r.start_infer_time), "v": r.value, "s": r.status,
                     "c": status_of(r.status)["class"]}
            if r.application_name == DEFAULT_APP and r.result_name == FEATURE_DRIFT:
                point["q"] = smallest_adjusted_p(r.extra_data)
            series["points"].append(point)
        for m in metrics:
            series = apps[m.application_name]["metrics"].setdefault(m.metric_name, {"name": m.metric_name, "points": []})
            series["points"].append({"t": iso(m.end_infer_time), "start": iso(m.start_infer_time), "v": m.value})
        for app_name, app in apps.items():
            for series in app["results"].values():
                if app_name == DEFAULT_APP and series["name"] == GENERAL_DRIFT:
                    series["thresholds"] = [{"value": general_thresholds["potential"], **status_of(1)},
                                            {"value": general_thresholds["detected"], **status_of(2)}]
                elif app_name == DEFAULT_APP and series["name"] == FEATURE_DRIFT:
                    series["levels"] = [{"fdr": FEATURE_DRIFT_LEVELS["potential"], **status_of(1)},
                                        {"fdr": FEATURE_DRIFT_LEVELS["detected"], **status_of(2)}]
                worst = max(series["points"], key=lambda p: (p["s"] if p["s"] is not None else -2, p["t"]))
                series["worst"] = {**status_of(worst["s"]), "time": worst["t"], "value": worst["v"]}
                series["latest"] = series["points"][-1]
        configs, activations = self._activations(project)
        mine = [a for a in self._of_endpoint(activations, endpoint_id)
                if (t0 is None or (a.window_end or a.activated_at) >= t0)
                and (t1 is None or (a.window_end or a.activated_at) <= t1)]
        return {
            "endpoint": e.to_dict(with_stats=False),
            "range": {"preset": preset, "start": iso(t0), "end": iso(t1)},
            "applications": [{"name": name, "results": list(app["results"].values()),
                              "metrics": list(app["metrics"].values())}
                             for name, app in sorted(apps.items(), key=lambda kv: (kv[0] != DEFAULT_APP, kv[0]))],
            "activations": [{"id": a.id, "alert_name": a.alert_name, "entity": a.entity, "event_kind": a.event_kind,
                             "severity": a.severity, "value": a.value, "window_end": iso(a.window_end),
                             "activated_at": iso(a.activated_at), "open": a in self._open(configs, [a])}
                            for a in mine],
            "status_colors": STATUS_COLORS,
            "last_window_end": iso(e.last_window_end),
            "empty": self.empty_states(project, endpoint_id),
        }

    # ------------------------------------------------------------------ window drill-down

    def window(self, project: str, endpoint_id: str, end: dt.datetime, *, page: int = 1,
               per_page: int = 100) -> dict[str, Any]:
        """One window: its counters, every application's results and metrics, its columns most
        drifted first, and its raw rows from Parquet (those columns first)."""
        e = self.endpoint(project, endpoint_id)
        prediction = next(iter(self.tsdb.query_predictions(project, endpoint_id, start=end, end=end)), None)
        results = self.tsdb.query_results(project, endpoint_id, start=end, end=end)
        metrics = self.tsdb.query_metrics(project, endpoint_id, start=end, end=end)
        if prediction is None and not results:
            raise NotFoundError(f"endpoint {endpoint_id!r} has no window ending {iso(end)}")
        start = prediction.start_infer_time if prediction else results[0].start_infer_time
        analysis = self.features(project, endpoint_id, window=end, per_page=10_000, with_rows=False)
        order = [c["name"] for c in analysis["columns"]]
        rows_info: dict[str, Any] = {"available": False, "columns": [], "rows": [], "paging": _page([], 1, per_page)[1]}
        try:
            frame = self._raw_rows(e, start, end)
        except (OSError, ValueError) as exc:
            frame, rows_info["error"] = None, f"the raw rows could not be read ({type(exc).__name__})"
        if frame is not None and len(frame):
            data_columns = [c for c in frame.columns if c not in ("timestamp", "request_id", "latency_us", "error", "late")]
            ordered = [c for c in order if c in data_columns] + [c for c in data_columns if c not in order]
            columns = ["timestamp", "request_id", *ordered, "latency_us", "error", "late"]
            records = frame[columns].to_dict("records")
            shown, paging = _page(records, page, per_page)
            rows_info = {"available": True, "columns": columns, "paging": paging, "late_rows": int(frame["late"].sum()),
                         "rows": [[_cell(r[c]) for c in columns] for r in shown]}
        return {
            "endpoint": e.to_dict(with_stats=False),
            "window": {"start": iso(start), "end": iso(end),
                       "rows": None if prediction is None else prediction.count,
                       "events": None if prediction is None else prediction.events,
                       "errors": None if prediction is None else prediction.error_count,
                       "latency_p50_us": None if prediction is None else prediction.latency_p50_us,
                       "latency_p95_us": None if prediction is None else prediction.latency_p95_us,
                       "latency_p99_us": None if prediction is None else prediction.latency_p99_us},
            "results": [_result_dict(r) for r in results],
            "metrics": [{"application_name": m.application_name, "metric_name": m.metric_name, "value": m.value}
                        for m in metrics],
            "drifted_columns": [{k: c[k] for k in ("name", "tvd", "hellinger", "kld", "drift", "p_value", "status")}
                                for c in analysis["columns"]],
            "raw_rows": rows_info,
            "sample_note": ("the job keeps a uniform sample of each window in its state for the applications "
                            "(sample_df); it is not stored: the rows below are the window's raw rows from Parquet"),
        }

    # ------------------------------------------------------------------ alerts

    def alerts(self, project: str, endpoint_id: str | None = None, limit: int = 200) -> dict[str, Any]:
        """Alert configurations (URLs masked) and their newest activations; with ``endpoint_id`` only
        those whose entities can match the endpoint and its activations."""
        from streamdrift.connectors.alert_records import activation_dict, alerts_json

        configs = alerts_json(self.store, project)
        _, activations = self._activations(project)
        if endpoint_id is not None:
            self.endpoint(project, endpoint_id, with_stats=False)
            configs = [c for c in configs if _entities_match(c["entities"], endpoint_id)]
            activations = self._of_endpoint(activations, endpoint_id)
        return {"project": project, "endpoint_id": endpoint_id, "configs": configs,
                "activations": [{**activation_dict(a), "alert_name": a.alert_name} for a in reversed(activations[-limit:])],
                "activations_total": len(activations)}

    # ------------------------------------------------------------------ applications

    def applications(self, project: str, days: int = 30) -> dict[str, Any]:
        """The applications of a project (the built-in one included), enabled or not, when each last
        wrote a result or reported a failure, and its ``mm-app-failed`` errors of the last ``days``."""
        from streamdrift.connectors.app_registry import list_registered

        since = self.clock() - dt.timedelta(days=days)
        last_run: dict[str, dt.datetime] = {}
        for r in self.tsdb.latest_status(project):
            last_run[r.application_name] = max(last_run.get(r.application_name, r.end_infer_time), r.end_infer_time)
        failures: dict[str, list] = collections.defaultdict(list)
        for err in self.tsdb.query_errors(project, start=since, error_type=APP_FAILED):
            failures[err.application_name].append(err)
        apps = []
        for app in list_registered(self.store, project):
            mine = failures.pop(app.name, [])
            when = max([t for t in (last_run.get(app.name), mine[-1].time if mine else None) if t], default=None)
            apps.append({**app.to_dict(), "params": masked_params(app.params), "last_run": iso(when),
                         "failures": len(mine), "last_failure": None if not mine else {
                             "time": iso(mine[-1].time), "endpoint_id": mine[-1].endpoint_id,
                             "message": mask_password(mine[-1].message)}})
        for name, mine in sorted(failures.items()):  # failing under a name that is not registered (any more)
            apps.append({"name": name, "class_path": None, "params": {}, "enabled": None, "builtin": False,
                         "registered": False, "last_run": iso(mine[-1].time), "failures": len(mine),
                         "last_failure": {"time": iso(mine[-1].time), "endpoint_id": mine[-1].endpoint_id,
                                          "message": mask_password(mine[-1].message)}})
        return {"project": project, "applications": apps, "failures_since": iso(since)}


# --------------------------------------------------------------------------------- helpers


def _entities_match(entities: Any, endpoint_id: str) -> bool:
    """Whether an alert's entity patterns can match results of ``endpoint_id`` (as streamdrift.udfs.alerts does:
    ``*``, the id itself, or a pattern of ``<endpoint_id>.<app>.result.<name>``)."""
    patterns = [entities] if isinstance(entities, str) else list(entities or [])
    for p in patterns:
        p = str(p)
        if p in ("*", endpoint_id) or fnmatch.fnmatchcase(endpoint_id, p.split(".", 1)[0]):
            return True
    return False


def adjusted_p_values(p_values: Mapping[str, float | None]) -> dict[str, float]:
    """Benjamini-Hochberg adjusted p-values (q-values) of the columns that have a p-value: a column
    is rejected at FDR α exactly when its q-value is ≤ α (:func:`scipy.stats.false_discovery_control`)."""
    tested = {name: float(p) for name, p in p_values.items() if _finite(p) is not None and 0 <= p <= 1}
    if not tested:
        return {}
    from scipy.stats import false_discovery_control

    return dict(zip(tested, (float(q) for q in false_discovery_control(list(tested.values()), method="bh"))))


def column_status(rejected: bool, q_value: float | None) -> int:
    """A column's verdict: detected (2) when its q-value is ≤ the detected level (FDR 0.1 %),
    potential (1) when rejected at FDR 1 % (q ≤ 0.01), else no detection (0)."""
    if q_value is not None and q_value <= FEATURE_DRIFT_LEVELS["detected"]:
        return 2
    if rejected or (q_value is not None and q_value <= FEATURE_DRIFT_LEVELS["potential"]):
        return 1
    return 0


def smallest_adjusted_p(extra: Mapping[str, Any]) -> float | None:
    """The smallest Benjamini-Hochberg adjusted p-value over a verdict's columns: the window is
    potential at FDR 1 % when it is ≤ 0.01, detected at 0.1 % when ≤ 0.001 (before the effect floor).
    The result's own figure when it gives one, else adjusted here from the columns' p-values
    (:func:`scipy.stats.false_discovery_control`); None without p-values."""
    for key in ("min_q_value", "q_min", "min_adjusted_p_value"):
        if _finite(extra.get(key)) is not None:
            return float(extra[key])
    columns = extra.get("columns") or {}
    q_values = adjusted_p_values({name: c.get("p_value") for name, c in columns.items() if isinstance(c, Mapping)})
    return min(q_values.values()) if q_values else None


#: orders of Features analysis: most drifted first (status, then (TVD + Hellinger) / 2), or one measure
FEATURE_SORT_KEYS = {
    "drift": lambda c: (-(c["status"]["status"] if c["status"]["status"] is not None else -2), -(c["drift"] or 0.0),
                        c["name"]),
    "tvd": lambda c: (-(c["tvd"] or 0.0), c["name"]),
    "hellinger": lambda c: (-(c["hellinger"] or 0.0), c["name"]),
    "kld": lambda c: (-(c["kld"] or 0.0), c["name"]),
    "p_value": lambda c: (c["p_value"] if c["p_value"] is not None else 2.0, c["name"]),
    "name": lambda c: c["name"].lower(),
}


def _unmonitored_reason(name: str, ref: Mapping[str, Any] | None, skipped: Mapping[str, str]) -> str:
    """Why a column has no drift in a window: the application's reason, else what its reference lacks."""
    if name in skipped:
        return skipped[name]
    if ref is None:
        return "no statistics in the reference"
    if "hist" not in ref and "categories" not in ref:
        return "no histogram in the reference (unsupported type or no values)"
    return "not compared in this window"


def _reference_counts(ref: Mapping[str, Any]) -> tuple[list[float], list[str]]:
    """The reference histogram's counts and bin labels (numeric: the padded bins; categorical:
    the categories and ``other``)."""
    if "categories" in ref:
        return ([float(c) for c in ref.get("category_counts", [])] + [float(ref.get("other_count", 0))],
                [str(c) for c in ref.get("categories", [])] + ["other"])
    from streamdrift.udfs.reference import pad_hist

    counts, edges = pad_hist(ref["hist"][0], ref["hist"][1])
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        labels.append(f"< {hi:.4g}" if lo < -1e300 else f"> {lo:.4g}" if hi > 1e300 else f"{lo:.4g} – {hi:.4g}")
    return [float(c) for c in counts], labels


def _window_counts(win: Mapping[str, Any] | None, categorical: bool) -> list[float] | None:
    if not win:
        return None
    if categorical:
        return [float(c) for c in win.get("category_counts", [])] + [float(win.get("other_count", 0))]
    return [float(c) for c in win["hist"][0]]


def _cell(value: Any) -> Any:
    """A raw-row value as JSON can hold it."""
    if hasattr(value, "isoformat"):
        return iso(value.to_pydatetime() if hasattr(value, "to_pydatetime") else value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


__all__ = ["Dashboard", "BadRequest", "Verdict", "iso", "parse_time", "status_of", "masked_params", "positive_int",
           "STATUS", "STATUS_COLORS", "GENERAL_DRIFT_THRESHOLDS", "FEATURE_DRIFT_LEVELS", "RANGES"]
