"""The monitoring applications of a project: registered in the SQL store, loaded by the job.

A registration (``applications`` table, :meth:`streamdrift.connectors.sql_store.SqlStore.add_application`) is a
name, a class ``module:Class``, parameters (JSON) and an enabled flag. Three parameter keys are
the loader's, not the class's (they are not passed to the constructor):

``module_path``      a folder, or a ``.py`` file, whose folder is added (last) to ``sys.path`` before
                     the module is imported
                     (``streamdrift apps add --path``). The Python workers of the job import it from
                     there, so it must exist on every machine that runs them (true of a local run
                     and of the standalone cluster on this machine).
``timeout_seconds``  the most one ``do_tracking`` call may take (default 60, see :mod:`streamdrift.udfs.monitor`).
``artifacts_dir``    where the application's artifacts go (:meth:`MonitoringApplicationContext.artifact_path`);
                     default ``<data_dir>/artifacts`` (for a SQLite store, the store's folder).

Every other parameter is a keyword argument of the class: the loader builds ``Class(**params)``.

The built-in ``histogram-data-drift`` application runs in every project without a registration;
registering that name disabled (``streamdrift apps disable histogram-data-drift``) turns it off,
registering it with parameters (``potential``, ``detected``, ``include_categorical``; for
``feature_drift`` ``alpha``, ``alpha_detected``, ``min_effect``) tunes it.

:func:`load_applications` is what the job calls (at start and every 30 s). An application whose
module cannot be imported or whose class cannot be built does not stop the job: it is logged
(once per failure), and stands in the list as a :class:`FailedApplication` that reports the
reason as ``mm-app-failed`` for every endpoint and window until the registration or the module
is fixed. Instances are kept between reloads while neither the registration nor the module file
changes, so applications may keep state from window to window.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import importlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streamdrift.udfs.applications import (
    DEFAULT_TIMEOUT_SECONDS,
    HISTOGRAM_DATA_DRIFT,
    HistogramDataDriftApplication,
    ModelMonitoringApplicationBase,
    split_class_path,
)

log = logging.getLogger("streamdrift.apps")

BUILTIN_NAME = HISTOGRAM_DATA_DRIFT
BUILTIN_CLASS = "streamdrift.udfs.applications:HistogramDataDriftApplication"
RESERVED_PARAMS = ("module_path", "timeout_seconds", "artifacts_dir")

__all__ = [
    "load_applications", "register_application", "list_registered", "set_enabled", "remove_application",
    "build_application", "AppSpec", "AppInfo", "AppLoadError", "FailedApplication", "ReferenceSampleLoader",
    "default_artifacts_dir", "package_class_path", "BUILTIN_NAME", "BUILTIN_CLASS", "RESERVED_PARAMS",
]


class AppLoadError(Exception):
    """A registered application that cannot be imported or built; the message says why."""


# --------------------------------------------------------------------------- specs


@dataclasses.dataclass(frozen=True)
class AppSpec:
    """What the loader needs to build one application."""

    name: str
    class_path: str
    params: dict[str, Any]  # the constructor's keyword arguments
    module_path: str | None = None
    timeout_seconds: float | None = None
    artifacts_dir: str | None = None

    @classmethod
    def from_registration(cls, name: str, class_path: str, stored: Mapping[str, Any] | None) -> AppSpec:
        params = dict(stored or {})
        options = {key: params.pop(key) for key in RESERVED_PARAMS if key in params}
        return cls(name, package_class_path(class_path, options.get("module_path")), params,
                   options.get("module_path"), options.get("timeout_seconds"), options.get("artifacts_dir"))

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)


@dataclasses.dataclass(frozen=True)
class AppInfo:
    """An application of a project as ``streamdrift apps list`` shows it."""

    name: str
    class_path: str
    params: dict[str, Any]
    module_path: str | None
    timeout_seconds: float
    artifacts_dir: str | None
    enabled: bool
    builtin: bool
    registered: bool
    updated: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["updated"] = None if self.updated is None else self.updated.isoformat()
        return out


PROJECT_PACKAGES = ("jobs", "operators", "udfs", "connectors", "ui")


def package_class_path(class_path: str, module_path: str | None = None) -> str:
    """``class_path`` with the ``streamdrift.`` prefix when it names one of the project's modules
    without it (``udfs.example_apps:DataQualityApplication``, as stores written when these packages
    were installed at top level hold it); any other class path as it is. A class loaded from the
    user's own folder (``module_path``) is never renamed.

    >>> package_class_path("udfs.example_apps:DataQualityApplication")
    'streamdrift.udfs.example_apps:DataQualityApplication'
    >>> package_class_path("my_apps:Mine")
    'my_apps:Mine'
    """
    module, sep, name = class_path.partition(":")
    if module_path or module.partition(".")[0] not in PROJECT_PACKAGES or "." not in module:
        return class_path
    try:
        found = importlib.util.find_spec(f"streamdrift.{module}") is not None
    except (ImportError, ValueError):
        found = False
    return f"streamdrift.{module}{sep}{name}" if found else class_path


def _check_timeout(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"timeout_seconds must be a number of seconds, got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"timeout_seconds must be more than 0, got {value!r}")
    return seconds


# --------------------------------------------------------------------------- importing


_IMPORT_LOCK = threading.RLock()
_MODULE_MTIMES: dict[str, float] = {}


def _module_dir(module_path: str) -> Path:
    path = Path(module_path).expanduser()
    if not path.exists():
        raise AppLoadError(f"module path {module_path!r} does not exist (on this machine: the job's Python "
                           "workers import the module from there)")
    return path if path.is_dir() else path.parent


def _import(module_name: str, module_path: str | None):
    """Import ``module_name`` (from ``module_path`` when given); reload it when its file changed."""
    with _IMPORT_LOCK:
        folder = None
        if module_path:
            folder = _module_dir(module_path).resolve()
            path = Path(module_path).expanduser()
            if path.is_file() and path.suffix == ".py" and module_name.split(".")[0] != path.stem:
                raise AppLoadError(f"module {module_name!r} is not the file {module_path!r}: "
                                   f"with --path FILE the class must be '{path.stem}:ClassName'")
            if str(folder) not in sys.path:  # last: it must not hide the job's own modules
                sys.path.append(str(folder))
            importlib.invalidate_caches()
        try:
            module = sys.modules.get(module_name)
            if module is None:
                module = importlib.import_module(module_name)
            else:
                source = getattr(module, "__file__", None)
                if source and os.path.exists(source) and _MODULE_MTIMES.get(module_name) not in (
                        None, os.path.getmtime(source)):
                    log.info("module %s changed: reloading it", module_name)
                    module = importlib.reload(module)
        except AppLoadError:
            raise
        except BaseException as exc:  # noqa: BLE001 - a module's import may raise anything
            where = f" from {module_path!r}" if module_path else ""
            raise AppLoadError(f"cannot import module {module_name!r}{where}: {type(exc).__name__}: {exc}") from None
        source = getattr(module, "__file__", None)
        if folder is not None and source and not Path(source).resolve().is_relative_to(folder):
            raise AppLoadError(f"module {module_name!r} was imported from {source}, not from {module_path!r}: "
                               "another module of that name comes first; rename yours")
        if source and os.path.exists(source):
            _MODULE_MTIMES[module_name] = os.path.getmtime(source)
        return module


def _module_mtime(module_name: str) -> float | None:
    module = sys.modules.get(module_name)
    source = getattr(module, "__file__", None)
    try:
        return os.path.getmtime(source) if source else None
    except OSError:
        return None


def build_application(spec: AppSpec):
    """Import and build one application as the job does (``Class(**params)``); its ``NAME`` and
    loader options set. Raises :class:`AppLoadError` saying what went wrong."""
    module_name, class_name = split_class_path(spec.class_path)
    module = _import(module_name, spec.module_path)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise AppLoadError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no {class_name!r}")
    if not isinstance(cls, type) or not callable(getattr(cls, "do_tracking", None)):
        raise AppLoadError(f"{spec.class_path} is not an application class: subclass "
                           "streamdrift.udfs.applications.ModelMonitoringApplicationBase and implement do_tracking")
    try:
        app = cls(**spec.params)
    except BaseException as exc:  # noqa: BLE001 - a constructor may raise anything
        raise AppLoadError(f"{spec.class_path}(**{json.dumps(spec.params, default=str)}) failed: "
                           f"{type(exc).__name__}: {exc}") from None
    try:
        app.NAME = spec.name
        if spec.timeout_seconds is not None:
            app.timeout_seconds = _check_timeout(spec.timeout_seconds)
        if spec.artifacts_dir is not None:
            app.artifacts_dir = spec.artifacts_dir
    except (AttributeError, TypeError, ValueError) as exc:
        raise AppLoadError(f"cannot configure {spec.class_path}: {type(exc).__name__}: {exc}") from None
    return app


class FailedApplication(ModelMonitoringApplicationBase):
    """Stands for a registered application that could not be loaded: every call raises the reason,
    so each endpoint and window gets an ``mm-app-failed`` record saying it."""

    def __init__(self, name: str, reason: str):
        self.NAME = name
        self.reason = reason

    def do_tracking(self, monitoring_context):
        raise AppLoadError(f"not loaded: {self.reason}")

    def __repr__(self) -> str:
        return f"FailedApplication({self.NAME!r}, {self.reason!r})"


# --------------------------------------------------------------------------- the reference sample


class ReferenceSampleLoader:
    """``loader(endpoint_id, endpoint)`` → the endpoint's stored reference sample as a pandas
    DataFrame (a fresh copy each call), or None. Kept in memory for the last ``max_endpoints``
    endpoints, until the endpoint record's ``updated`` time changes (a new reference)."""

    def __init__(self, store_url: str, max_endpoints: int = 8):
        self.store_url = store_url
        self.max_endpoints = max_endpoints
        self._cache: collections.OrderedDict[str, tuple[Any, Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, endpoint_id: str, endpoint: Mapping[str, Any] | None = None):
        endpoint = endpoint or {}
        if endpoint.get("has_reference_sample") is False:
            return None
        version = endpoint.get("updated")
        with self._lock:
            hit = self._cache.get(endpoint_id)
            if hit is not None and version is not None and hit[0] == version:
                self._cache.move_to_end(endpoint_id)
                return None if hit[1] is None else hit[1].copy()
            import pyarrow.parquet as pq

            data = _store(self.store_url).get_reference_sample(endpoint_id)
            frame = None if data is None else pq.read_table(io.BytesIO(data)).to_pandas()
            self._cache[endpoint_id] = (version, frame)
            while len(self._cache) > self.max_endpoints:
                self._cache.popitem(last=False)
            return None if frame is None else frame.copy()


_STORES: dict[str, Any] = {}
_LOADERS: dict[str, ReferenceSampleLoader] = {}
_SCHEMA_DONE: set[str] = set()
_STATE_LOCK = threading.Lock()


def _store(store_url: str):
    """One SqlStore per URL and process (its connection pool is reused), schema created once."""
    from streamdrift.connectors.sql_store import SqlStore

    with _STATE_LOCK:
        store = _STORES.get(store_url)
        if store is None:
            store = _STORES[store_url] = SqlStore(store_url)
    if store_url not in _SCHEMA_DONE:
        store.create_schema()
        _SCHEMA_DONE.add(store_url)
    return store


def _loader(store_url: str) -> ReferenceSampleLoader:
    with _STATE_LOCK:
        loader = _LOADERS.get(store_url)
        if loader is None:
            loader = _LOADERS[store_url] = ReferenceSampleLoader(store_url)
        return loader


def default_artifacts_dir(store_url: str) -> str:
    """``<data_dir>/artifacts``: the folder of a SQLite store file (the embedded defaults put it in
    the data dir), else the ``data_dir`` setting of this process (``STREAMDRIFT_DATA_DIR``...)."""
    match = re.match(r"sqlite:///(.+)$", store_url or "")
    if match and match.group(1) != ":memory:" and not match.group(1).startswith("file:"):
        return str(Path(match.group(1).split("?")[0]).expanduser().resolve().parent / "artifacts")
    try:
        from streamdrift.connectors.settings import load_settings

        return str(Path(load_settings().data_dir) / "artifacts")
    except Exception:  # noqa: BLE001 - a bad setting elsewhere must not stop the applications
        return str(Path(".streamdrift").resolve() / "artifacts")


# --------------------------------------------------------------------------- loading


_INSTANCES: dict[tuple[str, str, str], tuple[str, Any]] = {}  # (store, project, name) → (spec key, app)
_REPORTED: dict[tuple[str, str, str], str] = {}  # failures already logged


def _specs(store, project: str) -> list[AppSpec]:
    registered = {a.name: a for a in store.list_applications(project)}
    specs = []
    builtin = registered.get(BUILTIN_NAME)
    if builtin is None:
        specs.append(AppSpec(BUILTIN_NAME, BUILTIN_CLASS, {}))
    for app in registered.values():
        if app.enabled:
            specs.append(AppSpec.from_registration(app.name, app.class_path, app.params))
    return specs


def load_applications(store_url: str, project: str) -> list:
    """The applications enabled for ``project``, built: the built-in ``histogram-data-drift``
    unless registered disabled, then every enabled registration (by name).

    Raises :class:`streamdrift.connectors.sql_store.StoreError` when the registry cannot be read (the job
    then keeps the applications it has). Never raises for one application: see the module doc.
    """
    store = _store(store_url)
    specs = _specs(store, project)
    loader = _loader(store_url)
    artifacts = default_artifacts_dir(store_url)
    apps = []
    for spec in specs:
        slot = (store_url, project, spec.name)
        module_name = spec.class_path.partition(":")[0]
        key = f"{spec.key()}|{_module_mtime(module_name)}"
        cached = _INSTANCES.get(slot)
        if cached is not None and cached[0] == key:
            apps.append(cached[1])
            continue
        try:
            if spec.class_path == BUILTIN_CLASS and not spec.module_path:
                app = HistogramDataDriftApplication(**spec.params)
                app.NAME = spec.name
                if spec.timeout_seconds is not None:
                    app.timeout_seconds = _check_timeout(spec.timeout_seconds)
            else:
                app = build_application(spec)
                key = f"{spec.key()}|{_module_mtime(module_name)}"  # after a first import
        except Exception as exc:  # noqa: BLE001 - see the module doc: reported, never fatal
            reason = str(exc) if isinstance(exc, AppLoadError) else f"{type(exc).__name__}: {exc}"
            if _REPORTED.get(slot) != reason:
                log.error("application %r of project %r not loaded: %s", spec.name, project, reason)
                _REPORTED[slot] = reason
            _INSTANCES.pop(slot, None)
            apps.append(FailedApplication(spec.name, reason))
            continue
        _REPORTED.pop(slot, None)
        if getattr(app, "artifacts_dir", None) is None:
            app.artifacts_dir = spec.artifacts_dir or artifacts
        if getattr(app, "reference_sample_loader", None) is None:
            app.reference_sample_loader = loader
        if cached is None or cached[0] != key:
            log.info("application %r of project %r loaded: %s", spec.name, project, spec.class_path)
        _INSTANCES[slot] = (key, app)
        apps.append(app)
    return apps


# --------------------------------------------------------------------------- the CLI's operations


def _open(store):
    from streamdrift.connectors.endpoints import open_store

    return open_store(store)


def register_application(
    store,
    project: str,
    name: str,
    class_path: str,
    params: Mapping[str, Any] | None = None,
    *,
    module_path: str | None = None,
    timeout_seconds: float | None = None,
    artifacts_dir: str | None = None,
    enabled: bool = True,
    check: bool = True,
):
    """Register (or redefine) an application of ``project``. ``store``: a SqlStore or a URL.

    ``module_path`` is made absolute. With ``check`` the application is imported and built here
    first, as the job will do, and an :class:`AppLoadError` says why when it cannot be: nothing is
    registered then. Returns the stored :class:`streamdrift.connectors.sql_store.Application`.
    """
    from streamdrift.udfs.records import validate_application_name

    validate_application_name(name)
    split_class_path(class_path)
    class_path = package_class_path(class_path, module_path or (params or {}).get("module_path"))
    params = dict(params or {})
    clash = sorted(set(params) & set(RESERVED_PARAMS))
    given = {"module_path": module_path, "timeout_seconds": timeout_seconds, "artifacts_dir": artifacts_dir}
    for key in clash:
        if given[key] is not None:
            raise ValueError(f"{key} given twice: as an option and in the parameters")
        given[key] = params.pop(key)
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"parameters must be JSON (a dict of names to JSON values): {exc}") from None
    if given["module_path"] is not None:
        path = Path(str(given["module_path"])).expanduser().resolve()
        if not path.exists():
            raise ValueError(f"module path {str(given['module_path'])!r} does not exist")
        given["module_path"] = str(path)
    if given["timeout_seconds"] is not None:
        given["timeout_seconds"] = _check_timeout(given["timeout_seconds"])
    if given["artifacts_dir"] is not None:
        given["artifacts_dir"] = str(Path(str(given["artifacts_dir"])).expanduser().resolve())
    spec = AppSpec(name, class_path, params, given["module_path"], given["timeout_seconds"], given["artifacts_dir"])
    if check:
        build_application(spec)
    stored = dict(params, **{k: v for k, v in given.items() if v is not None})
    db = _open(store)
    try:
        return db.add_application(project, name, class_path, stored, enabled=enabled)
    finally:
        if db is not store:
            db.close()


def list_registered(store, project: str) -> list[AppInfo]:
    """The applications of ``project``: every registration, and the built-in when not registered."""
    db = _open(store)
    try:
        registered = db.list_applications(project)
    finally:
        if db is not store:
            db.close()
    out = []
    if not any(a.name == BUILTIN_NAME for a in registered):
        out.append(AppInfo(BUILTIN_NAME, BUILTIN_CLASS, {}, None, DEFAULT_TIMEOUT_SECONDS, None, True, True, False, None))
    for a in registered:
        spec = AppSpec.from_registration(a.name, a.class_path, a.params)
        out.append(AppInfo(a.name, spec.class_path, spec.params, spec.module_path,
                           spec.timeout_seconds or DEFAULT_TIMEOUT_SECONDS, spec.artifacts_dir, a.enabled,
                           a.name == BUILTIN_NAME and spec.class_path == BUILTIN_CLASS, True, a.updated))
    return sorted(out, key=lambda i: (not i.builtin, i.name))


def set_enabled(store, project: str, name: str, enabled: bool) -> None:
    """Enable or disable an application; the built-in one is registered (disabled) if need be.
    :class:`streamdrift.connectors.sql_store.NotFoundError` for another name that is not registered."""
    db = _open(store)
    try:
        if name == BUILTIN_NAME and db.get_application(project, name) is None:
            db.add_application(project, name, BUILTIN_CLASS, {}, enabled=enabled)
        else:
            db.set_application_enabled(project, name, enabled)
    finally:
        if db is not store:
            db.close()


def remove_application(store, project: str, name: str) -> bool:
    """Delete a registration (the built-in one then runs again with its defaults); False if none."""
    db = _open(store)
    try:
        return db.remove_application(project, name)
    finally:
        if db is not store:
            db.close()
