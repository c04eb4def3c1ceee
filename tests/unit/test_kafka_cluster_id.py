"""The local Kafka's cluster id: Kafka's form (16 bytes, URL-safe base64 without padding), never
starting with "-", which Kafka's storage tool reads as an option (the broker then never starts)."""

from __future__ import annotations

import base64
import re

from streamdrift.connectors.local_services import kafka_cluster_id


def test_cluster_ids_are_kafkas_form_and_never_start_with_a_dash():
    # one random id in 64 starts with "-": 2,000 draws hit it with probability 1 - (63/64)**2000 > 1 - 1e-13
    ids = [kafka_cluster_id() for _ in range(2_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
