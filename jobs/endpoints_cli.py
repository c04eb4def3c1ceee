"""``streamdrift endpoints``: create, list, show and delete model endpoints.

    streamdrift endpoints create --project fraud --model classifier --function serving \\
        --reference train.parquet --outputs prediction --labels label
    streamdrift endpoints list [--project fraud] [--json]
    streamdrift endpoints show ENDPOINT_ID [--json]
    streamdrift endpoints delete ENDPOINT_ID [--json]

The store is the ``endpoint_store_connection`` setting (``--endpoint-store-connection``, then
``STREAMDRIFT_ENDPOINT_STORE_CONNECTION``, then ``--config`` file, then SQLite under
``--data-dir``). Exit status: 0 done, 1 no such endpoint, 2 bad input or the store failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_NOT_FOUND = 1
EXIT_ERROR = 2


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``endpoints`` command and its subcommands to a ``streamdrift`` parser."""
    from jobs.cli import _add_settings_flags  # here, not at the top: jobs.cli imports this module

    parser = subparsers.add_parser("endpoints", help="model endpoints: create from training data, list, show, delete")
    sub = parser.add_subparsers(dest="endpoints_command", required=True, metavar="{create,list,show,delete}")

    p = sub.add_parser("create", help="register a model endpoint with its training data as reference")
    _add_settings_flags(p)  # --project is the endpoint's project (setting 'project', default 'default')
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--function", required=True, help="serving function name")
    p.add_argument("--version", help="model version")
    p.add_argument("--tag", help="serving function tag")
    p.add_argument("--reference", required=True, metavar="FILE", help="training data: .parquet or .csv")
    p.add_argument("--features", help="comma-separated feature columns (default: every column that is "
                                      "not an output or a label)")
    p.add_argument("--outputs", help="comma-separated output (prediction) columns of the reference")
    p.add_argument("--labels", help="comma-separated label (ground truth) columns of the reference")
    p.add_argument("--sample-size", type=int, default=10_000, help="rows of the reference sample kept (10000)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("list", help="list model endpoints")
    _add_settings_flags(p)  # --project filters; without it every project is listed
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show one endpoint and its reference statistics")
    _add_settings_flags(p)
    p.add_argument("endpoint_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON (with the full feature_stats)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("delete", help="delete an endpoint with its counters and latest results")
    _add_settings_flags(p)
    p.add_argument("endpoint_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_delete)
    return parser


# --------------------------------------------------------------------------------- commands


def _store(args: argparse.Namespace):
    from connectors.endpoints import open_store
    from jobs.cli import _settings

    return open_store(_settings(args).endpoint_store_connection)


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [n.strip() for n in value.split(",") if n.strip()]


def _guard(fn):
    """Run a command; report a store, input or settings error on stderr as one line."""

    def run(args: argparse.Namespace) -> int:
        from connectors.settings import SettingsError
        from connectors.sql_store import NotFoundError, StoreError

        try:
            return fn(args)
        except NotFoundError as exc:
            print(f"streamdrift: {exc}", file=sys.stderr)
            return EXIT_NOT_FOUND
        except (StoreError, SettingsError, ValueError, TypeError, OSError) as exc:
            print(f"streamdrift: {exc}", file=sys.stderr)
            return EXIT_ERROR

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


@_guard
def cmd_create(args: argparse.Namespace) -> int:
    from connectors.endpoints import get_or_create_model_endpoint
    from jobs.cli import _settings

    settings = _settings(args)
    store = _store(args)
    try:
        endpoint = get_or_create_model_endpoint(
            settings.project, args.model, args.function, reference=args.reference,
            feature_names=_names(args.features), output_names=_names(args.outputs),
            label_names=_names(args.labels), model_version=args.version, function_tag=args.tag,
            store=store, sample_size=args.sample_size)
    finally:
        store.close()
    if args.json:
        print(json.dumps(endpoint.to_dict(with_stats=False), indent=2))
    else:
        _print_endpoint(endpoint)
    return 0


@_guard
def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        endpoints = store.list_endpoints(args.project, with_stats=False)
    finally:
        store.close()
    if args.json:
        print(json.dumps([e.to_dict(with_stats=False) for e in endpoints], indent=2))
        return 0
    rows = [[e.endpoint_id, e.project, e.model_name, e.model_version or "-", e.function_name or "-",
             e.function_tag or "-", str(len(e.feature_names)), str(len(e.output_names)), str(e.rows_count),
             _time(e.last_request), _drift(e.drift_status)] for e in endpoints]
    print(format_table(["ID", "PROJECT", "MODEL", "VERSION", "FUNCTION", "TAG", "FEATURES", "OUTPUTS", "ROWS",
                        "LAST REQUEST", "DRIFT"], rows))
    return 0


@_guard
def cmd_show(args: argparse.Namespace) -> int:
    from connectors.sql_store import NotFoundError

    store = _store(args)
    try:
        endpoint = store.get_endpoint(args.endpoint_id)
    finally:
        store.close()
    if endpoint is None:
        raise NotFoundError(f"no model endpoint {args.endpoint_id!r}")
    if args.json:
        print(json.dumps(endpoint.to_dict(with_stats=True), indent=2))
        return 0
    _print_endpoint(endpoint)
    print()
    print(format_table(["COLUMN", "ROLE", "TYPE", "COUNT", "NULLS", "MEAN / TOP", "MIN", "MAX"],
                       feature_rows(endpoint)))
    return 0


@_guard
def cmd_delete(args: argparse.Namespace) -> int:
    from connectors.sql_store import NotFoundError

    store = _store(args)
    try:
        deleted = store.delete_endpoint(args.endpoint_id)
    finally:
        store.close()
    if not deleted:
        raise NotFoundError(f"no model endpoint {args.endpoint_id!r}")
    if args.json:
        print(json.dumps({"deleted": args.endpoint_id}))
    else:
        print(f"deleted endpoint {args.endpoint_id}")
    return 0


# --------------------------------------------------------------------------------- output


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces, a header line first."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    return "\n".join(lines)


def _time(value) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _drift(status: int | None) -> str:
    names = {-1: "irrelevant", 0: "no drift", 1: "possible drift", 2: "drift detected"}
    return "-" if status is None else names.get(status, str(status))


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def feature_rows(endpoint) -> list[list[str]]:
    """One row per column of the reference: its role, type and summary statistics."""
    roles = {n: "feature" for n in endpoint.feature_names}
    roles.update({n: "output" for n in endpoint.output_names})
    roles.update({n: "label" for n in endpoint.label_names})
    rows = []
    for name in [*endpoint.feature_names, *endpoint.output_names, *endpoint.label_names]:
        stats = endpoint.feature_stats.get(name)
        if stats is None:
            rows.append([name, roles[name], "no statistics", "-", "-", "-", "-", "-"])
        elif "hist" in stats:
            rows.append([name, roles[name], "numeric", _num(stats.get("count")), _num(stats.get("nulls")),
                         _num(stats.get("mean")), _num(stats.get("min")), _num(stats.get("max"))])
        elif "categories" in stats:
            rows.append([name, roles[name], "categorical", _num(stats.get("count")), _num(stats.get("nulls")),
                         str(stats.get("top")), "-", "-"])
        else:
            rows.append([name, roles[name], "not monitored", _num(stats.get("count")), _num(stats.get("nulls")),
                         "-", "-", "-"])
    return rows


def _print_endpoint(e) -> None:
    fields = [
        ("id", e.endpoint_id), ("project", e.project), ("model", e.model_name),
        ("version", e.model_version or "-"), ("function", e.function_name or "-"), ("tag", e.function_tag or "-"),
        ("features", len(e.feature_names)), ("outputs", ", ".join(e.output_names) or "-"),
        ("labels", ", ".join(e.label_names) or "-"),
        ("reference rows", "-" if e.reference_rows is None else e.reference_rows),
        ("reference sample", "yes" if e.has_reference_sample else "no"),
        ("monitoring", e.monitoring_mode), ("rows seen", e.rows_count), ("events", e.events_count),
        ("errors", e.error_count), ("late", e.late_count), ("first request", _time(e.first_request)),
        ("last request", _time(e.last_request)), ("drift", _drift(e.drift_status)),
        ("created", _time(e.created)), ("updated", _time(e.updated)),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.endpoints_cli ...``: the ``endpoints`` command on its own."""
    parser = argparse.ArgumentParser(prog="streamdrift")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
