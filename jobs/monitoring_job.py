"""The monitoring job: the one graph of DESIGN.md, built from settings.

    source (Kafka topic <project>.inference-events, or the embedded directory stream)
      → ParseRecords (vectorised: parse, validate, pre-aggregate per endpoint and window; the
        records stay in the JVM, Python returns each one's endpoint, event time and kind; in
        tiers by record size, so a batch handed to Python is bounded in bytes)
      → watermarks (bounded disorder, on every record's event time; JVM)
      ├─ good records (JVM only) → raw rows ─► Parquet, partitioned by endpoint and hour, late flag
      └─ partials and dead letters, keyed by endpoint (JVM)
           → WindowsToWriter (tumbling, lateness, idle close; each window's aggregate as it fires)
               ├─ dead letters (side output) ─► <project>.dead-letters (Kafka) or <stream dir>/<project>.dead-letters
               └─ keyed by writer bucket (JVM) → WriteOutputs (the applications on each batch of windows,
                  then TSDB + SQL store) → one summary row per window
                    ├─ windows a store refused (side output) ─► dead letters
                    └─ alert events (side output) → keyed by endpoint (JVM) → alerts → notifications
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from pathlib import Path

from streamdrift.connectors import job_io, raw_rows
from streamdrift.connectors.settings import Settings


def _flag(name: str, default, help: str, *, scale: int = 1, **argparse_options):
    """A :class:`JobOptions` field that is also the command-line flag ``name`` of ``streamdrift run``
    and ``submit`` (:func:`add_job_flags`). ``scale``: the field's units per unit of the flag
    (1000: a field in milliseconds, its flag in seconds)."""
    return dataclasses.field(default=default, metadata={"flag": {"name": name, "help": help, "scale": scale,
                                                                 "options": argparse_options}})


def _seconds(text: str, flag: str, most: float = 3600.0) -> float:
    """A flag's seconds, from a millisecond (Flink replaces a time of 0 ms by its default) to ``most``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} takes seconds, got {text!r}") from None
    if not 0.001 <= value <= most:  # NaN and infinities too
        raise argparse.ArgumentTypeError(f"{flag} takes 0.001 to {most:g} seconds, got {text!r}")
    return value


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """Knobs of the job beyond the settings (defaults fit production; tests shrink them). The fields
    made with :func:`_flag` are the flags of ``streamdrift run`` / ``submit``; their defaults are
    these."""

    window_ms: int | None = _flag("--window-seconds", None, "window length in seconds, overriding base_period "
                                  "(for tests and demos; default: base_period)", scale=1000, type=float)
    stagger_windows: bool = _flag("--stagger-windows", False, "each endpoint's windows start at an offset of its "
                                  "own (one of 256, by its id), so that many endpoints' windows close spread over "
                                  "the window instead of all at once", action="store_true")
    max_disorder_ms: int = _flag("--max-disorder-seconds", 5_000, "watermark bound: how far out of order events "
                                 "may arrive", scale=1000, type=float)  # watermark = max event time seen - this
    allowed_lateness_ms: int | None = _flag("--allowed-lateness-seconds", None, "late events up to this correct a "
                                            "window's result (default: one base_period)", scale=1000, type=float)
    idle_grace_ms: int = _flag("--idle-grace-seconds", 60_000, "an idle endpoint's last window closes "
                               "base_period + this after its last event", scale=1000, type=float)
    sample_size: int = _flag("--sample-size", 1_000, "rows kept per window for applications", type=int)
    parallelism: int = _flag("--parallelism", 1, "parallel subtasks of every operator", type=int)
    checkpoint_interval_ms: int = _flag("--checkpoint-interval-seconds", 10_000, "time between checkpoints",
                                        scale=1000, type=float)
    bounded: bool = _flag("--bounded", False, "stop at the end of what the stream holds now (else run until "
                          "cancelled)", action="store_true")  # demo, tests, benchmarks
    arrow_batch_size: int = _flag("--arrow-batch-size", 20_000, "records per batch handed to the parse function",
                                  type=int)  # and per bundle, at most
    batch_bytes: int = 64 << 20  # bytes per batch handed to Python, at most (see parse_tiers)
    bundle_time_ms: int = 1_000  # the window stage's and the writer's Python bundles end after this
    # longer batches take less CPU per event when records spread over many endpoints; each also holds
    # its records' watermark back, up to its length
    parse_bundle_time_ms: int = _flag("--parse-bundle-seconds", 2_000, "a batch of records waits this long (up to "
                                      "about twice) for more before the parse function gets it",
                                      scale=1000, type=lambda text: _seconds(text, "--parse-bundle-seconds"))
    writer_linger_ms: int = 200  # a batch of the writer waits at most this long for more windows (tests)
    state_backend: str = _flag("--state-backend", "hashmap", "where the job keeps its state (rocksdb for large "
                               "state)", choices=["hashmap", "rocksdb"])
    # keys whose state a Python worker keeps decoded (per keyed stage and subtask): at least the
    # keys of a subtask, else a partial can evict the state of another group and re-read it
    state_cache_keys: int = _flag("--state-cache-keys", 20_000, "keys (groups of endpoints, 256 in all) whose "
                                  "window state a Python worker keeps decoded, per subtask", type=int)
    checkpoint_dir: str | None = _flag("--checkpoint-dir", None, "e.g. file:///var/lib/streamdrift/checkpoints "
                                       "(default: <data_dir>/checkpoints)")
    group_id: str | None = None  # Kafka consumer group; default streamdrift-<project>
    endpoint_refresh_seconds: float = 30.0
    restart_max_failures: int = _flag("--restart-max-failures", 10, "failures within 10 minutes after which the "
                                      "job stops as FAILED", type=int)  # within restart_interval_s
    restart_interval_s: int = 600
    restart_delay_s: int = _flag("--restart-delay-seconds", 10, "wait before a restart", type=int)
    max_clock_skew_ms: int = _flag("--max-clock-skew-seconds", 300_000, "an event further ahead of the job's "
                                   "clock is a dead letter", scale=1000, type=float)
    metrics_port: str | None = _flag("--metrics-port", None, "serve the job's metrics for Prometheus on "
                                     "http://HOST:PORT/metrics (a local run; a cluster's reporter is in its Flink "
                                     "configuration). Default: off", metavar="PORT[-PORT]")


STATES_PER_KEY = 2
"""Keyed states of the window stage per key (a map state of its group's open windows, a value state
of the start of its latest window to have left the state): what the Python state cache holds per
group of endpoints."""

MAP_STATE_ENTRIES = 1 << 20
"""Entries of one key's map state PyFlink's cache holds and a look at the whole map reads at
once: a group's windows (~40 endpoints × up to 18 entries × 2 open windows at 10,000 endpoints)."""

WRITER_BUCKETS_PER_SUBTASK = 1
"""Keys of the writer per subtask (chosen so that Flink puts as many on each): a subtask's windows
wait in one batch, so the windows that close together are written in full batches and one last
one (with several keys, each key's last batch is a write of its own)."""

IDLE_WINDOWS = 3
"""A subtask that sends no records for this many windows stops holding the watermark back."""


def _window_ms(settings: Settings, options: JobOptions) -> int:
    return options.window_ms or settings.base_period_ms


@dataclasses.dataclass(frozen=True)
class JobGraph:
    env: object  # StreamExecutionEnvironment
    summaries: object  # DataStream of one summary row per written window (collect, print or leave it)
    dead_letters: object  # DataStream of dead-letter JSON strings (already sunk)


def build(settings: Settings, options: JobOptions = JobOptions()) -> JobGraph:
    """The job graph on a new environment."""
    from pyflink.common import Types
    from pyflink.table import Schema, StreamTableEnvironment
    from pyflink.table.expressions import call_sql, col
    from pyflink.table.udf import udf

    from streamdrift.udfs.events import DEAD_LETTER_PAYLOAD_BYTES, MAX_EVENT_BYTES

    from streamdrift.connectors.dead_letters import sink_dead_letters
    from streamdrift.connectors.event_source import source_ddl
    from streamdrift.jobs.flink_env import prometheus_reporter, register_functions, stream_env
    from streamdrift.jobs.pyflink_internals import (
        balanced_int_keys, from_internal_stream, internal_stream, keyed_by_first_field, through_stream, union)
    from streamdrift.operators.monitor import (
        ALERT_EVENTS, SUMMARY_TYPE, WINDOW_OUTPUT_TYPE, WRITE_FAILURES, RunApplications, WindowsToWriter, WriteOutputs)
    from streamdrift.operators.parse import CONTROL, DEAD, RECORD, RESULT_TYPE, ParseRecords, parse_tiers
    from streamdrift.operators.windows import DEAD_LETTERS, GROUP_SQL
    from streamdrift.operators.windows import INPUT_TYPE as WINDOW_INPUT_TYPE

    window_ms = _window_ms(settings, options)
    lateness = window_ms if options.allowed_lateness_ms is None else options.allowed_lateness_ms
    extra = {"state.backend.type": options.state_backend,
             # bounded: a fault that comes back at every restart ends as a FAILED job with its
             # reason, not as endless restarts; an outage of the broker or a store never restarts
             # the job (the source reconnects, the writer waits), so it does not count here
             "restart-strategy.type": "failure-rate",
             "restart-strategy.failure-rate.max-failures-per-interval": str(options.restart_max_failures),
             "restart-strategy.failure-rate.failure-rate-interval": f"{options.restart_interval_s} s",
             "restart-strategy.failure-rate.delay": f"{options.restart_delay_s} s",
             # records are not copied between chained JVM operators (the Table runtime's operators
             # do not keep references to their input; the Python ones get serialised bytes)
             "pipeline.object-reuse": "true",
             # PyFlink counts one entry per state and key: the window stage keeps one per group
             "python.state.cache-size": str(options.state_cache_keys * STATES_PER_KEY),
             # a group's whole map state in the worker's cache, read in one answer (defaults: 1,000
             # entries), so that a look for an entry that does not exist is answered there
             "python.map-state.read-cache-size": str(MAP_STATE_ENTRIES),
             "python.map-state.iterate-response-batch-size": str(MAP_STATE_ENTRIES),
             # checkpoints in files: the JobManager's memory takes at most 5 MiB of state per subtask
             "execution.checkpointing.dir": options.checkpoint_dir
             or (Path(settings.data_dir) / "checkpoints").resolve().as_uri()}
    if options.metrics_port:
        extra.update(prometheus_reporter(options.metrics_port))
    env = stream_env(options.parallelism, options.checkpoint_interval_ms, extra)
    t_env = StreamTableEnvironment.create(env)
    conf = t_env.get_config()
    conf.set("python.fn-execution.arrow.batch.size", str(options.arrow_batch_size))
    conf.set("python.fn-execution.bundle.size", str(options.arrow_batch_size))
    conf.set("python.fn-execution.bundle.time", str(options.bundle_time_ms))
    conf.set("pipeline.name", f"streamdrift-{settings.project}")
    conf.set("table.local-time-zone", "UTC")
    # a subtask without records (fewer partitions than subtasks, a quiet partition) does not hold
    # the watermark back for longer than three windows. The timeout is wall clock after the parse
    # stage: a worker busy firing many endpoints' windows sends nothing meanwhile, and once marked
    # idle its records come behind the watermark, as corrections of windows already written
    conf.set("table.exec.source.idle-timeout", f"{max(IDLE_WINDOWS * window_ms, 1000)} ms")
    t_env.execute_sql(source_ddl(settings, options.bounded, options.group_id))

    load_endpoints = functools.partial(job_io.load_endpoints, settings.endpoint_store_connection)
    load_apps = functools.partial(job_io.load_applications, settings.endpoint_store_connection, settings.project)
    parse = udf(ParseRecords(load_endpoints, window_ms, options.sample_size, options.endpoint_refresh_seconds,
                             # an event older than the TSDB keeps would be refused when its window is written
                             options.max_clock_skew_ms, settings.tsdb_keep_days * 86_400_000, lateness,
                             options.max_disorder_ms, load_apps, staggered=options.stagger_windows),
                result_type=RESULT_TYPE, func_type="pandas")
    fields = [f.name for f in RESULT_TYPE.fields]
    register_functions(t_env)
    # one read of the source, each record's size in bytes taken once
    source = through_stream(t_env, t_env.sql_query(
        "SELECT payload, BYTE_LENGTH(payload) AS size FROM inference_events"))
    # records are parsed in tiers by size, each with its own number of records per Arrow batch, so a
    # batch handed to Python is bounded in bytes as well as in records; a record over the size limit
    # (a dead letter) crosses to Python as its first bytes only (Latin-1 maps a byte to a character)
    head = (f"CASE WHEN size > {MAX_EVENT_BYTES} THEN ENCODE(SUBSTRING(DECODE(payload, 'ISO-8859-1') "
            f"FROM 1 FOR {DEAD_LETTER_PAYLOAD_BYTES}), 'ISO-8859-1') ELSE payload END")
    statements = t_env.create_statement_set()
    to_windows = []
    for i, (low, high, batch) in enumerate(parse_tiers(options.arrow_batch_size, options.batch_bytes)):
        conf.set("python.fn-execution.arrow.batch.size", str(batch))
        conf.set("python.fn-execution.bundle.size", str(batch))
        conf.set("python.fn-execution.bundle.time", str(options.parse_bundle_time_ms))
        where = f"size > {low}" + ("" if high is None else f" AND size <= {high}")
        tier = (source.where(call_sql(where)).select(call_sql(head).alias("payload"), col("size"))
                # the payload is forwarded by the JVM beside the function's result (one trip to Python)
                .select(col("payload"), parse(col("payload"), col("size")).alias("r"))
                .select(col("payload"), *[col("r").get(name).alias(name) for name in fields]))
        parsed = internal_stream(t_env, tier)  # translated now: with this tier's batch size
        # raw rows → Parquet from each tier, chained to its parse in the JVM: where the tiers meet,
        # every record would cross a network exchange (~2 µs of CPU per event in the job benchmark)
        view, sink = f"parsed_events_{i}", f"{raw_rows.TABLE}_{i}"
        t_env.create_temporary_view(view, from_internal_stream(t_env, parsed))
        t_env.execute_sql(raw_rows.sink_ddl(settings.parquet_path, sink))
        statements.add_insert_sql(raw_rows.insert_sql(view, sink))
        # on to the window stage: partials, dead letters, controls and each batch's last row (clock_ms)
        to_windows.append(internal_stream(t_env, t_env.sql_query(
            f"SELECT kind, endpoint_id, window_start, body, late, clock_ms FROM {view} WHERE clock_ms IS NOT NULL")))
    conf.set("python.fn-execution.arrow.batch.size", str(options.arrow_batch_size))
    conf.set("python.fn-execution.bundle.size", str(options.arrow_batch_size))
    # the other Python operators read it when the stream graph is generated, from the environment's
    # configuration, which the Table queries translated below update from this one
    conf.set("python.fn-execution.bundle.time", str(options.bundle_time_ms))
    statements.attach_as_datastream()
    # event time and watermarks in the JVM, from the newest event time each row has seen
    watermarked = (Schema.new_builder()
                   .column_by_expression("rowtime", "TO_TIMESTAMP_LTZ(clock_ms, 3)")
                   .watermark("rowtime", f"rowtime - INTERVAL '{options.max_disorder_ms / 1000:.3f}' SECOND")
                   .build())
    t_env.create_temporary_view("window_rows", from_internal_stream(t_env, union(to_windows), watermarked))

    # partials and dead letters, keyed by their endpoint's group in the JVM: no Python step to split
    # or key them (a partial carries its rows' sample: every pass between JVM and Python costs its bytes)
    records = t_env.to_data_stream(t_env.sql_query(
        f"SELECT {GROUP_SQL} AS k, ROW(endpoint_id, window_start, body, COALESCE(late, FALSE), "
        f"kind = '{DEAD}', kind = '{CONTROL}') AS v "
        f"FROM window_rows WHERE kind <> '{RECORD}'"))
    keyed = keyed_by_first_field(records, WINDOW_INPUT_TYPE)
    # the windows that close together are written together (WriteOutputs), by every writer subtask
    # (a bucket of endpoints each: with one key, one subtask wrote every window)
    writer_keys = balanced_int_keys(options.parallelism, WRITER_BUCKETS_PER_SUBTASK,
                                    env.get_max_parallelism() if env.get_max_parallelism() > 0 else None)
    windows = (keyed.process(WindowsToWriter(load_endpoints, window_ms, lateness, options.idle_grace_ms, writer_keys,
                                             max_disorder_ms=options.max_disorder_ms),
                             output_type=WINDOW_OUTPUT_TYPE).name("endpoint-windows").uid("endpoint-windows"))
    # the applications run in the writer, on each batch of windows before it is written
    applications = RunApplications(load_endpoints, load_apps, settings.project)
    open_writer = functools.partial(job_io.StoreWriter, settings.tsdb_connection, settings.endpoint_store_connection,
                                    keep_days=settings.tsdb_keep_days, verdict=settings.verdict_result)
    summaries = (keyed_by_first_field(windows, Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.INT(), declare=False)
                 .process(WriteOutputs(open_writer, applications, writer_keys, settings.verdict_result,
                                       linger_ms=options.writer_linger_ms), output_type=SUMMARY_TYPE)
                 .name("writer").uid("writer"))
    # records that cannot be monitored and windows a store refused for good: one dead-letter stream
    dead_letters = windows.get_side_output(DEAD_LETTERS).union(summaries.get_side_output(WRITE_FAILURES))
    sink_dead_letters(dead_letters, settings)
    _attach_alerts(summaries.get_side_output(ALERT_EVENTS), settings)
    return JobGraph(env, summaries, dead_letters)


def _attach_alerts(events, settings: Settings) -> None:
    """Alert evaluation and notifications of the windows' alert events (jobs/alerts_wiring.py)."""
    from streamdrift.jobs.alerts_wiring import attach_alerts

    attach_alerts(events, settings)


# --------------------------------------------------------------------------- command line

def _job_flags():
    for field in dataclasses.fields(JobOptions):
        flag = field.metadata.get("flag")
        if flag is not None:
            yield field, flag, flag["name"].removeprefix("--").replace("-", "_")


def add_job_flags(parser) -> None:
    """Flags of ``streamdrift run`` / ``submit`` beyond the settings: the :class:`JobOptions` fields
    that are flags, and ``--print``. An absent flag leaves the field's default."""
    for field, flag, dest in _job_flags():
        help_text, default = flag["help"], field.default
        if isinstance(default, str):
            help_text += f" (default {default})"
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            shown = default / flag["scale"]
            help_text += f" (default {int(shown):,})" if float(shown).is_integer() else f" (default {shown:g})"
        parser.add_argument(flag["name"], dest=dest, default=None, help=help_text, **flag["options"])
    parser.add_argument("--print", dest="print_summaries", action="store_true",
                        help="print one summary line per written window")


def options_from_args(args) -> JobOptions:
    """The :class:`JobOptions` of flags parsed with :func:`add_job_flags`."""
    given = {}
    for field, flag, dest in _job_flags():
        value = getattr(args, dest, None)
        if value is not None:
            given[field.name] = int(value * flag["scale"]) if flag["scale"] != 1 else value
    return JobOptions(**given)


def failure_reason(exc: BaseException) -> str:
    """The root cause of a failed job, in one line (passwords masked): the innermost Java
    exception of a Py4J error, else the exception itself."""
    from streamdrift.connectors.settings import mask_password

    java = getattr(exc, "java_exception", None)
    text = f"{type(exc).__name__}: {exc}"
    if java is not None:
        chain = [java]
        while chain[-1].getCause() is not None and len(chain) < 50:
            chain.append(chain[-1].getCause())
        text = str(chain[-1].toString()).splitlines()[0]
        python = next((str(c.getMessage()) for c in chain if "Traceback (most recent call last)" in str(c.getMessage())),
                      None)
        if python is not None:  # a Python function's error: its message and where it was raised
            lines = [line.strip() for line in python.splitlines() if line.strip()]
            where = [line for line in lines if line.startswith("File ")]
            text = lines[-1] + (f" ({where[-1]})" if where else "")
        if any("Recovery is suppressed" in str(c.getMessage()) for c in chain):
            text += " (the restart strategy gave up after repeated failures)"
    else:
        text = text.splitlines()[0] if text else type(exc).__name__
    return mask_password(text)[:2000]


def run(settings: Settings, options: JobOptions, print_summaries: bool = False, job_name: str | None = None):
    graph = build(settings, options)
    if print_summaries:
        graph.summaries.print()
    return graph.env.execute(job_name or f"streamdrift-{settings.project}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``flink run -pym streamdrift.jobs.monitoring_job`` (what ``streamdrift submit``
    runs) and of ``flink run -py .../jobs/monitoring_job.py`` where streamdrift is installed."""
    import argparse

    from streamdrift.jobs.settings_flags import add_settings_flags, settings_from_args

    parser = argparse.ArgumentParser(prog="monitoring_job")
    add_settings_flags(parser)
    add_job_flags(parser)
    parser.add_argument("--job-name", default=None)
    args = parser.parse_args(argv)
    run(settings_from_args(args), options_from_args(args), args.print_summaries, args.job_name)


if __name__ == "__main__":
    main()
