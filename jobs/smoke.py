"""The smoke pipeline: read a Kafka topic, transform every JSON record, write another topic.

It proves that PyFlink, the Flink Kafka connector, the local Kafka broker and (with ``flink run``)
the standalone cluster work together. The source is bounded (it stops at the offsets that were
latest when the job started), so the job finishes by itself.

Run it locally:   python -m streamdrift.jobs.smoke --bootstrap 127.0.0.1:9092 --input in --output out
or on a cluster:  flink run -m 127.0.0.1:8081 -py jobs/smoke.py -pyexec <a Python with streamdrift installed> -- --input ...
"""

from __future__ import annotations

import argparse
import json


def transform(value: str) -> str:
    """One record of the smoke job: the JSON object with ``seen_by: "streamdrift-smoke"`` and
    ``doubled`` = 2 × ``n``."""
    record = json.loads(value)
    record["seen_by"] = "streamdrift-smoke"
    record["doubled"] = 2 * record["n"]
    return json.dumps(record, sort_keys=True)


def build(env, bootstrap: str, input_topic: str, output_topic: str, group_id: str = "streamdrift-smoke"):
    from pyflink.common import Types, WatermarkStrategy
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetsInitializer, KafkaRecordSerializationSchema, KafkaSink, KafkaSource)

    source = (KafkaSource.builder()
              .set_bootstrap_servers(bootstrap)
              .set_topics(input_topic)
              .set_group_id(group_id)
              .set_starting_offsets(KafkaOffsetsInitializer.earliest())
              .set_bounded(KafkaOffsetsInitializer.latest())
              .set_value_only_deserializer(SimpleStringSchema())
              .build())
    sink = (KafkaSink.builder()
            .set_bootstrap_servers(bootstrap)
            .set_record_serializer(KafkaRecordSerializationSchema.builder()
                                   .set_topic(output_topic)
                                   .set_value_serialization_schema(SimpleStringSchema())
                                   .build())
            .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
            .build())
    (env.from_source(source, WatermarkStrategy.no_watermarks(), "kafka-source")
        .map(transform, output_type=Types.STRING())
        .sink_to(sink))
    return env


def main(argv: list[str] | None = None) -> None:
    from streamdrift.jobs.flink_env import stream_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--input", required=True, help="topic to read")
    parser.add_argument("--output", required=True, help="topic to write")
    parser.add_argument("--job-name", default="streamdrift-smoke")
    args = parser.parse_args(argv)
    env = build(stream_env(), args.bootstrap, args.input, args.output)
    env.execute(args.job_name)


if __name__ == "__main__":
    main()
