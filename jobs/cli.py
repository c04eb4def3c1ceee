"""The ``streamdrift`` command line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from connectors import local_services
from connectors.settings import SPECS, SettingsError, load_settings


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML settings file (also STREAMDRIFT_CONFIG)")
    parser.add_argument("--data-dir", help="folder of the embedded defaults (default .streamdrift)")
    for name, spec in SPECS.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, help=spec.help)


def _settings(args: argparse.Namespace):
    cli = {name: getattr(args, name, None) for name in list(SPECS) + ["data_dir"]}
    return load_settings(cli, config_file=args.config)


def cmd_services(args: argparse.Namespace) -> int:
    items = local_services.services(args.names)
    if args.action == "down":
        items = list(reversed(items))
    failed = False
    for service in items:
        try:
            status = {"up": service.start, "down": service.stop, "status": service.status}[args.action]()
        except local_services.ServiceError as exc:
            print(f"{service.name:6} FAILED  {exc}", file=sys.stderr)
            failed = True
            continue
        print(f"{status.name:6} {'up' if status.up else 'down':5} {status.detail}")
        if args.action == "up" and not status.up:
            failed = True
    return 1 if failed else 0


def cmd_jars(args: argparse.Namespace) -> int:
    """Fetch the JVM dependencies declared in jars/pom.xml into .jars/ with Maven."""
    pom = local_services.PROJECT_ROOT / "jars" / "pom.xml"
    cmd = ["mvn", "-q", "-B", "-f", str(pom), f"-Djars.dir={local_services.jars_dir()}", "package"]
    return subprocess.call(cmd)


def cmd_settings(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).masked(), indent=2))
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from jobs import demo_smoke

    return demo_smoke.main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamdrift", description="Model monitoring as one Flink job.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("services", help="local Kafka, MariaDB and Flink for development and tests")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("names", nargs="*", help="kafka, mysql and/or flink (default: all)")
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("jars", help="fetch the Flink connector and Kafka broker jars with Maven")
    p.set_defaults(func=cmd_jars)

    p = sub.add_parser("settings", help="print the resolved settings (passwords masked)")
    _add_settings_flags(p)
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("smoke", help="run the smoke pipeline (Kafka → PyFlink → Kafka) on the local broker")
    p.set_defaults(func=cmd_smoke)

    from jobs import endpoints_cli

    endpoints_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (SettingsError, local_services.ServiceError) as exc:
        print(f"streamdrift: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
