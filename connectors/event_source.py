"""The job's source: the table ``inference_events`` over the project's events topic (Kafka) or
its folder of the embedded directory stream, as Flink SQL DDL."""

from __future__ import annotations

import os

from streamdrift.connectors.settings import Settings, file_stream_dir, kafka_bootstrap, topic_names

__all__ = ["source_ddl"]


def source_ddl(settings: Settings, bounded: bool = False, group_id: str | None = None) -> str:
    """The table ``inference_events`` over the events topic (or the directory stream): one ``payload``
    column holding each record's bytes as they are (``raw`` format; bytes, not a string: no UTF-8
    decoding in the JVM, and Python's JSON parser reads bytes).

    ``bounded``: the table ends at what the stream holds now (Kafka: the latest offsets when the job
    starts; a directory: the files there). ``group_id``: the Kafka consumer group whose offsets the
    job starts from (default ``streamdrift-<project>``)."""
    topic = topic_names(settings.project)["events"]
    if settings.stream_path.startswith("kafka://"):
        bounded = ",\n  'scan.bounded.mode' = 'latest-offset'" if bounded else ""
        group = group_id or f"streamdrift-{settings.project}"
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
    monitor = "" if bounded else ",\n  'source.monitor-interval' = '2s'"
    return f"""
CREATE TABLE inference_events (payload BYTES) WITH (
  'connector' = 'filesystem',
  'path' = '{directory.as_uri()}',
  'format' = 'raw'{monitor}
)"""
