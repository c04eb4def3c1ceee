"""Model endpoints: register a model with its training data, list, read, update and delete them.

>>> ep = get_or_create_model_endpoint("fraud", "classifier", "serving", reference="train.parquet",
...                                   output_names=["prediction"], label_names=["label"])  # doctest: +SKIP

An endpoint's id is MLRun's (:func:`streamdrift.udfs.endpoint_id.endpoint_uid`), so the same model served by the
same function gets the same id in MLRun and here. Its reference is the training data's statistics
(:func:`streamdrift.udfs.reference.feature_stats`, MLRun's format) plus a bounded uniform sample of the rows,
kept as Parquet bytes for applications that compare samples (Evidently-style).

Names. Columns are normalised as MLRun does (:mod:`streamdrift.udfs.naming`: ``"petal length (cm)"`` becomes
``"petal_length_cm"``). ``output_names`` and ``label_names`` name columns of the reference that are
not features; everything else is a feature unless ``feature_names`` says which columns are. The
statistics of outputs and labels found in the reference are kept in ``feature_stats`` too (outputs
are monitored like features); the endpoint records which names are which. An output or label
missing from the reference is recorded without statistics; a missing feature is an error.

Types. A text column whose values are numbers apart from at most 5 % of placeholder tokens ("N/A",
"?", "-", ...) is numeric, the tokens counted as invalid values (``feature_stats[col]["invalid"]``;
:mod:`streamdrift.udfs.reference`); each such column is logged at registration (a warning: one line per column,
the tokens listed). ``numeric`` and ``categorical`` name columns whose type is forced instead.

``store`` is a :class:`streamdrift.connectors.sql_store.SqlStore`, a SQLAlchemy URL, or None for the
``endpoint_store_connection`` setting (:func:`streamdrift.connectors.settings.load_settings`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamdrift.connectors.sql_store import ModelEndpoint, NotFoundError, SqlStore
from streamdrift.udfs.contract import endpoint_id_problem
from streamdrift.udfs.endpoint_id import endpoint_uid
from streamdrift.udfs.naming import normalize_names
from streamdrift.udfs.reference import feature_stats, invalid_report, read_table

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_SIZE = 10_000
#: cap on the cells (rows x columns) of a stored sample, so that a wide reference stays a few MB
MAX_SAMPLE_CELLS = 2_000_000
DEFAULT_SEED = 0

__all__ = [
    "get_or_create_model_endpoint", "register_model_endpoints", "list_model_endpoints", "get_model_endpoint", "update_reference",
    "delete_model_endpoint", "get_reference_sample", "reference_sample", "open_store", "endpoint_uid", "endpoint_json",
    "DEFAULT_SAMPLE_SIZE", "MAX_SAMPLE_CELLS",
]


# --------------------------------------------------------------------------------- store


def open_store(store: SqlStore | str | None = None, *, create_schema: bool = True) -> SqlStore:
    """``store`` as a :class:`SqlStore` (a URL is opened; None means the configured store).

    The schema is created or upgraded when ``create_schema`` (idempotent and cheap once done).
    """
    if isinstance(store, SqlStore):
        return store
    if store is None:
        from streamdrift.connectors.settings import load_settings

        store = load_settings().endpoint_store_connection
    opened = SqlStore(store)
    if create_schema:
        opened.create_schema()
    return opened


def _with_store(store: SqlStore | str | None):
    """(store, close_after): close what we opened ourselves."""
    opened = open_store(store)
    return opened, opened is not store


# --------------------------------------------------------------------------------- reference


def reference_sample(table: pa.Table, sample_size: int = DEFAULT_SAMPLE_SIZE, seed: int = DEFAULT_SEED) -> pa.Table:
    """A uniform sample without replacement of at most ``sample_size`` rows of ``table``, in the
    table's order; fewer when ``rows x columns`` would pass :data:`MAX_SAMPLE_CELLS`. Seeded: the
    same table, size and seed give the same sample."""
    if not isinstance(sample_size, int) or sample_size < 0:
        raise ValueError(f"sample_size must be a whole number >= 0, got {sample_size!r}")
    limit = min(sample_size, max(1, MAX_SAMPLE_CELLS // max(1, table.num_columns)))
    if limit < sample_size and table.num_rows > limit:
        log.info("reference sample limited to %d rows (%d columns, at most %d cells)",
                 limit, table.num_columns, MAX_SAMPLE_CELLS)
    if table.num_rows <= limit:
        return table
    rows = np.sort(np.random.default_rng(seed).choice(table.num_rows, size=limit, replace=False))
    return table.take(pa.array(rows))


def _to_parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _build_reference(
    reference: Any,
    feature_names: Sequence[str] | None,
    output_names: Sequence[str] | None,
    label_names: Sequence[str] | None,
    sample_size: int,
    seed: int,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
) -> dict[str, Any]:
    """Statistics, names and sample of a reference, as :meth:`SqlStore.upsert_endpoint` takes them."""
    table = read_table(reference)
    original = list(table.column_names)
    normalised = normalize_names(original)
    by_norm = dict(zip(normalised, original))
    outputs = normalize_names(output_names or [])
    labels = normalize_names(label_names or [])
    both = sorted(set(outputs) & set(labels))
    if both:
        raise ValueError(f"{both} named both as outputs and as labels")
    if feature_names is not None:
        features = normalize_names(feature_names)
        missing = [f for f in features if f not in by_norm]
        if missing:
            raise ValueError(f"features {missing} are not columns of the reference data; it has {normalised}")
        clash = sorted(set(features) & set(outputs + labels))
        if clash:
            raise ValueError(f"{clash} named both as features and as outputs or labels")
    else:
        features = [n for n in normalised if n not in set(outputs) | set(labels)]
    if not features:
        raise ValueError(f"the reference data has no feature columns: its columns {normalised} are all "
                         "outputs or labels")
    for what, names in (("outputs", outputs), ("labels", labels)):
        absent = [n for n in names if n not in by_norm]
        if absent:
            log.info("%s %s are not in the reference data: recorded without statistics", what, absent)
    kept = features + [n for n in outputs + labels if n in by_norm]
    selected = table.select([by_norm[n] for n in kept]).rename_columns(kept)
    stats = feature_stats(selected, numeric=numeric or (), categorical=categorical or ())
    for line in invalid_report(stats):
        log.warning("reference: %s", line)
    sample = reference_sample(selected, sample_size, seed) if sample_size else None
    return {
        "feature_names": features,
        "output_names": outputs,
        "label_names": labels,
        "feature_stats": stats,
        "reference_sample": None if sample is None else _to_parquet(sample),
        "reference_rows": table.num_rows,
    }


def _definition(reference, feature_names, output_names, label_names, sample_size: int, seed: int,
                numeric=None, categorical=None) -> dict[str, Any]:
    """:func:`_build_reference`, or only the names when there is no ``reference``."""
    if reference is not None:
        return _build_reference(reference, feature_names, output_names, label_names, sample_size, seed,
                                numeric or (), categorical or ())
    return {"feature_names": normalize_names(feature_names or []), "output_names": normalize_names(output_names or []),
            "label_names": normalize_names(label_names or []), "feature_stats": {}, "reference_sample": None,
            "reference_rows": None}


# --------------------------------------------------------------------------------- API


def get_or_create_model_endpoint(
    project: str,
    model_name: str,
    function_name: str,
    reference: Any = None,
    feature_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
    model_version: str | None = None,
    function_tag: str | None = None,
    store: SqlStore | str | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = DEFAULT_SEED,
    endpoint_id: str | None = None,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
) -> ModelEndpoint:
    """The endpoint of ``model_name`` (``model_version``) served by ``project/function_name:function_tag``;
    created when it does not exist.

    :param endpoint_id: the id MLRun assigned the endpoint (MLRun 1.12's serving events carry it);
                        default: derived as MLRun derives it (:func:`streamdrift.udfs.endpoint_id.endpoint_uid`).

    :param reference:   training data (pandas DataFrame, pyarrow Table, Parquet or CSV path): its
                        statistics and a sample of at most ``sample_size`` rows (seeded by
                        ``seed``) become the endpoint's reference.
    :param feature_names, output_names, label_names: see the module doc.
    :param numeric, categorical: columns (as in the reference, or normalised) monitored as numbers /
                        as categories whatever their type suggests (module doc, Types).
    :returns: the endpoint as stored; its ``feature_stats`` give each numeric column's ``invalid``
              values (and the most frequent ``invalid_tokens``), which are also logged. An existing
              endpoint is returned unchanged, except that one without a reference gets this
              ``reference``; use :func:`update_reference` to replace a reference.
    """
    if endpoint_id is None:
        endpoint_id = endpoint_uid(project, function_name, function_tag, model_name, model_version)
    else:
        problem = endpoint_id_problem(endpoint_id)
        if problem is not None:
            raise ValueError(f"endpoint id {endpoint_id!r} {problem}")
    db, close = _with_store(store)
    try:
        existing = db.get_endpoint(endpoint_id)
        if existing is not None:
            if reference is not None and not existing.feature_stats:
                return _update_reference(db, existing, reference, feature_names, output_names, label_names,
                                         sample_size, seed, numeric, categorical)
            return existing
        ref = _definition(reference, feature_names, output_names, label_names, sample_size, seed, numeric,
                          categorical)
        return db.upsert_endpoint(
            endpoint_id, project=project, model_name=model_name, model_version=model_version,
            function_name=function_name, function_tag=function_tag, **ref)
    finally:
        if close:
            db.close()


def register_model_endpoints(
    project: str,
    models: Iterable[Mapping[str, Any]],
    store: SqlStore | str | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = DEFAULT_SEED,
    chunk: int = 500,
) -> list[str]:
    """Create or replace many endpoints at once (a fleet of models); returns their ids in order.

    Each of ``models`` is a mapping of :func:`get_or_create_model_endpoint`'s arguments:
    ``model_name`` and ``function_name`` (required), ``reference``, ``feature_names``,
    ``output_names``, ``label_names``, ``model_version``, ``function_tag``, ``endpoint_id``,
    ``numeric``, ``categorical``. References are read and summarised one at a time; the endpoints
    are written ``chunk`` at a time, each chunk in one transaction (:meth:`SqlStore.upsert_endpoints`).
    Unlike :func:`get_or_create_model_endpoint`, an existing endpoint's definition and reference
    are replaced (its counters and drift status are kept). ``models`` may be a generator: only
    ``chunk`` references' summaries are held at once. Raises ValueError naming the model whose
    definition or reference is wrong (the chunks before it are written)."""
    db, close = _with_store(store)
    ids: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        for model in models:
            unknown = set(model) - _MODEL_KEYS
            if unknown:
                raise ValueError(f"model {model.get('model_name')!r}: unknown keys {sorted(unknown)}; "
                                 f"use {sorted(_MODEL_KEYS)}")
            endpoint_id = model.get("endpoint_id") or endpoint_uid(
                project, model["function_name"], model.get("function_tag"), model["model_name"],
                model.get("model_version"))
            problem = endpoint_id_problem(endpoint_id)
            if problem is not None:
                raise ValueError(f"endpoint id {endpoint_id!r} of model {model['model_name']!r} {problem}")
            try:
                ref = _definition(model.get("reference"), model.get("feature_names"), model.get("output_names"),
                                  model.get("label_names"), sample_size, seed, model.get("numeric"),
                                  model.get("categorical"))
            except ValueError as exc:
                raise ValueError(f"model {model['model_name']!r}: {exc}") from exc
            rows.append({"endpoint_id": endpoint_id, "project": project, "model_name": model["model_name"],
                         "model_version": model.get("model_version"), "function_name": model["function_name"],
                         "function_tag": model.get("function_tag"), **ref})
            ids.append(endpoint_id)
            if len(rows) >= chunk:
                db.upsert_endpoints(rows, chunk)
                rows = []
        db.upsert_endpoints(rows, chunk)
        return ids
    finally:
        if close:
            db.close()


_MODEL_KEYS = {"model_name", "function_name", "reference", "feature_names", "output_names", "label_names",
               "model_version", "function_tag", "endpoint_id", "numeric", "categorical"}


def _update_reference(db: SqlStore, endpoint: ModelEndpoint, reference: Any, feature_names, output_names,
                      label_names, sample_size: int, seed: int, numeric=None, categorical=None) -> ModelEndpoint:
    ref = _build_reference(
        reference,
        feature_names if feature_names is not None else (endpoint.feature_names or None),
        output_names if output_names is not None else endpoint.output_names,
        label_names if label_names is not None else endpoint.label_names,
        sample_size, seed, numeric or (), categorical or ())
    return db.update_reference(endpoint.endpoint_id, ref.pop("feature_stats"), **ref)


def update_reference(
    endpoint_id: str,
    reference: Any,
    *,
    feature_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
    store: SqlStore | str | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = DEFAULT_SEED,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
) -> ModelEndpoint:
    """Replace an endpoint's reference with the statistics and sample of new training data.

    Names default to the endpoint's own (its features, outputs and labels); ``numeric`` and
    ``categorical`` force column types (see :func:`get_or_create_model_endpoint`). The running job
    picks the new reference up on its next poll of the store.
    """
    db, close = _with_store(store)
    try:
        endpoint = db.get_endpoint(endpoint_id)
        if endpoint is None:
            raise NotFoundError(f"no model endpoint {endpoint_id!r} in {db.masked_url}")
        return _update_reference(db, endpoint, reference, feature_names, output_names, label_names,
                                 sample_size, seed, numeric, categorical)
    finally:
        if close:
            db.close()


def endpoint_json(endpoint: ModelEndpoint, problems: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """An endpoint as ``streamdrift endpoints show ID --json`` prints it (and the dashboard's API
    answers): its fields with the statistics, and its problems (:meth:`SqlStore.problems`), times as
    ISO 8601 in seconds."""
    def when(value):
        return "-" if value is None else value.isoformat(timespec="seconds")

    return {**endpoint.to_dict(with_stats=True),
            "problems": [{k: when(v) if k in ("first_seen", "last_seen") else v for k, v in p.items()}
                         for p in problems]}


def get_model_endpoint(endpoint_id: str, store: SqlStore | str | None = None) -> ModelEndpoint:
    """The endpoint; :class:`NotFoundError` when there is none with this id."""
    db, close = _with_store(store)
    try:
        endpoint = db.get_endpoint(endpoint_id)
        if endpoint is None:
            raise NotFoundError(f"no model endpoint {endpoint_id!r} in {db.masked_url}")
        return endpoint
    finally:
        if close:
            db.close()


def list_model_endpoints(project: str | None = None, store: SqlStore | str | None = None,
                         *, with_stats: bool = False) -> list[ModelEndpoint]:
    """Endpoints of ``project`` (every project when None); statistics only with ``with_stats``."""
    db, close = _with_store(store)
    try:
        return db.list_endpoints(project, with_stats=with_stats)
    finally:
        if close:
            db.close()


def delete_model_endpoint(endpoint_id: str, store: SqlStore | str | None = None) -> bool:
    """Delete the endpoint, its counters and latest results; False when it did not exist."""
    db, close = _with_store(store)
    try:
        return db.delete_endpoint(endpoint_id)
    finally:
        if close:
            db.close()


def get_reference_sample(endpoint_id: str, store: SqlStore | str | None = None) -> pa.Table | None:
    """The stored sample of the endpoint's reference rows (normalised column names), or None."""
    db, close = _with_store(store)
    try:
        data = db.get_reference_sample(endpoint_id)
        return None if data is None else pq.read_table(io.BytesIO(data))
    finally:
        if close:
            db.close()
