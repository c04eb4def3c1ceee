"""``make demo`` until the monitoring job exists: the smoke pipeline on the local Kafka broker.

Starts the local broker if it is not running, writes 1,000 JSON records to a fresh topic, runs the
smoke job (Kafka → PyFlink map → Kafka) on a local Flink, reads the output topic back and prints
what arrived. Stops the broker again if it started it.
"""

from __future__ import annotations

import json
import time
import uuid

from streamdrift.connectors.local_services import Kafka

RECORDS = 1_000


def main() -> int:
    from kafka import KafkaConsumer, KafkaProducer

    from streamdrift.jobs import smoke
    from streamdrift.jobs.flink_env import stream_env

    kafka = Kafka()
    started = not kafka.status().up
    print(f"Kafka: {kafka.start().detail}")
    suffix = uuid.uuid4().hex[:8]
    topic_in, topic_out = f"smoke-in-{suffix}", f"smoke-out-{suffix}"
    try:
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        for n in range(RECORDS):
            producer.send(topic_in, json.dumps({"n": n}).encode())
        producer.flush()
        producer.close()
        t0 = time.monotonic()
        smoke.build(stream_env(), kafka.bootstrap, topic_in, topic_out).execute("streamdrift-demo-smoke")
        elapsed = time.monotonic() - t0
        consumer = KafkaConsumer(topic_out, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=5000)
        out = [json.loads(m.value) for m in consumer]
        consumer.close()
        ok = sorted(r["n"] for r in out) == list(range(RECORDS)) and all(r["doubled"] == 2 * r["n"] for r in out)
        print(f"smoke pipeline: {RECORDS} records in, {len(out)} out, {'all correct' if ok else 'MISMATCH'}, "
              f"job took {elapsed:.1f} s")
        print("(the monitoring job replaces this demo once it exists)")
        return 0 if ok else 1
    finally:
        if started:
            kafka.stop()
