"""``streamdrift dead-letters``: what the job set aside, and writing refused windows once fixed.

    streamdrift dead-letters list [--project fraud] [--json] [--limit 20]
    streamdrift dead-letters replay [--project fraud] [--json]

``list`` counts the project's dead letters by kind and reason and shows the newest ones.
``replay`` writes the windows a store refused for good (a database named as a keyword, rows older
than the TSDB keeps, ...) once the cause is fixed; each is written once (it remembers how far it
got). Exit status: 0 done, 2 a store still refuses a window (the rest waits for the next replay).
"""

from __future__ import annotations

import argparse
import collections
import json

from streamdrift.jobs.cli_common import add_json_flag, add_subcommand, fail, format_table, guard, run_alone, settings_of


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("dead-letters", help="dead letters: list them, replay refused windows")
    sub = parser.add_subparsers(dest="dead_letters_command", required=True, metavar="{list,replay}")
    p = add_subcommand(sub, "list", cmd_list, help="count the dead letters by kind and reason, show the newest")
    p.add_argument("--limit", type=int, default=10, help="newest letters shown (default 10)")
    add_json_flag(p)
    add_json_flag(add_subcommand(sub, "replay", cmd_replay, help="write the windows a store refused, once fixed"))
    return parser


def _reason_head(reason: str) -> str:
    """The reason without its details (values, sizes), to count alike reasons together."""
    return reason.split(":")[0][:80]


@guard
def cmd_list(args: argparse.Namespace) -> int:
    from streamdrift.connectors import dead_letters

    letters = dead_letters.read(settings_of(args))
    counts = collections.Counter((letter.get("kind", "?"), _reason_head(str(letter.get("reason", "")))) for letter in letters)
    newest = letters[-args.limit:] if args.limit > 0 else []
    if args.json:
        print(json.dumps({"total": len(letters),
                          "by_reason": [{"kind": k, "reason": r, "count": n} for (k, r), n in counts.most_common()],
                          "newest": newest}, default=str))
        return 0
    print(f"{len(letters)} dead letters")
    if counts:
        print(format_table(["COUNT", "KIND", "REASON"], [[str(n), k, r] for (k, r), n in counts.most_common()]))
    for letter in newest:
        print(f"- [{letter.get('kind', '?')}] {str(letter.get('reason', ''))[:200]}")
    return 0


@guard
def cmd_replay(args: argparse.Namespace) -> int:
    from streamdrift.connectors import dead_letters
    from streamdrift.connectors.job_io import StoreWriter, WindowNotWritten
    from streamdrift.udfs.monitor import window_output_from_json

    settings = settings_of(args)
    writer = StoreWriter(settings.tsdb_connection, settings.endpoint_store_connection)
    written = []

    def write(letter):
        out = window_output_from_json(letter["output"])
        writer.write(out)
        written.append(out.endpoint_id)

    try:
        counts = dead_letters.replay(settings, write)
    except WindowNotWritten as exc:
        return fail(f"a store still refuses a window ({len(written)} written before it): {exc}")
    finally:
        for endpoint_id in set(written):
            writer.store.clear_problem(endpoint_id, "store-write-failed")
        writer.close()
    if args.json:
        print(json.dumps(counts))
    else:
        print(f"replayed {counts['replayed']} refused windows ({counts['skipped']} other dead letters left as they are)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_alone(register, argv)
