"""Decoding inference events: both shapes of DESIGN.md into rows, or a dead letter with its reason.

Shapes (one JSON object per record):

* native: ``endpoint_id``, ``timestamp`` (ISO 8601, or an epoch number in s, ms, µs or ns told
  apart by magnitude: :func:`epoch_ms`), ``request_id``, ``inputs``, ``outputs``, ``latency_us``,
  ``error``, ``labels``, ``metrics``;
* MLRun serving, recognised by ``function_uri`` with ``request`` or ``when`` whatever else it
  carries: ``model`` ("name" or "name:version"), ``version``, ``function_uri``
  ("project/function:tag"), ``request`` {``id``, ``inputs``}, ``resp`` {``id``, ``outputs``},
  ``when``, ``microsec``, ``error``; MLRun 1.12 adds ``endpoint_id`` (used as it is; without it the
  id is derived as MLRun derives it, :func:`streamdrift.udfs.endpoint_id.endpoint_uid`), ``sampling_percentage``
  and ``effective_sample_count`` (:attr:`Event.estimated_rows`);
* MLRun's ``batch_complete`` (``kind``, ``endpoint_id``, ``last_timestamp``, ...): a
  :class:`BatchComplete`.

``inputs`` in any orientation (:func:`_input_rows`): one row (a list of values, or an object name →
value), a batch (a list of rows), columns (an object name → one value per row), pandas' "split".
``outputs`` is aligned with the rows: a value per row, a list per row, or an object port → per-row
values. A row/output length mismatch is a dead letter, never a silent truncation.

Rows come out as name → value dicts. Positional values are named by the endpoint's
``feature_names`` / ``output_names`` when known (else ``f0, f1, ...`` and ``prediction``, or
``prediction_0, prediction_1, ...`` for several outputs per row; a port's list is ``<port>_0, ...``).
Names are normalised as the reference's are (:func:`streamdrift.udfs.naming.normalize_name`:
``"petal length (cm)"`` → ``"petal_length_cm"``); a name twice in one row (two keys that normalise
alike, an output reusing an input's name) is a dead letter. A nested numeric array (an image, an
embedding) becomes derived columns ``<name>.mean``, ``.std``, ``.min``, ``.max``, ``.norm`` (see
:func:`summarise_array`) where the reference column is an array.

A failed request (``error``) is an event counted as an error; its rows are not monitored, and
missing or malformed inputs do not make it a dead letter.

A list of rows (every element a list or an object) is a batch; a list with any scalar in it is one
row. So one row whose every value is an array must be sent as a batch of one: ``[[a, b]]``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from streamdrift.udfs.contract import TimeBounds, endpoint_id_problem, structure_problem
from streamdrift.udfs.endpoint_id import GROUPS, endpoint_group, endpoint_uid

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a declared dependency; the standard library works too
    _orjson = None
from streamdrift.udfs.naming import normalize_name
from streamdrift.udfs.records import ms_from_utc

MAX_EVENT_BYTES = 1 << 20
"""A record larger than this (1 MiB) is a dead letter: it would stall the window stage."""

DEAD_LETTER_PAYLOAD_BYTES = 64 << 10
"""The original payload kept in a dead letter, at most (longer ones are truncated and say so)."""

DERIVED = ("mean", "std", "min", "max", "norm")

MIN_EPOCH_MS = ms_from_utc(dt.datetime.min)
MAX_EPOCH_MS = ms_from_utc(dt.datetime.max)
"""The event times Python's ``datetime`` represents (years 1 to 9999), in epoch milliseconds."""


class EventError(ValueError):
    """An event that cannot be monitored; the message is the dead letter's reason."""


class PositionalRows(Sequence):
    """The fast path's rows: one list of values per row under one tuple of column names, so the
    window stage can count them without a dict per row. Reads as the tuple of name → value dicts
    the general path makes (made on first use) and compares equal to it.

    Examples
    --------
    >>> rows = PositionalRows(('a', 'b'), [[1, 2], [3, 4]])
    >>> len(rows), rows[1]
    (2, {'a': 3, 'b': 4})
    >>> rows == [{'a': 1, 'b': 2}, {'a': 3, 'b': 4}]
    True
    """

    __slots__ = ("names", "values", "_dicts")

    def __init__(self, names: tuple[str, ...], values: list[list[Any]]):
        self.names = names
        self.values = values
        self._dicts: tuple[dict[str, Any], ...] | None = None

    def _rows(self) -> tuple[dict[str, Any], ...]:
        if self._dicts is None:
            self._dicts = tuple(dict(zip(self.names, v)) for v in self.values)
        return self._dicts

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):
        return self._rows()[index]

    def __iter__(self):
        return iter(self._rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return self._rows() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # rows are dicts: not hashable either way

    def __repr__(self) -> str:
        return repr(self._rows())


class Event(NamedTuple):
    """One inference event, decoded: rows of name → value, one per sample (a named tuple: made
    once per record, it costs a fifth of a frozen dataclass). ``rows`` is a tuple of dicts, or
    :class:`PositionalRows` (which reads as one)."""

    endpoint_id: str
    timestamp_ms: int
    request_id: str | None
    rows: Sequence[dict[str, Any]]
    error: bool
    latency_us: float | None
    shape: str  # "native" or "mlrun"
    project: str | None = None
    estimated_rows: float | None = None  # rows the event stands for, sampling undone (None: its rows)


class BatchComplete(NamedTuple):
    """MLRun's ``batch_complete`` event: a batch job sent everything up to ``last_timestamp_ms``,
    so the endpoint's open windows that start at or before it can close now."""

    endpoint_id: str
    last_timestamp_ms: int


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    payload: str
    reason: str
    truncated: bool = False
    size: int = 0
    endpoint_id: str | None = None  # the endpoint the record named, when it named a valid one

    def to_json(self) -> str:
        """The dead letter as the dead-letter topic carries it (a JSON object, ``kind`` "record").

        >>> print(dead_letter('{}', "no field 'endpoint_id'").to_json())
        {"kind": "record", "reason": "no field 'endpoint_id'", "payload": "{}", "truncated": false, "size_bytes": 2}
        """
        letter = {"kind": "record", "reason": self.reason, "payload": self.payload, "truncated": self.truncated,
                  "size_bytes": self.size}
        if self.endpoint_id is not None:
            letter["endpoint_id"] = self.endpoint_id
        return json.dumps(letter)


@dataclasses.dataclass(frozen=True)
class Columns:
    """What an endpoint's rows are called: its feature and output names (empty when unknown)."""

    features: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @functools.cached_property
    def arrays(self) -> frozenset[str]:
        """The reference's array columns: those it has derived columns of (``<name>.mean``, ...).

        >>> sorted(Columns(('age', 'img.mean', 'img.std')).arrays)
        ['img']
        """
        return frozenset(name[:-5] for name in self.features if name.endswith(".mean"))

    @functools.cached_property
    def with_one_output(self) -> tuple[str, ...] | None:
        """The names of a row of features followed by one output value (as :func:`decode` names
        it), or None when that output's name is a feature's (such a row is a dead letter).

        >>> Columns(('a', 'b'), ('label',)).with_one_output
        ('a', 'b', 'label')
        >>> Columns(('a', 'b')).with_one_output  # no output names: "prediction"
        ('a', 'b', 'prediction')
        >>> Columns(('a', 'label'), ('label',)).with_one_output is None
        True
        """
        name = normalize_name(_output_names(1, self.outputs)[0])
        return None if name in self.features else (*self.features, name)


NO_COLUMNS = Columns()


def dead_letter(payload: bytes | str, reason: str, size: int | None = None,
                endpoint_id: str | None = None) -> DeadLetter:
    """The dead letter of a record: its first :data:`DEAD_LETTER_PAYLOAD_BYTES` bytes and the
    reason. ``size``: the record's size when ``payload`` is only its first bytes; ``endpoint_id``:
    the endpoint it is counted on (a record that named one).

    Examples
    --------
    >>> letter = dead_letter(b'{"endpoint_id": 7}', 'bad id')
    >>> letter.reason, letter.size, letter.truncated
    ('bad id', 18, False)
    >>> big = dead_letter('x' * 70_000, 'too big')  # keeps the first 64 KiB
    >>> len(big.payload), big.size, big.truncated
    (65536, 70000, True)
    """
    raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else bytes(payload)
    kept = raw[:DEAD_LETTER_PAYLOAD_BYTES]
    size = len(raw) if size is None else size
    return DeadLetter(kept.decode("utf-8", "replace"), reason, size > len(kept), size, endpoint_id)


def _named_endpoint(obj: dict[str, Any]) -> str | None:
    """The endpoint id a record names, when it is a valid one (its dead letter is counted there)."""
    endpoint_id = obj.get("endpoint_id")
    return endpoint_id if endpoint_id_problem(endpoint_id) is None else None


# --------------------------------------------------------------------------- time


def _loads(payload: bytes | str) -> Any:
    """JSON → Python: orjson (4× faster) when it accepts the text, else the standard library,
    which also reads what orjson refuses (NaN and Infinity literals, integers beyond 64 bits) and
    gives the error message of a malformed record."""
    if _orjson is not None:
        try:
            return _orjson.loads(payload)  # valid Unicode only: it refuses lone surrogates
        except (_orjson.JSONDecodeError, TypeError):
            pass
    obj = json.loads(payload)
    problem = structure_problem(obj)
    if problem is not None:
        raise EventError(problem)
    return obj


EPOCH_UNIT_BOUNDS = (10 ** 11, 10 ** 14, 10 ** 17)
"""An epoch number's unit by its magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17
microseconds, else nanoseconds. Each unit so covers 1973-03-03 to 5138-11-16 (before 1973, a
number of milliseconds would read as seconds)."""


def epoch_ms(value: int | float) -> int:
    """An epoch time in seconds, milliseconds, microseconds or nanoseconds (told apart by
    :data:`EPOCH_UNIT_BOUNDS`) → epoch milliseconds (floor; integers exactly).

    >>> [epoch_ms(v) for v in (1795694400, 1795694400123, 1795694400123456, 1795694400123456789)]
    [1795694400000, 1795694400123, 1795694400123, 1795694400123]
    >>> epoch_ms(1795694400.5)
    1795694400500

    >>> epoch_ms(1_764_158_400)  # seconds
    1764158400000
    >>> epoch_ms(1_764_158_400_123)  # milliseconds
    1764158400123
    >>> epoch_ms(1_764_158_400_123_456)  # microseconds
    1764158400123
    """
    magnitude = abs(value)
    if magnitude < EPOCH_UNIT_BOUNDS[0]:
        return math.floor(value * 1000) if isinstance(value, float) else value * 1000
    if magnitude < EPOCH_UNIT_BOUNDS[1]:
        return math.floor(value)
    divisor = 1000 if magnitude < EPOCH_UNIT_BOUNDS[2] else 1_000_000
    return math.floor(value / divisor) if isinstance(value, float) else value // divisor


def epoch_ms_array(values: np.ndarray) -> np.ndarray:
    """:func:`epoch_ms` of an int64 array (vectorised, the same values).

    >>> epoch_ms_array(np.array([1_764_158_400, 1_764_158_400_123])).tolist()
    [1764158400000, 1764158400123]
    """
    magnitude = np.abs(values)
    return np.where(magnitude < EPOCH_UNIT_BOUNDS[0], values * 1000,
                    np.where(magnitude < EPOCH_UNIT_BOUNDS[1], values,
                             np.where(magnitude < EPOCH_UNIT_BOUNDS[2], values // 1000, values // 1_000_000)))


_NUMBER_TEXT = re.compile(r"[+-]?\d+(\.\d*)?")


def parse_timestamp(value: Any, field: str = "timestamp") -> int:
    """ISO 8601 (``T`` or space separator, any fraction, ``Z`` or an offset; naive = UTC) or an epoch
    number (or digit string) in seconds, milliseconds, microseconds or nanoseconds (:func:`epoch_ms`)
    → epoch milliseconds (floor; exact, no float rounding of the fraction).

    A time outside years 1–9999 is an error: it cannot be a request time and would fail later,
    when the window is written.

    >>> parse_timestamp('2025-11-26T12:00:00.123Z')
    1764158400123
    >>> parse_timestamp('2025-11-26 13:00:00.123+01:00')
    1764158400123
    >>> parse_timestamp('1764158400123')
    1764158400123
    """
    if isinstance(value, bool) or value is None:
        raise EventError(f"field {field!r} must be an ISO 8601 time or an epoch number, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise EventError(f"field {field!r} is not finite: {value!r}")
        ms = epoch_ms(value)
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER_TEXT.fullmatch(text):
            ms = epoch_ms(int(text) if text.lstrip("+-").isdigit() else float(text))
        else:
            try:
                when = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
            except ValueError:
                raise EventError(f"field {field!r} is not an ISO 8601 time: {value[:64]!r}") from None
            try:
                ms = ms_from_utc(when)
            except OverflowError:
                raise EventError(f"field {field!r} is out of range: {value[:64]!r}") from None
    else:
        raise EventError(f"field {field!r} must be an ISO 8601 time or an epoch number, "
                         f"got {type(value).__name__}")
    if not MIN_EPOCH_MS <= ms <= MAX_EPOCH_MS:
        raise EventError(f"field {field!r} is out of range (years 1-9999) as epoch milliseconds: {str(value)[:64]}")
    return ms


# --------------------------------------------------------------------------- values


def summarise_array(name: str, value: Sequence[Any]) -> dict[str, float]:
    """A nested numeric array → ``{name.mean, name.std, name.min, name.max, name.norm}``.

    std is the population std (ddof=0); norm is the L2 norm of all elements. An empty array
    gives NaNs (nulls). A non-numeric element (strings too, even "1.5"), a ragged array or a number
    beyond the float64 range is an error naming the column.

    >>> summarise_array('pixels', [[0, 3], [4, 0]])
    {'pixels.mean': 1.75, 'pixels.std': 1.7853571071357126, 'pixels.min': 0.0, 'pixels.max': 4.0, 'pixels.norm': 5.0}
    """
    try:
        raw = np.asarray(value)
        if raw.dtype.kind in "USO" and (raw.dtype.kind != "O" or any(isinstance(v, str) for v in raw.flat)):
            raise ValueError("strings")  # numpy would parse "1.5"; a numeric column never does
        arr = raw.astype(np.float64).ravel()
    except (TypeError, ValueError, OverflowError):
        raise EventError(f"column {name!r} holds an array with non-numeric, ragged or out-of-range "
                         "elements: use numbers (nested lists of equal length)") from None
    if arr.size == 0:
        return {f"{name}.{d}": math.nan for d in DERIVED}
    return {f"{name}.mean": float(arr.mean()), f"{name}.std": float(arr.std()), f"{name}.min": float(arr.min()),
            f"{name}.max": float(arr.max()), f"{name}.norm": float(np.sqrt(np.dot(arr, arr)))}


def _merge(row: dict[str, Any], cells: Mapping[str, Any]) -> None:
    """Add ``cells`` to ``row``; a name already there is an error (never a silent overwrite)."""
    clash = next((name for name in cells if name in row), None)
    if clash is not None:
        raise EventError(f"column {clash!r} appears twice in one row (names are compared as the reference "
                         "normalises them: no parentheses, '_' for spaces; outputs must not reuse input names)")
    row.update(cells)


def _put(row: dict[str, Any], name: str, value: Any) -> None:
    name = normalize_name(name)
    if isinstance(value, (list, tuple)):
        _merge(row, summarise_array(name, value))
    elif value is None or isinstance(value, (bool, int, float, str)):
        _merge(row, {name: value})
    else:
        raise EventError(f"column {name!r} has a value of type {type(value).__name__}: "
                         "use a number, a boolean, a string or a numeric array")


_PLAIN = frozenset({int, float, str, bool, type(None)})


def _is_row(value: Any) -> bool:
    return isinstance(value, (list, dict))


def _columns_to_rows(columns: dict[str, Any], arrays: frozenset[str]) -> list[dict[str, Any]] | None:
    """A column-oriented batch (name → one value per row, all of one length) as rows, or None when
    ``columns`` is one row. Its values are lists; a list whose name is an array column of the
    reference (``arrays``) is that one row's array unless its elements are themselves lists."""
    if not columns or not all(isinstance(v, list) and v for v in columns.values()):
        return None
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        return None
    for name, values in columns.items():
        nested = any(isinstance(v, (list, dict)) for v in values)
        if nested != (normalize_name(name) in arrays):  # per-row arrays where, and only where, arrays are
            return None
    n = lengths.pop()
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]


def _split_rows(inputs: dict[str, Any]) -> list[Any] | None:
    """pandas' and MLflow's "split" orientation, ``{"columns": [...], "data": [[...], ...]}``, as
    rows; None for any other object."""
    if set(inputs) - {"columns", "data", "index"} or not {"columns", "data"} <= set(inputs):
        return None
    columns, data = inputs["columns"], inputs["data"]
    if not isinstance(columns, list) or not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        return None
    if any(len(r) != len(columns) for r in data):
        raise EventError(f"'inputs' in the split orientation: a row of 'data' does not have the "
                         f"{len(columns)} values of 'columns'")
    return [dict(zip(map(str, columns), r)) for r in data]


def _input_rows(inputs: Any, names: tuple[str, ...], arrays: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """``inputs`` → rows, in any orientation serving frameworks use: one row (a list of scalars, or
    an object); a batch of rows (a list of rows, lists or objects); columns (an object of name →
    one value per row, or a list holding one such object); pandas' "split" (``columns`` and
    ``data``). ``arrays``: the reference's array columns (see :func:`_columns_to_rows`)."""
    if isinstance(inputs, dict):
        batch = _split_rows(inputs) or _columns_to_rows(inputs, arrays) or [inputs]
    elif isinstance(inputs, list):
        if not inputs:
            raise EventError("field 'inputs' is an empty list: no rows to monitor")
        columns = _columns_to_rows(inputs[0], arrays) if len(inputs) == 1 and isinstance(inputs[0], dict) else None
        # all rows → a batch; otherwise one row (whose values may be nested arrays)
        batch = columns or (inputs if all(_is_row(r) for r in inputs) else [inputs])
    else:
        raise EventError(f"field 'inputs' must be a row (list or object) or a list of rows, got {type(inputs).__name__}")
    rows = []
    for i, raw in enumerate(batch):
        row: dict[str, Any] = {}
        if isinstance(raw, dict):
            for key, value in raw.items():
                _put(row, str(key), value)
        elif isinstance(raw, list):
            if names and len(raw) != len(names):
                raise EventError(f"row {i} of 'inputs' has {len(raw)} values, the endpoint has "
                                 f"{len(names)} features {list(names)[:10]}")
            if names and _PLAIN.issuperset(map(type, raw)):
                row = dict(zip(names, raw))  # the common case: scalars named by the endpoint (normalised, unique)
            else:
                for j, value in enumerate(raw):
                    _put(row, names[j] if names else f"f{j}", value)
        else:
            raise EventError(f"row {i} of 'inputs' must be a list or an object, got {type(raw).__name__}")
        rows.append(row)
    return rows


def _output_names(width: int, names: tuple[str, ...]) -> list[str]:
    if names and len(names) == width:
        return list(names)
    return ["prediction"] if width == 1 else [f"prediction_{j}" for j in range(width)]


def _port_columns(port: str, values: Any, n_rows: int, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per-row output columns of one port (or of the only output when ``port`` is empty)."""
    if not isinstance(values, list):
        values = [values]
    elif n_rows == 1 and len(values) > 1 and not any(isinstance(v, list) for v in values):
        values = [values]  # one row, several output values
    if len(values) != n_rows:
        where = f"output port {port!r}" if port else "field 'outputs'"
        raise EventError(f"{where} has {len(values)} values, 'inputs' has {n_rows} rows")
    out = []
    for value in values:
        cells: dict[str, Any] = {}
        if isinstance(value, list) and value and not any(isinstance(v, list) for v in value):
            cols = [f"{port}_{j}" for j in range(len(value))] if port else _output_names(len(value), names)
            for name, v in zip(cols, value):
                _put(cells, name, v)
        else:
            _put(cells, port or _output_names(1, names)[0], value)
        out.append(cells)
    return out


def _attach_outputs(rows: list[dict[str, Any]], outputs: Any, names: tuple[str, ...]) -> None:
    if outputs is None:
        return
    n = len(rows)
    if isinstance(outputs, list) and len(outputs) == n and _PLAIN.issuperset(map(type, outputs)):
        # the common case: one scalar per row (what _port_columns does, without a dict per value)
        name = normalize_name(_output_names(1, names)[0])
        for row, value in zip(rows, outputs):
            if name in row:
                _merge(row, {name: value})  # raises: the name is taken
            row[name] = value
        return
    if isinstance(outputs, dict):
        for port, values in outputs.items():
            for row, cells in zip(rows, _port_columns(str(port), values, n, ())):
                _merge(row, cells)
        return
    for row, cells in zip(rows, _port_columns("", outputs, n, names)):
        _merge(row, cells)


# --------------------------------------------------------------------------- shapes


def _check_endpoint_id(endpoint_id: Any) -> str:
    problem = endpoint_id_problem(endpoint_id)
    if problem is not None:
        raise EventError(f"field 'endpoint_id' {problem}")
    return endpoint_id


def _native(obj: dict[str, Any], columns_of) -> Event:
    endpoint_id = _check_endpoint_id(obj.get("endpoint_id"))
    if "timestamp" not in obj:
        raise EventError("missing field 'timestamp' (ISO 8601 time or an epoch number)")
    return _event(endpoint_id, parse_timestamp(obj["timestamp"]), obj.get("request_id"), obj.get("inputs"),
                  obj.get("outputs"), obj.get("error"), obj.get("latency_us"), "native", None, columns_of)


_MAX_EXACT = 2 ** 53


def _fast_native(obj: dict[str, Any], columns_of) -> Event | None:
    """The common native event (an integer epoch time, rows of plain values named by the endpoint's
    features, one plain output per row, no error), checked and decoded in one place: what
    :func:`_native` makes of it, in a third of the time. None when anything is unusual: the
    general path then decides, with its error messages."""
    endpoint_id, ts, inputs = obj.get("endpoint_id"), obj.get("timestamp"), obj.get("inputs")
    if type(ts) is not int or type(endpoint_id) is not str or type(inputs) is not list or not inputs:
        return None
    ts = epoch_ms(ts)
    if obj.get("error") or not MIN_EPOCH_MS <= ts <= MAX_EPOCH_MS or endpoint_id_problem(endpoint_id) is not None:
        return None
    latency = obj.get("latency_us")
    if latency is not None:
        kind = type(latency)
        if not ((kind is float and 0.0 <= latency < math.inf) or (kind is int and 0 <= latency <= _MAX_EXACT)):
            return None
    columns = columns_of(endpoint_id)
    names = columns.features
    width = len(names)
    if not width:
        return None
    if type(inputs[0]) is list:  # a batch of rows (every element must then be a row of scalars)
        if len(inputs) == 1:
            first = inputs[0]
            if len(first) != width or not _PLAIN.issuperset(map(type, first)):
                return None
        elif not all(type(r) is list and len(r) == width and _PLAIN.issuperset(map(type, r)) for r in inputs):
            return None
        values = inputs
    elif len(inputs) == width and _PLAIN.issuperset(map(type, inputs)):  # one row
        values = [inputs]
    else:
        return None
    outputs = obj.get("outputs")
    if outputs is not None:
        if type(outputs) is not list or len(outputs) != len(values) or not _PLAIN.issuperset(map(type, outputs)):
            return None
        names = columns.with_one_output
        if names is None:
            return None
        for row, value in zip(values, outputs):  # the lists are this record's own (just parsed)
            row.append(value)
    request_id = obj.get("request_id")
    return Event(endpoint_id, ts, None if request_id is None else str(request_id), PositionalRows(names, values),
                 False, None if latency is None else float(latency), "native", None)


def _mlrun(obj: dict[str, Any], columns_of) -> Event:
    uri, model = obj.get("function_uri"), obj.get("model")
    if not isinstance(uri, str) or "/" not in uri:
        raise EventError("field 'function_uri' must look like 'project/function[:tag]'")
    if not isinstance(model, str) or not model:
        raise EventError("field 'model' must be a non-empty string")
    # as MLRun's parse_versioned_object_uri: project/function[:tag][@hash]; a tag keeps what follows
    # it ("f:t@h" → tag "t@h"), a hash key counts only without a tag (EndpointUID: tag or hash_key)
    project, _, function = uri.partition("/")
    function, _, tag = function.partition(":")
    function, _, hash_key = function.partition("@")
    tag = tag or hash_key
    version = obj.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if version is not None and not isinstance(version, str):
        raise EventError(f"field 'version' must be a string, got {type(version).__name__}")
    if ":" in model and not version:
        model, _, version = model.partition(":")
    if not project or not function:
        raise EventError(f"field 'function_uri' {uri[:100]!r} lacks a project or a function")
    # the id MLRun assigned (MLRun 1.12 sends it); older events: derived as MLRun derives it
    given = obj.get("endpoint_id")
    endpoint_id = (_check_endpoint_id(given) if given is not None
                   else endpoint_uid(project, function, tag or None, model, version or None))
    estimated = _estimated_rows(obj)
    if "when" not in obj:
        raise EventError("missing field 'when' (the request time)")
    error = obj.get("error")
    request = obj.get("request") or {}
    if not isinstance(request, dict):
        if not error:
            raise EventError("field 'request' must be an object with 'inputs'")
        request = {}  # a failed request is counted whatever it looked like
    resp = obj.get("resp")
    if resp is not None and not isinstance(resp, dict):
        raise EventError("field 'resp' must be an object with 'outputs'")
    outputs = resp.get("outputs") if resp else None
    if resp is None and not error:
        raise EventError("an MLRun event without 'resp' must carry 'error'")
    event = _event(endpoint_id, parse_timestamp(obj["when"], "when"), request.get("id"), request.get("inputs"),
                   outputs, error, obj.get("microsec"), "mlrun", project, columns_of)
    return event if estimated is None else event._replace(estimated_rows=estimated(len(event.rows)))


def _estimated_rows(obj: dict[str, Any]):
    """MLRun's sampling (``sampling_percentage``: the share of requests the serving function
    logged; ``effective_sample_count``: the samples the event stands for, default its rows): a
    function rows → the rows the event stands for, ``samples × 100 / sampling_percentage``, as
    MLRun's stream processing estimates them; None without sampling fields."""
    percentage, samples = obj.get("sampling_percentage"), obj.get("effective_sample_count")
    if percentage is None and samples is None:
        return None
    if percentage is None:
        percentage = 100
    if isinstance(percentage, bool) or not isinstance(percentage, (int, float)) or not 0 < percentage <= 100:
        raise EventError(f"field 'sampling_percentage' must be a number in (0, 100], got {percentage!r}")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 0):
        raise EventError(f"field 'effective_sample_count' must be a whole number >= 0, got {samples!r}")
    return lambda rows: (rows if samples is None else samples) * 100.0 / percentage


def _batch_complete(obj: dict[str, Any]) -> BatchComplete:
    """MLRun's ``batch_complete`` event (``kind``, ``endpoint_id``, ``first_timestamp``,
    ``last_timestamp``, ``batch_completion_time``)."""
    if "last_timestamp" not in obj:
        raise EventError("a batch_complete event needs 'last_timestamp'")
    return BatchComplete(_check_endpoint_id(obj.get("endpoint_id")), parse_timestamp(obj["last_timestamp"], "last_timestamp"))


def _is_mlrun_shape(obj: dict[str, Any]) -> bool:
    """MLRun's serving event, whatever else it carries (MLRun 1.12 adds ``endpoint_id``)."""
    return "function_uri" in obj and ("request" in obj or "when" in obj)


def _event(endpoint_id, ts, request_id, inputs, outputs, error, latency, shape, project, columns_of) -> Event:
    """The checks common to both shapes. A failed request (``error``) is counted as an error even
    when its inputs are missing or malformed (a bad request is a common cause of failure): its
    rows are then empty, and no rows of a failed request are monitored anyway."""
    field = "latency_us" if shape == "native" else "microsec"
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float))):
        raise EventError(f"field {field!r} must be a number of microseconds, got {type(latency).__name__}")
    if latency is not None and not (math.isfinite(latency) and latency >= 0):
        raise EventError(f"field {field!r} must be a finite number of microseconds >= 0, got {latency!r}")
    failed = bool(error)
    cols: Columns = columns_of(endpoint_id)
    try:
        if inputs is None:
            raise EventError("missing field 'inputs'" if shape == "native" else "missing field 'request.inputs'")
        rows = _input_rows(inputs, cols.features, cols.arrays)
    except EventError:
        if not failed:
            raise
        rows = []
    if not failed:
        _attach_outputs(rows, outputs, cols.outputs)
    return Event(endpoint_id, ts, None if request_id is None else str(request_id), tuple(rows), failed,
                 None if latency is None else float(latency), shape, project)


def decode(payload: bytes | str, columns_of=lambda endpoint_id: NO_COLUMNS,
           max_bytes: int = MAX_EVENT_BYTES, bounds: TimeBounds | None = None) -> Event | BatchComplete | DeadLetter:
    """One Kafka record → an :class:`Event`, a :class:`BatchComplete` (MLRun's end of a batch
    job), or a :class:`DeadLetter` saying what is wrong.

    ``bounds``: the event times accepted (:class:`streamdrift.udfs.contract.TimeBounds`); None accepts any
    time Python can represent.

    Examples
    --------
    A native event with a batch of two rows; positional values are named ``f0, f1, ...`` and
    ``prediction`` when the endpoint's names are not known:

    >>> event = decode(b'{"endpoint_id": "ep1", "timestamp": "2025-11-26T12:00:00Z",'
    ...                b' "inputs": [[5.1, 3.5], [6.2, 2.9]], "outputs": [0, 1]}')
    >>> event.endpoint_id, event.timestamp_ms, event.shape
    ('ep1', 1764158400000, 'native')
    >>> list(event.rows)
    [{'f0': 5.1, 'f1': 3.5, 'prediction': 0}, {'f0': 6.2, 'f1': 2.9, 'prediction': 1}]

    With the endpoint's names, and an epoch time in seconds:

    >>> names = lambda endpoint_id: Columns(('sepal_length', 'sepal_width'), ('species',))
    >>> list(decode('{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [5.1, 3.5],'
    ...             ' "outputs": [0]}', columns_of=names).rows)
    [{'sepal_length': 5.1, 'sepal_width': 3.5, 'species': 0}]

    What cannot be monitored is a dead letter with its reason:

    >>> decode(b'[1, 2]').reason
    'an event must be a JSON object, got list'
    >>> decode(b'{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [[1, 2], [3, 4]],'
    ...        b' "outputs": [0]}').reason
    "field 'outputs' has 1 values, 'inputs' has 2 rows"

    MLRun's end of a batch job:

    >>> decode('{"kind": "batch_complete", "endpoint_id": "ep1", "last_timestamp": "2025-11-26T12:00:00Z"}')
    BatchComplete(endpoint_id='ep1', last_timestamp_ms=1764158400000)
    """
    size = len(payload.encode("utf-8", "replace")) if isinstance(payload, str) else len(payload)
    if size > max_bytes:
        return dead_letter(payload, f"record of {size} bytes exceeds the limit of {max_bytes} bytes")
    try:
        obj = _loads(payload)
    except EventError as exc:
        return dead_letter(payload, str(exc))
    except (ValueError, UnicodeDecodeError) as exc:
        return dead_letter(payload, f"malformed JSON: {exc}")
    except RecursionError:
        return dead_letter(payload, "malformed JSON: nested too deeply")
    if not isinstance(obj, dict):
        return dead_letter(payload, f"an event must be a JSON object, got {type(obj).__name__}")
    try:
        if obj.get("kind") == "batch_complete":
            control = _batch_complete(obj)
            problem = None if bounds is None else bounds.problem(control.last_timestamp_ms)
            return control if problem is None else dead_letter(payload, f"field 'last_timestamp' {problem}")
        if _is_mlrun_shape(obj):
            event = _mlrun(obj, columns_of)
        elif "endpoint_id" in obj:
            event = _fast_native(obj, columns_of) or _native(obj, columns_of)
        elif "function_uri" in obj or "model" in obj:
            event = _mlrun(obj, columns_of)
        else:
            return dead_letter(payload, "unknown event format: neither 'endpoint_id' (native) nor "
                                        "'function_uri' and 'model' (MLRun serving)")
        if bounds is not None:
            problem = bounds.problem(event.timestamp_ms)
            if problem is not None:
                field = "timestamp" if event.shape == "native" else "when"
                return dead_letter(payload, f"field {field!r} {problem}", endpoint_id=event.endpoint_id)
        return event
    except EventError as exc:
        return dead_letter(payload, str(exc), endpoint_id=_named_endpoint(obj))
    except RecursionError:
        return dead_letter(payload, "event nested too deeply")


def window_start(timestamp_ms: int, window_ms: int, offset_ms: int = 0) -> int:
    """Start of the tumbling window holding ``timestamp_ms`` (epoch ms): windows start at
    ``offset_ms`` plus whole windows from the epoch, as Flink's ``TumblingEventTimeWindows.of(size,
    offset)``.

    >>> window_start(1_764_158_450_000, 60_000)
    1764158400000
    >>> window_start(1_764_158_450_000, 60_000, 55_000), window_start(1_764_158_450_000, 60_000, 45_000)
    (1764158395000, 1764158445000)
    """
    return timestamp_ms - (timestamp_ms - offset_ms) % window_ms


@functools.lru_cache(maxsize=1 << 17)
def _group_number(endpoint_id: str) -> int:
    return int(endpoint_group(endpoint_id), 16)


@dataclasses.dataclass(frozen=True)
class Tumbling:
    """Tumbling event-time windows of ``size_ms``, per endpoint.

    Aligned (``staggered=False``, the default): every endpoint's windows start at whole windows
    from the epoch, so every endpoint's window closes at the same moment. Staggered: an endpoint's
    windows start ``offset(endpoint_id)`` later, ``size_ms × g / 256`` for its group ``g``
    (:func:`streamdrift.udfs.endpoint_id.endpoint_group`), so the windows of many endpoints close
    spread over the window length, a group's together. MLRun's windows are staggered too: they
    start at each endpoint's first request; these start at an offset that the endpoint's id alone
    gives, the same on every restart and every subtask.

    >>> w = Tumbling(60_000, staggered=True)
    >>> w.offset('ep1'), int('d9', 16) * 60_000 // 256   # group 'd9' (217)
    (50859, 50859)
    >>> w.start(1_764_158_450_000, 'ep1'), Tumbling(60_000).start(1_764_158_450_000, 'ep1')
    (1764158390859, 1764158400000)
    """

    size_ms: int
    staggered: bool = False

    def __post_init__(self):
        """Raises ValueError unless ``size_ms`` is a positive int."""
        if type(self.size_ms) is not int or self.size_ms <= 0:
            raise ValueError(f"a window's size is a positive number of milliseconds, got {self.size_ms!r}")

    def offset(self, endpoint_id: str | None) -> int:
        """Milliseconds (0 to ``size_ms`` - 1) after whole windows from the epoch at which the
        endpoint's windows start; 0 when aligned (or for no endpoint)."""
        if not self.staggered or endpoint_id is None:
            return 0
        return _group_number(endpoint_id) * self.size_ms // GROUPS

    def start(self, timestamp_ms: int, endpoint_id: str | None) -> int:
        """Start (epoch ms) of the endpoint's window holding ``timestamp_ms``."""
        return window_start(timestamp_ms, self.size_ms, self.offset(endpoint_id))

    def starts(self, timestamps_ms: np.ndarray, endpoint_ids: Sequence[str | None]) -> np.ndarray:
        """:meth:`start` of each record (shape ``(n,)`` int64 each, an endpoint id or None per record)."""
        ts = np.asarray(timestamps_ms, dtype=np.int64)
        if not self.staggered:
            return ts - ts % self.size_ms
        offsets = np.fromiter((self.offset(e) for e in endpoint_ids), np.int64, len(ts))
        return ts - (ts - offsets) % self.size_ms


def tumbling(window: int | Tumbling) -> Tumbling:
    """``window`` as :class:`Tumbling`: a size in milliseconds is aligned windows of that size.

    >>> tumbling(60_000), tumbling(Tumbling(60_000, staggered=True)).staggered
    (Tumbling(size_ms=60000, staggered=False), True)
    """
    if isinstance(window, Tumbling):
        return window
    if isinstance(window, float) and window.is_integer():  # a size given in seconds, times 1000
        window = int(window)
    return Tumbling(window)


def row_columns(columns: Mapping[str, Any]) -> Columns:
    """An endpoint record's names → :class:`Columns`.

    >>> row_columns({'feature_names': ['a', 'b'], 'output_names': ['y']})
    Columns(features=('a', 'b'), outputs=('y',))
    >>> row_columns({})
    Columns(features=(), outputs=())
    """
    return Columns(tuple(columns.get("feature_names") or ()), tuple(columns.get("output_names") or ()))
