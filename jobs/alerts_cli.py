"""``streamdrift alerts``: add, list, show (with the activations), reset and delete alerts.

    streamdrift alerts add drift-fraud --project fraud --endpoint EP_ID [--result general_drift] \\
        --trigger data-drift-detected --trigger data-drift-suspected --count 3 --period 30m \\
        --severity high --reset-policy manual --summary 'Model {{entity}} drifts: {{value}}' \\
        --webhook https://ops.example.com/hook --slack https://hooks.slack.com/services/... --cooldown 1h
    streamdrift alerts list [--json]
    streamdrift alerts show NAME [--limit 50] [--json]
    streamdrift alerts reset NAME
    streamdrift alerts delete NAME

The project is the ``project`` setting (``--project``); the store the ``endpoint_store_connection``
setting. A running job picks up added, changed, reset and deleted alerts within its refresh period
(30 s). Notification URLs are shown masked. Exit status: 0 done, 1 no such alert, 2 bad input or
the store failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from streamdrift.jobs.cli_common import EXIT_ERROR, EXIT_NOT_FOUND  # noqa: F401 (the exit codes, importable from here too)
from streamdrift.jobs.cli_common import add_item_subcommands, add_json_flag, add_subcommand, format_table, guard, not_found
from streamdrift.jobs.cli_common import open_store, print_fields, print_result, project_and_store, run_alone, settings_of, warn
from streamdrift.connectors.alert_records import alert_state as _state
from streamdrift.connectors.alert_records import config_dict as _config_dict
from streamdrift.connectors.alert_records import iso_time as _time

SUMMARY_EXAMPLE = "Model {{project}}/{{entity}}: {{kind}} (value {{value}}, window {{window_start}}..{{window_end}})"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``alerts`` command and its subcommands to a ``streamdrift`` parser."""
    from streamdrift.udfs.alert_config import EVENT_KINDS, PLACEHOLDERS, RESET_POLICIES, SEVERITIES

    parser = subparsers.add_parser("alerts", help="alerts on monitoring results: add, list, show, reset, delete")
    sub = parser.add_subparsers(dest="alerts_command", required=True, metavar="{add,list,show,reset,delete}")

    p = add_subcommand(sub, "add", cmd_add, help="create or replace an alert (replacing resets it)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=f"Event kinds: {', '.join(EVENT_KINDS)}.\n"
                                   f"Summary placeholders: {', '.join('{{' + x + '}}' for x in PLACEHOLDERS)}.")
    p.add_argument("name", help="alert name (unique in the project)")
    p.add_argument("--summary", default=None, help=f"message template (default: {SUMMARY_EXAMPLE!r})")
    p.add_argument("--severity", choices=SEVERITIES, default="medium")
    p.add_argument("--trigger", action="append", required=True, metavar="KIND",
                   help="event kind that counts (repeat, or comma-separated), e.g. data-drift-detected")
    p.add_argument("--endpoint", help="endpoint id the alert watches (default: every endpoint)")
    p.add_argument("--app", help="with --endpoint: only results of this application")
    p.add_argument("--result", help="with --endpoint: only this result name (e.g. general_drift)")
    p.add_argument("--entity", action="append", metavar="PATTERN",
                   help="entity pattern instead of --endpoint: '*', an endpoint id or "
                        "'<endpoint_id>.<app>.result.<result_name>' (wildcards allowed; repeat for more)")
    p.add_argument("--count", type=int, default=1, help="events needed to activate (default 1)")
    p.add_argument("--period", help="...within this much event time, e.g. 30m, 1h, 1d (default: no limit)")
    p.add_argument("--reset-policy", choices=RESET_POLICIES, default="auto",
                   help="auto: ready again after each activation; manual: holds until `alerts reset`")
    p.add_argument("--webhook", action="append", default=[], metavar="URL", help="POST the activation as JSON")
    p.add_argument("--slack", action="append", default=[], metavar="URL", help="Slack incoming-webhook URL")
    p.add_argument("--console", action="store_true", help="print activations on the job's standard output")
    p.add_argument("--kafka", nargs="?", const="", default=None, metavar="TOPIC",
                   help="publish activations to Kafka (default topic <project>.alerts on the job's Kafka)")
    p.add_argument("--notification", action="append", default=[], metavar="JSON",
                   help='a notification as JSON, e.g. \'{"kind": "webhook", "url": "...", "cooldown": "10m", '
                        '"timeout": 5, "retries": 3}\'')
    p.add_argument("--cooldown", help="cooldown of the --webhook/--slack/--console/--kafka notifications, e.g. 1h")
    p.add_argument("--timeout", type=float, help="seconds per request of those notifications (default 5)")
    p.add_argument("--retries", type=int, help="retries of those notifications (default 3)")
    add_json_flag(p)

    add_json_flag(add_subcommand(sub, "list", cmd_list, help="list the alerts of the project"))

    p = add_subcommand(sub, "show", cmd_show, help="show an alert and its activations")
    p.add_argument("name")
    p.add_argument("--limit", type=int, default=50, help="newest activations shown (default 50)")
    add_json_flag(p)

    add_item_subcommands(sub, [
        ("reset", cmd_reset, "reset an alert: a held (manual) alert counts and notifies again"),
        ("delete", cmd_delete, "delete an alert (its activations stay as history)")])
    return parser


# --------------------------------------------------------------------------------- commands


def _entities(args: argparse.Namespace) -> list[str]:
    if args.entity and args.endpoint:
        raise ValueError("give --endpoint (with --app/--result) or --entity patterns, not both")
    if args.entity:
        return args.entity
    if args.endpoint:
        if args.app or args.result:
            return [f"{args.endpoint}.{args.app or '*'}.result.{args.result or '*'}"]
        return [args.endpoint]
    if args.app or args.result:
        return [f"*.{args.app or '*'}.result.{args.result or '*'}"]
    return ["*"]


def _notifications(args: argparse.Namespace) -> list[dict[str, Any]]:
    common: dict[str, Any] = {}
    if args.cooldown:
        common["cooldown"] = args.cooldown
    if args.timeout is not None:
        common["timeout"] = args.timeout
    if args.retries is not None:
        common["retries"] = args.retries
    out = [{"kind": "webhook", "url": url, **common} for url in args.webhook]
    out += [{"kind": "slack", "webhook": url, **common} for url in args.slack]
    if args.console:
        out.append({"kind": "console", **{k: v for k, v in common.items() if k == "cooldown"}})
    if args.kafka is not None:
        out.append({"kind": "kafka", **({"topic": args.kafka} if args.kafka else {}), **common})
    for text in args.notification:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--notification is not valid JSON ({exc.msg} at character {exc.pos})") from None
        out.append(value)
    return out


def _spec(config) -> Any:
    from streamdrift.udfs.alert_config import AlertSpec

    import dataclasses

    return AlertSpec.from_config(config if isinstance(config, dict) else dataclasses.asdict(config))


@guard
def cmd_add(args: argparse.Namespace) -> int:
    from streamdrift.udfs.alert_config import AlertSpec

    project = settings_of(args).project
    triggers = [t.strip() for value in args.trigger for t in value.split(",") if t.strip()]
    config = {"project": project, "name": args.name, "summary": args.summary or SUMMARY_EXAMPLE,
              "severity": args.severity, "entities": _entities(args), "trigger_kinds": triggers,
              "criteria": {"count": args.count, **({"period": args.period} if args.period else {})},
              "reset_policy": args.reset_policy, "notifications": _notifications(args)}
    spec = AlertSpec.from_config(config)  # every check before anything is written
    if not spec.notifications:
        warn("note: the alert has no notifications; activations are only recorded")
    with open_store(args) as store:
        saved = store.add_alert_config(project, spec.name, state="inactive", **spec.to_config())
    if args.json:
        print(json.dumps(_config_dict(saved), indent=2))
    else:
        print(f"saved alert {saved.name!r} in project {project!r}")
        _print_config(saved, [])
    return 0


@guard
def cmd_list(args: argparse.Namespace) -> int:
    from streamdrift.connectors.alert_records import alerts_json

    project, store = project_and_store(args)
    with store:
        if args.json:
            print(json.dumps(alerts_json(store, project), indent=2))
            return 0
        configs = store.list_alert_configs(project)
        activations = store.list_activations(project)
    by_alert: dict[str, list] = {}
    for a in activations:
        by_alert.setdefault(a.alert_name, []).append(a)
    rows = []
    for c in configs:
        mine = by_alert.get(c.name, [])
        try:
            spec = _spec(c)
            triggers, entities = ",".join(spec.trigger_kinds), ",".join(spec.entities)
            criteria, notify = _criteria(spec), ",".join(_notify_label(n) for n in spec.notifications) or "-"
        except ValueError as exc:
            triggers = entities = criteria = notify = f"invalid: {exc}"[:60]
        rows.append([c.name, c.severity, _state(c, mine), triggers, entities, criteria, c.reset_policy, notify,
                     str(len(mine)), _time(mine[-1].activated_at) if mine else "-"])
    print(format_table(["NAME", "SEVERITY", "STATE", "TRIGGERS", "ENTITIES", "CRITERIA", "RESET", "NOTIFY",
                        "ACTIVATIONS", "LAST ACTIVATION"], rows))
    return 0


@guard
def cmd_show(args: argparse.Namespace) -> int:
    from streamdrift.connectors.alert_records import alert_json

    project, store = project_and_store(args)
    with store:
        if args.json:
            print(json.dumps(alert_json(store, project, args.name, args.limit), indent=2))
            return 0
        config = store.get_alert_config(project, args.name)
        activations = store.list_activations(project, args.name, limit=args.limit)
    if config is None:
        raise not_found(f"no alert {args.name!r} in project {project!r}")
    _print_config(config, activations)
    print()
    if not activations:
        print("no activations")
        return 0
    rows = [[str(a.id), _time(a.activated_at), a.entity, a.event_kind, _num(a.value), _time(a.window_end),
             _notified(a.notified), "-" if a.reset_at is None else _time(a.reset_at), a.summary]
            for a in activations]
    print(format_table(["ID", "ACTIVATED", "ENTITY", "EVENT", "VALUE", "WINDOW END", "NOTIFIED", "RESET",
                        "SUMMARY"], rows))
    return 0


@guard
def cmd_reset(args: argparse.Namespace) -> int:
    from streamdrift.connectors.alert_records import reset_alert

    project, store = project_and_store(args)
    with store:
        closed = reset_alert(store, project, args.name)
    return print_result(args, {"reset": args.name, "activations_reset": closed},
                        f"reset alert {args.name!r} ({len(closed)} open activation(s) closed); "
                        "a running job applies it within its refresh period")


@guard
def cmd_delete(args: argparse.Namespace) -> int:
    project, store = project_and_store(args)
    with store:
        deleted = store.delete_alert_config(project, args.name)
    if not deleted:
        raise not_found(f"no alert {args.name!r} in project {project!r}")
    return print_result(args, {"deleted": args.name}, f"deleted alert {args.name!r} (its activations stay as history)")


# --------------------------------------------------------------------------------- output


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _criteria(spec) -> str:
    from streamdrift.udfs.alert_config import format_period

    return f"{spec.count} in {format_period(spec.period_ms)}" if spec.period_ms else f"{spec.count}"


def _notify_label(target) -> str:
    from streamdrift.udfs.alert_config import format_period

    cooldown = f"/{format_period(target.cooldown_ms)}" if target.cooldown_ms else ""
    return target.kind + cooldown


def _notified(entries) -> str:
    """``webhook sent, slack failed(4), console suppressed``."""
    if not entries:
        return "-"
    parts = []
    for e in entries if isinstance(entries, list) else []:
        status = e.get("status", "?")
        if status == "failed":
            status += f"({e.get('attempts', '?')})"
        parts.append(f"{e.get('kind', e.get('id'))} {status}")
    return ", ".join(parts) or "-"


def _print_config(config, activations) -> None:
    d = _config_dict(config)
    fields = [("name", d["name"]), ("project", d["project"]), ("state", _state(config, activations)),
              ("severity", d["severity"]), ("summary", d["summary"]), ("entities", ", ".join(d["entities"])),
              ("triggers", ", ".join(d["trigger_kinds"])), ("criteria", json.dumps(d["criteria"])),
              ("reset policy", d["reset_policy"])]
    for i, n in enumerate(d["notifications"], 1):
        fields.append((f"notification {i}", json.dumps(n)))
    fields += [("created", d["created"]), ("updated", d["updated"])]
    print_fields(fields)


def main(argv: list[str] | None = None) -> int:
    """``python -m streamdrift.jobs.alerts_cli ...``: the ``alerts`` command on its own."""
    return run_alone(register, argv)


if __name__ == "__main__":
    sys.exit(main())
