"""Artifact files: a result's ``extra_data`` too big for a TSDB row, kept whole.

A file sits where the application's own artifacts of that window go
(:func:`streamdrift.udfs.applications.artifact_file`, under the project's artifacts directory,
``<data_dir>/artifacts`` by default, :func:`streamdrift.connectors.app_registry.default_artifacts_dir`)::

    <artifacts_dir>/<project>/<endpoint_id>/<application>/<window end>-<result name>-extra_data.json

It holds the JSON exactly as the row would have (sorted keys, ASCII). The row keeps
``{"truncated": true, "bytes": <size>, "artifact": "<path>"}``; :func:`load_extra_data` reads the
whole value back from such a row. A file is written to a temporary name and renamed, so a reader
never sees half of one, and writing the same window again replaces it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from streamdrift.udfs.applications import artifact_file
from streamdrift.udfs.records import ResultRecord

__all__ = ["write_extra_data", "extra_data_path", "load_extra_data", "write_atomic"]


def extra_data_path(artifacts_dir: str | os.PathLike, r: ResultRecord) -> Path:
    """Where the whole ``extra_data`` of result ``r`` is kept (see the module doc)."""
    return artifact_file(artifacts_dir, r.project, r.endpoint_id, r.application_name, r.end_infer_time,
                         f"{r.result_name}-extra_data", ".json")


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_extra_data(artifacts_dir: str | os.PathLike, r: ResultRecord, text: str) -> Path:
    """Keep ``text`` (the JSON of ``r.extra_data``) in its artifact file; returns the file's path.

    Raises OSError when the file cannot be written (a permanent error for the writer: the disk
    or the folder's permissions need fixing)."""
    return write_atomic(extra_data_path(artifacts_dir, r), text.encode("utf-8"))


def load_extra_data(extra_data: dict[str, Any] | None) -> dict[str, Any]:
    """The whole ``extra_data`` of a row read from the TSDB: the artifact's content when the row
    points to one (``{"truncated": true, "artifact": ...}``), else the row's own value.

    Raises FileNotFoundError (naming the file) when the artifact is gone."""
    extra = dict(extra_data or {})
    path = extra.get("artifact") if extra.get("truncated") is True else None
    if not path:
        return extra
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"the artifact {path} holding this result's extra_data is gone") from None
