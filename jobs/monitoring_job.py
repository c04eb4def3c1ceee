"""The monitoring job: the one graph of DESIGN.md, built from settings.

    source (Kafka topic <project>.inference-events, or the embedded directory stream)
      → ParseRecords (vectorised: parse, validate, pre-aggregate per endpoint and window; the
        records stay in the JVM, Python returns each one's endpoint, event time and kind; in
        tiers by record size, so a batch handed to Python is bounded in bytes)
      → watermarks (bounded disorder, on every record's event time; JVM)
      ├─ good records (JVM only) → raw rows ─► Parquet, partitioned by endpoint and hour, late flag
      └─ partials and dead letters, keyed by endpoint (JVM)
           → EndpointWindows (tumbling, lateness, idle close)
               ├─ dead letters (side output) ─► <project>.dead-letters (Kafka) or <stream dir>/<project>.dead-letters
               └─ RunApplications → WriteOutputs (TSDB + SQL store) → one summary row per window
                                         └─ windows a store refused (side output) ─► dead letters
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file by `flink run -py jobs/monitoring_job.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectors import job_io, raw_rows  # noqa: E402
from connectors.settings import Settings, file_stream_dir, kafka_bootstrap, topic_names  # noqa: E402


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """Knobs of the job beyond the settings (defaults fit production; tests shrink them)."""

    window_ms: int | None = None  # default: settings.base_period minutes
    max_disorder_ms: int = 5_000  # watermark = max event time seen - this
    allowed_lateness_ms: int | None = None  # default: one window
    idle_grace_ms: int = 60_000  # an idle window closes base_period + this after its last event
    sample_size: int = 1_000
    parallelism: int = 1
    checkpoint_interval_ms: int = 10_000
    bounded: bool = False  # stop at the end of what the source holds now (demo, tests, benchmarks)
    arrow_batch_size: int = 20_000  # records per batch handed to Python (and per bundle), at most
    batch_bytes: int = 64 << 20  # bytes per batch handed to Python, at most (see parse_tiers)
    bundle_time_ms: int = 1_000
    state_backend: str = "hashmap"  # or "rocksdb" for large state
    # keys whose state a Python worker keeps decoded (per keyed stage and subtask): at least the
    # endpoints of a subtask, else every partial writes back and re-reads another endpoint's state
    state_cache_keys: int = 20_000
    checkpoint_dir: str | None = None  # default: <data_dir>/checkpoints
    group_id: str | None = None  # Kafka consumer group; default streamdrift-<project>
    endpoint_refresh_seconds: float = 30.0
    restart_max_failures: int = 10  # restarts allowed within restart_interval_s before the job fails
    restart_interval_s: int = 600
    restart_delay_s: int = 10
    max_clock_skew_ms: int = 300_000  # an event further ahead of the job's clock is a dead letter
    metrics_port: str | None = None  # a local run's Prometheus reporter: a port or a range "9249-9259"


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

    from udfs.events import DEAD_LETTER_PAYLOAD_BYTES, MAX_EVENT_BYTES

    from jobs.flink_env import prometheus_reporter, stream_env
    from operators.monitor import SUMMARY_TYPE, WRITE_FAILURES, RunApplications, WriteOutputs
    from operators.parse import CONTROL, DEAD, RECORD, RESULT_TYPE, ParseRecords, parse_tiers
    from operators.windows import DEAD_LETTERS, OUTPUT_TYPE, EndpointWindows
    from operators.windows import INPUT_TYPE as WINDOW_INPUT_TYPE

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
             "python.state.cache-size": str(options.state_cache_keys),
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
    # the watermark back for longer than a window
    conf.set("table.exec.source.idle-timeout", f"{max(window_ms, 1000)} ms")
    t_env.execute_sql(_source_ddl(settings, options))

    load_endpoints = functools.partial(job_io.load_endpoints, settings.endpoint_store_connection)
    load_apps = functools.partial(job_io.load_applications, settings.endpoint_store_connection, settings.project)
    parse = udf(ParseRecords(load_endpoints, window_ms, options.sample_size, options.endpoint_refresh_seconds,
                             # an event older than the TSDB keeps would be refused when its window is written
                             options.max_clock_skew_ms, settings.tsdb_keep_days * 86_400_000, lateness,
                             options.max_disorder_ms, load_apps),
                result_type=RESULT_TYPE, func_type="pandas")
    fields = [f.name for f in RESULT_TYPE.fields]
    # one read of the source, each record's size in bytes taken once (Latin-1 maps a byte to a character)
    source = _through_stream(t_env, t_env.sql_query(
        "SELECT payload, CHAR_LENGTH(DECODE(payload, 'ISO-8859-1')) AS size FROM inference_events"))
    # records are parsed in tiers by size, each with its own number of records per Arrow batch, so a
    # batch handed to Python is bounded in bytes as well as in records; a record over the size limit
    # (a dead letter) crosses to Python as its first bytes only
    head = (f"CASE WHEN size > {MAX_EVENT_BYTES} THEN ENCODE(SUBSTRING(DECODE(payload, 'ISO-8859-1') "
            f"FROM 1 FOR {DEAD_LETTER_PAYLOAD_BYTES}), 'ISO-8859-1') ELSE payload END")
    tiers = []
    for low, high, batch in parse_tiers(options.arrow_batch_size, options.batch_bytes):
        conf.set("python.fn-execution.arrow.batch.size", str(batch))
        conf.set("python.fn-execution.bundle.size", str(batch))
        where = f"size > {low}" + ("" if high is None else f" AND size <= {high}")
        tier = (source.where(call_sql(where)).select(call_sql(head).alias("payload"), col("size"))
                # the payload is forwarded by the JVM beside the function's result (one trip to Python)
                .select(col("payload"), parse(col("payload"), col("size")).alias("r"))
                .select(col("payload"), *[col("r").get(name).alias(name) for name in fields]))
        tiers.append(_internal_stream(t_env, tier))  # translated now: with this tier's batch size
    conf.set("python.fn-execution.arrow.batch.size", str(options.arrow_batch_size))
    conf.set("python.fn-execution.bundle.size", str(options.arrow_batch_size))
    # event time and watermarks on every record, in the JVM; both branches below see the same ones
    watermarked = (Schema.new_builder()
                   .column_by_expression("rowtime", "TO_TIMESTAMP_LTZ(event_ms, 3)")
                   .watermark("rowtime", f"rowtime - INTERVAL '{options.max_disorder_ms / 1000:.3f}' SECOND")
                   .build())
    events = _from_internal_stream(t_env, _union(tiers), watermarked)
    t_env.create_temporary_view("parsed_events", events)

    # raw rows → Parquet: JVM only
    t_env.execute_sql(raw_rows.sink_ddl(settings.parquet_path))
    statements = t_env.create_statement_set()
    statements.add_insert_sql(raw_rows.insert_sql("parsed_events"))
    statements.attach_as_datastream()

    # partials and dead letters, keyed by endpoint in the JVM: no Python step to split or key them
    # (a partial carries its rows' sample: every pass between JVM and Python costs its bytes)
    records = t_env.to_data_stream(t_env.sql_query(
        f"SELECT COALESCE(endpoint_id, '') AS k, ROW(endpoint_id, window_start, body, COALESCE(late, FALSE), "
        f"kind = '{DEAD}', kind = '{CONTROL}') AS v "
        f"FROM parsed_events WHERE kind <> '{RECORD}'"))
    keyed = _keyed_by_first_field(records, WINDOW_INPUT_TYPE)
    windows = (keyed.process(EndpointWindows(load_endpoints, window_ms, lateness, options.idle_grace_ms),
                             output_type=OUTPUT_TYPE).name("endpoint-windows").uid("endpoint-windows"))
    outputs = windows.map(RunApplications(load_endpoints, load_apps, settings.project),
                          output_type=Types.PICKLED_BYTE_ARRAY()).name("applications")
    # one writer key: the windows that close together are written together (WriteOutputs)
    open_writer = functools.partial(job_io.StoreWriter, settings.tsdb_connection, settings.endpoint_store_connection,
                                    keep_days=settings.tsdb_keep_days, verdict=settings.verdict_result)
    summaries = (outputs.key_by(lambda out: 0, key_type=Types.INT())
                 .process(WriteOutputs(open_writer), output_type=SUMMARY_TYPE).name("writer").uid("writer"))
    # records that cannot be monitored and windows a store refused for good: one dead-letter stream
    dead_letters = windows.get_side_output(DEAD_LETTERS).union(summaries.get_side_output(WRITE_FAILURES))
    _dead_letter_sink(dead_letters, settings)
    _attach_alerts(outputs, settings)
    return JobGraph(env, summaries, dead_letters)


def _internal_stream(t_env, table):
    """``table`` as a Java DataStream of Flink's internal rows, translated now (with the table
    configuration of this moment). ``to_data_stream`` would convert every field of every record to
    a Java object and back (strings decoded, then encoded again: ~15 % of the reading thread in a
    JFR profile)."""
    from pyflink.java_gateway import get_gateway

    row_data = get_gateway().jvm.org.apache.flink.table.data.RowData._java_lang_class
    internal = table._j_table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(row_data)
    return t_env._j_tenv.toDataStream(table._j_table, internal)


def _from_internal_stream(t_env, j_stream, schema=None):
    """The table of a Java DataStream of internal rows (:func:`_internal_stream`), with the
    computed columns and watermark of ``schema`` when given (its physical columns are the
    stream's). SQL puts watermarks only on a source: this is how a table gets them later."""
    from pyflink.table import Table

    j_tenv = t_env._j_tenv
    return Table(j_tenv.fromDataStream(j_stream) if schema is None else j_tenv.fromDataStream(j_stream, schema._j_schema),
                 t_env)


def _union(j_streams: list):
    """The union of Java DataStreams (Java's varargs ``union`` takes an array)."""
    from pyflink.java_gateway import get_gateway

    if len(j_streams) == 1:
        return j_streams[0]
    gateway = get_gateway()
    others = gateway.new_array(gateway.jvm.org.apache.flink.streaming.api.datastream.DataStream, len(j_streams) - 1)
    for i, stream in enumerate(j_streams[1:]):
        others[i] = stream
    return j_streams[0].union(others)


def _through_stream(t_env, table):
    """``table`` through a DataStream and back: the tables made from it share its one source
    (every table translated on its own from a source table would read that source again)."""
    return _from_internal_stream(t_env, _internal_stream(t_env, table))


def _keyed_by_first_field(stream, value_type):
    """``stream`` (rows of a string key and a row of ``value_type``, from the Table API) keyed by its
    first field in the JVM, as PyFlink's ``key_by`` keys what its Python key selector returns,
    without that Python step. The rows' type is declared as the plain row type that PyFlink's keyed
    Python operators read (the Table API's own type of the same rows is not one)."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedStream
    from pyflink.java_gateway import get_gateway

    j_stream = stream._j_data_stream
    j_stream.getTransformation().setOutputType(Types.ROW([Types.STRING(), value_type]).get_java_type_info())
    j_keyed = j_stream.keyBy(get_gateway().jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info())
    return KeyedStream(j_keyed, value_type, stream)


def _attach_alerts(outputs, settings: Settings) -> None:
    """Alert evaluation and notifications after the applications stage (jobs/alerts_wiring.py)."""
    try:
        from jobs.alerts_wiring import attach_alerts
    except ImportError:
        return
    attach_alerts(outputs, settings)


def _source_ddl(settings: Settings, options: JobOptions) -> str:
    """The table ``inference_events`` over the events topic (or the directory stream): one ``payload``
    column holding each record's bytes as they are (``raw`` format; bytes, not a string: no UTF-8
    decoding in the JVM, and Python's JSON parser reads bytes)."""
    topic = topic_names(settings.project)["events"]
    if settings.stream_path.startswith("kafka://"):
        bounded = ",\n  'scan.bounded.mode' = 'latest-offset'" if options.bounded else ""
        group = options.group_id or f"streamdrift-{settings.project}"
        return f"""
CREATE TABLE inference_events (payload BYTES) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{kafka_bootstrap(settings.stream_path)}',
  'properties.group.id' = '{group}',
  'properties.max.partition.fetch.bytes' = '16777216',
  'scan.startup.mode' = 'group-offsets',
  'properties.auto.offset.reset' = 'earliest',
  'format' = 'raw'{bounded}
)"""
    directory = file_stream_dir(settings.stream_path) / topic
    os.makedirs(directory, exist_ok=True)
    monitor = "" if options.bounded else ",\n  'source.monitor-interval' = '2s'"
    return f"""
CREATE TABLE inference_events (payload BYTES) WITH (
  'connector' = 'filesystem',
  'path' = '{directory.as_uri()}',
  'format' = 'raw'{monitor}
)"""


def _dead_letter_sink(stream, settings: Settings) -> None:
    topic = topic_names(settings.project)["dead_letters"]
    if settings.stream_path.startswith("kafka://"):
        from pyflink.common.serialization import SimpleStringSchema
        from pyflink.datastream.connectors.base import DeliveryGuarantee
        from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

        # exactly once: written in Kafka transactions committed with each checkpoint (a replay after
        # a restart writes no second copy for consumers that read committed records only)
        sink = (KafkaSink.builder()
                .set_bootstrap_servers(kafka_bootstrap(settings.stream_path))
                .set_record_serializer(KafkaRecordSerializationSchema.builder().set_topic(topic)
                                       .set_value_serialization_schema(SimpleStringSchema()).build())
                .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .set_transactional_id_prefix(f"streamdrift-{settings.project}-dead-letters")
                # within the broker's transaction.max.timeout.ms (15 min by default)
                .set_property("transaction.timeout.ms", "600000")
                .build())
        stream.sink_to(sink).name("dead-letters")
    else:
        from pyflink.common.serialization import Encoder
        from pyflink.datastream.connectors.file_system import FileSink

        directory = file_stream_dir(settings.stream_path) / topic
        stream.sink_to(FileSink.for_row_format(directory.as_uri(), Encoder.simple_string_encoder()).build()) \
            .name("dead-letters")


# --------------------------------------------------------------------------- command line

def add_job_flags(parser) -> None:
    """Flags of ``streamdrift run`` / ``submit`` beyond the settings."""
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--bounded", action="store_true",
                        help="stop at the end of what the stream holds now (else run until cancelled)")
    parser.add_argument("--max-disorder-seconds", type=float, default=5.0,
                        help="watermark bound: how far out of order events may arrive (default 5)")
    parser.add_argument("--allowed-lateness-seconds", type=float, default=None,
                        help="late events up to this correct a window's result (default: one base_period)")
    parser.add_argument("--idle-grace-seconds", type=float, default=60.0,
                        help="an idle endpoint's last window closes base_period + this after its last event")
    parser.add_argument("--window-seconds", type=float, default=None,
                        help="window length in seconds, overriding base_period (for tests and demos)")
    parser.add_argument("--sample-size", type=int, default=1000, help="rows kept per window for applications")
    parser.add_argument("--checkpoint-interval-seconds", type=float, default=10.0)
    parser.add_argument("--checkpoint-dir", default=None, help="e.g. file:///var/lib/streamdrift/checkpoints")
    parser.add_argument("--state-backend", choices=["hashmap", "rocksdb"], default="hashmap")
    parser.add_argument("--state-cache-keys", type=int, default=20_000,
                        help="endpoints whose window state a Python worker keeps decoded, per subtask; at "
                             "least the endpoints per subtask (default 20,000)")
    parser.add_argument("--arrow-batch-size", type=int, default=20_000,
                        help="records per batch handed to the parse function (default 20,000)")
    parser.add_argument("--max-clock-skew-seconds", type=float, default=300.0,
                        help="an event further ahead of the job's clock is a dead letter (default 300)")
    parser.add_argument("--restart-max-failures", type=int, default=10,
                        help="failures within 10 minutes after which the job stops as FAILED (default 10)")
    parser.add_argument("--restart-delay-seconds", type=int, default=10, help="wait before a restart (default 10)")
    parser.add_argument("--metrics-port", default=None, metavar="PORT[-PORT]",
                        help="serve the job's metrics for Prometheus on http://HOST:PORT/metrics (a local run; "
                             "a cluster's reporter is in its Flink configuration). Default: off")
    parser.add_argument("--print", dest="print_summaries", action="store_true",
                        help="print one summary line per written window")


def options_from_args(args) -> JobOptions:
    def ms(seconds):
        return None if seconds is None else int(seconds * 1000)

    return JobOptions(
        window_ms=ms(args.window_seconds), max_disorder_ms=ms(args.max_disorder_seconds),
        allowed_lateness_ms=ms(args.allowed_lateness_seconds), idle_grace_ms=ms(args.idle_grace_seconds),
        sample_size=args.sample_size, parallelism=args.parallelism,
        checkpoint_interval_ms=ms(args.checkpoint_interval_seconds), bounded=args.bounded,
        arrow_batch_size=args.arrow_batch_size, state_backend=args.state_backend,
        state_cache_keys=args.state_cache_keys,
        checkpoint_dir=args.checkpoint_dir, max_clock_skew_ms=ms(args.max_clock_skew_seconds),
        restart_max_failures=args.restart_max_failures,
        restart_delay_s=args.restart_delay_seconds, metrics_port=args.metrics_port)


def failure_reason(exc: BaseException) -> str:
    """The root cause of a failed job, in one line (passwords masked): the innermost Java
    exception of a Py4J error, else the exception itself."""
    from connectors.settings import mask_password

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
    """Entry point of ``flink run -py jobs/monitoring_job.py`` (what ``streamdrift submit`` runs)."""
    import argparse

    from jobs.cli import _add_settings_flags, _settings

    parser = argparse.ArgumentParser(prog="monitoring_job")
    _add_settings_flags(parser)
    add_job_flags(parser)
    parser.add_argument("--job-name", default=None)
    args = parser.parse_args(argv)
    run(_settings(args), options_from_args(args), args.print_summaries, args.job_name)


if __name__ == "__main__":
    main()
