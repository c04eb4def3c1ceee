"""A Flink execution environment with the project's jars and Python interpreter."""

from __future__ import annotations

import sys

from connectors.local_services import jars_dir


def flink_jar_uris() -> list[str]:
    """``file://`` URIs of the connector jars fetched by ``make jars`` (``.jars/flink``)."""
    jars = sorted((jars_dir() / "flink").glob("*.jar"))
    if not jars:
        raise RuntimeError(f"no Flink connector jars in {jars_dir() / 'flink'}: run `make jars` first")
    return [jar.as_uri() for jar in jars]


def stream_env(parallelism: int = 1, checkpoint_interval_ms: int | None = None, extra: dict | None = None):
    """A ``StreamExecutionEnvironment`` that can use the Kafka and Parquet connectors.

    The jars go to ``pipeline.jars`` (shipped with the job when it is submitted to a cluster); the
    Python workers run the interpreter of this process, so they see the same installed packages.
    ``extra`` holds further Flink configuration keys (state backend, checkpoint directory, ...).
    """
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    config = Configuration()
    config.set_string("pipeline.jars", ";".join(flink_jar_uris()))
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    for key, value in (extra or {}).items():
        config.set_string(key, str(value))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(parallelism)
    if checkpoint_interval_ms:
        env.enable_checkpointing(checkpoint_interval_ms)
    return env
