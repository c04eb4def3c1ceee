"""Time-series stores of results, metrics, window predictions and errors.

``open_tsdb(url)`` returns the implementation the URL names:

* ``sqlite:///path/tsdb.sqlite`` → :class:`streamdrift.connectors.tsdb.sqlite.SqliteTSDB` (embedded default);
* ``taosws://user:pass@host:6041[/database]`` → :class:`streamdrift.connectors.tsdb.tdengine.TDengineTSDB`
  over WebSocket (taos-ws-py);
* ``taos://user:pass@host:6030[/database]`` → the same over the native client (taospy).

The interface is :class:`streamdrift.connectors.tsdb.base.TSDB`. Its errors are :class:`TSDBError`, whose
``transient`` tells a store that may come back from one that refuses the statement
(:func:`streamdrift.connectors.errors.is_transient`).
"""

from __future__ import annotations

from streamdrift.connectors.settings import mask_password
from streamdrift.connectors.tsdb.base import TSDB, TSDBError


def open_tsdb(url: str, *, create_schema: bool = False, keep_days: int | None = None,
              artifacts_dir: str | None = None) -> TSDB:
    """The TSDB of ``url`` (see the module doc); with ``create_schema`` its tables are created.

    :param keep_days:     TDengine only: KEEP of its database in days (the ``tsdb_keep_days``
                          setting; default :data:`streamdrift.connectors.settings.DEFAULT_TSDB_KEEP_DAYS`).
    :param artifacts_dir: where an ``extra_data`` too big for a row is kept whole
                          (:mod:`streamdrift.connectors.artifacts`); None keeps a truncation marker only.

    A TDengine TSDB connects on first use, so opening one does not need the server to be up.
    """
    url = str(url)
    if url.startswith("sqlite:///"):
        from streamdrift.connectors.tsdb.sqlite import SqliteTSDB

        path = url[len("sqlite:///"):]
        if not path:
            raise ValueError("a SQLite TSDB needs a file path: sqlite:///path/to/tsdb.sqlite")
        tsdb: TSDB = SqliteTSDB(path, artifacts_dir=artifacts_dir)
    elif url.startswith(("taosws://", "taos://")):
        from streamdrift.connectors.settings import DEFAULT_TSDB_KEEP_DAYS
        from streamdrift.connectors.tsdb.tdengine import TDengineTSDB

        tsdb = TDengineTSDB(url, keep_days=DEFAULT_TSDB_KEEP_DAYS if keep_days is None else keep_days,
                            artifacts_dir=artifacts_dir)
    else:
        raise ValueError(
            f"unsupported TSDB {mask_password(url)!r}: use taosws://user:pass@host:6041, "
            "taos://user:pass@host:6030 or sqlite:///path/to/tsdb.sqlite"
        )
    if create_schema:
        tsdb.create_schema()
    return tsdb


__all__ = ["open_tsdb", "TSDB", "TSDBError"]
