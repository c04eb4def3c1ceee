"""The project's dead letters: records that could not be monitored and windows a store refused.

The job writes them to ``<project>.dead-letters``: a Kafka topic (in transactions: read committed
records only) or, on the embedded directory stream, part files under
``<stream dir>/<project>.dead-letters/`` (one JSON object per line). Each is a JSON object with a
``kind`` and a ``reason``:

* ``record``: a record of the events topic, its first 64 KiB in ``payload`` (``truncated``,
  ``size_bytes``);
* ``window-output``: the records of one window (results, metrics, predictions, errors) that a
  store refused for good, in ``output``; :func:`replay` writes them once the cause is fixed;
* ``window``: a window the job could not compute (the reason says why).

Reading for :func:`replay` remembers how far it got (a consumer group on Kafka, a ``.replayed``
file on the directory stream), so each letter is written once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streamdrift.connectors.settings import Settings, file_stream_dir, kafka_bootstrap, topic_names

log = logging.getLogger("streamdrift.dead_letters")

REPLAY_GROUP = "streamdrift-{project}-dead-letters-replay"
_PROGRESS = ".replayed.json"


def _letter(text: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"kind": "unreadable", "reason": "not JSON", "payload": str(text)[:200]}
    return value if isinstance(value, dict) else {"kind": "unreadable", "reason": "not an object"}


def _files(directory: Path) -> list[Path]:
    # in-progress and pending part files are hidden (their names start with '.')
    return sorted(p for p in directory.rglob("part-*") if not p.name.startswith("."))


def read(settings: Settings, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Every committed dead letter of the project, oldest first (on Kafka: per partition)."""
    return [letter for letter, _ in _read(settings, None, timeout_s)]


def counts(letters: list[dict[str, Any]]) -> dict[str | None, int]:
    """Dead letters per endpoint (None: records that named no valid endpoint, and windows' letters
    name theirs)."""
    out: dict[str | None, int] = {}
    for letter in letters:
        endpoint_id = letter.get("endpoint_id")
        out[endpoint_id] = out.get(endpoint_id, 0) + 1
    return out


def _read(settings: Settings, group: str | None, timeout_s: float) -> Iterator[tuple[dict[str, Any], Any]]:
    """(letter, position) pairs; with ``group``, from where that group got to."""
    topic = topic_names(settings.project)["dead_letters"]
    if settings.stream_path.startswith("kafka://"):
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap(settings.stream_path), group_id=group,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 isolation_level="read_committed", consumer_timeout_ms=int(timeout_s * 1000),
                                 max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20)
        try:
            for message in consumer:
                yield _letter(message.value), (consumer, message)
        finally:
            consumer.close()
        return
    directory = file_stream_dir(settings.stream_path) / topic
    done = _progress(directory) if group else {}
    for path in _files(directory):
        lines = path.read_bytes().splitlines()
        for number, line in enumerate(lines):
            if line.strip() and number >= done.get(path.name, 0):
                yield _letter(line), (directory, path.name, number + 1)


def _progress(directory: Path) -> dict[str, int]:
    try:
        return json.loads((directory / _PROGRESS).read_text())
    except (OSError, ValueError):
        return {}


def _advance(position: Any) -> None:
    """Remember that the letter at ``position`` is done."""
    if isinstance(position[0], Path):
        directory, name, lines = position
        done = _progress(directory)
        done[name] = max(done.get(name, 0), lines)
        tmp = directory / (_PROGRESS + ".tmp")
        tmp.write_text(json.dumps(done))
        tmp.replace(directory / _PROGRESS)
    else:
        from kafka import OffsetAndMetadata, TopicPartition

        consumer, message = position
        consumer.commit({TopicPartition(message.topic, message.partition):
                         OffsetAndMetadata(message.offset + 1, "", -1)})


def replay(settings: Settings, write: Callable[[dict[str, Any]], None], timeout_s: float = 5.0) -> dict[str, int]:
    """Write every window a store refused (letters of kind ``window-output`` not replayed yet)
    with ``write(letter)``; stops at the first that fails again (raising its error), so that
    what is left is replayed next time. Returns counts: ``replayed`` and ``skipped`` (other kinds)."""
    counts = {"replayed": 0, "skipped": 0}
    group = REPLAY_GROUP.format(project=settings.project)
    for letter, position in _read(settings, group, timeout_s):
        if letter.get("kind") == "window-output":
            write(letter)
            counts["replayed"] += 1
        else:
            counts["skipped"] += 1
        _advance(position)
    return counts


def sink_dead_letters(stream, settings: Settings) -> None:
    """Write ``stream`` (a PyFlink DataStream of dead-letter JSON strings) to the project's
    dead letters: the Kafka topic, exactly once, or part files in the directory stream."""
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
