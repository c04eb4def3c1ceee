"""The job's SQL functions in Java (streamdrift-functions.jar, built by `make jars`), in real Flink jobs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

PAYLOADS = [b"", b"a", "é€😀".encode(), bytes(range(256)), b"\xff\xfe\x00invalid \xc3 UTF-8", b"{" * (3 << 20)]


def _byte_lengths(payloads: list[bytes | None]) -> list[int | None]:
    """BYTE_LENGTH of each payload, computed by a bounded Flink job on a table of them (in order)."""
    from pyflink.table import DataTypes, StreamTableEnvironment

    from streamdrift.jobs.flink_env import register_functions, stream_env

    t_env = StreamTableEnvironment.create(stream_env(1))
    register_functions(t_env)
    table = t_env.from_elements([(i, None if p is None else bytearray(p)) for i, p in enumerate(payloads)],
                                DataTypes.ROW([DataTypes.FIELD("i", DataTypes.INT()),
                                               DataTypes.FIELD("payload", DataTypes.BYTES())]))
    t_env.create_temporary_view("payloads", table)
    with t_env.execute_sql("SELECT i, BYTE_LENGTH(payload) FROM payloads").collect() as rows:
        found = dict(tuple(row) for row in rows)
    return [found[i] for i in range(len(payloads))]


def test_byte_length_counts_bytes_not_characters():
    """Multi-byte UTF-8, bytes that are not UTF-8 at all, an empty payload, 3 MiB, and NULL."""
    assert _byte_lengths([*PAYLOADS, None]) == [len(p) for p in PAYLOADS] + [None]


@settings(max_examples=3, deadline=None)
@given(st.lists(st.binary(max_size=5000), min_size=1, max_size=40))
def test_byte_length_of_any_bytes_is_their_len(payloads):
    assert _byte_lengths(payloads) == [len(p) for p in payloads]


@pytest.mark.parametrize("functions_jar", ["missing", "empty", "no classes"])
def test_a_missing_functions_jar_is_named_with_what_to_do(tmp_path, monkeypatch, functions_jar):
    import zipfile

    from streamdrift.jobs.flink_env import FUNCTIONS_JAR, flink_jar_uris

    (tmp_path / "flink").mkdir()
    (tmp_path / "flink" / "flink-sql-connector-kafka-5.0.0-2.2.jar").write_bytes(b"")
    if functions_jar == "empty":
        (tmp_path / "flink" / FUNCTIONS_JAR).write_bytes(b"")
    elif functions_jar == "no classes":  # what Maven writes when the sources are missing
        with zipfile.ZipFile(tmp_path / "flink" / FUNCTIONS_JAR, "w") as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    monkeypatch.setenv("STREAMDRIFT_JARS_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match=f"no {FUNCTIONS_JAR} with io.streamdrift.flink.ByteLength in .*"
                                           "run `make jars` again"):
        flink_jar_uris()
