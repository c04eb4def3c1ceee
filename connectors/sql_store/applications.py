"""Monitoring applications in the SQL store (``module:Class`` and params per project)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa

from streamdrift.connectors.sql_store.base import SqlStoreBase, check_id, utc_now
from streamdrift.udfs.records import validate_application_name


@dataclasses.dataclass(frozen=True)
class Application:
    project: str
    name: str
    class_path: str
    params: dict[str, Any]
    enabled: bool
    created: dt.datetime
    updated: dt.datetime


class ApplicationsMixin(SqlStoreBase):
    """The applications registry."""

    def add_application(self, project: str, name: str, class_path: str, params: dict[str, Any] | None = None,
                        enabled: bool = True) -> Application:
        """Register (or redefine) a monitoring application ``module:Class`` of a project."""
        from streamdrift.udfs.applications import split_class_path

        split_class_path(class_path)
        row = {"project": check_id(project, "project"), "name": validate_application_name(name),
               "class_path": class_path, "params": dict(params or {}), "enabled": bool(enabled)}
        now = utc_now()

        def write(conn: sa.Connection) -> Application:
            self._upsert(conn, self._t["applications"], [dict(row, created=now, updated=now)],
                         ["class_path", "params", "enabled", "updated"])
            return self._named(conn, "applications", Application, project, name)

        return self._run(f"registering application {name!r}", write)

    def get_application(self, project: str, name: str) -> Application | None:
        return self._run(f"reading application {name!r}",
                         lambda conn: self._named(conn, "applications", Application, project, name))

    def list_applications(self, project: str, *, enabled_only: bool = False) -> list[Application]:
        t = self._t["applications"]
        query = sa.select(t).where(t.c.project == project).order_by(t.c.name)
        if enabled_only:
            query = query.where(t.c.enabled.is_(True))
        return self._run("listing applications", lambda conn: [Application(**r) for r in conn.execute(query).mappings()])

    def remove_application(self, project: str, name: str) -> bool:
        return self._delete_named("applications", project, name, f"removing application {name!r}")

    def set_application_enabled(self, project: str, name: str, enabled: bool) -> None:
        self._update_named("applications", project, name, {"enabled": bool(enabled)},
                           f"enabling application {name!r}", "application")
