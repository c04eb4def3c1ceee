"""``streamdrift endpoints``: create, list, show and delete model endpoints.

    streamdrift endpoints create --project fraud --model classifier --function serving \\
        --reference train.parquet --outputs prediction --labels label [--numeric COL] [--categorical COL]
    streamdrift endpoints list [--project fraud] [--json]
    streamdrift endpoints show ENDPOINT_ID [--json]
    streamdrift endpoints delete ENDPOINT_ID [--json]
    streamdrift endpoints disable|enable ENDPOINT_ID [--json]

The store is the ``endpoint_store_connection`` setting (``--endpoint-store-connection``, then
``STREAMDRIFT_ENDPOINT_STORE_CONNECTION``, then ``--config`` file, then SQLite under
``--data-dir``). Exit status: 0 done, 1 no such endpoint, 2 bad input or the store failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from streamdrift.jobs.cli_common import EXIT_ERROR, EXIT_NOT_FOUND  # noqa: F401 (the exit codes, importable from here too)
from streamdrift.jobs.cli_common import add_item_subcommands, add_json_flag, add_subcommand, format_table, guard, not_found
from streamdrift.jobs.cli_common import open_store, print_fields, print_result, project_and_store, run_alone


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``endpoints`` command and its subcommands to a ``streamdrift`` parser."""
    parser = subparsers.add_parser("endpoints", help="model endpoints: create from training data, list, show, delete")
    sub = parser.add_subparsers(dest="endpoints_command", required=True, metavar="{create,list,show,delete,disable,enable}")

    # --project is the endpoint's project (setting 'project', default 'default')
    p = add_subcommand(sub, "create", cmd_create, help="register a model endpoint with its training data as reference")
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
    p.add_argument("--endpoint-id", help="the id MLRun assigned the endpoint (default: derived as MLRun derives it)")
    p.add_argument("--numeric", action="append", metavar="COL",
                   help="monitor COL as numbers: its values that are not numbers count as invalid values "
                        "(repeatable, or comma-separated; default: text columns with at most 5 %% non-numbers)")
    p.add_argument("--categorical", action="append", metavar="COL",
                   help="monitor COL as categories whatever its values (repeatable, or comma-separated)")
    add_json_flag(p)

    # --project filters; without it every project is listed
    add_json_flag(add_subcommand(sub, "list", cmd_list, help="list model endpoints"))

    p = add_subcommand(sub, "show", cmd_show, help="show one endpoint and its reference statistics")
    p.add_argument("endpoint_id", metavar="ID")
    add_json_flag(p, "print JSON (with the full feature_stats)")

    add_item_subcommands(sub, [("delete", cmd_delete, "delete an endpoint with its counters and latest results"),
                               ("disable", cmd_disable, "stop computing drift for an endpoint (its events are "
                                                        "still counted and kept raw)"),
                               ("enable", cmd_enable, "compute drift for an endpoint again")],
                         dest="endpoint_id", metavar="ID")
    return parser


# --------------------------------------------------------------------------------- commands


def _names(value: str | list[str] | None) -> list[str] | None:
    """Column names of a comma-separated option (or of a repeated one: a list of such values)."""
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


@guard
def cmd_create(args: argparse.Namespace) -> int:
    from streamdrift.connectors.endpoints import get_or_create_model_endpoint

    project, store = project_and_store(args)
    with store:
        endpoint = get_or_create_model_endpoint(
            project, args.model, args.function, reference=args.reference,
            feature_names=_names(args.features), output_names=_names(args.outputs),
            label_names=_names(args.labels), model_version=args.version, function_tag=args.tag,
            store=store, sample_size=args.sample_size, endpoint_id=args.endpoint_id, numeric=_names(args.numeric),
            categorical=_names(args.categorical))
    if args.json:
        invalid = {name: {k: s[k] for k in ("invalid", "invalid_tokens") if k in s}
                   for name, s in endpoint.feature_stats.items() if s.get("invalid")}
        print(json.dumps({**endpoint.to_dict(with_stats=False), "invalid_values": invalid}, indent=2))
    else:
        _print_endpoint(endpoint)
        _print_invalid(endpoint)
    return 0


@guard
def cmd_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        endpoints = store.list_endpoints(args.project, with_stats=False)
    if args.json:
        print(json.dumps([e.to_dict(with_stats=False) for e in endpoints], indent=2))
        return 0
    rows = [[e.endpoint_id, e.project, e.model_name, e.model_version or "-", e.function_name or "-",
             e.function_tag or "-", str(len(e.feature_names)), str(len(e.output_names)), str(e.rows_count),
             _time(e.last_request), _drift(e.drift_status)] for e in endpoints]
    print(format_table(["ID", "PROJECT", "MODEL", "VERSION", "FUNCTION", "TAG", "FEATURES", "OUTPUTS", "ROWS",
                        "LAST REQUEST", "DRIFT"], rows))
    return 0


@guard
def cmd_show(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        endpoint = store.get_endpoint(args.endpoint_id)
        problems = store.problems(args.endpoint_id) if endpoint is not None else []
    if endpoint is None:
        raise not_found(f"no model endpoint {args.endpoint_id!r}")
    if args.json:
        from streamdrift.connectors.endpoints import endpoint_json

        print(json.dumps(endpoint_json(endpoint, problems), indent=2))
        return 0
    _print_endpoint(endpoint)
    for p in problems:
        print(f"problem  {p['kind']} ({p['occurrences']}x, last {_time(p['last_seen'])}): {p['message']}")
    print()
    print(format_table(["COLUMN", "ROLE", "TYPE", "COUNT", "NULLS", "MEAN / TOP", "MIN", "MAX"],
                       feature_rows(endpoint)))
    _print_invalid(endpoint)
    return 0


@guard
def cmd_delete(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        deleted = store.delete_endpoint(args.endpoint_id)
    if not deleted:
        raise not_found(f"no model endpoint {args.endpoint_id!r}")
    return print_result(args, {"deleted": args.endpoint_id}, f"deleted endpoint {args.endpoint_id}")


def _set_mode(args: argparse.Namespace, mode: str) -> int:
    with open_store(args) as store:
        if store.get_endpoint(args.endpoint_id) is None:
            raise not_found(f"no model endpoint {args.endpoint_id!r}")
        store.set_monitoring_mode(args.endpoint_id, mode)
    return print_result(args, {"endpoint_id": args.endpoint_id, "monitoring_mode": mode},
                        f"endpoint {args.endpoint_id}: monitoring {mode}")


@guard
def cmd_disable(args: argparse.Namespace) -> int:
    return _set_mode(args, "disabled")


@guard
def cmd_enable(args: argparse.Namespace) -> int:
    return _set_mode(args, "enabled")


# --------------------------------------------------------------------------------- output


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


def _print_invalid(endpoint) -> None:
    """One line per reference column with values that are not numbers (invalid values)."""
    from streamdrift.udfs.reference import invalid_report

    for line in invalid_report(endpoint.feature_stats):
        print(f"invalid  {line}")


def _print_endpoint(e) -> None:
    print_fields([
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
    ])


def main(argv: list[str] | None = None) -> int:
    """``python -m streamdrift.jobs.endpoints_cli ...``: the ``endpoints`` command on its own."""
    return run_alone(register, argv)


if __name__ == "__main__":
    sys.exit(main())
