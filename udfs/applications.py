"""Monitoring applications: MLRun's base class, result types and context, and the built-in drift app.

An application subclasses :class:`ModelMonitoringApplicationBase` and implements ``do_tracking``.
It gets a :class:`MonitoringApplicationContext` per endpoint and closed window and returns one of:

* a :class:`ModelMonitoringApplicationResult` (name, value, kind, status, extra_data);
* a list (or tuple) of results and :class:`ModelMonitoringApplicationMetric` (name, value);
* a dict name → number: metrics;
* None or ``[]``: nothing this window.

Names of results and metrics match ``[a-zA-Z_][a-zA-Z0-9_]*`` (at most 128 characters); a name
twice among an application's results (or metrics) of one window is an error. Anything else
(a string, a result with a text value, extra_data that JSON cannot hold...) is an ``mm-app-failed``
error of that application and endpoint (:func:`streamdrift.udfs.monitor.monitor_window`), never a crash.

MLRun users: an application written for ``mlrun.model_monitoring.applications`` runs here with
its imports changed and nothing else::

    # from mlrun.model_monitoring.applications import ModelMonitoringApplicationBase, \\
    #     ModelMonitoringApplicationResult, MonitoringApplicationContext
    # from mlrun.common.schemas.model_monitoring.constants import ResultKindApp, ResultStatusApp
    from streamdrift.udfs.applications import (ModelMonitoringApplicationBase, ModelMonitoringApplicationResult,
                                   MonitoringApplicationContext, ResultKindApp, ResultStatusApp)

The context has MLRun's attributes (``application_name``, ``project_name``, ``endpoint_id``,
``endpoint_name``, ``model_endpoint``, ``start_infer_time``/``end_infer_time`` as
``pandas.Timestamp``, ``feature_stats``, ``sample_df_stats``, ``sample_df``, ``feature_names``,
``label_names``, ``logger`` taking keyword arguments, ``dict_to_histogram``, ``log_artifact``).
Not there: ``project`` (an MLRun project object), ``model`` (the model artifact), ``log_dataset``
and ``log_model``. Ours beyond MLRun: ``window`` (the window aggregate), ``reference_sample_df``
(the stored sample of the training rows) and ``artifact_path``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import numbers
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from streamdrift.udfs.drift_batch import WindowNumbers, windows_numbers
from streamdrift.udfs.histogram_drift import (
    FEATURE_DRIFT_NAME,
    DriftClassifier,
    ReferencePlans,
    drift_from_accumulator,
    feature_drift_from_accumulator,
)
from streamdrift.udfs.records import (
    FeatureDriftRecord,
    FeatureDriftRows,
    MetricRecord,
    ResultKindApp,
    ResultRecord,
    ResultStatusApp,
    check_name,
    record_builder,
)
from streamdrift.udfs.verdict import MergeMaps, check_parameters

__all__ = [
    "artifact_file", "ModelMonitoringApplicationBase", "ModelMonitoringApplicationResult", "ModelMonitoringApplicationMetric",
    "MonitoringApplicationContext", "ResultKindApp", "ResultStatusApp",
    "HistogramDataDriftApplication", "AppLogger", "app_name", "app_timeout", "normalise_output",
    "DEFAULT_TIMEOUT_SECONDS", "HISTOGRAM_DATA_DRIFT",
]

DEFAULT_TIMEOUT_SECONDS = 60.0
HISTOGRAM_DATA_DRIFT = "histogram-data-drift"
log = logging.getLogger("streamdrift.applications")
def _check_number(value: Any, what: str) -> float:
    if isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a number, got {type(value).__name__} {value!r:.80}")
    return float(value)


@dataclasses.dataclass
class ModelMonitoringApplicationResult:
    """A result of an application (MLRun's): ``name`` ``[a-zA-Z_][a-zA-Z0-9_]*``, ``value`` a number
    (None only with status irrelevant: nothing could be measured), ``kind`` a :class:`ResultKindApp`,
    ``status`` a :class:`ResultStatusApp` (ints of those values are accepted), ``extra_data`` a
    JSON-able dict.

    Examples
    --------
    >>> result = ModelMonitoringApplicationResult('accuracy', 0.91, 'model_performance', 0)
    >>> result.kind, result.status
    (<ResultKindApp.model_performance: 2>, <ResultStatusApp.no_detection: 0>)
    >>> result.to_dict()
    {'result_name': 'accuracy', 'result_value': 0.91, 'result_kind': 2, 'result_status': 0, 'result_extra_data': '{}'}
    >>> ModelMonitoringApplicationResult('accuracy', 0.91, 'model_performance', 5)
    Traceback (most recent call last):
    ...
    ValueError: result status 5 is not one of irrelevant (-1), no_detection (0), potential_detection (1), detected (2)
    """

    name: str
    value: float | None
    kind: ResultKindApp
    status: ResultStatusApp
    extra_data: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "result name")
        self.kind = _enum(ResultKindApp, self.kind, "kind")
        self.status = _enum(ResultStatusApp, self.status, "status")

    def to_dict(self) -> dict[str, Any]:
        return {"result_name": self.name, "result_value": self.value, "result_kind": int(self.kind),
                "result_status": int(self.status), "result_extra_data": json.dumps(self.extra_data, default=str)}


@dataclasses.dataclass
class ModelMonitoringApplicationMetric:
    """A metric of an application (MLRun's): a name ``[a-zA-Z_][a-zA-Z0-9_]*`` and a number.

    >>> ModelMonitoringApplicationMetric('rows_seen', 120).to_dict()
    {'metric_name': 'rows_seen', 'metric_value': 120}
    """

    name: str
    value: float

    def __post_init__(self) -> None:
        check_name(self.name, "metric name")

    def to_dict(self) -> dict[str, Any]:
        return {"metric_name": self.name, "metric_value": self.value}


def _enum(cls, value: Any, what: str):
    if isinstance(value, cls):
        return value
    try:
        if isinstance(value, str):
            return cls[value]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError
        return cls(int(value))
    except (KeyError, ValueError):
        allowed = ", ".join(f"{m.name} ({m.value})" for m in cls)
        raise ValueError(f"result {what} {value!r} is not one of {allowed}") from None


class AppLogger:
    """MLRun's application logger on top of :mod:`logging`: ``logger.info("msg", key=value, ...)``
    logs ``msg {"key": value}``; with no keyword arguments it is a plain logger call.

    Examples
    --------
    >>> import sys
    >>> base = logging.getLogger('streamdrift.example')
    >>> handler = logging.StreamHandler(sys.stdout); base.addHandler(handler); base.setLevel(logging.INFO)
    >>> log = AppLogger(base, app='my-app')
    >>> log.info('window done', rows=4, drift=0.25)
    [app=my-app] window done {"drift": 0.25, "rows": 4}
    >>> log.debug('not shown'); log.isEnabledFor(logging.DEBUG)
    False
    >>> base.removeHandler(handler)
    """

    def __init__(self, logger: logging.Logger | str = "streamdrift.app", **context: Any):
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._context = context

    def _log(self, level: int, message: Any, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        if not self._logger.isEnabledFor(level):
            return
        if kwargs:
            message = f"{message} {json.dumps(kwargs, default=str, sort_keys=True)}"
        if self._context:
            message = f"[{' '.join(f'{k}={v}' for k, v in self._context.items())}] {message}"
        self._logger.log(level, message, *args, exc_info=exc_info)

    def debug(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.DEBUG, message, *args, **kwargs)

    def info(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.INFO, message, *args, **kwargs)

    def warning(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.WARNING, message, *args, **kwargs)

    warn = warning

    def error(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.ERROR, message, *args, **kwargs)

    def exception(self, message: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self._log(logging.ERROR, message, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        return self._logger.isEnabledFor(level)


class EndpointRecord(dict):
    """The endpoint record given to an application: a dict of the SQL store's fields
    (``endpoint_id``, ``project``, ``model_name``, ``feature_names``, ``feature_stats``, ...), also
    readable the way MLRun's ``ModelEndpoint`` is: ``.metadata.uid``/``.name``/``.project``,
    ``.spec.feature_names``/``.label_names``/``.feature_stats``/``.model_name``..., ``.status.*``.

    Examples
    --------
    >>> endpoint = EndpointRecord({'endpoint_id': 'ep1', 'model_name': 'scorer', 'project': 'p',
    ...                            'feature_names': ['x'], 'monitoring_mode': 'enabled'})
    >>> endpoint.metadata.uid, endpoint.metadata.name, endpoint.spec.feature_names, endpoint.status.monitoring_mode
    ('ep1', 'scorer', ['x'], 'enabled')
    >>> endpoint['project']
    'p'
    """

    @property
    def metadata(self) -> SimpleNamespace:
        return SimpleNamespace(uid=self.get("endpoint_id"), name=self.get("model_name"),
                               project=self.get("project"), created=self.get("created"),
                               updated=self.get("updated"))

    @property
    def spec(self) -> SimpleNamespace:
        return SimpleNamespace(
            function_name=self.get("function_name"), function_tag=self.get("function_tag"),
            model_name=self.get("model_name"), model_tag=self.get("model_version"),
            feature_names=list(self.get("feature_names") or []), label_names=list(self.get("label_names") or []),
            output_names=list(self.get("output_names") or []), feature_stats=self.get("feature_stats") or {})

    @property
    def status(self) -> SimpleNamespace:
        return SimpleNamespace(
            monitoring_mode=self.get("monitoring_mode"), first_request=self.get("first_request"),
            last_request=self.get("last_request"), error_count=self.get("error_count"),
            drift_status=self.get("drift_status"), drift_measure=self.get("drift_measure"))


def _timestamp(value: dt.datetime):
    import pandas as pd

    return pd.Timestamp(value)


class MonitoringApplicationContext:
    """What an application sees of one endpoint's closed window (MLRun's ``MonitoringApplicationContext``).

    Attributes: ``application_name``, ``project_name``, ``endpoint_id``, ``endpoint_name`` (the
    model name), ``model_endpoint`` (:class:`EndpointRecord`), ``start_infer_time`` and
    ``end_infer_time`` (UTC ``pandas.Timestamp``), ``feature_stats`` (the reference, MLRun's
    format), ``feature_names``, ``label_names``, ``logger`` (:class:`AppLogger`) and, built on first
    use: ``sample_df_stats`` (the window's statistics from all its rows, on the reference's bins),
    ``sample_df`` (a bounded uniform sample of the window's rows, a pandas DataFrame), ``window``
    (the :class:`streamdrift.udfs.window.WindowAggregate`) and ``reference_sample_df`` (the stored sample of
    the training rows, or None). Each application gets its own copies: what it changes in place
    reaches neither the other applications nor the next window.

    Examples
    --------
    >>> import datetime as dt
    >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
    >>> context = MonitoringApplicationContext(application_name='my-app', project_name='p', endpoint_id='ep1',
    ...     model_endpoint={'model_name': 'scorer'}, start_infer_time=t0, end_infer_time=t0 + dt.timedelta(minutes=1))
    >>> context.endpoint_name, str(context.end_infer_time), context.feature_stats, context.sample_df_stats
    ('scorer', '2025-11-26 12:01:00+00:00', {}, {})
    """

    def __init__(
        self,
        *,
        application_name: str,
        project_name: str,
        endpoint_id: str,
        model_endpoint: Mapping[str, Any] | None,
        start_infer_time: dt.datetime,
        end_infer_time: dt.datetime,
        feature_stats: Mapping[str, Any] | None = None,
        sample_df_stats: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        sample_df: Any = None,
        feature_names: list[str] | None = None,
        label_names: list[str] | None = None,
        window: Any = None,
        logger: AppLogger | logging.Logger | None = None,
        reference_sample_loader: Callable[[str, Mapping[str, Any]], Any] | None = None,
        artifacts_dir: str | os.PathLike | None = None,
    ) -> None:
        self.application_name = application_name
        self.project_name = project_name
        self.endpoint_id = endpoint_id
        self.model_endpoint = EndpointRecord(model_endpoint or {})
        self.endpoint_name = self.model_endpoint.get("model_name") or endpoint_id
        self._start = start_infer_time
        self._end = end_infer_time
        self.start_infer_time = _timestamp(start_infer_time)
        self.end_infer_time = _timestamp(end_infer_time)
        self.feature_stats = feature_stats if feature_stats is not None else self.model_endpoint.get("feature_stats") or {}
        self.feature_names = list(feature_names if feature_names is not None
                                  else self.model_endpoint.get("feature_names") or [])
        self.label_names = list(label_names if label_names is not None else self.model_endpoint.get("label_names") or [])
        if logger is None:
            logger = AppLogger("streamdrift.app", app=application_name, endpoint=endpoint_id)
        elif isinstance(logger, logging.Logger):
            logger = AppLogger(logger)
        self.logger = logger
        self.nuclio_logger = logger
        self._sample_df_stats = sample_df_stats
        self._sample_df = sample_df
        self._window = window
        self._reference_loader = reference_sample_loader
        self._reference: Any = None
        self._reference_loaded = False
        self.artifacts_dir = None if artifacts_dir is None else Path(artifacts_dir)

    # ----------------------------------------------------------------- lazy parts

    @staticmethod
    def _resolve(value):
        return value() if callable(value) else value

    @property
    def sample_df(self):
        """A uniform sample of the window's rows (at most the job's ``sample_size``), a DataFrame;
        given as a frame or as a callable that makes it (called once, on first use).

        >>> import datetime as dt, pandas as pd
        >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
        >>> calls = []
        >>> context = MonitoringApplicationContext(application_name='a', project_name='p', endpoint_id='ep1',
        ...     model_endpoint=None, start_infer_time=t0, end_infer_time=t0,
        ...     sample_df=lambda: calls.append(1) or pd.DataFrame({'x': [0.5, 1.5]}))
        >>> context.sample_df['x'].tolist(), context.sample_df['x'].tolist(), len(calls)
        ([0.5, 1.5], [0.5, 1.5], 1)
        """
        if self._sample_df is None or callable(self._sample_df):
            import pandas as pd

            value = self._resolve(self._sample_df)
            self._sample_df = value if value is not None else pd.DataFrame()
        return self._sample_df

    @property
    def sample_df_stats(self) -> Mapping[str, Any]:
        """The window's statistics (all rows) in ``feature_stats`` form, on the reference's bins;
        ``{}`` when none were given.

        >>> import datetime as dt
        >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
        >>> MonitoringApplicationContext(application_name='a', project_name='p', endpoint_id='ep1', model_endpoint=None,
        ...     start_infer_time=t0, end_infer_time=t0, sample_df_stats=lambda: {'x': {'count': 2}}).sample_df_stats
        {'x': {'count': 2}}
        """
        if self._sample_df_stats is None or callable(self._sample_df_stats):
            value = self._resolve(self._sample_df_stats)
            self._sample_df_stats = value if value is not None else {}
        return self._sample_df_stats

    @property
    def window(self):
        """The window's aggregate (:class:`streamdrift.udfs.window.WindowAggregate`), or None.

        >>> import datetime as dt
        >>> from streamdrift.udfs.window import WindowAggregate
        >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
        >>> MonitoringApplicationContext(application_name='a', project_name='p', endpoint_id='ep1', model_endpoint=None,
        ...     start_infer_time=t0, end_infer_time=t0, window=lambda: WindowAggregate(rows=3)).window.rows
        3
        """
        if callable(self._window):
            self._window = self._window()
        return self._window

    @property
    def reference_sample_df(self):
        """The stored sample of the endpoint's training rows (at most 10,000, normalised column
        names) as a pandas DataFrame; None when the endpoint has none or no loader was given.

        >>> import datetime as dt
        >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
        >>> def loader(endpoint_id, endpoint):
        ...     return f'the training rows of {endpoint_id}'
        >>> MonitoringApplicationContext(application_name='a', project_name='p', endpoint_id='ep1', model_endpoint=None,
        ...     start_infer_time=t0, end_infer_time=t0, reference_sample_loader=loader).reference_sample_df
        'the training rows of ep1'
        """
        if not self._reference_loaded:
            self._reference_loaded = True
            if self._reference_loader is not None:
                self._reference = self._reference_loader(self.endpoint_id, self.model_endpoint)
        return self._reference

    # ----------------------------------------------------------------- MLRun's helpers

    @staticmethod
    def dict_to_histogram(histogram_dict: Mapping[str, Any]):
        """``{feature: {"hist": [counts, edges], "count": n}}`` → DataFrame of each feature's bin
        probabilities (counts / count), as MLRun's.

        >>> MonitoringApplicationContext.dict_to_histogram(
        ...     {'x': {'hist': [[1, 3], [0.0, 1.0, 2.0]], 'count': 4}, 'c': {'categories': ['a']}})['x'].tolist()
        [0.25, 0.75]
        """
        import numpy as np
        import pandas as pd

        return pd.DataFrame({name: np.asarray(s["hist"][0], dtype=float) / s["count"]
                             for name, s in histogram_dict.items() if "hist" in s and s.get("count")})

    def artifact_path(self, name: str | None = None, suffix: str = ".html") -> Path:
        """``<artifacts_dir>/<project>/<endpoint_id>/<application>/<window end>[-<name>]<suffix>``
        (:func:`artifact_file`); its folder is created. RuntimeError without an artifacts directory.

        >>> import datetime as dt, tempfile
        >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
        >>> root = tempfile.mkdtemp()
        >>> context = MonitoringApplicationContext(application_name='my-app', project_name='p', endpoint_id='ep1',
        ...     model_endpoint=None, start_infer_time=t0, end_infer_time=t0, artifacts_dir=root)
        >>> path = context.artifact_path('report')
        >>> path.relative_to(root).as_posix(), path.parent.is_dir()
        ('p/ep1/my-app/20251126T120000Z-report.html', True)
        """
        if self.artifacts_dir is None:
            raise RuntimeError("no artifacts directory: register the application with artifacts_dir "
                               "(streamdrift apps add --artifacts-dir DIR) or give it to the context")
        path = artifact_file(self.artifacts_dir, self.project_name, self.endpoint_id, self.application_name,
                             self._end, name, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def log_artifact(self, item: str, body: bytes | str | None = None, format: str | None = None,
                     local_path: str | None = None, **kwargs: Any) -> str:
        """Keep an artifact of this window as a file (MLRun's ``log_artifact``, local files only):
        ``body`` (bytes or text), or the file at ``local_path``, is written to
        :meth:`artifact_path` (``item`` in the name, ``format`` as the suffix). Returns the path.

        >>> import datetime as dt, tempfile
        >>> from pathlib import Path
        >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
        >>> context = MonitoringApplicationContext(application_name='my-app', project_name='p', endpoint_id='ep1',
        ...     model_endpoint=None, start_infer_time=t0, end_infer_time=t0, artifacts_dir=tempfile.mkdtemp())
        >>> path = context.log_artifact('summary', body='rows: 4', format='txt')
        >>> Path(path).name, Path(path).read_text()
        ('20251126T120000Z-summary.txt', 'rows: 4')
        """
        if body is None and local_path is None:
            raise ValueError("log_artifact needs body or local_path")
        suffix = "." + (format or (Path(local_path).suffix.lstrip(".") if local_path else "") or "bin")
        path = self.artifact_path(item, suffix)
        data = Path(local_path).read_bytes() if body is None else body
        path.write_bytes(data.encode() if isinstance(data, str) else bytes(data))
        return str(path)

    def __repr__(self) -> str:
        return (f"MonitoringApplicationContext(application_name={self.application_name!r}, "
                f"endpoint_id={self.endpoint_id!r}, start={self.start_infer_time}, end={self.end_infer_time})")


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(text)) or "_"


def artifact_file(artifacts_dir: str | os.PathLike, project: str, endpoint_id: str, application_name: str,
                  end_infer_time: dt.datetime, name: str | None = None, suffix: str = ".html") -> Path:
    """Where a window's artifact lives (pure: nothing is created):
    ``<artifacts_dir>/<project>/<endpoint_id>/<application>/<window end>[-<name>]<suffix>``, the
    window end as ``20240101T001000Z`` (``.123`` milliseconds when it has some) and every part
    outside ``[A-Za-z0-9._-]`` as ``_``.

    >>> import datetime as dt
    >>> end = dt.datetime(2025, 11, 26, 12, 1, 0, 250_000, tzinfo=dt.timezone.utc)
    >>> artifact_file('/srv/artifacts', 'p', 'ep1', 'my app', end, 'drift/report').as_posix()
    '/srv/artifacts/p/ep1/my_app/20251126T120100.250Z-drift_report.html'
    """
    end = end_infer_time.astimezone(dt.timezone.utc)
    stamp = end.strftime("%Y%m%dT%H%M%S") + (f".{end.microsecond // 1000:03d}" if end.microsecond else "") + "Z"
    stem = stamp if not name else f"{stamp}-{_file_part(name)}"
    return (Path(artifacts_dir) / _file_part(project) / _file_part(endpoint_id) / _file_part(application_name)
            / f"{stem}{suffix}")


class ModelMonitoringApplicationBase:
    """Subclass and implement :meth:`do_tracking` (MLRun's base class).

    ``NAME`` is the application's name when it is run without a registration (the registry names
    it by its registration); it defaults to the class name. ``timeout_seconds`` bounds one call
    of ``do_tracking`` (default 60; :mod:`streamdrift.udfs.monitor`). ``uses_sample``: whether it reads the
    window's ``sample_df``; the job keeps a sample of each window's rows only while an enabled
    application does (an application that sets it False and reads ``sample_df`` gets no rows).

    Examples
    --------
    >>> class RowCount(ModelMonitoringApplicationBase):
    ...     def do_tracking(self, monitoring_context):
    ...         return {'rows': len(monitoring_context.sample_df)}
    >>> import datetime as dt, pandas as pd
    >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
    >>> context = MonitoringApplicationContext(application_name='row-count', project_name='p', endpoint_id='ep1',
    ...     model_endpoint=None, start_infer_time=t0, end_infer_time=t0, sample_df=pd.DataFrame({'x': [1, 2, 3]}))
    >>> RowCount().do_tracking(context)
    {'rows': 3}
    >>> items, _ = RowCount().do(context)  # MLRun's wrapper: metrics of a dict
    >>> items
    [ModelMonitoringApplicationMetric(name='rows', value=3)]
    """

    NAME: str | None = None
    timeout_seconds: float | None = DEFAULT_TIMEOUT_SECONDS
    uses_sample: bool = True
    kind = "monitoring_application"

    def do_tracking(self, monitoring_context: MonitoringApplicationContext):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement do_tracking(monitoring_context)")

    def do(self, monitoring_context: MonitoringApplicationContext):
        """MLRun's wrapper: ``(list of results and metrics, context)`` (see the class's example)."""
        out = self.do_tracking(monitoring_context)
        if isinstance(out, Mapping):
            out = [ModelMonitoringApplicationMetric(k, v) for k, v in out.items()]
        return (out if isinstance(out, list) else [out]), monitoring_context


class HistogramDataDriftApplication(ModelMonitoringApplicationBase):
    """The default application: per-column TVD, Hellinger and KLD against the reference histograms.

    Metrics ``tvd_mean``, ``hellinger_mean``, ``kld_mean``; result ``general_drift`` (data_drift)
    = (tvd_mean + hellinger_mean) / 2, status by thresholds potential 0.5 / detected 0.7 (MLRun's);
    result ``feature_drift`` (data_drift): per column a test of the window's counts against the
    reference's, Benjamini–Hochberg over the columns, potential at FDR ``alpha`` (1 %), detected at
    ``alpha_detected`` (0.1 %), value = share of the columns rejected (:mod:`streamdrift.udfs.verdict`);
    ``min_effect`` (reference σ) raises the smallest drift it flags. Metric ``invalid_share``: the
    window's values that are not numbers ("N/A", "?") in numeric columns / (non-null + invalid
    values), never part of the drift; per column in ``general_drift``'s ``extra_data``.
    Enabled in every project unless registered disabled (``streamdrift apps disable histogram-data-drift``).

    Examples
    --------
    A window of 4 rows, 1 in [0, 1) and 3 in [1, 2], against a reference of 2 and 2:
    TVD = (|1/4 − 1/2| + |3/4 − 1/2|) / 2 = 0.25.

    >>> import datetime as dt
    >>> import numpy as np
    >>> from streamdrift.udfs.accumulator import Accumulator
    >>> from streamdrift.udfs.window import WindowAggregate
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> window = WindowAggregate(rows=4, accumulator=Accumulator.from_reference(stats).add_batch(
    ...     np.array([[0.5], [1.5], [1.5], [1.5]])))
    >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
    >>> context = MonitoringApplicationContext(application_name=HISTOGRAM_DATA_DRIFT, project_name='p',
    ...     endpoint_id='ep1', model_endpoint=None, start_infer_time=t0, end_infer_time=t0,
    ...     feature_stats=stats, window=window)
    >>> out = HistogramDataDriftApplication().do_tracking(context)
    >>> [(r.name, int(r.status)) for r in out if isinstance(r, ModelMonitoringApplicationResult)]
    [('general_drift', 0), ('feature_drift', 0)]
    >>> {m.name: m.value for m in out if isinstance(m, ModelMonitoringApplicationMetric)}['tvd_mean']
    0.25
    """

    NAME = HISTOGRAM_DATA_DRIFT
    uses_sample = False  # counts only: it never reads the rows

    def __init__(self, potential: float = 0.5, detected: float = 0.7, include_categorical: bool = True,
                 alpha: float = 0.01, alpha_detected: float = 0.001, min_effect: float = 0.0):
        self.classifier = DriftClassifier(potential, detected)
        self.include_categorical = include_categorical
        check_parameters(alpha, alpha_detected, min_effect)
        self.alpha, self.alpha_detected, self.min_effect = float(alpha), float(alpha_detected), float(min_effect)
        self.merge_maps = MergeMaps()  # kept between windows: maps depend on the reference and n's bucket
        self.plans = ReferencePlans()  # per endpoint: the reference's side of the measures, worked out once
        self._prepared: dict[int, tuple] = {}  # id(accumulator) -> its window's numbers (prepare_windows)

    def prepare_reference(self, feature_stats: Mapping[str, Any], layout: Any) -> None:
        """Work out now what depends on the endpoint's reference alone (its plan), so that its
        windows do not: the job's writer calls it at its start for the endpoints it writes
        (optional for an application). ``feature_stats`` and ``layout``: the catalog's own
        objects, which the window's context will carry (the plan is kept per object)."""
        self.plans.get(feature_stats, layout, self.include_categorical)

    def prepare_windows(self, windows: Sequence[tuple[Mapping[str, Any], Any]]) -> None:
        """Work out the stored numbers of many windows together (a batch of the job's writer): a
        pass of numpy over all their columns instead of one per window, and no report objects
        (:func:`streamdrift.udfs.drift_batch.windows_numbers`). ``windows``: (``feature_stats``,
        accumulator) of each, the objects their contexts will carry. Until the next call,
        :meth:`window_records` of one of these windows makes its records from here, once; they
        are the ones it would make alone, float for float for whole-number counts. A window left
        out there, and ``do_tracking``, compute alone; an error here leaves every window to
        itself (optional for an application)."""
        self._prepared = {}
        try:
            planned = [(stats, acc, self.plans.get(stats, acc.layout, self.include_categorical))
                       for stats, acc in windows if stats and acc is not None]
            numbers = windows_numbers([p for _, _, p in planned], [a for _, a, _ in planned], self.classifier,
                                      alpha=self.alpha, alpha_detected=self.alpha_detected, min_effect=self.min_effect)
        except Exception:  # noqa: BLE001 - each window meets its problem again alone
            log.debug("preparing %d windows together failed; each is computed alone", len(windows), exc_info=True)
            return
        self._prepared = {id(acc): (acc, stats, n) for (stats, acc, _), n in zip(planned, numbers) if n is not None}

    def _numbers(self, feature_stats: Mapping[str, Any], window: Any) -> tuple[Any, dict[str, Any], Any]:
        """(report, ``general_drift``'s extra_data, verdict) of a window with a reference, worked
        out for it alone (a batch's windows take :meth:`prepare_windows`'s numbers in
        :meth:`window_records` instead); no verdict (None) when no column could be compared."""
        plan = self.plans.get(feature_stats, window.accumulator.layout, self.include_categorical)
        report = drift_from_accumulator(feature_stats, window.accumulator, plan=plan, classifier=self.classifier,
                                        include_categorical=self.include_categorical)
        details = report.to_dict()
        details["missing_in_reference"] = sorted({*details.get("missing_in_reference", ()), *window.unknown_columns})
        if report.general_drift is None:
            return report, details, None
        verdict = feature_drift_from_accumulator(
            feature_stats, window.accumulator, columns=[c.name for c in report.columns],
            maps=self.merge_maps, alpha=self.alpha, alpha_detected=self.alpha_detected, min_effect=self.min_effect,
            plan=plan)
        return report, details, verdict

    def do_tracking(self, monitoring_context: MonitoringApplicationContext):
        window = monitoring_context.window
        if window is None or window.accumulator is None or not monitoring_context.feature_stats:
            return []
        report, details, verdict = self._numbers(monitoring_context.feature_stats, window)
        share = window.accumulator.invalid_share()
        invalid = [] if share is None else [ModelMonitoringApplicationMetric("invalid_share", share)]
        if report.general_drift is None:  # rows, but no value in any reference column: say so
            details["unmatched"] = True
            return [ModelMonitoringApplicationResult(name, None, ResultKindApp.data_drift, ResultStatusApp.irrelevant,
                                                     extra_data=details)
                    for name in ("general_drift", FEATURE_DRIFT_NAME)] + invalid
        out: list = [ModelMonitoringApplicationResult(
            "general_drift", report.general_drift, ResultKindApp.data_drift, ResultStatusApp(int(report.status)),
            extra_data=details)]
        if verdict.value is not None:
            out.append(ModelMonitoringApplicationResult(
                verdict.name, verdict.value, ResultKindApp.data_drift, ResultStatusApp(int(verdict.status)),
                extra_data=verdict.to_dict()))
        out += [ModelMonitoringApplicationMetric(name, value) for name, value in report.metrics.items()
                if value is not None]
        return out + invalid

    def window_records(self, project: str, endpoint_id: str, name: str, start: dt.datetime, end: dt.datetime,
                       feature_stats: Mapping[str, Any], window: Any, feature_rows: bool = True
                       ) -> tuple[list[ResultRecord], list[MetricRecord], Sequence[FeatureDriftRecord]] | None:
        """The records of the window (results, metrics and, with ``feature_rows``, its per-feature
        rows), made straight from its numbers: equal, field for field and type for type, to
        :func:`normalise_output` of :meth:`do_tracking` (records named ``name``) and to
        :func:`streamdrift.udfs.histogram_drift.window_feature_drift` of those results, without
        the context, the application's result objects and the pass that makes their extra_data
        plain JSON (it is by construction). None where that pass would change something (a
        number that is not finite) or no drift was measured: then ``do_tracking`` is the way.
        A window of :meth:`prepare_windows`'s batch gives its per-feature rows as values
        (:class:`~streamdrift.udfs.records.FeatureDriftRows`, the same records when read)."""
        if window is None or window.accumulator is None or not feature_stats:
            return None
        prepared = getattr(self, "_prepared", {}).pop(id(window.accumulator), None)
        if prepared is not None and prepared[0] is window.accumulator and prepared[1] is feature_stats:
            return _records_of_numbers(prepared[2], (project, endpoint_id, name), start, end, window, feature_rows)
        report, details, verdict = self._numbers(feature_stats, window)
        general = report.general_drift
        if general is None or not math.isfinite(general + sum(v for v in report.metrics.values() if v is not None)):
            return None
        # names as plain str (a reference or window read from JSON has no other): else a tuple,
        # a numpy name or NaN would reach the stores as it is, where do_tracking's way makes it JSON
        if not (_all_str(details["columns"]) and _all_str(details["missing_in_window"])
                and _all_str(details["missing_in_reference"]) and _all_str(details["skipped"])):
            return None
        series = (project, endpoint_id, name)
        tested: Mapping[str, Mapping[str, Any]] = {}
        results = [_result_record(*series, "general_drift", _DATA_DRIFT, int(report.status), float(general), start,
                                  end, details)]
        if verdict.value is not None:
            verdict_details = verdict.to_dict()
            if not (type(verdict_details["alpha"]) is float and type(verdict_details["alpha_detected"]) is float):
                return None  # levels set on the application after it was made, e.g. numpy floats
            tested = verdict_details["columns"]
            results.append(_result_record(*series, verdict.name, _DATA_DRIFT, int(verdict.status), float(verdict.value),
                                          start, end, verdict_details))
        metrics = [_metric_record(*series, metric, float(value), start, end)
                   for metric, value in report.metrics.items() if value is not None]
        share = window.accumulator.invalid_share()
        if share is not None:
            metrics.append(_metric_record(*series, "invalid_share", float(share), start, end))
        rows = []
        for column, c in details["columns"].items():
            # every float of the extra_data is a column's: a sum is finite when each of them is
            if not math.isfinite(c["drift"] + c["kld"]):
                return None
            t = tested.get(column)
            if t is None:
                test = (None, None, None)
            elif math.isfinite(t["p_value"] + t["effect"] + t.get("shift", 0.0)):
                test = (t["p_value"], t["rejected"], t["effect"])
            else:
                return None
            if feature_rows:
                rows.append(_feature_drift_row(*series, column, start, end, c["tvd"], c["hellinger"], c["kld"], *test,
                                               c["window_count"], c["reference_count"], c.get("invalid_share")))
        return results, metrics, rows


def _all_str(names: Iterable[Any]) -> bool:
    return all(type(name) is str for name in names)


def _records_of_numbers(numbers: WindowNumbers, series: tuple[str, str, str], start: dt.datetime, end: dt.datetime,
                        window: Any, feature_rows: bool
                        ) -> tuple[list[ResultRecord], list[MetricRecord], FeatureDriftRows | list] | None:
    """:meth:`HistogramDataDriftApplication.window_records` of a window prepared in its batch, its
    per-feature rows as values (:class:`~streamdrift.udfs.records.FeatureDriftRows`)."""
    details = numbers.details
    missing = sorted({*details["missing_in_reference"], *window.unknown_columns})
    if not _all_str(missing):
        return None
    details["missing_in_reference"] = missing
    results = [_result_record(*series, "general_drift", _DATA_DRIFT, numbers.status, numbers.general, start, end,
                              details)]
    if numbers.verdict is not None:
        value, status, verdict_details = numbers.verdict
        results.append(_result_record(*series, FEATURE_DRIFT_NAME, _DATA_DRIFT, status, value, start, end,
                                      verdict_details))
    metrics = [_metric_record(*series, metric, value, start, end) for metric, value in numbers.metrics.items()]
    share = window.accumulator.invalid_share()
    if share is not None:
        metrics.append(_metric_record(*series, "invalid_share", float(share), start, end))
    rows = FeatureDriftRows((*series, start, end), numbers.rows) if feature_rows else []
    return results, metrics, rows


_DATA_DRIFT = int(ResultKindApp.data_drift)
_result_record = record_builder(ResultRecord)
_metric_record = record_builder(MetricRecord)
_feature_drift_row = record_builder(FeatureDriftRecord)


CLASS_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
"""How an application class is registered: ``package.module:ClassName``."""


def split_class_path(class_path: str) -> tuple[str, str]:
    """``(module, class name)`` of a class path ``package.module:ClassName``; ValueError for
    anything else.

    >>> split_class_path('streamdrift.udfs.example_apps:DataQualityApplication')
    ('streamdrift.udfs.example_apps', 'DataQualityApplication')
    """
    if not isinstance(class_path, str) or not CLASS_PATH.fullmatch(class_path):
        raise ValueError(f"application class {class_path!r} must look like 'package.module:ClassName'")
    module, _, name = class_path.partition(":")
    return module, name


def app_name(app: Any) -> str:
    """The name an application's records carry: its ``NAME`` (the registry sets it to the
    registration's name), else its class name.

    >>> class Mine(ModelMonitoringApplicationBase):
    ...     pass
    >>> app_name(Mine()), app_name(HistogramDataDriftApplication())
    ('Mine', 'histogram-data-drift')
    """
    return getattr(app, "NAME", None) or type(app).__name__


def sample_size_for(apps: Iterable[Any], sample_size: int) -> int:
    """The rows of each window to keep as its sample: ``sample_size`` while one of ``apps`` reads
    the sample (:attr:`ModelMonitoringApplicationBase.uses_sample`, true unless an application says
    otherwise), else 0: carrying rows nobody reads costs every event its values' bytes, several
    times over (to the window's state and back).

    >>> sample_size_for([HistogramDataDriftApplication()], 1000)  # counts only
    0
    >>> sample_size_for([HistogramDataDriftApplication(), ModelMonitoringApplicationBase()], 1000)
    1000
    """
    return sample_size if any(getattr(app, "uses_sample", True) for app in apps) else 0


def app_timeout(app: Any) -> float | None:
    """Seconds one ``do_tracking`` call may take (``timeout_seconds``; None or <= 0: no limit).

    >>> class Slow(ModelMonitoringApplicationBase):
    ...     timeout_seconds = 0
    >>> app_timeout(ModelMonitoringApplicationBase()), app_timeout(Slow())
    (60.0, None)
    """
    value = getattr(app, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if value is None:
        return None
    value = float(value)
    return value if value > 0 and math.isfinite(value) else None


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays, datetimes, paths, sets converted;
    NaN and infinities become None); ValueError naming ``where`` for anything else."""
    kind = type(value)  # the plain types first: an application's extra_data is mostly floats in dicts
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        out = {}
        for k, v in value.items():  # a dict's plain values without a call each (most of the time here)
            t = type(v)
            if t is float:
                v = v if math.isfinite(v) else None
            elif not (t is str or t is int or t is bool or v is None):
                v = _jsonable(v, where)
            out[k if type(k) is str else str(k)] = v
        return out
    if kind is str or kind is int or kind is list:
        return [_jsonable(v, where) for v in value] if kind is list else value
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, pandas series
    if callable(tolist):
        return _jsonable(tolist(), where)
    raise ValueError(f"{where} holds a {type(value).__name__}, which JSON cannot hold")


def normalise_output(output: Any, context: MonitoringApplicationContext) -> tuple[list[ResultRecord], list[MetricRecord]]:
    """An application's return value → result and metric records. Raises ValueError for garbage.

    Examples
    --------
    >>> import datetime as dt, numpy as np
    >>> window_end = dt.datetime(2025, 11, 26, 12, 1, tzinfo=dt.timezone.utc)
    >>> context = MonitoringApplicationContext(application_name='my_app', project_name='p', endpoint_id='ep1',
    ...                                        model_endpoint=None, start_infer_time=window_end - dt.timedelta(minutes=1),
    ...                                        end_infer_time=window_end)
    >>> results, metrics = normalise_output([ModelMonitoringApplicationResult('accuracy', np.float32(0.5), 2, 1),
    ...                                      ModelMonitoringApplicationMetric('rows', 4)], context)
    >>> [(r.result_name, r.value, r.kind, r.status) for r in results], [(m.metric_name, m.value) for m in metrics]
    ([('accuracy', 0.5, 2, 1)], [('rows', 4.0)])
    >>> normalise_output({'rows': 4}, context)[1][0].application_name
    'my_app'
    >>> normalise_output('all good', context)
    Traceback (most recent call last):
    ...
    ValueError: application 'my_app' returned str: return results, metrics, a list of them, or a dict of metric values
    """
    name = context.application_name
    if output is None:
        items: list = []
    elif isinstance(output, Mapping):
        items = []
        for k, v in output.items():
            items.append(ModelMonitoringApplicationMetric(check_name(k, "metric name"), _check_number(v, f"metric {k!r}")))
    elif isinstance(output, (list, tuple)):
        items = list(output)
    else:
        items = [output]
    results: list[ResultRecord] = []
    metrics: list[MetricRecord] = []
    common = dict(project=context.project_name, endpoint_id=context.endpoint_id, application_name=name,
                  start_infer_time=context._start, end_infer_time=context._end)
    for item in items:
        if isinstance(item, ModelMonitoringApplicationResult):
            where = f"result {item.name!r}"
            check_name(item.name, "result name")
            kind = _enum(ResultKindApp, item.kind, "kind")
            status = _enum(ResultStatusApp, item.status, "status")
            if not isinstance(item.extra_data, Mapping):
                raise ValueError(f"{where}: extra_data must be a dict, got {type(item.extra_data).__name__}")
            # no value only with status irrelevant: there was nothing to measure
            value = (None if item.value is None and status == ResultStatusApp.irrelevant
                     else _check_number(item.value, f"{where}: value"))
            results.append(ResultRecord(result_name=item.name, kind=int(kind), status=int(status), value=value,
                                        extra_data=_jsonable(dict(item.extra_data), f"{where}: extra_data"), **common))
        elif isinstance(item, ModelMonitoringApplicationMetric):
            check_name(item.name, "metric name")
            metrics.append(MetricRecord(metric_name=item.name, value=_check_number(item.value, f"metric {item.name!r}"),
                                        **common))
        else:
            raise ValueError(f"application {name!r} returned {type(item).__name__}: "
                             "return results, metrics, a list of them, or a dict of metric values")
    for what, names in (("result", [r.result_name for r in results]), ("metric", [m.metric_name for m in metrics])):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"application {name!r} returned the {what} name(s) {twice} more than once")
    return results, metrics
