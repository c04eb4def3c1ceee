"""A Flink execution environment with the project's jars and Python interpreter."""

from __future__ import annotations

import os
import sys

from streamdrift.connectors.local_services import jars_dir, plugins_dir


def flink_jar_uris() -> list[str]:
    """``file://`` URIs of the connector jars fetched by ``make jars`` and of :data:`FUNCTIONS_JAR`,
    which it builds (``flink/`` of :func:`~streamdrift.connectors.local_services.jars_dir`).

    :raises RuntimeError: either is missing (``make jars`` not run, or run by an earlier version)."""
    jars = sorted((jars_dir() / "flink").glob("*.jar"))
    if not jars:
        raise RuntimeError(f"no Flink connector jars in {jars_dir() / 'flink'}: run `make jars` first")
    functions = jars_dir() / "flink" / FUNCTIONS_JAR
    if not _holds_functions(functions):
        raise RuntimeError(f"no {FUNCTIONS_JAR} with {', '.join(FUNCTIONS.values())} in {jars_dir() / 'flink'}: "
                           "run `make jars` again (it builds it)")
    return [jar.as_uri() for jar in jars]


def _holds_functions(jar) -> bool:
    """Whether ``jar`` has the class of each of :data:`FUNCTIONS` (Maven writes an empty jar where
    the sources are missing)."""
    import zipfile

    try:
        with zipfile.ZipFile(jar) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return all(java_class.replace(".", "/") + ".class" in names for java_class in FUNCTIONS.values())


FUNCTIONS_JAR = "streamdrift-functions.jar"
"""The job's SQL functions in Java (``jars/src/main/java``), built by ``make jars`` into ``flink/``
of :func:`~streamdrift.connectors.local_services.jars_dir` beside the connector jars."""

FUNCTIONS = {"BYTE_LENGTH": "io.streamdrift.flink.ByteLength"}
"""SQL name → Java class of each function of :data:`FUNCTIONS_JAR`."""


def register_functions(t_env) -> None:
    """Register :data:`FUNCTIONS` as temporary system functions of ``t_env`` (whose environment
    came from :func:`stream_env`, which puts their jar on ``pipeline.jars`` or finds it in Flink's
    ``lib/``)."""
    for name, java_class in FUNCTIONS.items():
        t_env.create_java_temporary_system_function(name, java_class)


def _on_system_class_path(java_class: str) -> bool:
    from pyflink.java_gateway import get_gateway

    # the system class loader: the context one also holds the jars shipped to an earlier local job
    loader = get_gateway().jvm.java.lang.ClassLoader.getSystemClassLoader()
    try:
        loader.loadClass(java_class)
    except Exception:  # noqa: BLE001 - py4j raises its own error for a ClassNotFoundException
        return False
    return True


def connectors_in_flink_lib() -> bool:
    """True when the JVM this process builds jobs in already has the Kafka connector on its class
    path: ``flink run`` of a Flink distribution whose ``lib/`` holds the connector jars (the local
    standalone cluster's does, see ``streamdrift.connectors.local_services``). Its cluster then loads them with
    Flink's own class loader, and the job does not ship them again (a job's own copies would be
    loaded anew at every restart)."""
    return _on_system_class_path("org.apache.flink.connector.kafka.source.KafkaSource")


PROMETHEUS_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def prometheus_reporter(port: str) -> dict[str, str]:
    """Flink configuration keys of the Prometheus reporter serving ``/metrics`` on ``port`` (one
    port, or a range ``9249-9259`` from which each JVM takes the first free one)."""
    return {"metrics.reporter.prom.factory.class": PROMETHEUS_FACTORY, "metrics.reporter.prom.port": str(port)}


def reporter_on_classpath() -> None:
    """Put the Prometheus reporter fetched by ``make jars`` on the classpath of the local job's JVM
    (PyFlink's gateway, started at the first environment of this process): a local run's mini
    cluster loads reporters from the classpath only, not from plugins. ``HADOOP_CLASSPATH`` is
    the variable Flink's launchers (PyFlink's too) add to the classpath."""
    jars = sorted((plugins_dir() / "metrics-prometheus").glob("*.jar"))
    if not jars:
        raise RuntimeError(f"no Prometheus reporter jar in {plugins_dir() / 'metrics-prometheus'}: run `make jars`")
    paths = [p for p in os.environ.get("HADOOP_CLASSPATH", "").split(os.pathsep) if p]
    os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(paths + [str(j) for j in jars if str(j) not in paths])


def stream_env(parallelism: int = 1, checkpoint_interval_ms: int | None = None, extra: dict | None = None):
    """A ``StreamExecutionEnvironment`` that can use the Kafka and Parquet connectors.

    The jars go to ``pipeline.jars`` (shipped with the job when it is submitted to a cluster); the
    Python workers run the interpreter of this process, so they see the same installed packages.
    ``extra`` holds further Flink configuration keys (state backend, checkpoint directory, ...).
    """
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    use_job_jvm_options()
    ignore_empty_java_home()
    if PROMETHEUS_FACTORY in (extra or {}).values():
        reporter_on_classpath()

    config = Configuration()
    if not connectors_in_flink_lib():
        config.set_string("pipeline.jars", ";".join(flink_jar_uris()))
    elif not all(_on_system_class_path(c) for c in FUNCTIONS.values()):
        # a lib/ with the connectors but not this version's functions (set up by an earlier one)
        config.set_string("pipeline.jars", ";".join(u for u in flink_jar_uris() if u.endswith("/" + FUNCTIONS_JAR)))
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    for key, value in (extra or {}).items():
        config.set_string(key, str(value))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(parallelism)
    if checkpoint_interval_ms:
        env.enable_checkpointing(checkpoint_interval_ms)
    return env


JIT_OPTION = "-XX:CompileThresholdScaling=5"
"""Methods are compiled after five times as many calls as Java's default: the code the job runs
hot is still compiled within seconds; the lukewarm code of Flink, Beam, Kafka and Parquet mostly
is not. In the job benchmark the JIT compiler's CPU halved (~11.5 s to ~5.5 s of a ~40 s run); the
rest of the JVM spent ~1.5 s more."""


def ignore_empty_java_home() -> None:
    """Drop an empty ``JAVA_HOME`` from this process's environment: PyFlink would start its JVM as
    ``$JAVA_HOME/bin/java``, i.e. ``bin/java`` (FileNotFoundError), where ``java`` on the PATH is
    meant. Flink's scripts export it empty when it is not set, and a local job's Python workers,
    which run in this process, copy their environment into it."""
    if os.environ.get("JAVA_HOME") == "":
        del os.environ["JAVA_HOME"]


def use_job_jvm_options() -> None:
    """Give a local job's JVM (PyFlink's gateway, started at the first environment of this process)
    the parallel garbage collector, unless ``JVM_ARGS`` already names a collector, and
    :data:`JIT_OPTION`, unless it sets ``CompileThresholdScaling`` itself. The job allocates
    short-lived records at a high rate: G1's concurrent marking cost a quarter of the JVM's CPU in
    the job benchmark. The standalone cluster's task managers get the same options from
    ``flink-conf/config.yaml``."""
    args = os.environ.get("JVM_ARGS", "").split()
    if not any(a.startswith("-XX:+Use") and a.endswith("GC") for a in args):
        args.append("-XX:+UseParallelGC")
    if not any(a.startswith("-XX:CompileThresholdScaling=") for a in args):
        args.append(JIT_OPTION)
    os.environ["JVM_ARGS"] = " ".join(args)
