"""The endpoints a running job knows: names of their columns and the layouts of their references.

Pure cache logic; the records come from a ``load()`` callable (the SQL store in the job, a list in
tests). ``refresh()`` reloads at most every ``refresh_seconds``; an endpoint not known yet makes the
next lookup reload early (at most once per ``miss_seconds``) so a new reference is picked up fast.
An endpoint whose ``feature_stats`` cannot be read has no layout (its rows are counted, not binned)
and the reason in ``errors``; the other endpoints are not affected.
"""

from __future__ import annotations

import logging

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streamdrift.udfs.accumulator import Layout
from streamdrift.udfs.events import NO_COLUMNS, Columns, row_columns
from streamdrift.udfs.reloading import Reloading

log = logging.getLogger("streamdrift.catalog")


class LayoutCache:
    """The layouts of references, by endpoint: a reference's layout is built once however many
    catalogs of a process ask for it (each operator of a job has its own catalog; with 10,000
    endpoints a layout per endpoint costs seconds). An entry is reused while the endpoint's
    ``feature_stats`` is the same object or equal to the one it was built from.

    Examples
    --------
    >>> cache = LayoutCache()
    >>> stats = {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> cache.layout('ep1', stats) is cache.layout('ep1', dict(stats))  # equal stats: built once
    True
    """

    def __init__(self):
        self._entries: dict[str, tuple[Mapping[str, Any], Layout]] = {}

    def layout(self, endpoint_id: str, stats: Mapping[str, Any]) -> Layout:
        """The layout of ``stats`` (:meth:`Layout.from_feature_stats`; its ValueError when they are
        malformed).

        >>> LayoutCache().layout('ep1', {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}).numeric
        ('x',)
        """
        entry = self._entries.get(endpoint_id)
        if entry is not None and (entry[0] is stats or entry[0] == stats):
            return entry[1]
        layout = Layout.from_feature_stats(stats)
        self._entries[endpoint_id] = (stats, layout)
        return layout

    def retain(self, endpoint_ids: Iterable[str]) -> None:
        """Forget the layouts of endpoints not among ``endpoint_ids`` (deleted ones).

        >>> cache, stats = LayoutCache(), {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
        >>> first = cache.layout('ep1', stats)
        >>> cache.retain(['ep2'])
        >>> cache.layout('ep1', stats) is first  # built again
        False
        """
        keep = set(endpoint_ids)
        for endpoint_id in [e for e in self._entries if e not in keep]:
            del self._entries[endpoint_id]


class EndpointCatalog:
    """The endpoints of ``load()`` by id: their column names, records and reference layouts
    (see the module docstring for when it reloads).

    Examples
    --------
    >>> stats = {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> endpoints = [{'endpoint_id': 'ep1', 'feature_names': ['x'], 'output_names': ['y'], 'feature_stats': stats},
    ...              {'endpoint_id': 'ep2', 'feature_stats': {'x': {'hist': [[1], [2.0, 1.0]]}}}]
    >>> catalog = EndpointCatalog(lambda: endpoints)
    >>> catalog.columns('ep1'), catalog.layout('ep1').numeric
    (Columns(features=('x',), outputs=('y',)), ('x',))
    >>> catalog.layout('ep2') is None, sorted(catalog.errors)  # its rows are only counted
    (True, ['ep2'])
    >>> catalog.record('ep3') is None, catalog.columns('ep3')  # unknown: reloaded once, still unknown
    (True, Columns(features=(), outputs=()))
    """

    def __init__(self, load: Callable[[], Iterable[Mapping[str, Any]]], refresh_seconds: float = 30.0,
                 miss_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 layouts: LayoutCache | None = None):
        """``layouts``: a cache shared with other catalogs of the process (default: one of its own)."""
        self._loading = Reloading(load, refresh_seconds, "endpoints", clock)
        self._cache = LayoutCache() if layouts is None else layouts
        self.miss_seconds = miss_seconds
        self._records: dict[str, Mapping[str, Any]] = {}
        self._layouts: dict[str, Layout] = {}
        self._columns: dict[str, Columns] = {}
        self._by_fingerprint: dict[bytes, Layout] = {}
        self._last_load: object = None
        self.errors: dict[str, str] = {}
        """endpoint id → why its reference cannot be used (its rows are then only counted)."""

    @property
    def refresh_seconds(self) -> float:
        """Seconds between reloads.

        >>> EndpointCatalog(lambda: [], refresh_seconds=60).refresh_seconds
        60
        """
        return self._loading.refresh_seconds

    def refresh(self, force: bool = False) -> None:
        """Reload when due (or ``force``): records, names and layouts; a layout is built once per
        reference (:class:`LayoutCache`).

        >>> endpoints = []
        >>> catalog = EndpointCatalog(lambda: list(endpoints), refresh_seconds=3600)
        >>> catalog.refresh()
        >>> endpoints.append({'endpoint_id': 'ep1', 'feature_names': ['x']})
        >>> catalog.refresh(force=True)
        >>> catalog.columns('ep1').features
        ('x',)
        """
        if not self._loading.refresh(force):
            return
        loaded = self._loading.value
        if loaded is self._last_load:  # the very records of the last load: nothing changed
            return
        records = {r["endpoint_id"]: r for r in loaded}
        layouts, errors = {}, {}
        for endpoint_id, record in records.items():
            stats = record.get("feature_stats") or {}
            if stats:
                try:
                    layouts[endpoint_id] = self._cache.layout(endpoint_id, stats)
                except ValueError as exc:  # one bad reference must not stop the others
                    errors[endpoint_id] = f"feature_stats of endpoint {endpoint_id} not usable: {exc}"
        self._cache.retain(records)
        self._records, self._layouts, self.errors, self._last_load = records, layouts, errors, loaded
        self._columns = {endpoint_id: row_columns(record) for endpoint_id, record in records.items()}
        for layout in layouts.values():
            self._by_fingerprint.setdefault(layout.fingerprint, layout)

    def _reload_on_miss(self) -> None:
        """Reload now unless the last load is less than ``miss_seconds`` old (it would not know more)."""
        if self._loading.age() >= self.miss_seconds:
            self.refresh(force=True)

    def _known(self, endpoint_id: str) -> bool:
        self.refresh()
        if endpoint_id not in self._records:
            self._reload_on_miss()
        return endpoint_id in self._records

    def record(self, endpoint_id: str) -> Mapping[str, Any] | None:
        """The endpoint's record as ``load()`` gave it; None for an endpoint not known.

        >>> EndpointCatalog(lambda: [{'endpoint_id': 'ep1', 'model': 'm'}]).record('ep1')
        {'endpoint_id': 'ep1', 'model': 'm'}
        """
        return self._records.get(endpoint_id) if self._known(endpoint_id) else None

    def endpoint_ids(self) -> list[str]:
        """The ids of the endpoints the catalog knows (after a refresh when one is due).

        >>> EndpointCatalog(lambda: [{'endpoint_id': 'ep1'}, {'endpoint_id': 'ep2'}]).endpoint_ids()
        ['ep1', 'ep2']
        """
        self.refresh()
        return list(self._records)

    def columns(self, endpoint_id: str) -> Columns:
        """The endpoint's feature and output names (:class:`~streamdrift.udfs.events.Columns`; empty
        when not known). Asked once per record: the names are made once per load.

        >>> EndpointCatalog(lambda: [{'endpoint_id': 'ep1', 'feature_names': ['a', 'b']}]).columns('ep1')
        Columns(features=('a', 'b'), outputs=())
        """
        return self._columns.get(endpoint_id, NO_COLUMNS) if self._known(endpoint_id) else NO_COLUMNS

    def layout(self, endpoint_id: str) -> Layout | None:
        """The layout of the endpoint's reference; None without a usable one.

        >>> EndpointCatalog(lambda: [{'endpoint_id': 'ep1'}]).layout('ep1') is None  # no feature_stats
        True
        """
        return self._layouts.get(endpoint_id) if self._known(endpoint_id) else None

    def layout_by_fingerprint(self, fingerprint: bytes) -> Layout | None:
        """A layout seen since start (old references too, for state written before an update).

        >>> stats = {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
        >>> catalog = EndpointCatalog(lambda: [{'endpoint_id': 'ep1', 'feature_stats': stats}])
        >>> layout = catalog.layout('ep1')
        >>> catalog.layout_by_fingerprint(layout.fingerprint) is layout
        True
        """
        self.refresh()
        if fingerprint not in self._by_fingerprint:
            self._reload_on_miss()
        return self._by_fingerprint.get(fingerprint)
