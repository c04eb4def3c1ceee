"""Each Python stage's bundle time, read from the operators of the stream graph PyFlink hands to
Flink: the parse stage's batches take ``--parse-bundle-seconds``; the window stage's, the writer's
and the alerts' bundles ``bundle_time_ms`` (a firing's windows reach the writer, and the writer's
output its sinks, at a bundle's end).

Reads PyFlink 2.2 internals (``_generate_stream_graph``, the Java stream graph and
``AbstractPythonFunctionOperator.getConfiguration``): what Flink will run, which no public API shows."""

from __future__ import annotations

from py4j.protocol import Py4JError

from streamdrift.jobs.monitoring_job import JobOptions, build
from streamdrift.operators.parse import parse_tiers
from tests.integration.jobkit import job_settings

BUNDLE_TIME = "python.fn-execution.bundle.time"


def _bundle_times(env) -> dict[str, str]:
    """Each Python operator's name → its bundle time (ms, as configured), from the graph PyFlink
    generates for execution (its Python operators configured as they will run)."""
    graph = env._generate_stream_graph(clear_transformations=False)
    times = {}
    for node in graph.getStreamNodes().toArray():
        try:
            config = node.getOperatorFactory().getOperator().getConfiguration()
        except Py4JError:  # not a Python operator (or not a simple operator factory)
            continue
        times[node.getOperatorName()] = config.toMap().get(BUNDLE_TIME)
    return times


def test_parse_stage_has_its_own_bundle_time(tmp_path):
    # neither time is Flink's default (1 s) nor the one in flink-conf: each must come from the options
    options = JobOptions(bounded=True, window_ms=60_000, parse_bundle_time_ms=2_500, bundle_time_ms=1_500)
    times = _bundle_times(build(job_settings(tmp_path, None, "bundles"), options).env)
    # the parse function is the job's only Python function of the Table API: a PythonCalc per tier
    parse = {name: t for name, t in times.items() if name.startswith("PythonCalc")}
    others = {name: t for name, t in times.items() if name not in parse}
    assert len(parse) == len(parse_tiers(options.arrow_batch_size, options.batch_bytes)), times
    assert set(parse.values()) == {"2500"}, times
    assert {"endpoint-windows", "writer", "alerts, notifications"} <= set(others), times
    assert set(others.values()) == {"1500"}, times
