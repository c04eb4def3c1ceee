"""The flags of ``streamdrift run`` / ``submit`` beyond the settings: each sets its JobOptions field
(seconds on the command line, milliseconds in the options), and an absent flag leaves the field's
default, which is written once, in JobOptions."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from streamdrift.jobs.cli import build_parser
from streamdrift.jobs.monitoring_job import JobOptions, add_job_flags, options_from_args

# flag, value given, JobOptions field, value expected (by hand: seconds × 1000 for the *_ms fields)
FLAGS = [
    ("--window-seconds", "60", "window_ms", 60_000),
    ("--max-disorder-seconds", "0.25", "max_disorder_ms", 250),
    ("--allowed-lateness-seconds", "120", "allowed_lateness_ms", 120_000),
    ("--idle-grace-seconds", "1.5", "idle_grace_ms", 1_500),
    ("--sample-size", "50", "sample_size", 50),
    ("--parallelism", "3", "parallelism", 3),
    ("--checkpoint-interval-seconds", "2", "checkpoint_interval_ms", 2_000),
    ("--arrow-batch-size", "500", "arrow_batch_size", 500),
    ("--parse-bundle-seconds", "2.5", "parse_bundle_time_ms", 2_500),
    ("--parse-bundle-seconds", "0.001", "parse_bundle_time_ms", 1),
    ("--parse-bundle-seconds", "3600", "parse_bundle_time_ms", 3_600_000),
    ("--state-backend", "rocksdb", "state_backend", "rocksdb"),
    ("--checkpoint-dir", "file:///tmp/cp", "checkpoint_dir", "file:///tmp/cp"),
    ("--restart-max-failures", "4", "restart_max_failures", 4),
    ("--restart-delay-seconds", "7", "restart_delay_s", 7),
    ("--max-clock-skew-seconds", "30", "max_clock_skew_ms", 30_000),
    ("--metrics-port", "9249-9259", "metrics_port", "9249-9259"),
]


def _options(argv: list[str]) -> JobOptions:
    parser = argparse.ArgumentParser()
    add_job_flags(parser)
    return options_from_args(parser.parse_args(argv))


def test_no_flag_gives_the_defaults_of_job_options():
    assert _options([]) == JobOptions()


@pytest.mark.parametrize("flag, value, field, expected", FLAGS)
def test_each_flag_sets_its_field_and_only_it(flag, value, field, expected):
    options = _options([flag, value])
    assert getattr(options, field) == expected
    assert options == dataclasses.replace(JobOptions(), **{field: expected})


def test_bounded_and_print():
    assert _options(["--bounded"]).bounded is True
    args = build_parser().parse_args(["run", "--bounded", "--print", "--window-seconds", "60"])
    assert args.print_summaries is True and options_from_args(args).window_ms == 60_000


def test_the_help_shows_the_defaults_in_the_flags_units():
    parser = argparse.ArgumentParser()
    add_job_flags(parser)
    text = " ".join(parser.format_help().split())
    for flag, default in [("--max-disorder-seconds", "(default 5)"), ("--idle-grace-seconds", "(default 60)"),
                          ("--checkpoint-interval-seconds", "(default 10)"), ("--arrow-batch-size", "(default 20,000)"),
                          ("--max-clock-skew-seconds", "(default 300)"), ("--state-backend", "(default hashmap)"),
                          ("--parse-bundle-seconds", "(default 2)")]:
        assert default in text.split(flag, 2)[-1].split(" --", 1)[0], flag


@pytest.mark.parametrize("value, says", [("0", "0.001 to 3600 seconds"), ("-1", "0.001 to 3600 seconds"),
                                         ("0.0004", "0.001 to 3600 seconds"), ("nan", "0.001 to 3600 seconds"),
                                         ("inf", "0.001 to 3600 seconds"), ("3601", "0.001 to 3600 seconds"),
                                         ("two", "takes seconds, got 'two'")])
def test_a_parse_bundle_out_of_range_is_refused(value, says, capsys):
    # Flink would replace a bundle time of 0 ms by its default, 1 s, and only log it
    with pytest.raises(SystemExit):
        _options(["--parse-bundle-seconds", value])
    assert says in capsys.readouterr().err
