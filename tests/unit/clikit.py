"""Running a ``streamdrift`` subcommand in-process, as the command line would."""

from __future__ import annotations

import argparse


def run_command(register, argv: list[str], capsys) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``streamdrift <argv>`` with the subcommands ``register``
    adds (``alerts_cli.register``, ...), captured by pytest's ``capsys``."""
    parser = argparse.ArgumentParser(prog="streamdrift")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    rc = args.func(args)
    out = capsys.readouterr()
    return rc, out.out, out.err
