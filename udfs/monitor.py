"""One closed window of one endpoint → the records the writer stores (pure, no Flink, no I/O).

Applications are isolated from the job and from each other (:func:`monitor_window`): one that
raises, returns garbage, runs past its timeout, or is still stuck in an earlier call gives an
``mm-app-failed`` error record for itself and the endpoint, and the others go on.

Timeouts. The job calls each ``do_tracking`` through
:func:`streamdrift.operators.app_calls.call_with_timeout` (a worker thread, waited for at most the
application's ``timeout_seconds``; a call that times out is reported here as ``mm-app-failed``);
:func:`monitor_window` itself only takes how to call (``call``), by default in this thread.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamdrift.udfs.applications import (
    HISTOGRAM_DATA_DRIFT,
    HistogramDataDriftApplication,
    ModelMonitoringApplicationBase,
    MonitoringApplicationContext,
    app_name,
    app_timeout,
    normalise_output,
)
from streamdrift.udfs.histogram_drift import window_feature_drift
from streamdrift.udfs.records import (
    ErrorRecord,
    FeatureDriftRecord,
    FeatureDriftRows,
    MetricRecord,
    PredictionRecord,
    ResultRecord,
    record_from_json,
    APPLICATION_NAME_PATTERN,
    NAME_LENGTH,
    record_to_json,
    utc_from_ms,
)
from streamdrift.udfs.window import Sample, WindowAggregate

log = logging.getLogger("streamdrift.applications")

APP_FAILED = "mm-app-failed"
MAX_MESSAGE = 2000


@dataclasses.dataclass(frozen=True)
class WindowOutput:
    """Everything one closed (or corrected) window produces (:func:`monitor_window` makes it)."""

    project: str
    endpoint_id: str
    start_ms: int
    end_ms: int
    revision: int  # 0 = first result, 1.. = corrections by late data
    late_rows: int  # rows that arrived after the allowed lateness (counted, not in the window)
    prediction: PredictionRecord | None
    results: tuple[ResultRecord, ...] = ()
    metrics: tuple[MetricRecord, ...] = ()
    errors: tuple[ErrorRecord, ...] = ()
    # per-feature rows of the default application: records, or its batch's FeatureDriftRows (values; records when read)
    feature_drift: tuple[FeatureDriftRecord, ...] | FeatureDriftRows = ()
    fired_ms: int | None = None  # wall clock (epoch ms) when the window stage fired the window


_RECORD_FIELDS = ("results", "metrics", "errors", "feature_drift")


def window_output_to_json(out: WindowOutput) -> dict[str, Any]:
    """``out`` as a JSON-ready dict (records by :func:`streamdrift.udfs.records.record_to_json`): what a dead
    letter of the writer carries, so that the window can be written later as it would have been.

    >>> out = window_failed('p', 'ep1', 1_764_158_400_000, 1_764_158_460_000, 0, ValueError('boom'))
    >>> data = window_output_to_json(out)
    >>> data['errors'][0]['message'], window_output_from_json(data) == out
    ('ValueError: boom', True)
    """
    data = {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
    data["prediction"] = None if out.prediction is None else record_to_json(out.prediction)
    for name in _RECORD_FIELDS:
        data[name] = [record_to_json(r) for r in getattr(out, name)]
    return data


def window_output_from_json(data: Mapping[str, Any]) -> WindowOutput:
    """The :class:`WindowOutput` of :func:`window_output_to_json` (see its example).

    >>> out = WindowOutput('p', 'ep1', 0, 60_000, 1, 3, None)
    >>> window_output_from_json(window_output_to_json(out)) == out
    True
    """
    fields = dict(data)
    fields["prediction"] = None if data.get("prediction") is None else record_from_json(data["prediction"])
    for name in _RECORD_FIELDS:
        fields[name] = tuple(record_from_json(r) for r in data.get(name) or ())
    return WindowOutput(**{f.name: fields[f.name] for f in dataclasses.fields(WindowOutput) if f.name in fields})


WINDOW_OUTPUT = "window-output"
"""The ``kind`` of a dead letter that holds a window's records a store refused."""


def window_dead_letter(out: WindowOutput, reason: str) -> str:
    """The dead letter (JSON) of a window whose records a store refused for good: the reason, the
    window, and everything it would have written (``streamdrift dead-letters replay`` writes it).

    >>> import json
    >>> letter = json.loads(window_dead_letter(WindowOutput('p', 'ep1', 0, 60_000, 0, 0, None), 'table full'))
    >>> letter['kind'], letter['reason'], letter['window_end_ms'], letter['output']['endpoint_id']
    ('window-output', 'table full', 60000, 'ep1')
    """
    import json

    return json.dumps({"kind": WINDOW_OUTPUT, "reason": reason, "endpoint_id": out.endpoint_id,
                       "window_start_ms": out.start_ms, "window_end_ms": out.end_ms,
                       "output": window_output_to_json(out)}, default=str)


def prediction_record(project: str, endpoint_id: str, start_ms: int, end_ms: int, agg: WindowAggregate) -> PredictionRecord:
    """The window's prediction aggregate: rows, events, errors, latency (mean and quantiles from
    the log histogram, µs), first and last request time.

    >>> agg = WindowAggregate(rows=4, events=2, errors=1, latency_count=2, latency_sum=1800.0)
    >>> record = prediction_record('p', 'ep1', 1_764_158_400_000, 1_764_158_460_000, agg)
    >>> record.count, record.events, record.error_count, record.latency_mean_us, str(record.end_infer_time)
    (4, 2, 1, 900.0, '2025-11-26 12:01:00+00:00')
    """
    p50, p95, p99 = agg.latency_quantiles((0.5, 0.95, 0.99))
    return PredictionRecord(
        project=project, endpoint_id=endpoint_id, start_infer_time=utc_from_ms(start_ms),
        end_infer_time=utc_from_ms(end_ms), count=agg.rows, events=agg.events, error_count=agg.errors,
        latency_count=agg.latency_count, latency_mean_us=agg.latency_mean,
        latency_p50_us=p50, latency_p95_us=p95, latency_p99_us=p99,
        first_request=None if agg.first_ms is None else utc_from_ms(agg.first_ms),
        last_request=None if agg.last_ms is None else utc_from_ms(agg.last_ms),
        estimated_count=agg.estimated_rows)


WINDOW_FAILED = "mm-window-failed"
JOB_APPLICATION = "streamdrift"
"""The application name of errors of the job itself (not of a monitoring application)."""


def window_failed(project: str, endpoint_id: str, start_ms: int, end_ms: int, revision: int,
                  exc: BaseException) -> WindowOutput:
    """The output of a window whose processing raised: one ``mm-window-failed`` error record with
    the exception, so the window is visible (and alertable) instead of stopping the job.

    >>> out = window_failed('p', 'ep1', 0, 60_000, -1, KeyError('x'))
    >>> out.revision, [(e.application_name, e.error_type, e.message) for e in out.errors]
    (0, [('streamdrift', 'mm-window-failed', "KeyError: 'x'")])
    """
    message = f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE]
    error = ErrorRecord(project, endpoint_id, JOB_APPLICATION, WINDOW_FAILED, message, utc_from_ms(end_ms))
    return WindowOutput(project, endpoint_id, start_ms, end_ms, max(revision, 0), 0, None, errors=(error,))


# --------------------------------------------------------------------------- isolation


class ApplicationCallError(Exception):
    """Raised by the caller of an application (not by the application): a call that timed out, or
    one refused while an earlier call is stuck. Its message is reported as it is."""


AppCall = Callable[[str, Callable[[], Any], "float | None", str], Any]
"""How :func:`monitor_window` calls an application: ``call(name, fn, timeout_seconds, where)``
returns ``fn()`` or raises. The job's is :func:`streamdrift.operators.app_calls.call_with_timeout`."""


def call_directly(name: str, fn: Callable[[], Any], timeout: float | None, where: str = "") -> Any:
    """``fn()`` in this thread, without a timeout. A ``SystemExit`` or ``KeyboardInterrupt`` from the
    application is its failure (a RuntimeError), not the caller's.

    >>> call_directly("app", lambda: 42, 5.0)
    42
    """
    try:
        return fn()
    except Exception:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... from an app
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


def _record_name(name: str) -> str:
    """An application name the stores accept, for the error record of an app whose name they refuse."""
    if APPLICATION_NAME_PATTERN.fullmatch(name or "") and len(name) <= NAME_LENGTH:
        return name
    fixed = re.sub(r"[^a-zA-Z0-9_-]", "_", name or "app")[:NAME_LENGTH]
    return fixed if re.match(r"[a-zA-Z_]", fixed) else ("_" + fixed)[:NAME_LENGTH]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApplicationCallError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- the window


def monitor_window(
    endpoint: Mapping[str, Any] | None,
    endpoint_id: str,
    default_project: str,
    start_ms: int,
    end_ms: int,
    agg: WindowAggregate,
    apps: Sequence[ModelMonitoringApplicationBase],
    revision: int = 0,
    *,
    reference_sample_loader: Callable[[str, Mapping[str, Any]], Any] | None = None,
    artifacts_dir: str | None = None,
    call: AppCall = call_directly,
) -> WindowOutput:
    """Run every application on the window, one after the other, each through ``call`` (the job's
    runs it within its timeout: :func:`streamdrift.operators.app_calls.call_with_timeout`).

    An application that raises, returns garbage, times out or is still stuck in an earlier call
    gives an ``mm-app-failed`` error record (application name, endpoint, window end, the reason)
    and the others go on. Without a reference (no endpoint record, or no feature_stats) only the
    prediction aggregate is produced.

    ``reference_sample_loader(endpoint_id, endpoint)`` and ``artifacts_dir`` reach the contexts
    (``reference_sample_df``, ``artifact_path``); an application's own ``reference_sample_loader``
    and ``artifacts_dir`` attributes (set by :mod:`streamdrift.connectors.app_registry`) take precedence.

    Examples
    --------
    A window of 4 rows, 1 in [0, 1) and 3 in [1, 2], against a reference of 2 and 2; the default
    application and one that raises:

    >>> from streamdrift.udfs.events import decode
    >>> from streamdrift.udfs.accumulator import Layout
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> agg = WindowAggregate()
    >>> agg.add_events([decode('{"endpoint_id": "ep1", "timestamp": 1764158400, "latency_us": 900,'
    ...                        ' "inputs": [{"x": 0.5}, {"x": 1.5}, {"x": 1.5}, {"x": 1.5}]}')],
    ...                Layout.from_feature_stats(stats))
    >>> from streamdrift.udfs.applications import HistogramDataDriftApplication
    >>> class Broken(ModelMonitoringApplicationBase):
    ...     def do_tracking(self, monitoring_context):
    ...         raise ValueError('boom')
    >>> logging.disable(logging.WARNING)
    >>> out = monitor_window({'endpoint_id': 'ep1', 'project': 'p', 'feature_stats': stats}, 'ep1', 'default',
    ...                      1_764_158_400_000, 1_764_158_460_000, agg, [HistogramDataDriftApplication(), Broken()])
    >>> logging.disable(logging.NOTSET)
    >>> [(r.result_name, r.status) for r in out.results]
    [('general_drift', 0), ('feature_drift', 0)]
    >>> {m.metric_name: m.value for m in out.metrics}['tvd_mean']  # (|1/4 - 1/2| + |3/4 - 1/2|) / 2
    0.25
    >>> [(e.application_name, e.error_type, e.message) for e in out.errors]  # the others went on
    [('Broken', 'mm-app-failed', 'ValueError: boom')]
    >>> out.prediction.count, [f.feature_name for f in out.feature_drift]
    (4, ['x'])
    """
    project = (endpoint or {}).get("project") or default_project
    prediction = prediction_record(project, endpoint_id, start_ms, end_ms, agg)
    feature_stats = (endpoint or {}).get("feature_stats") or {}
    # no reference (yet), or monitoring disabled: the window is counted, its rows kept raw, no drift
    if not feature_stats or agg.accumulator is None or (endpoint or {}).get("monitoring_mode") == "disabled":
        return WindowOutput(project, endpoint_id, start_ms, end_ms, revision, 0, prediction)
    start, end = utc_from_ms(start_ms), utc_from_ms(end_ms)
    results: list[ResultRecord] = []
    metrics: list[MetricRecord] = []
    errors: list[ErrorRecord] = []
    shared: dict[str, Any] = {}

    def stats():
        if "stats" not in shared:
            shared["stats"] = agg.window_stats()
        return copy.deepcopy(shared["stats"])

    def sample():
        if "sample" not in shared:
            shared["sample"] = agg.sample_frame()
        return shared["sample"].copy()

    def window():
        return agg + WindowAggregate(sample=Sample.empty(0))  # a copy

    def shared_stats():
        stats()
        return shared["stats"]

    where = f"endpoint {endpoint_id} window {start.isoformat()}/{end.isoformat()}"
    # the per-feature rows of the application named histogram-data-drift (window_feature_drift),
    # when it is the built-in one and made them with its records
    feature_rows: Sequence[FeatureDriftRecord] | None = None
    named = 0
    for app in apps:
        name = app_name(app)
        # each app gets its own copies: the endpoint record is the catalog's cache, and what one
        # app changes in place must reach neither the next app nor the next window; the built-in
        # ones share them (copying was a fifth of the stage's time at 20 features)
        built_in = type(app) in BUILT_IN_APPLICATIONS
        try:
            # the built-in one makes its records itself: no context, and no result objects turned
            # into records (half of its time per window, which it does in batches otherwise); what
            # the context and the call below would refuse sends it that way, to fail there
            made = None
            if built_in:
                list(endpoint.get("feature_names") or []), list(endpoint.get("label_names") or []), app_timeout(app)
                made = app.window_records(project, endpoint_id, name, start, end, feature_stats, agg,
                                          feature_rows=name == HISTOGRAM_DATA_DRIFT)
        except Exception:  # noqa: BLE001 - do_tracking meets it again below and records it
            made = None
        if made is not None:
            results += made[0]
            metrics += made[1]
            if name == HISTOGRAM_DATA_DRIFT:
                named += 1
                feature_rows = made[2]
            continue
        mine = endpoint if built_in else copy.deepcopy(dict(endpoint))
        try:
            context = MonitoringApplicationContext(
                application_name=name, project_name=project, endpoint_id=endpoint_id, model_endpoint=mine,
                start_infer_time=start, end_infer_time=end, feature_stats=mine["feature_stats"],
                sample_df_stats=shared_stats if built_in else stats, sample_df=sample,
                feature_names=list(mine.get("feature_names") or []), label_names=list(mine.get("label_names") or []),
                window=agg if built_in else window,
                reference_sample_loader=getattr(app, "reference_sample_loader", None) or reference_sample_loader,
                artifacts_dir=getattr(app, "artifacts_dir", None) or artifacts_dir)
            # a built-in app runs in this thread: it does no I/O and cannot hang, so a timeout (a
            # pool thread and two hand-overs per window) would buy nothing
            output = (call_directly if built_in else call)(name, lambda: app.do_tracking(context),
                                                           app_timeout(app), where)
            r, m = normalise_output(output, context)
        except Exception as exc:  # isolation: one app's failure is recorded, never fatal
            message = _describe(exc)
            log.warning("application %r failed on %s: %s", name, where, message[:500])
            errors.append(ErrorRecord(project, endpoint_id, _record_name(name), APP_FAILED,
                                      message[:MAX_MESSAGE], end))
            continue
        results += r
        metrics += m
        if name == HISTOGRAM_DATA_DRIFT:
            named += 1
    unmatched = unmatched_columns(agg, feature_stats)
    if unmatched is not None:
        errors.append(ErrorRecord(project, endpoint_id, HISTOGRAM_DATA_DRIFT, UNMATCHED_COLUMNS, unmatched, end))
    rows = feature_rows if feature_rows is not None and named == 1 else window_feature_drift(results)
    return WindowOutput(project, endpoint_id, start_ms, end_ms, revision, 0, prediction,
                        tuple(results), tuple(metrics), tuple(errors),
                        rows if type(rows) is FeatureDriftRows else tuple(rows))


BUILT_IN_APPLICATIONS = (HistogramDataDriftApplication,)
"""The project's own application classes (exactly these, not subclasses): they change nothing they
are given and do no I/O, so they get the window's and the catalog's objects themselves instead of
copies, and run in the caller's thread instead of through ``call`` (they cannot hang); they make their
window's records themselves (``window_records``), the ones their ``do_tracking`` output would give."""

UNMATCHED_COLUMNS = "mm-app-unmatched-columns"
"""The error type of a window whose rows have no value in any column of the reference."""


@contextlib.contextmanager
def windows_prepared(apps: Sequence[ModelMonitoringApplicationBase],
                     windows: Sequence[tuple[Mapping[str, Any] | None, WindowAggregate]]):
    """While in it, the built-in applications among ``apps`` hold the numbers of ``windows``
    ((endpoint record, aggregate) of each), worked out together (``prepare_windows``): a
    :func:`monitor_window` of one of these aggregates takes them from there, the same numbers as
    it would compute alone. Other applications are not called here: one of them could hang, and
    :func:`monitor_window` calls them within their timeouts.

    >>> from streamdrift.udfs.events import decode
    >>> from streamdrift.udfs.accumulator import Layout
    >>> from streamdrift.udfs.applications import HistogramDataDriftApplication
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> agg = WindowAggregate()
    >>> agg.add_events([decode('{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [{"x": 0.5}, {"x": 1.5}]}')],
    ...                Layout.from_feature_stats(stats))
    >>> endpoint, apps = {'endpoint_id': 'ep1', 'project': 'p', 'feature_stats': stats}, [HistogramDataDriftApplication()]
    >>> with windows_prepared(apps, [(endpoint, agg)]):
    ...     out = monitor_window(endpoint, 'ep1', 'p', 1_764_158_400_000, 1_764_158_460_000, agg, apps)
    >>> [(r.result_name, r.value) for r in out.results]
    [('general_drift', 0.0), ('feature_drift', 0.0)]
    """
    built_in = [app for app in apps if type(app) in BUILT_IN_APPLICATIONS]
    batch = [((endpoint or {}).get("feature_stats"), agg.accumulator) for endpoint, agg in windows
             if agg.accumulator is not None and (endpoint or {}).get("feature_stats")]
    for app in built_in:
        app.prepare_windows(batch)
    try:
        yield
    finally:
        for app in built_in:
            app.prepare_windows([])


def unmatched_columns(agg: WindowAggregate, feature_stats: Mapping[str, Any]) -> str | None:
    """Why a window that received rows has nothing to compare with the reference (no value in any
    reference column: renamed or re-cased features, all-null inputs), or None when it has.

    >>> from streamdrift.udfs.events import decode
    >>> from streamdrift.udfs.accumulator import Layout
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> agg = WindowAggregate()
    >>> agg.add_events([decode('{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [{"X": 0.5}]}')],
    ...                Layout.from_feature_stats(stats))
    >>> print(unmatched_columns(agg, stats))
    the window's 1 rows have no value in any column of the reference: its columns ['X'] (all null when they are the reference's), the reference's ['x']; were features renamed or re-cased, or are the inputs empty?
    """
    acc = agg.accumulator
    if not agg.rows or acc is None or int(acc.count.sum()) + int(acc.cat_count.sum()) > 0:
        return None
    seen = sorted(agg.unknown_columns)
    invalid = int(acc.invalid.sum())
    return (f"the window's {agg.rows} rows have no value in any column of the reference: its columns "
            f"{seen[:20]}{'...' if len(seen) > 20 else ''} (all null when they are the reference's"
            f"{f', or {invalid} values that are not numbers' if invalid else ''}), the "
            f"reference's {sorted(feature_stats)[:20]}{'...' if len(feature_stats) > 20 else ''}; were features "
            "renamed or re-cased, or are the inputs empty?")
