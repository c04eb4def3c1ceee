"""The local KRaft broker: records go in and come back out, none lost."""

import uuid

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic


def test_10000_records_round_trip_none_lost(kafka):
    topic = f"it-roundtrip-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5)
    sent = {f"record-{i}".encode() for i in range(10_000)}
    for value in sent:
        producer.send(topic, value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000)
    received = [message.value for message in consumer]
    consumer.close()

    assert len(received) == 10_000
    assert set(received) == sent
