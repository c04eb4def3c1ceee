"""Each Python stage's bundle time, read from the operators of the stream graph PyFlink hands to
Flink: the parse stage's batches wait at most ``--parse-bundle-seconds`` for more records; the
window stage's and the writer's bundles end after ``bundle_time_ms`` (a firing's windows reach the
writer, and the writer's output its sinks, at a bundle's end)."""

from __future__ import annotations

from py4j.protocol import Py4JError

from streamdrift.jobs.cli import build_parser
from streamdrift.jobs.monitoring_job import JobOptions, build, options_from_args
from tests.integration.jobkit import job_settings

BUNDLE_TIME = "python.fn-execution.bundle.time"


def _bundle_times(env) -> dict[str, str]:
    """Each Python operator's name → its bundle time (ms, as configured), from the graph PyFlink
    generates for execution (its Python operators configured as they will run)."""
    graph = env._generate_stream_graph(clear_transformations=False)
    times = {}
    for node in graph.getStreamNodes().toArray():
        factory = node.getOperatorFactory()
        try:
            config = factory.getOperator().getConfiguration()
        except Py4JError:  # not a Python operator (or not a simple operator factory)
            continue
        times[node.getOperatorName()] = config.toMap().get(BUNDLE_TIME)
    return times


def test_parse_stage_has_its_own_bundle_time(tmp_path):
    settings = job_settings(tmp_path, None, "bundles")
    options = JobOptions(bounded=True, window_ms=60_000, parse_bundle_time_ms=2_500, bundle_time_ms=1_000)
    times = _bundle_times(build(settings, options).env)
    # the parse function is the job's only Python function of the Table API (a PythonCalc per tier)
    parse = {name: t for name, t in times.items() if name.startswith("PythonCalc")}
    others = {name: t for name, t in times.items() if name not in parse}
    assert len(parse) >= 1 and set(parse.values()) == {"2500"}, times
    assert {"endpoint-windows", "writer"} <= set(others) and set(others.values()) == {"1000"}, times


def test_parse_bundle_flag_in_seconds():
    args = build_parser().parse_args(["run", "--parse-bundle-seconds", "2.5"])
    assert options_from_args(args).parse_bundle_time_ms == 2_500
    assert options_from_args(build_parser().parse_args(["run"])).parse_bundle_time_ms == JobOptions().parse_bundle_time_ms
