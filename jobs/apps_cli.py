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

from streamdrift.jobs.cli_common import EXIT_ERROR, EXIT_NOT_FOUND  # noqa: F401 (the exit codes, importable from here too)
from streamdrift.jobs.cli_common import add_item_subcommands, add_json_flag, add_subcommand, format_table, guard, not_found
from streamdrift.jobs.cli_common import print_result, project_and_store, run_alone


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``apps`` command and its subcommands to a ``streamdrift`` parser."""
    parser = subparsers.add_parser("apps", help="monitoring applications of a project: add, list, remove, "
                                                "enable, disable")
    sub = parser.add_subparsers(dest="apps_command", required=True, metavar="{add,list,remove,enable,disable}")

    # --project is the application's project (setting 'project', default 'default')
    p = add_subcommand(sub, "add", cmd_add,
                       help="register (or redefine) an application: module:Class and its parameters")
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
    add_json_flag(p)

    add_json_flag(add_subcommand(sub, "list", cmd_list,
                                 help="list the applications of a project (the built-in one included)"))

    add_item_subcommands(sub, [
        ("remove", cmd_remove, "delete a registration (the built-in one then runs with its defaults)"),
        ("enable", cmd_enable, "enable an application"),
        ("disable", cmd_disable, "disable an application (histogram-data-drift too)")])
    return parser


# --------------------------------------------------------------------------------- commands


def _load_errors() -> dict:
    """:func:`guard`'s extra handler: an application that cannot be imported or built."""
    from streamdrift.connectors.app_registry import AppLoadError

    return {AppLoadError: lambda exc, args: f"application {args.name!r} cannot be loaded: {exc}"}


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


@guard(extra=_load_errors)
def cmd_add(args: argparse.Namespace) -> int:
    from streamdrift.connectors import app_registry

    class_path = args.class_path
    if ":" not in class_path and args.module_path and Path(args.module_path).suffix == ".py":
        class_path = f"{Path(args.module_path).stem}:{class_path}"
    project, store = project_and_store(args)
    with store:
        app = app_registry.register_application(
            store, project, args.name, class_path, parse_params(args.params, args.param),
            module_path=args.module_path, timeout_seconds=args.timeout_seconds, artifacts_dir=args.artifacts_dir,
            enabled=not args.disabled, check=args.check)
    state = "enabled" if app.enabled else "disabled"
    return print_result(args, {"project": app.project, "name": app.name, "class_path": app.class_path,
                               "params": app.params, "enabled": app.enabled},
                        f"registered application {app.name} ({app.class_path}, {state}) in project {app.project}",
                        indent=2)


@guard(extra=_load_errors)
def cmd_list(args: argparse.Namespace) -> int:
    from streamdrift.connectors import app_registry

    project, store = project_and_store(args)
    with store:
        apps = app_registry.list_registered(store, project)
    if args.json:
        print(json.dumps([a.to_dict() for a in apps], indent=2))
        return 0
    rows = [[a.name, "yes" if a.enabled else "no", a.class_path + (" (built-in)" if a.builtin else ""),
             json.dumps(a.params, sort_keys=True) if a.params else "-", a.module_path or "-",
             f"{a.timeout_seconds:g}"] for a in apps]
    print(format_table(["NAME", "ENABLED", "CLASS", "PARAMS", "PATH", "TIMEOUT"], rows))
    return 0


def _toggle(args: argparse.Namespace, enabled: bool) -> int:
    from streamdrift.connectors import app_registry

    project, store = project_and_store(args)
    with store:
        app_registry.set_enabled(store, project, args.name, enabled)
    state = "enabled" if enabled else "disabled"
    return print_result(args, {"project": project, "name": args.name, "enabled": enabled},
                        f"{state} application {args.name} in project {project}")


@guard(extra=_load_errors)
def cmd_enable(args: argparse.Namespace) -> int:
    return _toggle(args, True)


@guard(extra=_load_errors)
def cmd_disable(args: argparse.Namespace) -> int:
    return _toggle(args, False)


@guard(extra=_load_errors)
def cmd_remove(args: argparse.Namespace) -> int:
    from streamdrift.connectors import app_registry

    project, store = project_and_store(args)
    with store:
        removed = app_registry.remove_application(store, project, args.name)
    if not removed:
        raise not_found(f"no application {args.name!r} registered in project {project!r}")
    return print_result(args, {"project": project, "removed": args.name},
                        f"removed application {args.name} from project {project}")


def main(argv: list[str] | None = None) -> int:
    """``python -m streamdrift.jobs.apps_cli ...``: the ``apps`` command on its own."""
    return run_alone(register, argv)


if __name__ == "__main__":
    sys.exit(main())
