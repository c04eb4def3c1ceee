"""The ``streamdrift`` command line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from streamdrift.connectors import local_services
from streamdrift.connectors.settings import ENV_PREFIX, SettingsError
from streamdrift.jobs.settings_flags import add_settings_flags, settings_from_args


def cmd_services(args: argparse.Namespace) -> int:
    if args.action == "add-taskmanager":  # one more TaskManager for the running local cluster
        flink = local_services.Flink()
        try:
            print(f"flink  added taskmanager {flink.add_taskmanager()}; {flink.status().detail}")
        except (local_services.ServiceError, OSError) as exc:
            print(f"flink  FAILED  {exc}", file=sys.stderr)
            return 1
        return 0
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
    """Fetch the JVM dependencies declared in jars/pom.xml with Maven into
    :func:`~streamdrift.connectors.local_services.jars_dir` (``.jars/`` of a checkout)."""
    pom = local_services.PROJECT_ROOT / "jars" / "pom.xml"
    cmd = ["mvn", "-q", "-B", "-f", str(pom), f"-Djars.dir={local_services.jars_dir()}", "package"]
    return subprocess.call(cmd)


def cmd_settings(args: argparse.Namespace) -> int:
    print(json.dumps(settings_from_args(args).masked(), indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from streamdrift.jobs import monitoring_job

    settings = settings_from_args(args)
    print(f"streamdrift: running the monitoring job with {json.dumps(settings.masked())}", file=sys.stderr)
    try:
        monitoring_job.run(settings, monitoring_job.options_from_args(args), args.print_summaries)
    except Exception as exc:  # noqa: BLE001 - the job failed for good: say why in one line
        print(f"streamdrift: the monitoring job failed: {monitoring_job.failure_reason(exc)}", file=sys.stderr)
        return 1
    return 0


JOB_PACKAGES = ("udfs", "operators", "connectors", "jobs")


def job_archive() -> str:
    """A zip of the packages the job runs (``streamdrift/udfs/...``, ``streamdrift/jobs/...``),
    shipped with a submitted job (``-pyfs``): the cluster's Python workers import ``streamdrift.*``
    from it. The files are those this process imports (a checkout or an installed package)."""
    import importlib
    import zipfile
    from pathlib import Path

    target = local_services.run_dir() / "streamdrift-job.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in JOB_PACKAGES:
            folder = Path(importlib.import_module(f"streamdrift.{package}").__file__).parent
            for path in sorted(folder.rglob("*.py")):
                archive.write(path, f"streamdrift/{package}/{path.relative_to(folder).as_posix()}")
    return str(target)


def submit_command(args: argparse.Namespace, job_argv: list[str]) -> list[str]:
    """The ``flink run`` command line that submits the monitoring job to a cluster: the entry
    point is the module ``streamdrift.jobs.monitoring_job`` of the shipped zip."""
    from streamdrift.connectors.local_services import flink_home

    cmd = [str(flink_home() / "bin" / "flink"), "run", "-m", args.jobmanager]
    if args.detached:
        cmd.append("-d")
    cmd += ["-pym", "streamdrift.jobs.monitoring_job", "-pyfs", job_archive(),
            "-pyexec", sys.executable, "-pyclientexec", sys.executable]
    return cmd + job_argv


def _settings_file(settings) -> str:
    """The settings in a YAML file only its owner can read (0600), for the job's entry point: no
    password in a process's arguments, in Flink's client log or in the environment it inherits."""
    import dataclasses
    import os
    import tempfile

    import yaml

    folder = local_services.run_dir() / "submit"
    folder.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="settings-", suffix=".yaml", dir=folder)
    with os.fdopen(fd, "w") as f:  # mkstemp creates the file with mode 0600
        yaml.safe_dump(dataclasses.asdict(settings), f)
    return path


def cmd_submit(args: argparse.Namespace) -> int:
    import os

    settings = settings_from_args(args)  # fail here, before anything is shipped, on a bad setting
    path = _settings_file(settings)
    cluster = local_services.Flink()
    env = cluster.env() if (cluster.conf / "config.yaml").exists() else dict(os.environ)
    env = {k: v for k, v in env.items() if not k.startswith(ENV_PREFIX)}  # resolved into the file
    try:
        return subprocess.call(submit_command(args, ["--config", path, *args.job_argv]), env=env)
    finally:
        os.unlink(path)  # the job's entry point read it before the job was submitted


def cmd_demo(args: argparse.Namespace) -> int:
    from streamdrift.jobs import demo

    settings = settings_from_args(args, defaults=demo.DEFAULTS)
    print(f"streamdrift: the demo with {json.dumps(settings.masked())}", file=sys.stderr)
    return demo.main(settings)


def cmd_ui(args: argparse.Namespace) -> int:
    import os

    from streamdrift.connectors.settings import mask_password
    from streamdrift.ui.app import serve

    settings = settings_from_args(args)
    if args.token:
        print("streamdrift: note: --token is visible in the process list; STREAMDRIFT_UI_TOKEN is not",
              file=sys.stderr)
    token = args.token or os.environ.get("STREAMDRIFT_UI_TOKEN") or None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"streamdrift: dashboard of project {settings.project} on http://{host}:{args.port}/ "
          f"({'actions need the token' if token else 'read-only'}; store "
          f"{mask_password(settings.endpoint_store_connection)}, TSDB {mask_password(settings.tsdb_connection)})",
          file=sys.stderr)
    serve(settings, host=args.host, port=args.port, token=token, flink_rest=args.flink_rest)
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from streamdrift.jobs import demo_smoke

    return demo_smoke.main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamdrift", description="Model monitoring as one Flink job.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("services", help="local Kafka, MariaDB and Flink for development and tests")
    p.add_argument("action", choices=["up", "down", "status", "add-taskmanager"],
                   help="add-taskmanager: one more TaskManager for the running local Flink cluster")
    p.add_argument("names", nargs="*", help="kafka, mysql and/or flink (default: all)")
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("jars", help="fetch the Flink connector and Kafka broker jars with Maven")
    p.set_defaults(func=cmd_jars)

    p = sub.add_parser("settings", help="print the resolved settings (passwords masked)")
    add_settings_flags(p)
    p.set_defaults(func=cmd_settings)

    from streamdrift.jobs.monitoring_job import add_job_flags

    p = sub.add_parser("run", help="run the monitoring job on a local Flink (embedded defaults unless set)")
    add_settings_flags(p)
    add_job_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("submit", help="submit the monitoring job to a Flink cluster (flink run)",
                       description="Flags after the submit flags are the job's: the same as `streamdrift run`.")
    p.add_argument("--jobmanager", default="127.0.0.1:8081", help="REST address of the cluster (host:port)")
    p.add_argument("--attached", dest="detached", action="store_false",
                   help="wait for the job to finish (default: detached)")
    p.set_defaults(func=cmd_submit, config=None, job_argv=[])

    p = sub.add_parser("demo", help="train a model, stream inference events with drift, print per-window drift",
                       description="Embedded defaults (in .streamdrift-demo, project demo) unless the settings "
                                   "flags, STREAMDRIFT_* variables or a --config file name your own services.")
    add_settings_flags(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ui", help="the dashboard: endpoints, drift, metrics and alerts in a browser",
                       description="Serves the dashboard on the stores of the settings (read-only unless a token "
                                   "is set). Open http://HOST:PORT/ in a browser.")
    add_settings_flags(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--token", help="token that actions (resetting an alert) need; better STREAMDRIFT_UI_TOKEN, "
                                   "which no process list shows (default: none, read-only)")
    p.add_argument("--flink-rest", metavar="HOST:PORT", help="Flink REST API of the cluster running the job, "
                                                              "for its health on the overview (e.g. 127.0.0.1:8081)")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("smoke", help="run the smoke pipeline (Kafka → PyFlink → Kafka) on the local broker")
    p.set_defaults(func=cmd_smoke)

    from streamdrift.jobs import apps_cli, endpoints_cli

    endpoints_cli.register(sub)
    apps_cli.register(sub)

    from streamdrift.jobs import alerts_cli, dead_letters_cli

    alerts_cli.register(sub)
    dead_letters_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    # set by PyFlink in a process that ran Python functions of a local job (they run in it); a
    # streamdrift command started from such a process (a notebook, a test) is no such worker
    os.environ.pop("PYFLINK_GATEWAY_DISABLED", None)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "submit":
        # the settings flags among the job's are read here (and shipped in a file, see cmd_submit)
        settings_parser = argparse.ArgumentParser(add_help=False)
        add_settings_flags(settings_parser)
        given, args.job_argv = settings_parser.parse_known_args(rest)
        for name, value in vars(given).items():
            setattr(args, name, value)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args)
    except (SettingsError, local_services.ServiceError) as exc:
        print(f"streamdrift: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
