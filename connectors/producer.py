"""The producer SDK: serving code sends one inference at a time, the monitoring job reads them.

::

    from streamdrift.connectors.producer import MonitoringProducer

    with MonitoringProducer("kafka://127.0.0.1:9092", "fraud") as producer:
        producer.log(("scorer", "serving", "v3"), inputs=features, outputs=scores, latency_us=850)

``log`` serialises the event at once (so the caller may reuse its arrays) and puts it on a bounded
in-memory queue; a background thread sends the queue in batches. ``log`` never waits for the
stream: when the queue is full the event is dropped and counted (``dropped``, the Prometheus
counter ``streamdrift_producer_dropped_events_total`` and a warning in the log, at most one per
``drop_log_interval_s``), so a slow or absent broker never slows the model's requests.

Each event is the job's native event (DESIGN.md, "Inference events"), one JSON object per record::

    {"endpoint_id": ..., "timestamp": <epoch ms>, "request_id": ..., "inputs": [[...], ...],
     "outputs": [...], "latency_us": ..., "error": ..., "labels": {...}}

Streams:

* ``kafka://host:port[,host:port]``: the topic ``<project>.inference-events`` through kafka-python,
  keyed by endpoint id (an endpoint's events stay in order within their partition);
* ``file:///dir``: the embedded directory stream the job reads (``streamdrift run`` on the embedded
  defaults): newline-delimited records in ``<dir>/<project>.inference-events/``, one file per batch,
  written under a hidden name and renamed into place, so the job never reads half a file. A running
  job reads the files as they appear; a backlog of files is read in no set order, so events may
  reach the job out of time order by up to the time a backlog spans: they count in their window
  within the job's allowed lateness (``--allowed-lateness-seconds``), and are counted late beyond it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from streamdrift.connectors.settings import file_stream_dir, kafka_bootstrap, mask_password, topic_names
from streamdrift.udfs.endpoint_id import endpoint_uid
from streamdrift.udfs.events import parse_timestamp
from streamdrift.udfs.records import ms_from_utc

log = logging.getLogger("streamdrift.producer")

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _metrics():
    """The producer's Prometheus counters (prometheus_client's default registry), made once."""
    global _COUNTERS
    if _COUNTERS is None:
        from prometheus_client import Counter

        _COUNTERS = {
            "logged": Counter("streamdrift_producer_events", "Events queued by log() (counted as they leave the queue)",
                              ["project"]),
            "dropped": Counter("streamdrift_producer_dropped_events",
                               "Events dropped by log() because the queue was full", ["project"]),
            "sent": Counter("streamdrift_producer_sent_events", "Events the stream accepted", ["project"]),
            "failed": Counter("streamdrift_producer_failed_events",
                              "Events the stream refused or that could not be written", ["project"]),
        }
    return _COUNTERS


_COUNTERS: dict | None = None


# --------------------------------------------------------------------------- values → the native event

def _default(value: Any) -> Any:
    """What orjson cannot write by itself: numpy arrays it does not take (not C-contiguous, object
    dtype), numpy scalars, pandas objects, times (ISO 8601)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    to_list = getattr(value, "tolist", None)  # pandas Series / Index / arrays
    if callable(to_list):
        return to_list()
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent: use numbers, strings, "
                    "booleans, None, lists or NumPy arrays of them")


def as_rows(value: Any, what: str = "inputs") -> Any:
    """``inputs`` / ``outputs`` in an orientation the job accepts, without copying values one by one.

    * list or tuple: as given (one row of values, or a batch: a list of rows);
    * NumPy array: 1-D is one row (inputs) or one value per row (outputs); 2-D is one row per line;
    * pandas DataFrame: inputs as one ``{column: value}`` object per row (names are kept, so the
      column order need not match the endpoint's features); outputs as ``{column: [values per
      row]}``, each column a port;
    * pandas Series: one row ``{name: value}`` (inputs) or one value per row (outputs);
    * dict: as given, and the job reads it as it reads any event's object
      (:mod:`streamdrift.udfs.events`): for inputs ``{name: value}`` is one row, ``{name: [one value
      per row]}`` (every value a list, all of one length) is a batch by columns, a list beside
      scalars is an array feature of the row (summarised as ``<name>.mean``, ...), and
      ``{"columns": [...], "data": [[...], ...]}`` is pandas' split orientation; for outputs
      ``{port: [values per row]}``.

    Raises TypeError for anything else, ValueError for an array of more than 2 dimensions or a
    0-d one.
    """
    if value is None or isinstance(value, (list, tuple)):
        return value
    if isinstance(value, np.ndarray):
        if value.ndim not in (1, 2):
            raise ValueError(f"{what} as a NumPy array must be 1-D (one row) or 2-D (one row per line), "
                             f"got shape {value.shape}")
        return value
    if isinstance(value, Mapping):
        return value
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        if what == "outputs":
            return {str(name): value[name].to_numpy() for name in value.columns}
        names = [str(name) for name in value.columns]
        columns = [value[name].to_numpy().tolist() for name in value.columns]
        return [dict(zip(names, row)) for row in zip(*columns)]
    if isinstance(value, pd.Series):
        if what == "outputs":
            return value.to_numpy()
        return {str(name): v for name, v in value.items()}
    raise TypeError(f"{what} must be a list, a NumPy array, a pandas DataFrame or Series, or a dict; "
                    f"got {type(value).__name__}")


def _epoch_ms(timestamp: Any) -> int:
    if timestamp is None:
        return time.time_ns() // 1_000_000
    if isinstance(timestamp, dt.datetime):  # pandas.Timestamp too; naive = UTC, as the job reads it
        return ms_from_utc(timestamp)
    if isinstance(timestamp, np.datetime64):
        return int(timestamp.astype("datetime64[ms]").astype(np.int64))
    try:
        return parse_timestamp(timestamp)
    except ValueError as exc:
        raise ValueError(f"timestamp: {exc} (give epoch milliseconds, a datetime or an ISO 8601 string)") from None


def encode_event(endpoint_id: str, inputs: Any, outputs: Any = None, request_id: str | None = None,
                 timestamp: Any = None, latency_us: float | None = None, error: str | None = None,
                 labels: Mapping[str, Any] | None = None) -> bytes:
    """One native event as the JSON bytes the job reads (see the module's docstring). NaN becomes
    null (a missing value). Raises TypeError or ValueError naming what cannot be sent."""
    event: dict[str, Any] = {"endpoint_id": endpoint_id, "timestamp": _epoch_ms(timestamp)}
    if request_id is not None:
        event["request_id"] = str(request_id)
    event["inputs"] = as_rows(inputs, "inputs")
    if outputs is not None:
        event["outputs"] = as_rows(outputs, "outputs")
    if latency_us is not None:
        event["latency_us"] = float(latency_us)
    if error is not None:
        event["error"] = str(error)
    if labels:
        event["labels"] = dict(labels)
    try:
        return orjson.dumps(event, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"the event for endpoint {endpoint_id!r} cannot be written as JSON: {exc}") from None


# --------------------------------------------------------------------------- streams

class _KafkaStream:
    """kafka-python's producer, made on first use and remade after a failure at most every
    ``retry_s``: a broker that is down when the model server starts does not stop it (events queue
    up, then are dropped and counted, until the broker answers)."""

    def __init__(self, stream_path: str, topic: str, config: Mapping[str, Any], retry_s: float = 5.0):
        self.topic = topic
        self.options = {"bootstrap_servers": kafka_bootstrap(stream_path).split(","), "acks": 1, "linger_ms": 50,
                        "batch_size": 256 << 10, "max_request_size": 2 << 20, "retries": 5, **config}
        self.producer = None
        self.retry_s = retry_s
        self.tried = -float("inf")

    def ready(self) -> BaseException | None:
        """None when the producer is connected, else why not (tried again after ``retry_s``)."""
        if self.producer is not None:
            return None
        if time.monotonic() - self.tried < self.retry_s:
            return ConnectionError("not connected yet")
        self.tried = time.monotonic()
        from kafka import KafkaProducer

        try:
            self.producer = KafkaProducer(**self.options)
        except Exception as exc:  # noqa: BLE001 - NoBrokersAvailable, a bad option: said by the caller
            return exc
        return None

    def write(self, batch: list[tuple[bytes | None, bytes]], done) -> None:
        """Send the batch and wait (this thread, never the caller's) until the broker answered for
        each record: counted once per batch (a callback per record cost more than the send)."""
        futures, refused, last = [], 0, None
        for key, value in batch:
            try:
                futures.append(self.producer.send(self.topic, value=value, key=key))
            except Exception as exc:  # noqa: BLE001 - counted as failed, the others go on
                refused, last = refused + 1, exc
        self.producer.flush()
        for future in futures:
            if not future.succeeded():
                refused, last = refused + 1, future.exception
        done(len(batch) - refused, last, refused)

    def flush(self, timeout: float | None) -> None:
        if self.producer is not None:
            self.producer.flush(timeout=timeout)

    def close(self, timeout: float | None) -> None:
        if self.producer is not None:
            self.producer.close(timeout=timeout)


class _FileStream:
    """One file per batch in the directory the job's filesystem source watches. Flink's file source
    skips names starting with '.' or '_': the file is written under such a name and renamed."""

    def __init__(self, stream_path: str, topic: str):
        self.directory = file_stream_dir(stream_path) / topic
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = f"producer-{uuid.uuid4().hex[:12]}"
        self.files = itertools.count()

    def ready(self) -> BaseException | None:
        return None

    def write(self, batch: list[tuple[bytes | None, bytes]], done) -> None:
        name = f"{self.prefix}-{time.time_ns()}-{next(self.files):06d}.jsonl"
        hidden = self.directory / f".{name}.inprogress"
        try:
            with open(hidden, "wb") as f:
                f.write(b"\n".join(value for _, value in batch) + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(hidden, self.directory / name)  # atomic on one file system
        except OSError as exc:
            hidden.unlink(missing_ok=True)
            done(0, exc, len(batch))
            return
        done(len(batch), None)

    def flush(self, timeout: float | None) -> None:
        pass

    def close(self, timeout: float | None) -> None:
        pass


# --------------------------------------------------------------------------- the producer

class MonitoringProducer:
    """Sends inference events to the monitoring job's stream, in the background.

    :param stream_path: ``kafka://host:port[,host:port]`` or ``file:///dir`` (the job's ``stream_path``).
    :param project: the job's project: events go to ``<project>.inference-events``, and a
        ``(model, function, version)`` endpoint is named within it.
    :param max_queue: events waiting to be sent, at most; beyond, ``log`` drops and counts.
    :param batch_size: events per batch handed to the stream (one file per batch on ``file://``).
    :param linger_s: a batch is sent when it is full or after this many seconds.
    :param kafka_config: further kafka-python ``KafkaProducer`` options (``security_protocol``, ...).

    Thread-safe: ``log`` may be called from many threads. Counts: ``logged``, ``dropped`` (queue
    full), ``sent`` (the stream accepted them), ``failed`` (the stream refused them; logged).
    """

    def __init__(self, stream_path: str, project: str, *, max_queue: int = 100_000, batch_size: int = 1_000,
                 linger_s: float = 0.2, kafka_config: Mapping[str, Any] | None = None,
                 drop_log_interval_s: float = 10.0):
        from streamdrift.connectors.settings import SPECS

        if max_queue < 1 or batch_size < 1:
            raise ValueError(f"max_queue ({max_queue}) and batch_size ({batch_size}) must be at least 1")
        self.project = SPECS["project"].check("project", project)
        self.stream_path = SPECS["stream_path"].check("stream_path", stream_path)
        topic = topic_names(self.project)["events"]
        if self.stream_path.startswith("kafka://"):
            self._stream = _KafkaStream(self.stream_path, topic, kafka_config or {})
        else:
            self._stream = _FileStream(self.stream_path, topic)
        self.max_queue, self.batch_size, self.linger_s = max_queue, batch_size, linger_s
        self.drop_log_interval_s = drop_log_interval_s
        self._queue: deque[tuple[bytes | None, bytes]] = deque()
        self._ids: dict[tuple[str, str, str | None, str | None], str] = {}
        self._lock = threading.Lock()  # counts and the done condition
        self._done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self.logged = self.dropped = self.sent = self.failed = 0
        self._handled = 0  # sent + failed
        self._last_warning = {"dropped": 0.0, "failed": 0.0}
        self._closed = False
        counters = _metrics()
        self._metric = {name: counter.labels(self.project) for name, counter in counters.items()}
        self._thread = threading.Thread(target=self._run, name=f"streamdrift-producer-{self.project}", daemon=True)
        self._thread.start()

    # -- the caller's side

    def endpoint_id(self, endpoint: str | Sequence[str | None]) -> str:
        """An endpoint id as given, or the id of ``(model, function, version)`` (or ``(model,
        function, version, tag)``) in this project, as the job and MLRun derive it
        (:func:`streamdrift.udfs.endpoint_id.endpoint_uid`: sha1 of ``project_function_tag_model_version``)."""
        if isinstance(endpoint, str):
            if not endpoint:
                raise ValueError("endpoint id is empty: give an id, or (model, function, version)")
            return endpoint
        key = tuple(endpoint)
        if len(key) not in (3, 4):
            raise ValueError(f"endpoint must be an id or (model, function, version[, tag]), got {endpoint!r}")
        model, function, version, tag = (*key, None) if len(key) == 3 else key
        full = (model, function, tag, version)
        found = self._ids.get(full)
        if found is None:
            found = self._ids[full] = endpoint_uid(self.project, function, tag, model, version)
        return found

    def log(self, endpoint: str | Sequence[str | None], inputs: Any, outputs: Any = None,
            request_id: str | None = None, timestamp: Any = None, latency_us: float | None = None,
            error: str | None = None, labels: Mapping[str, Any] | None = None) -> bool:
        """Queue one inference event (one request: a row or a batch of rows); never waits.

        :param endpoint: the endpoint id, or ``(model, function, version)`` (see :meth:`endpoint_id`).
        :param inputs: the request's features: list (a row, or a list of rows), NumPy array (1-D a
            row, 2-D rows), pandas DataFrame (rows) or Series (a row), or dict (``{name: value}`` a
            row, ``{name: [values]}`` rows); see :func:`as_rows`.
        :param outputs: the predictions, aligned with the rows: a value per row, a list per row,
            or ``{port: [values per row]}`` (a DataFrame gives that); NumPy and pandas as for inputs.
        :param timestamp: the request's time: epoch milliseconds, a datetime (naive = UTC) or an
            ISO 8601 string; default now.
        :param latency_us: the model's latency in microseconds.
        :param error: the request failed with this message (its rows are counted as an error).
        :returns: True when queued; False when the queue was full and the event was dropped (counted).
        :raises TypeError, ValueError: the event cannot be written (the message says why).
        """
        endpoint_id = self.endpoint_id(endpoint)
        return self._put(endpoint_id.encode(),
                         encode_event(endpoint_id, inputs, outputs, request_id, timestamp, latency_us, error, labels))

    def send_record(self, record: bytes | str | Mapping[str, Any], key: str | None = None) -> bool:
        """Queue one record as it is: an MLRun serving event, an event encoded elsewhere (a mapping
        is written as JSON, bytes and strings are not checked: the job makes a dead letter of what
        it cannot read). Same queue and rules as :meth:`log`."""
        if isinstance(record, Mapping):
            record = orjson.dumps(record, default=_default, option=_OPTIONS)
        elif isinstance(record, str):
            record = record.encode()
        return self._put(None if key is None else key.encode(), bytes(record))

    def _put(self, key: bytes | None, value: bytes) -> bool:
        if self._closed:
            raise RuntimeError("the producer is closed")
        queue = self._queue
        with self._lock:
            full = len(queue) >= self.max_queue
            if full:
                self.dropped += 1
            else:
                queue.append((key, value))
                self.logged += 1
        if full:
            self._metric["dropped"].inc()
            self._warn("dropped", "queue full (%d events), %d event(s) dropped so far; the stream %s is slower "
                                  "than the requests, or unreachable",
                       self.max_queue, self.dropped, mask_password(self.stream_path))
            return False
        if len(queue) >= self.batch_size:
            self._wake.set()
        return True

    def _warn(self, kind: str, message: str, *args) -> None:
        """A warning of ``kind``, at most one per ``drop_log_interval_s`` (a full queue under load
        would otherwise log once per request)."""
        now = time.monotonic()
        if now - self._last_warning[kind] >= self.drop_log_interval_s:
            self._last_warning[kind] = now
            log.warning("monitoring producer of project %s: " + message, self.project, *args)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call was sent or failed (and the Kafka
        client's buffer is flushed); True unless ``timeout`` (seconds) ran out first."""
        target = self.logged
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            while self._handled < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._done.wait(left if left is not None else 1.0)
                self._wake.set()
        self._stream.flush(None if deadline is None else max(deadline - time.monotonic(), 0))
        return True

    def close(self, timeout: float | None = 30.0) -> bool:
        """Send what is queued (waiting up to ``timeout`` s), stop the background thread and close
        the stream. Events still queued after the timeout are counted as failed. Idempotent."""
        if self._closed:
            return True
        flushed = self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        left = len(self._queue)
        if left:
            self._queue.clear()
            self._count(0, RuntimeError("closed before they were sent"), left)
        self._stream.close(timeout)
        return flushed and not left

    def __enter__(self) -> MonitoringProducer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- the background side

    def _count(self, sent: int, exc: BaseException | None, failed: int | None = None) -> None:
        failed = (0 if exc is None else 1) if failed is None else failed
        with self._done:
            self.sent += sent
            self.failed += failed
            self._handled += sent + failed
            self._done.notify_all()
        if sent:
            self._metric["sent"].inc(sent)
        if failed:
            self._metric["failed"].inc(failed)
            self._warn("failed", "%d event(s) so far not written to %s; the last: %s", self.failed,
                       mask_password(self.stream_path), mask_password(f"{type(exc).__name__}: {exc}"))

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.linger_s)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        queue = self._queue
        if queue:
            problem = self._stream.ready()
            if problem is not None:  # the events wait in the queue (which drops when full)
                self._warn("failed", "cannot connect to %s (%d event(s) waiting): %s", mask_password(self.stream_path),
                           len(queue), mask_password(f"{type(problem).__name__}: {problem}"))
                return
        while queue:
            n = min(len(queue), self.batch_size)
            batch = [queue.popleft() for _ in range(n)]
            self._metric["logged"].inc(n)
            try:
                self._stream.write(batch, self._count)
            except Exception as exc:  # noqa: BLE001 - the stream refused the batch: counted, never raised
                self._count(0, exc, n)


__all__ = ["MonitoringProducer", "encode_event", "as_rows"]
