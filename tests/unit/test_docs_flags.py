"""The job flags' table of docs/job.md says what ``streamdrift run --help`` says: the defaults live
in JobOptions; the page is checked against them so it cannot drift."""
import argparse
import re
from pathlib import Path

from streamdrift.jobs.monitoring_job import add_job_flags

DOC = Path(__file__).resolve().parents[2] / "docs" / "job.md"


def _doc_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"\| `(--[a-z-]+)[^`]*` \| ([^|]*) \|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip().strip("`")
    return rows


def _code_defaults() -> dict[str, str | None]:
    parser = argparse.ArgumentParser()
    add_job_flags(parser)
    out = {}
    for action in parser._actions:
        for name in action.option_strings:
            if name.startswith("--") and name != "--help":
                m = re.search(r"\(default ([^)]*)\)\s*$", action.help or "")
                out[name] = m.group(1) if m else None
    return out


def test_every_job_flag_is_in_the_table_and_no_other():
    assert set(_doc_rows()) == set(_code_defaults())


def test_the_tables_defaults_are_the_codes():
    code = _code_defaults()
    for flag, shown in _doc_rows().items():
        if code[flag] is not None:  # the code prints a default: the page must show the same
            assert shown.replace(",", "") == code[flag].replace(",", ""), (flag, shown, code[flag])
        else:  # none printed: a flag that is off, or one whose default is described in words
            assert not re.fullmatch(r"[\d,.]+", shown), (flag, shown)
