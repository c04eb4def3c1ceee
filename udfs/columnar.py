"""A batch of records read column-wise: the common native event without a Python object per value.

The per-record path (:func:`streamdrift.udfs.events.decode`, then :meth:`WindowAggregate.add_events`) makes a
dict, a list and a float object per value of every record, and numpy then takes them apart
again. Here pyarrow's JSON reader reads the whole batch into columns (numbers straight into
float64 buffers) and the counting works on those.

It reads what the decode fast path reads and nothing else: a native event (``endpoint_id``, an
integer epoch ``timestamp``, ``inputs`` as rows of numbers named by the endpoint's features, at most one
number per row in ``outputs``, no ``error``, an optional ``request_id`` string and ``latency_us``),
for an endpoint whose reference has no categorical column. Every other record of the batch (a
dead letter, an error event, an MLRun event, string values, ...) is left to the per-record path,
and a batch the reader cannot read as a whole (one malformed record, a field of another type)
goes there entirely; after such a batch the reader rests a few batches, so a stream it cannot
read costs little. The counts are the same either way (a test checks it on random batches).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence

import numpy as np

from streamdrift.udfs.accumulator import Layout, count_parts_encoded, offsets, segment_ranges
from streamdrift.udfs.contract import TimeBounds, endpoint_id_problem
from streamdrift.udfs.events import MAX_EPOCH_MS, MAX_EVENT_BYTES, MIN_EPOCH_MS, Tumbling, epoch_ms_array, tumbling
from streamdrift.udfs.window import LATENCY_EDGES, Partial, RowBlock, Sample, WindowAggregate, row_priorities

_MAX_DEPTH = 500  # a record at most this deeply nested parses the same on both paths
_SCHEMAS = ("rows", "row")  # inputs as a list of rows, or as one row
# A partial of at most this many rows is counted together with the batch's other small partials
# (one numpy call per step for all of them); a larger one alone, where the fixed cost per partial
# is small beside its rows (tests/benchmarks/prototype/bench_batch_counts.py).
TOGETHER_ROWS = 64


def _schema(inputs: str):
    import pyarrow as pa

    row = pa.list_(pa.float64())
    return pa.schema([("endpoint_id", pa.string()), ("timestamp", pa.int64()), ("request_id", pa.string()),
                      ("inputs", pa.list_(row) if inputs == "rows" else row), ("outputs", pa.list_(pa.float64())),
                      ("latency_us", pa.float64()), ("error", pa.bool_())])


@dataclasses.dataclass(frozen=True)
class ColumnarPart:
    """The records of a batch read column-wise: their indices in the batch, raw-row columns, partials
    (:meth:`ColumnarReader.aggregate` makes them)."""

    index: np.ndarray
    endpoint_ids: list[str]
    timestamps: np.ndarray
    request_ids: list[str | None]
    latency_us: np.ndarray  # NaN where the event has none
    partials: list[Partial]


def _as_bytes(p) -> bytes | None:
    if isinstance(p, str):
        try:
            return p.encode()
        except UnicodeEncodeError:  # a lone surrogate: the per-record path says what is wrong
            return None
    return bytes(p) if isinstance(p, (bytes, bytearray, memoryview)) else None


def _candidate(p) -> bool:
    """One JSON object on one line, within the size limit, not nested deeper than both paths read alike."""
    return (type(p) is bytes and p[:1] == b"{" and p[-1:] == b"}" and len(p) <= MAX_EVENT_BYTES
            and b"\n" not in p and b"\r" not in p
            and (len(p) <= _MAX_DEPTH or p.count(b"[") + p.count(b"{") <= _MAX_DEPTH))


def _candidates(payloads: list[bytes]) -> tuple[np.ndarray, bytes]:
    """The indices of the records that pass :func:`_candidate`, and those records joined by
    newlines: the same test, on the whole batch at once (a record's first and last byte read from
    the joined buffer; newlines and carriage returns counted in it) wherever that can decide."""
    n = len(payloads)
    joined = b"\n".join(payloads)
    lengths = np.fromiter(map(len, payloads), np.int64, n)
    ends = np.cumsum(lengths + 1) - 1  # each record's end: where its separator is
    buf = np.frombuffer(joined, np.uint8)
    ok = (lengths > 0) & (lengths <= MAX_EVENT_BYTES)
    if buf.size:
        ok &= (buf[np.minimum(ends - lengths, buf.size - 1)] == 0x7B) & (buf[np.maximum(ends - 1, 0)] == 0x7D)
    if joined.count(b"\n") != n - 1 or b"\r" in joined:  # a record holds one
        ok &= np.fromiter((b"\n" not in p and b"\r" not in p for p in payloads), bool, n)
    for i in np.flatnonzero(ok & (lengths > _MAX_DEPTH)).tolist():
        if payloads[i].count(b"[") + payloads[i].count(b"{") > _MAX_DEPTH:
            ok[i] = False
    index = np.flatnonzero(ok)
    if index.size < n:
        joined = b"\n".join([payloads[i] for i in index.tolist()])
    return index, joined


class ColumnarReader:
    """Reads batches column-wise; keep one per operator: it remembers the inputs shape that worked
    and rests after a batch it could not read (1, 2, 4, ... up to ``max_rest`` batches).

    Examples
    --------
    Two native events are read column-wise; the record that is not an object is left to the
    per-record path (its index is not in ``part.index``):

    >>> from streamdrift.udfs.catalog import EndpointCatalog
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> catalog = EndpointCatalog(lambda: [{'endpoint_id': 'ep1', 'feature_names': ['x'], 'feature_stats': stats}])
    >>> records = [b'{"endpoint_id": "ep1", "timestamp": 1764158400000, "inputs": [[0.5], [1.5]], "latency_us": 900}',
    ...            b'{"endpoint_id": "ep1", "timestamp": 1764158430000, "inputs": [[1.7]], "request_id": "r2"}',
    ...            b'[1]']
    >>> reader = ColumnarReader()
    >>> part = reader.aggregate(records, catalog, window_ms=60_000, sample_size=100)
    >>> part.index.tolist(), part.request_ids, part.latency_us.tolist()
    ([0, 1], [None, 'r2'], [900.0, nan])
    >>> [(p.window_start, p.aggregate.rows, p.aggregate.accumulator.histogram('x').tolist()) for p in part.partials]
    [(1764158400000, 3, [0, 1, 2, 0])]

    A batch it cannot read as a whole (a field of another type) is left to the per-record path,
    and the reader rests for the next batch:

    >>> reader.aggregate([b'{"endpoint_id": 5}'], catalog, 60_000, 100) is None, reader.rest
    (True, 1)
    """

    def __init__(self, max_rest: int = 64):
        self.schemas = list(_SCHEMAS)
        self.rest = 0
        self.next_rest = 1
        self.max_rest = max_rest
        self.read_batches = 0
        self.unread_batches = 0
        self.plans: dict = {}  # (reference fingerprint, row names) -> _Plan

    def _read(self, data: bytes, rows: int):
        import pyarrow as pa
        import pyarrow.json as pj

        try:  # the reader lets some invalid UTF-8 through (encoded surrogates; in fields it skips)
            data.decode()
        except UnicodeDecodeError:
            return None
        options = pj.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))
        for k, inputs in enumerate(self.schemas):
            try:
                table = pj.read_json(io.BytesIO(data), read_options=options,
                                     parse_options=pj.ParseOptions(explicit_schema=_schema(inputs),
                                                                   unexpected_field_behavior="ignore"))
            except (pa.ArrowException, ValueError):  # ValueError: invalid UTF-8 in a string
                continue
            if table.num_rows != rows:
                return None
            table = table.combine_chunks()
            if k:
                self.schemas.insert(0, self.schemas.pop(k))
            return table, inputs
        return None

    def aggregate(self, payloads: Sequence[bytes | str], catalog, window_ms: int | Tumbling, sample_size: int,
                  bounds: TimeBounds | None = None) -> ColumnarPart | None:
        """The partials of the records read here, or None when none were. A record whose time is
        outside ``bounds`` is left to the per-record path (which says why it is refused).
        See the class's example."""
        if self.rest:
            self.rest -= 1
            return None
        clean = all(type(p) is bytes for p in payloads)
        if not clean:
            payloads = [_as_bytes(p) for p in payloads]
            clean = all(p is not None for p in payloads)
        if clean:
            index, data = _candidates(payloads)
        else:
            index = np.asarray([i for i, p in enumerate(payloads) if _candidate(p)], dtype=np.int64)
            data = b"\n".join([payloads[i] for i in index.tolist()])
        got = self._read(data, len(index)) if index.size else None
        if got is None:
            self.unread_batches += 1
            self.rest, self.next_rest = self.next_rest, min(self.next_rest * 2, self.max_rest)
            return None
        self.read_batches += 1
        self.next_rest = 1
        if len(self.plans) > 100_000:  # references replaced many times over: start again
            self.plans.clear()
        return _aggregate(index, *got, catalog, window_ms, sample_size, bounds, self.plans)


def _null_mask(array) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.is_null(array).to_numpy(zero_copy_only=False)


def _aggregate(index: np.ndarray, table, inputs: str, catalog, window_ms: int | Tumbling, sample_size: int,
               bounds: TimeBounds | None, plans: dict | None = None) -> ColumnarPart:
    import pyarrow as pa
    import pyarrow.compute as pc

    m = table.num_rows
    # endpoints: the checks of the decode fast path, once per endpoint of the batch
    encoded = table.column("endpoint_id").chunk(0).dictionary_encode()
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    names_of, out_names, layout_of = [], [], []
    width = np.zeros(len(encoded.dictionary) + 1, dtype=np.int64)  # last: a null id (never read here)
    with_output = np.zeros(width.size, dtype=bool)
    assigner = tumbling(window_ms)
    window_offsets = np.zeros(width.size, dtype=np.int64)  # of each endpoint's windows; last: a null id
    for j, endpoint_id in enumerate(encoded.dictionary.to_pylist()):
        window_offsets[j] = assigner.offset(endpoint_id)
        columns = catalog.columns(endpoint_id) if endpoint_id_problem(endpoint_id) is None else None
        layout = catalog.layout(endpoint_id) if columns is not None and columns.features else None
        usable = columns is not None and bool(columns.features) and not (layout is not None and layout.categorical)
        names_of.append(columns.features if usable else ())
        out_names.append(columns.with_one_output if usable else None)
        layout_of.append(layout)
        width[j] = len(columns.features) if usable else -1
        with_output[j] = usable and columns.with_one_output is not None
    codes[codes < 0] = width.size - 1
    width[-1] = -1
    ok = width[codes] > 0

    ts_col = table.column("timestamp").chunk(0)
    ok &= ~_null_mask(ts_col)
    ts = epoch_ms_array(pc.fill_null(ts_col, 0).to_numpy(zero_copy_only=False).astype(np.int64))
    lo, hi = MIN_EPOCH_MS, MAX_EPOCH_MS
    if bounds is not None:
        lo, hi = max(lo, bounds.oldest_ms), min(hi, bounds.newest_ms)
    ok &= (ts >= lo) & (ts <= hi)
    error = table.column("error").chunk(0)
    ok &= ~pc.fill_null(error, False).to_numpy(zero_copy_only=False).astype(bool)
    lat_col = table.column("latency_us").chunk(0)
    lat_null = _null_mask(lat_col)
    lat = pc.fill_null(lat_col, 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        ok &= lat_null | ((lat >= 0) & (lat < np.inf))

    # rows: each record's number of rows, each row's values
    in_col = table.column("inputs").chunk(0)
    ok &= ~_null_mask(in_col)
    if inputs == "rows":
        n_rows = pc.fill_null(pc.list_value_length(in_col), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        rows = in_col.flatten()  # one list per row, records in order (null records contribute none)
        row_len = pc.fill_null(pc.list_value_length(rows), -1).to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        n_rows = (~_null_mask(in_col)).astype(np.int64)
        rows = in_col
        row_len = pc.fill_null(pc.list_value_length(rows), -1).to_numpy(zero_copy_only=False).astype(np.int64)
        row_len = row_len[n_rows > 0]
        rows = rows.filter(pc.invert(pc.is_null(rows)))
    ok &= n_rows > 0
    record_of_row = np.repeat(np.arange(m), n_rows)
    values = rows.flatten()
    value_row = pc.list_parent_indices(rows).to_numpy(zero_copy_only=False)
    flat = pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
    row_start = np.searchsorted(value_row, np.arange(row_len.size))
    bad_row = row_len != width[codes[record_of_row]]
    if bad_row.any():
        ok &= np.bincount(record_of_row[bad_row], minlength=m) == 0

    out_col = table.column("outputs").chunk(0)
    has_out = ~_null_mask(out_col)
    out_len = pc.fill_null(pc.list_value_length(out_col), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    ok &= ~has_out | ((out_len == n_rows) & with_output[codes])
    out_flat = pc.fill_null(out_col.flatten(), np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
    out_start = np.concatenate(([0], np.cumsum(out_len)[:-1]))

    # groups: (endpoint, window, with outputs or not), in the order of their first record
    good = np.flatnonzero(ok)
    starts = ts - (ts - window_offsets[codes]) % assigner.size_ms
    request_col = table.column("request_id").chunk(0)
    request_ids = request_col.to_numpy(zero_copy_only=False)  # str or None
    partials = []
    if good.size:
        _, windows = np.unique(starts[good], return_inverse=True)
        key = (codes[good] * good.size + windows.reshape(-1)) * 2 + has_out[good]
        _, first, group = np.unique(key, return_index=True, return_inverse=True)
        group = group.reshape(-1)
        by_group = np.argsort(group, kind="stable")  # records of each group together, in batch order
        group_ends = np.concatenate(([0], np.cumsum(np.bincount(group))))
        # the sampling priority of every row as the per-record path makes it, rows in batch order
        counts_all = n_rows[good]
        ids_bytes = pc.cast(request_col, pa.binary()).to_numpy(zero_copy_only=False)
        priorities_all = row_priorities(ids_bytes[good].tolist(), ts[good], counts_all)
        prio_first = np.zeros(m, dtype=np.int64)
        prio_first[good] = np.concatenate(([0], np.cumsum(counts_all)[:-1]))
        row_first = np.concatenate(([0], np.cumsum(n_rows)[:-1]))
        ids_list = encoded.dictionary.to_pylist()
        together = np.bincount(group, weights=counts_all) <= TOGETHER_ROWS
        made = {}
        if together.any():
            rows = _Rows(flat, row_start, row_first, n_rows, out_flat, out_start, has_out, codes, ts, lat, lat_null,
                         priorities_all, prio_first)
            made = _together(np.flatnonzero(together), good[by_group], group_ends, rows, names_of, out_names,
                             layout_of, sample_size, {} if plans is None else plans)
        for g in np.argsort(first, kind="stable").tolist():
            if together[g]:
                agg, recs = made[g]
                partials.append(Partial(ids_list[int(codes[recs[0]])], int(starts[recs[0]]), agg.last_ms, agg,
                                        int(index[recs[0]])))
                continue
            recs = good[by_group[group_ends[g]:group_ends[g + 1]]]
            j = int(codes[recs[0]])
            names = list(names_of[j])
            counts = n_rows[recs]
            within = segment_ranges(counts)
            row_idx = np.repeat(row_first[recs], counts) + within
            matrix = flat[row_start[row_idx][:, None] + np.arange(len(names))]
            if has_out[recs[0]]:
                out = out_flat[np.repeat(out_start[recs], counts) + within]
                matrix = np.concatenate([matrix, out[:, None]], axis=1)
                names = list(out_names[j])
            priorities = priorities_all[np.repeat(prio_first[recs], counts) + within]
            agg = WindowAggregate(sample=Sample.empty(sample_size))
            times = ts[recs]
            last = int(times.max())
            agg.add_block(RowBlock(len(row_idx), names, list(names), matrix, {}), priorities, int(times.min()),
                          last, len(recs), lat[recs][~lat_null[recs]], layout_of[j], sample_size)
            partials.append(Partial(ids_list[j], int(starts[recs[0]]), last, agg, int(index[recs[0]])))
    endpoint_ids = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False).tolist() + [None],
                              dtype=object)[codes[good]].tolist()
    latency = lat[good]
    latency[lat_null[good]] = np.nan
    return ColumnarPart(index[good], endpoint_ids, ts[good], request_ids[good].tolist(), latency, partials)


@dataclasses.dataclass(frozen=True)
class _Rows:
    """A batch's records and rows as :func:`_aggregate` reads them: row r of record i is row
    ``row_first[i] + r`` (of ``n_rows[i]``), its values ``flat[row_start[row]:]``, its output
    ``out_flat[out_start[i] + r]`` where ``has_out[i]``, its sampling priority
    ``priorities[prio_first[i] + r]``; the record's latency ``lat[i]`` unless ``lat_null[i]``."""

    flat: np.ndarray
    row_start: np.ndarray
    row_first: np.ndarray
    n_rows: np.ndarray
    out_flat: np.ndarray
    out_start: np.ndarray
    has_out: np.ndarray
    codes: np.ndarray  # each record's endpoint
    ts: np.ndarray
    lat: np.ndarray
    lat_null: np.ndarray
    priorities: np.ndarray
    prio_first: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Where a reference's numeric columns are in a row of given names: ``source[c]`` the row's
    feature, ``_OUTPUT`` its output, ``_MISSING`` none (a null); and the row's names the reference
    does not know."""

    source: np.ndarray
    unknown: tuple[str, ...]


_OUTPUT, _MISSING = -2, -1


def _plan(layout: Layout | None, names: tuple[str, ...], features: int) -> _Plan:
    where = {name: j for j, name in enumerate(names)}
    if layout is None:
        return _Plan(np.zeros(0, dtype=np.int64), names)
    source = [where.get(name, _MISSING) for name in layout.numeric]
    known = set(layout.numeric) | set(layout.categorical)
    return _Plan(np.array([_OUTPUT if j >= features else j for j in source], dtype=np.int64),
                 tuple(name for name in names if name not in known))


def _values_at(rows: _Rows, row: np.ndarray, record: np.ndarray, within: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The value of each cell: in row ``row`` (row ``within`` of record ``record``), column ``source``
    (a feature's position, ``_OUTPUT`` or ``_MISSING``)."""
    out = np.full(row.size, np.nan)
    feature = source >= 0
    out[feature] = rows.flat[rows.row_start[row[feature]] + source[feature]]
    output = source == _OUTPUT
    out[output] = rows.out_flat[rows.out_start[record[output]] + within[output]]
    return out


def _together(groups: np.ndarray, sorted_records: np.ndarray, group_ends: np.ndarray, rows: _Rows,
              names_of: list, out_names: list, layout_of: list, sample_size: int,
              plans: dict) -> dict[int, tuple[WindowAggregate, np.ndarray]]:
    """The aggregates of the small ``groups`` (their records ``sorted_records[group_ends[g]:group_ends[g + 1]]``),
    counted together: the same counts as one ``add_block`` per group (a test checks it)."""
    s = groups.size
    per_group = group_ends[groups + 1] - group_ends[groups]
    recs = sorted_records[np.repeat(group_ends[groups], per_group) + segment_ranges(per_group)]
    rec_group = np.repeat(np.arange(s), per_group)
    rec_off = offsets(per_group)
    firsts = recs[rec_off[:-1]]
    # rows, in group order, records in batch order within a group
    cnt = rows.n_rows[recs]
    within = segment_ranges(cnt)
    row = np.repeat(rows.row_first[recs], cnt) + within
    row_rec = np.repeat(recs, cnt)
    row_group = np.repeat(rec_group, cnt)
    n_g = np.bincount(row_group, minlength=s)
    row_off = offsets(n_g)
    priorities = rows.priorities[np.repeat(rows.prio_first[recs], cnt) + within]
    # each group's names and plan
    names, layouts, sources, unknown, width = [], [], [], [], np.empty(s, dtype=np.int64)
    for k, (j, with_out) in enumerate(zip(rows.codes[firsts].tolist(), rows.has_out[firsts].tolist())):
        row_names = out_names[j] if with_out else names_of[j]
        layout = layout_of[j]
        key = (None if layout is None else layout.fingerprint, row_names)
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = _plan(layout, row_names, len(names_of[j]))
        names.append(row_names)
        layouts.append(layout)
        sources.append(plan.source)
        unknown.append(plan.unknown)
        width[k] = len(row_names)
    # the reference's columns of every group with a reference: cells part by part, column by column, row by row
    counted = np.array([layout is not None for layout in layouts], dtype=bool)
    accs = iter(())
    if counted.any():
        columns = np.array([src.size for src in sources], dtype=np.int64) * counted
        slot_group = np.repeat(np.arange(s), columns)
        per_slot = n_g[slot_group]
        cell = np.repeat(row_off[slot_group], per_slot) + segment_ranges(per_slot)  # index into the rows above
        source = np.repeat(np.concatenate([sources[k] for k in np.flatnonzero(counted)]), per_slot)
        cells = _values_at(rows, row[cell], row_rec[cell], within[cell], source)
        accs = iter(count_parts_encoded([layouts[k] for k in np.flatnonzero(counted)], n_g[counted], cells))
    # the sample: each group's rows of lowest priority, in priority order, every column of the row
    kept = np.minimum(n_g, max(sample_size, 0))
    kept_off, cell_off = offsets(kept), offsets(kept * width)
    keep = np.zeros(0, dtype=np.int64)
    if sample_size > 0:
        order = np.lexsort((priorities, row_group))  # stable: ties keep the rows' order
        keep = order[np.arange(order.size) - row_off[row_group[order]] < sample_size]
        w = width[row_group[keep]]
        column = segment_ranges(w)
        features = np.array([len(names_of[j]) for j in rows.codes[firsts].tolist()], dtype=np.int64)
        cell_row = np.repeat(keep, w)
        sample_cells = _values_at(rows, row[cell_row], row_rec[cell_row], within[cell_row],
                                  np.where(column == np.repeat(features[row_group[keep]], w), _OUTPUT, column))
    sample_pri = priorities[keep]
    # latencies and times, per record
    has_lat = ~rows.lat_null[recs]
    lat_group, lat = rec_group[has_lat], rows.lat[recs][has_lat]
    lat_count = np.bincount(lat_group, minlength=s)
    lat_sum = np.bincount(lat_group, weights=lat, minlength=s)
    bins = LATENCY_EDGES.size + 1
    lat_hist = np.bincount(lat_group * bins + np.searchsorted(LATENCY_EDGES, lat, side="right"),
                           minlength=s * bins).reshape(s, bins)
    times = rows.ts[recs]
    first_ms, last_ms = np.minimum.reduceat(times, rec_off[:-1]), np.maximum.reduceat(times, rec_off[:-1])
    out = {}
    # Python numbers once for all groups: a group is about one record at thousands of endpoints
    columns = zip(groups.tolist(), n_g.tolist(), per_group.tolist(), first_ms.tolist(), last_ms.tolist(),
                  lat_count.tolist(), lat_sum.tolist(), kept.tolist(), counted.tolist())
    for k, (g, n, events, first, last, lc, ls, kept_k, counted_k) in enumerate(columns):
        if kept_k:
            row_names = list(names[k])
            matrix = sample_cells[cell_off[k]:cell_off[k + 1]].reshape(kept_k, int(width[k]))
            sample = Sample(sample_size, sample_pri[kept_off[k]:kept_off[k + 1]],
                            block=RowBlock(kept_k, row_names, list(row_names), matrix, {}))
        else:
            sample = Sample.empty(sample_size)
        out[g] = (WindowAggregate(
            rows=n, events=events, first_ms=first, last_ms=last, latency_count=lc, latency_sum=ls,
            latency_hist=lat_hist[k], unknown_columns=dict.fromkeys(unknown[k], n),
            accumulator=next(accs) if counted_k else None, sample=sample), recs[rec_off[k]:rec_off[k + 1]])
    return out
