"""Settings of streamdrift: where the stream, the stores and the raw rows live.

Each setting is read, first match wins, from
  1. a command-line flag (``--stream-path ...``), passed in as ``cli``;
  2. an environment variable ``STREAMDRIFT_<NAME>`` (``STREAMDRIFT_STREAM_PATH``);
  3. a YAML file (``--config FILE`` or ``STREAMDRIFT_CONFIG``), keys as the setting names;
  4. the embedded default: a local directory stream, SQLite stores and Parquet files under
     ``data_dir`` (``.streamdrift`` in the current directory), no servers to run.

Every value is checked at start. A bad value raises :class:`SettingsError` naming the setting,
the value (any password masked) and an example of a valid one.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from streamdrift.connectors.tdengine_names import check_database_name

ENV_PREFIX = "STREAMDRIFT_"
_MASK = "***"
#: TDengine's KEEP for the database streamdrift creates: days of history it accepts and keeps.
#: TDengine allows 1 to 365,000 days, at least 3 x DURATION (default 10 days); its own default,
#: 3,650, refuses a replay of events older than ten years.
DEFAULT_TSDB_KEEP_DAYS = 36_500
MIN_TSDB_KEEP_DAYS = 30
MAX_TSDB_KEEP_DAYS = 365_000


class SettingsError(ValueError):
    """A setting has a value streamdrift cannot use."""


def mask_password(value: str) -> str:
    """Return ``value`` with the password of a URL (``scheme://user:pass@host``) replaced by ``***``.

    The password is everything between ``user:`` and the last ``@`` before the next white space,
    so one containing an unencoded ``@`` is masked whole (what follows that ``@`` up to the
    address's last ``@`` is masked with it). Also masks ``password=...`` query parameters.
    Anything that is not a URL comes back unchanged.
    """
    text = str(value)
    text = re.sub(r"(?i)((?:password|passwd|pwd)=)[^&;\s]*", r"\1" + _MASK, text)
    # the password runs to the LAST '@' of the address: one written with an unencoded '@'
    # ('p@ss') is masked whole, never cut at its own '@'
    return re.sub(r"(://[^:/@\s]*:)\S*@", r"\1" + _MASK + "@", text)


def _fail(name: str, value: Any, problem: str, example: str) -> SettingsError:
    return SettingsError(
        f"setting {name!r} = {mask_password(str(value))!r}: {problem}; "
        f"a valid value looks like {example!r} (flag --{name.replace('_', '-')}, "
        f"environment {ENV_PREFIX}{name.upper()}, or key {name!r} in the YAML file)"
    )


def _host_port(name: str, value: str, example: str, parts) -> None:
    try:
        port = parts.port
    except ValueError:
        raise _fail(name, value, "the port is not a number from 1 to 65535", example) from None
    if not parts.hostname:
        raise _fail(name, value, "no host", example)
    if port is None:
        raise _fail(name, value, "no port", example)


def _check_stream_path(name: str, value: str) -> str:
    example = "kafka://127.0.0.1:9092 or file:///var/lib/streamdrift/stream"
    parts = urlsplit(value)
    if parts.scheme == "kafka":
        for server in parts.netloc.split(","):
            _host_port(name, value, example, urlsplit("kafka://" + server))
        return value
    if parts.scheme == "file":
        if not parts.path:
            raise _fail(name, value, "a file:// stream needs a directory path", example)
        return value
    raise _fail(name, value, "the scheme must be kafka:// or file://", example)


def _check_tsdb(name: str, value: str) -> str:
    example = "taosws://root:taosdata@127.0.0.1:6041 or sqlite:///tmp/tsdb.sqlite"
    parts = urlsplit(value)
    if parts.scheme in ("taosws", "taos"):
        _host_port(name, value, example, parts)
        database = parts.path.strip("/")
        if database:
            try:
                check_database_name(database)
            except ValueError as exc:
                raise _fail(name, value, str(exc), "taosws://root:taosdata@127.0.0.1:6041/streamdrift") from None
        return value
    if parts.scheme == "sqlite":
        return _check_sqlite(name, value, "TSDB", example)
    raise _fail(name, value, "the scheme must be taosws://, taos:// or sqlite:///", example)


def _check_sql_store(name: str, value: str) -> str:
    example = "mysql+pymysql://streamdrift:secret@127.0.0.1:3307/streamdrift or sqlite:///tmp/store.sqlite"
    parts = urlsplit(value)
    if parts.scheme == "mysql+pymysql":
        _host_port(name, value, example, parts)
        if not parts.path.strip("/"):
            raise _fail(name, value, "no database name after the host", example)
        return value
    if parts.scheme == "sqlite":
        return _check_sqlite(name, value, "store", example)
    raise _fail(name, value, "the scheme must be mysql+pymysql:// or sqlite:///", example)


def _check_sqlite(name: str, value: str, what: str, example: str) -> str:
    """A ``sqlite:///<path>`` URL (the file path may not be empty)."""
    if not value.startswith("sqlite:///") or len(value) <= len("sqlite:///"):
        raise _fail(name, value, f"a SQLite {what} needs a file path after sqlite:///", example)
    return value


def _check_path(name: str, value: str) -> str:
    if not str(value).strip():
        raise _fail(name, value, "empty path", "/var/lib/streamdrift/parquet")
    return str(value)


def _check_base_period(name: str, value: Any) -> int:
    example = "10"
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        raise _fail(name, value, "not a number of minutes", example) from None
    if minutes != int(minutes) or not 1 <= minutes <= 24 * 60:
        raise _fail(name, value, "must be a whole number of minutes from 1 to 1440", example)
    return int(minutes)


def _check_keep_days(name: str, value: Any) -> int:
    example = str(DEFAULT_TSDB_KEEP_DAYS)
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise _fail(name, value, "not a number of days", example) from None
    if days != int(days) or not MIN_TSDB_KEEP_DAYS <= days <= MAX_TSDB_KEEP_DAYS:
        raise _fail(name, value, f"must be a whole number of days from {MIN_TSDB_KEEP_DAYS} to "
                                 f"{MAX_TSDB_KEEP_DAYS} (TDengine's KEEP range at its default DURATION)", example)
    return int(days)


def _check_drift_verdict(name: str, value: Any) -> str:
    if str(value) not in ("test", "mlrun"):
        raise _fail(name, value, "must be test (feature_drift) or mlrun (general_drift)", "test")
    return str(value)


def _check_project(name: str, value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", str(value)):
        raise _fail(name, value, "lowercase letters, digits and '-', at most 63 characters", "my-project")
    return str(value)


@dataclasses.dataclass(frozen=True)
class _Spec:
    check: Callable[[str, Any], Any]
    default: Callable[[Path], Any]
    help: str


def _sqlite(path: Path) -> str:
    return "sqlite:///" + str(path)


SPECS: dict[str, _Spec] = {
    "project": _Spec(_check_project, lambda d: "default", "project name; topics are <project>.inference-events"),
    "stream_path": _Spec(
        _check_stream_path, lambda d: (d / "stream").resolve().as_uri(),
        "kafka://host:port[,host:port] or file:///dir (embedded default)"),
    "tsdb_connection": _Spec(
        _check_tsdb, lambda d: _sqlite((d / "tsdb.sqlite").resolve()),
        "taosws://user:pass@host:port, taos://user:pass@host:port or sqlite:///path"),
    "endpoint_store_connection": _Spec(
        _check_sql_store, lambda d: _sqlite((d / "store.sqlite").resolve()),
        "SQLAlchemy URL: mysql+pymysql://user:pass@host:port/db or sqlite:///path"),
    "parquet_path": _Spec(_check_path, lambda d: str((d / "parquet").resolve()), "directory of raw-row Parquet files"),
    "base_period": _Spec(_check_base_period, lambda d: 10, "window length in minutes"),
    "tsdb_keep_days": _Spec(
        _check_keep_days, lambda d: DEFAULT_TSDB_KEEP_DAYS,
        "TDengine only: days of history the TSDB database keeps and accepts (KEEP), 30-365000"),
    "drift_verdict": _Spec(
        _check_drift_verdict, lambda d: "test",
        "the result that decides an endpoint's drift status and data-drift alerts: test (feature_drift, "
        "the per-feature test) or mlrun (general_drift, MLRun's averaged rule)"),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated settings. Build with :func:`load_settings`."""

    project: str
    stream_path: str
    tsdb_connection: str
    endpoint_store_connection: str
    parquet_path: str
    base_period: int
    data_dir: str
    tsdb_keep_days: int = DEFAULT_TSDB_KEEP_DAYS
    drift_verdict: str = "test"

    @property
    def verdict_result(self) -> str:
        """The name of the default application's result that is the endpoint's drift verdict."""
        return "general_drift" if self.drift_verdict == "mlrun" else "feature_drift"

    def __repr__(self) -> str:  # never print a password
        fields = ", ".join(
            f"{f.name}={mask_password(str(getattr(self, f.name)))!r}" for f in dataclasses.fields(self)
        )
        return f"Settings({fields})"

    __str__ = __repr__

    @property
    def base_period_ms(self) -> int:
        return self.base_period * 60_000

    def masked(self) -> dict[str, Any]:
        """The settings as a dict with every password masked, for logs and the UI."""
        return {k: mask_password(v) if isinstance(v, str) else v for k, v in dataclasses.asdict(self).items()}


def _read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"settings file {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"settings file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {str(path)!r} must hold a mapping of setting name to value")
    return data


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | os.PathLike | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve every setting from CLI values, then ``STREAMDRIFT_*`` variables, then the YAML file,
    then ``defaults`` (a command's own, e.g. the demo's project), then the embedded defaults.

    ``cli`` holds the flags the user gave (None values are ignored); ``env`` defaults to
    ``os.environ``; ``config_file`` defaults to ``STREAMDRIFT_CONFIG`` when set.
    """
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    env = os.environ if env is None else env
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG")
    from_file = _read_yaml(config_file) if config_file else {}
    unknown = set(from_file) - set(SPECS) - {"data_dir"}
    if unknown:
        raise SettingsError(
            f"settings file {str(config_file)!r} has unknown keys {sorted(unknown)}; known: {sorted(SPECS) + ['data_dir']}"
        )

    def raw(name: str) -> Any:
        if name in cli:
            return cli[name]
        if ENV_PREFIX + name.upper() in env:
            return env[ENV_PREFIX + name.upper()]
        return from_file[name] if name in from_file else (defaults or {}).get(name)

    data_dir = Path(raw("data_dir") or ".streamdrift")
    values: dict[str, Any] = {"data_dir": str(data_dir.resolve())}
    for name, spec in SPECS.items():
        value = raw(name)
        values[name] = spec.check(name, spec.default(data_dir) if value is None else value)
    return Settings(**values)


def kafka_bootstrap(stream_path: str) -> str:
    """``kafka://a:1,b:2`` → ``a:1,b:2`` (the Kafka clients' bootstrap servers)."""
    parts = urlsplit(stream_path)
    if parts.scheme != "kafka":
        raise SettingsError(f"stream_path {mask_password(stream_path)!r} is not a kafka:// path")
    return parts.netloc


def file_stream_dir(stream_path: str) -> Path:
    """``file:///dir`` → ``Path('/dir')``."""
    parts = urlsplit(stream_path)
    if parts.scheme != "file":
        raise SettingsError(f"stream_path {stream_path!r} is not a file:// path")
    return Path(parts.path)


def topic_names(project: str) -> dict[str, str]:
    """The Kafka topics of a project."""
    return {
        "events": f"{project}.inference-events",
        "dead_letters": f"{project}.dead-letters",
        "alerts": f"{project}.alerts",
    }


__all__ = [
    "Settings", "SettingsError", "SPECS", "load_settings", "mask_password", "kafka_bootstrap",
    "file_stream_dir", "topic_names", "DEFAULT_TSDB_KEEP_DAYS", "MIN_TSDB_KEEP_DAYS", "MAX_TSDB_KEEP_DAYS",
]
