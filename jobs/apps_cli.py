"""``streamdrift apps``: register, list, remove, enable and disable monitoring applications.

    streamdrift apps add NAME module:Class [--path DIR_OR_FILE] [--params JSON] [--param KEY=VALUE ...]
                         [--timeout-seconds S] [--artifacts-dir DIR] [--disabled] [--no-check] [--project P]
    streamdrift apps list [--project P] [--json]
    streamdrift apps remove NAME [--project P]
    streamdrift apps enable NAME [--project P]
    streamdrift apps disable NAME [--project P]      # also: disable histogram-data-drift

``--path`` is where the module is (a folder, or the ``.py`` file itself; with a file, ``Class``
alone is enough). It is stored as an absolute path and the job's Python workers import the module
from there, so it must exist on the machines that run them. ``add`` imports and builds the
application first, as the job will (``Class(**params)``), and refuses it with the reason when it
cannot (``--no-check`` skips this). The running job picks changes up within 30 seconds.

The store is the ``endpoint_store_connection`` setting, as for ``streamdrift endpoints``.
Exit status: 0 done, 1 no such application, 2 bad input, an application that cannot be loaded,
or the store failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_NOT_FOUND = 1
EXIT_ERROR = 2


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``apps`` command and its subcommands to a ``streamdrift`` parser."""
    from jobs.cli import _add_settings_flags  # here, not at the top: jobs.cli imports this module

    parser = subparsers.add_parser("apps", help="monitoring applications of a project: add, list, remove, "
                                                "enable, disable")
    sub = parser.add_subparsers(dest="apps_command", required=True, metavar="{add,list,remove,enable,disable}")

    p = sub.add_parser("add", help="register (or redefine) an application: module:Class and its parameters")
    _add_settings_flags(p)  # --project is the application's project (setting 'project', default 'default')
    p.add_argument("name", help="application name (letters, digits, '_' and '-'): the name of its results")
    p.add_argument("class_path", metavar="module:Class",
                   help="the application class; just Class when --path is the module's .py file")
    p.add_argument("--path", dest="module_path", metavar="DIR_OR_FILE",
                   help="folder (or .py file) the module is imported from by the job's Python workers")
    p.add_argument("--params", default=None, metavar="JSON", help="constructor keyword arguments as a JSON object")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="one constructor argument (VALUE read as JSON, else as text); repeatable")
    p.add_argument("--timeout-seconds", type=float, default=None,
                   help="most seconds one do_tracking call may take (default 60)")
    p.add_argument("--artifacts-dir", default=None,
                   help="folder for the application's artifacts (default <data_dir>/artifacts)")
    p.add_argument("--disabled", action="store_true", help="register it disabled")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="do not import and build the application before registering it")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="list the applications of a project (the built-in one included)")
    _add_settings_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    for action, text in (("remove", "delete a registration (the built-in one then runs with its defaults)"),
                         ("enable", "enable an application"),
                         ("disable", "disable an application (histogram-data-drift too)")):
        p = sub.add_parser(action, help=text)
        _add_settings_flags(p)
        p.add_argument("name")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func={"remove": cmd_remove, "enable": cmd_enable, "disable": cmd_disable}[action])
    return parser


# --------------------------------------------------------------------------------- commands


def _context(args: argparse.Namespace):
    """(settings, store)"""
    from connectors.endpoints import open_store
    from jobs.cli import _settings

    settings = _settings(args)
    return settings, open_store(settings.endpoint_store_connection)


def _guard(fn):
    """Run a command; report a store, input, settings or loading error on stderr as one line."""

    def run(args: argparse.Namespace) -> int:
        from connectors.app_registry import AppLoadError
        from connectors.settings import SettingsError
        from connectors.sql_store import NotFoundError, StoreError

        try:
            return fn(args)
        except NotFoundError as exc:
            print(f"streamdrift: {exc}", file=sys.stderr)
            return EXIT_NOT_FOUND
        except AppLoadError as exc:
            print(f"streamdrift: application {args.name!r} cannot be loaded: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except (StoreError, SettingsError, ValueError, TypeError, OSError) as exc:
            print(f"streamdrift: {exc}", file=sys.stderr)
            return EXIT_ERROR

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def parse_params(params: str | None, pairs: list[str]) -> dict[str, Any]:
    """``--params JSON`` and ``--param KEY=VALUE`` → one dict (``--param`` wins)."""
    out: dict[str, Any] = {}
    if params:
        try:
            value = json.loads(params)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--params is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError(f"--params must be a JSON object, got {type(value).__name__}")
        out.update(value)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {pair!r} must look like KEY=VALUE")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


@_guard
def cmd_add(args: argparse.Namespace) -> int:
    from connectors import app_registry

    class_path = args.class_path
    if ":" not in class_path and args.module_path and Path(args.module_path).suffix == ".py":
        class_path = f"{Path(args.module_path).stem}:{class_path}"
    settings, store = _context(args)
    try:
        app = app_registry.register_application(
            store, settings.project, args.name, class_path, parse_params(args.params, args.param),
            module_path=args.module_path, timeout_seconds=args.timeout_seconds, artifacts_dir=args.artifacts_dir,
            enabled=not args.disabled, check=args.check)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"project": app.project, "name": app.name, "class_path": app.class_path,
                          "params": app.params, "enabled": app.enabled}, indent=2))
    else:
        state = "enabled" if app.enabled else "disabled"
        print(f"registered application {app.name} ({app.class_path}, {state}) in project {app.project}")
    return 0


@_guard
def cmd_list(args: argparse.Namespace) -> int:
    from connectors import app_registry

    settings, store = _context(args)
    try:
        apps = app_registry.list_registered(store, settings.project)
    finally:
        store.close()
    if args.json:
        print(json.dumps([a.to_dict() for a in apps], indent=2))
        return 0
    from jobs.endpoints_cli import format_table

    rows = [[a.name, "yes" if a.enabled else "no", a.class_path + (" (built-in)" if a.builtin else ""),
             json.dumps(a.params, sort_keys=True) if a.params else "-", a.module_path or "-",
             f"{a.timeout_seconds:g}"] for a in apps]
    print(format_table(["NAME", "ENABLED", "CLASS", "PARAMS", "PATH", "TIMEOUT"], rows))
    return 0


def _toggle(args: argparse.Namespace, enabled: bool) -> int:
    from connectors import app_registry

    settings, store = _context(args)
    try:
        app_registry.set_enabled(store, settings.project, args.name, enabled)
    finally:
        store.close()
    state = "enabled" if enabled else "disabled"
    if args.json:
        print(json.dumps({"project": settings.project, "name": args.name, "enabled": enabled}))
    else:
        print(f"{state} application {args.name} in project {settings.project}")
    return 0


@_guard
def cmd_enable(args: argparse.Namespace) -> int:
    return _toggle(args, True)


@_guard
def cmd_disable(args: argparse.Namespace) -> int:
    return _toggle(args, False)


@_guard
def cmd_remove(args: argparse.Namespace) -> int:
    from connectors import app_registry
    from connectors.sql_store import NotFoundError

    settings, store = _context(args)
    try:
        removed = app_registry.remove_application(store, settings.project, args.name)
    finally:
        store.close()
    if not removed:
        raise NotFoundError(f"no application {args.name!r} registered in project {settings.project!r}")
    if args.json:
        print(json.dumps({"project": settings.project, "removed": args.name}))
    else:
        print(f"removed application {args.name} from project {settings.project}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.apps_cli ...``: the ``apps`` command on its own."""
    parser = argparse.ArgumentParser(prog="streamdrift")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
