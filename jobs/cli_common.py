"""What the ``streamdrift`` store commands (``endpoints``, ``apps``, ``alerts``) share.

Each of those modules has a ``register(subparsers)`` that adds its command to a ``streamdrift``
parser, and command functions ``cmd_*(args) -> int``. This module holds the rest: the exit codes,
the subcommand and flag set-up (the settings flags come from :mod:`streamdrift.jobs.settings_flags`), the settings and the store of
a command, the error guard that turns an error into one line on stderr and an exit code, the
key/value and table printers, and the ``main`` of a module run on its own.

Heavy modules (the store, the settings) are imported when a command runs, not when a parser is
built: ``streamdrift --help`` stays quick.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

EXIT_NOT_FOUND = 1  # no such endpoint, application or alert
EXIT_ERROR = 2  # bad input, a bad setting or the store failed

Command = Callable[[argparse.Namespace], int]
Handlers = Mapping[type[BaseException], Callable[[BaseException, argparse.Namespace], str]]


# --------------------------------------------------------------------------------- parser


def add_subcommand(sub: argparse._SubParsersAction, name: str, func: Command, **kwargs: Any) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``func``, with the settings flags (``--project``, ``--config``, ...).

    ``kwargs`` go to ``add_parser`` (``help``, ``description``, ...). Add the command's own arguments
    to the parser returned, then :func:`add_json_flag` last.
    """
    from streamdrift.jobs.settings_flags import add_settings_flags

    parser = sub.add_parser(name, **kwargs)
    add_settings_flags(parser)
    parser.set_defaults(func=func)
    return parser


def add_json_flag(parser: argparse.ArgumentParser, help: str = "print JSON") -> None:
    """Add ``--json``: print the result as JSON instead of text."""
    parser.add_argument("--json", action="store_true", help=help)


def add_item_subcommands(sub: argparse._SubParsersAction, commands: Iterable[tuple[str, Command, str]], *,
                          dest: str = "name", **argument: Any) -> None:
    """Add subcommands ``(name, func, help)`` that each take one item (positional ``dest``) and ``--json``.

    ``argument`` goes to the item's ``add_argument`` (``metavar``, ``help``, ...).
    """
    for name, func, text in commands:
        parser = add_subcommand(sub, name, func, help=text)
        parser.add_argument(dest, **argument)
        add_json_flag(parser)


def run_alone(register: Callable[[argparse._SubParsersAction], Any], argv: list[str] | None = None) -> int:
    """Parse ``argv`` with a ``streamdrift`` parser holding only the command ``register`` adds; run it.

    The ``main`` of a command module run as ``python -m jobs.<module> ...``.
    """
    parser = argparse.ArgumentParser(prog="streamdrift")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# --------------------------------------------------------------------------------- settings and store


def settings_of(args: argparse.Namespace):
    """The settings of a command: its flags, then the environment, the ``--config`` file, the defaults."""
    from streamdrift.jobs.settings_flags import settings_from_args

    return settings_from_args(args)


def open_store(args: argparse.Namespace):
    """The store of a command (its ``endpoint_store_connection`` setting), schema created; a context manager."""
    return project_and_store(args)[1]


def project_and_store(args: argparse.Namespace):
    """``(project, store)`` of a command: its ``project`` setting and its store, as :func:`open_store`."""
    from streamdrift.connectors.endpoints import open_store as open_endpoint_store

    settings = settings_of(args)
    return settings.project, open_endpoint_store(settings.endpoint_store_connection)


def not_found(message: str) -> Exception:
    """The error to raise for a missing endpoint, application or alert: exit :data:`EXIT_NOT_FOUND`."""
    from streamdrift.connectors.sql_store import NotFoundError

    return NotFoundError(message)


# --------------------------------------------------------------------------------- errors


def warn(message: str) -> None:
    """Print ``streamdrift: message`` on stderr."""
    print(f"streamdrift: {message}", file=sys.stderr)


def fail(message: Any, code: int = EXIT_ERROR) -> int:
    """Print ``streamdrift: message`` on stderr; return the exit code ``code``."""
    warn(message)
    return code


def guard(fn: Command | None = None, *, extra: Callable[[], Handlers] | None = None):
    """Decorate a command: a store, input or settings error becomes one line on stderr and an exit code.

    A missing thing exits :data:`EXIT_NOT_FOUND`; a store, settings, value, type or OS error exits
    :data:`EXIT_ERROR`; anything else propagates. ``extra`` returns more handlers, ``{exception
    class: message(exc, args)}``, tried after the missing case and before the others (exit
    :data:`EXIT_ERROR`); it is called when the command runs, so that its imports wait until then.
    Use as ``@guard`` or ``@guard(extra=...)``.
    """
    if fn is None:
        return functools.partial(guard, extra=extra)

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from streamdrift.connectors.settings import SettingsError
        from streamdrift.connectors.sql_store import NotFoundError, StoreError

        handlers = dict(extra()) if extra is not None else {}
        try:
            return fn(args)
        except NotFoundError as exc:
            return fail(exc, EXIT_NOT_FOUND)
        except tuple(handlers) as exc:
            message = next(m for kind, m in handlers.items() if isinstance(exc, kind))
            return fail(message(exc, args))
        except (StoreError, SettingsError, ValueError, TypeError, OSError) as exc:
            return fail(exc)

    return run


# --------------------------------------------------------------------------------- output


def print_result(args: argparse.Namespace, value: Any, text: str, *, indent: int | None = None) -> int:
    """Print ``value`` as JSON with ``--json``, else ``text``; return 0 (done)."""
    print(json.dumps(value, indent=indent) if args.json else text)
    return 0


def print_fields(fields: Iterable[tuple[str, Any]]) -> None:
    """One ``key  value`` line a field, the values lined up after the longest key."""
    fields = list(fields)
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces, a header line first."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    return "\n".join(lines)
