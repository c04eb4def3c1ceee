"""The SQL store: endpoints, latest results and metrics, applications, alerts.

One class, :class:`SqlStore`, on SQLAlchemy 2, for ``mysql+pymysql://user:pass@host:port/db``
(MySQL or MariaDB) and ``sqlite:///path`` (the embedded default) with the same code.

:class:`SqlStore` is one mixin per kind of thing stored, each in its own module, over the connection
in :mod:`.base` (the engine, a transaction per operation retried on transient errors, upserts):
:mod:`.migrations` (schema versions), :mod:`.endpoints` (definition, reference, totals, drift
status, problems), :mod:`.windows` (window counters, latest results and metrics),
:mod:`.applications`, :mod:`.alerts`; :mod:`.tables` defines the tables and their column types.

Tables (the schema is created and upgraded by :meth:`SqlStore.create_schema`, never by hand):

``endpoints``          one row per model endpoint: what it is (project, model, function,
                       feature/output/label names) and its reference (``feature_stats`` and a
                       bounded sample of the training rows as Parquet bytes).
``endpoint_status``    what was seen of an endpoint: its totals (request counts, first/last
                       request, last window) and drift status, apart from its reference.
``endpoint_windows``   the serving counters of each window of an endpoint, keyed by
                       (endpoint_id, window_end). Writing a window moves the endpoint's totals
                       by what it changed (new minus old counters), so replaying a window never
                       counts it twice and a write costs the same however many windows the
                       endpoint has; registering an endpoint derives its totals from all of them.
``latest_results``     the newest result per (endpoint_id, application_name, result_name).
``latest_metrics``     the newest metric per (endpoint_id, application_name, metric_name).
``applications``       the monitoring applications of a project (``module:Class`` and params).
``alert_configs``      alert definitions; ``alert_activations`` what fired and when.
``schema_version``     the version of the schema, advanced by the steps in :data:`MIGRATIONS`.

Choices worth knowing:

* Every write is an idempotent upsert (``INSERT ... ON DUPLICATE KEY UPDATE`` on MySQL,
  ``INSERT ... ON CONFLICT DO UPDATE`` on SQLite). A latest result or metric is replaced only by
  one of the same or a later window (``end_infer_time``): replaying an old window does not turn
  the "latest" back.
* JSON and Parquet columns are ``LONGTEXT``/``LONGBLOB`` on MySQL (MySQL ``TEXT`` stops at 64 KB,
  about 200 features of statistics). A row must still fit the server's ``max_allowed_packet``.
* Strings are ``utf8mb4`` with a binary collation that does not pad (``utf8mb4_nopad_bin`` on
  MariaDB, ``utf8mb4_0900_bin`` on MySQL 8): ids compare byte for byte, ``"a"`` and ``"a "`` are
  different endpoints, and any Unicode is stored as given.
* Times are timezone-aware UTC ``datetime`` values with microseconds (``DATETIME(6)`` on MySQL); a
  naive ``datetime`` given to the store is taken as UTC.
* ``endpoints.updated`` changes when an endpoint's definition or reference changes, not when its
  counters move: :meth:`SqlStore.endpoints_version` is a cheap way for the job to notice new or
  changed references.
* Errors from the database are raised as :class:`StoreError` whose message never holds a password
  and whose ``transient`` says whether waiting may heal it (:func:`streamdrift.connectors.errors.is_transient`).
  Transient ones (a lost connection, a server restarting, a lock) are retried with exponential
  backoff (:func:`retrying`) before that.
"""

from __future__ import annotations

from streamdrift.connectors.errors import is_transient
from streamdrift.connectors.sql_store.alerts import AlertActivation, AlertConfig, AlertsMixin
from streamdrift.connectors.sql_store.applications import Application, ApplicationsMixin
from streamdrift.connectors.sql_store.base import NotFoundError, StoreError, retrying
from streamdrift.connectors.sql_store.endpoints import ModelEndpoint
from streamdrift.connectors.sql_store.migrations import MIGRATIONS, SCHEMA_VERSION, Migration, SchemaMixin
from streamdrift.connectors.sql_store.tables import build_tables
from streamdrift.connectors.sql_store.windows import WindowsMixin


class SqlStore(SchemaMixin, WindowsMixin, ApplicationsMixin, AlertsMixin):
    """Endpoints, latest results and metrics, applications and alerts in one SQL database.

    :param url:      SQLAlchemy URL, ``mysql+pymysql://user:pass@host:port/db`` or ``sqlite:///path``
                     (the parent folder of a SQLite file is created).
    :param attempts: calls per operation on transient errors (lost connection, server down).
    :param backoff:  first wait between attempts, doubled each time (at most 30 s).
    """


__all__ = [
    "SqlStore", "StoreError", "NotFoundError", "ModelEndpoint", "Application", "AlertConfig",
    "AlertActivation", "MIGRATIONS", "SCHEMA_VERSION", "Migration", "retrying", "build_tables",
    "is_transient",
]
