"""What ships under deploy/ without a cluster to run it on: the Kubernetes manifests against the
Flink Kubernetes Operator's CRD schema (from its API jar on Maven Central, fetched by `make jars`),
no secret in clear, the job's arguments read by the job's own parser; the Grafana dashboard parses
and names only metrics the job or the dashboard exports (tests/integration/test_prometheus.py
checks them in real scrapes)."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from streamdrift.connectors.local_services import jars_dir
from streamdrift.connectors.settings import SPECS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
GRAFANA = ROOT / "deploy" / "grafana" / "streamdrift-job.json"
# Flink 2.x versions of the operator's FlinkVersion enum, added by operator releases after 1.10
# (the newest release of its API jar that the package registry here serves): v2_0 .. v2_2
NEWER_FLINK_VERSIONS = ["v2_0", "v2_1", "v2_2"]
URL_WITH_PASSWORD = re.compile(r"://[^:/@\s\"']+:([^@\s\"']+)@")


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _deployment() -> dict:
    (deployment,) = _documents(K8S / "flinkdeployment.yaml")
    return deployment


def _crd_schema() -> dict:
    jars = sorted((jars_dir() / "k8s").glob("flink-kubernetes-operator-api-*.jar"))
    assert jars, f"no operator API jar in {jars_dir() / 'k8s'}: run `make jars`"
    with zipfile.ZipFile(jars[-1]) as jar:
        crd = yaml.safe_load(jar.read("META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = version["schema"]["openAPIV3Schema"]
    enum = schema["properties"]["spec"]["properties"]["flinkVersion"]["enum"]
    enum += [v for v in NEWER_FLINK_VERSIONS if v not in enum]
    return schema


def test_every_manifest_parses():
    for path in K8S.glob("*.yaml"):
        assert _documents(path), path


def test_the_flink_deployment_fits_the_operators_crd_schema():
    jsonschema.validate(_deployment(), _crd_schema())


def test_a_manifest_the_schema_refuses_is_refused():
    """The schema is strict enough to catch a mistake (the validation above can fail)."""
    schema = _crd_schema()
    for spoil in (lambda d: d["spec"]["job"].update(upgradeMode="sometimes"),
                  lambda d: d["spec"]["flinkConfiguration"].update({"taskmanager.numberOfTaskSlots": 2}),
                  lambda d: d["spec"]["taskManager"]["resource"].update(cpu="two")):
        deployment = _deployment()
        spoil(deployment)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(deployment, schema)


def test_the_deployment_has_what_the_operator_needs_for_a_python_application():
    d = _deployment()
    spec = d["spec"]
    assert (d["apiVersion"], d["kind"]) == ("flink.apache.org/v1beta1", "FlinkDeployment")
    assert spec["image"] and spec["serviceAccount"] and spec["flinkVersion"] == "v2_2"
    assert "mode" not in spec or spec["mode"] == "native"
    for role in ("jobManager", "taskManager"):
        assert spec[role]["resource"]["memory"] and spec[role]["resource"]["cpu"] > 0
    job = spec["job"]
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert job["upgradeMode"] == "savepoint" and job["state"] == "running"
    config = spec["flinkConfiguration"]
    assert config["state.backend.type"] == "rocksdb"
    assert all(config[k].startswith("s3://") for k in ("execution.checkpointing.dir",
                                                        "execution.checkpointing.savepoint-dir",
                                                        "high-availability.storageDir"))


def test_the_job_arguments_are_the_entry_points():
    from streamdrift.jobs.monitoring_job import add_job_flags, options_from_args
    from streamdrift.jobs.settings_flags import add_settings_flags

    job = _deployment()["spec"]["job"]
    args = job["args"]
    script = args[args.index("-py") + 1]
    assert script == "/opt/streamdrift/src/jobs/monitoring_job.py"
    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    add_job_flags(parser)
    options = options_from_args(parser.parse_args(args[args.index("-py") + 2:]))
    assert options.state_backend == "rocksdb" and options.parallelism == job["parallelism"]
    assert options.checkpoint_dir == _deployment()["spec"]["flinkConfiguration"]["execution.checkpointing.dir"]


def _env(deployment: dict) -> list[dict]:
    containers = deployment["spec"]["jobManager"]["podTemplate"]["spec"]["containers"]
    return [e for c in containers for e in c.get("env", [])]


def test_connection_strings_come_from_the_secret_only():
    env = {e["name"]: e for e in _env(_deployment())}
    for name in ("stream_path", "tsdb_connection", "endpoint_store_connection"):
        entry = env[f"STREAMDRIFT_{name.upper()}"]
        assert "value" not in entry
        assert entry["valueFrom"]["secretKeyRef"] == {"name": "streamdrift-connections", "key": name}
    # every STREAMDRIFT_ variable is a setting the job reads
    assert {n.removeprefix("STREAMDRIFT_").lower() for n in env if n.startswith("STREAMDRIFT_")} <= set(SPECS)
    (secret,) = _documents(K8S / "secret.yaml")
    assert secret["metadata"]["name"] == "streamdrift-connections"
    assert set(secret["stringData"]) == {"stream_path", "tsdb_connection", "endpoint_store_connection"}


def test_no_secret_in_clear():
    for path in [*K8S.iterdir(), GRAFANA]:
        text = path.read_text()
        for password in URL_WITH_PASSWORD.findall(text):
            # only placeholders (<password>) and shell variables the reader fills in
            assert re.fullmatch(r"<[a-z-]+>|\$\{[A-Z_]+\}", password), (path.name, password)
        assert not re.search(r"(?i)(password|secret[-_]?key|access[-_]?key)\s*[:=]\s*[\"']?[A-Za-z0-9/+]{8,}", text), \
            path.name
    (secret,) = _documents(K8S / "secret.yaml")
    assert "data" not in secret  # base64 would hide a value from the check above


def test_the_image_has_what_the_manifest_names():
    dockerfile = (K8S / "Dockerfile").read_text()
    (version,) = re.findall(r"ARG FLINK_VERSION=(\S+)", dockerfile)
    assert version == importlib.metadata.version("apache-flink")  # the PyFlink the project is tested with
    text = (K8S / "flinkdeployment.yaml").read_text()
    assert f"flink-python-{version}.jar" in text and f"flink-s3-fs-hadoop-{version}.jar" in text
    assert f"v{version.split('.')[0]}_{version.split('.')[1]}" == _deployment()["spec"]["flinkVersion"]
    for source in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / source).exists() or source.startswith(".jars/"), source
    venv_python = _deployment()["spec"]["flinkConfiguration"]["python.executable"]
    assert venv_python.startswith("/opt/streamdrift/venv/") and "/opt/streamdrift/venv" in dockerfile


# --------------------------------------------------------------------------- Grafana


def _job_metric_names() -> set[str]:
    """The counters and gauges the job's operators register (flink_taskmanager_job_task_operator_<name>)."""
    names = set()
    for path in (ROOT / "operators").glob("*.py"):
        names |= set(re.findall(r"\.(?:counter|gauge)\(\"(\w+)\"", path.read_text()))
    return {f"flink_taskmanager_job_task_operator_{n}" for n in names}


FLINK_BUILT_IN = {  # Flink's own metrics (docs: "Metrics", system scope), as the Prometheus reporter names them
    "flink_jobmanager_job_uptime", "flink_jobmanager_job_numRestarts", "flink_jobmanager_job_lastCheckpointDuration",
    "flink_jobmanager_job_numberOfFailedCheckpoints", "flink_taskmanager_job_task_busyTimeMsPerSecond",
    "flink_taskmanager_job_task_backPressuredTimeMsPerSecond",
}


def grafana_metric_names() -> set[str]:
    """Every metric the dashboard's queries and variables name."""
    dashboard = json.loads(GRAFANA.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    names = set()
    for q in queries:
        names |= set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", q))
        names |= set(re.findall(r"label_values\((\w+)", q))
    return names


def test_the_grafana_dashboard_parses_and_names_metrics_that_exist():
    dashboard = json.loads(GRAFANA.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(t["expr"].strip() for p in dashboard["panels"] for t in p.get("targets", []))
    from types import SimpleNamespace

    from streamdrift.ui.metrics import ResultsCollector

    no_projects = SimpleNamespace(store=None, tsdb=None, projects=lambda: [])
    ui_names = {family.name for family in ResultsCollector(no_projects).collect()}
    known = _job_metric_names() | FLINK_BUILT_IN | ui_names
    assert grafana_metric_names() <= known, grafana_metric_names() - known
    # the job's counters the issue asks for are all on it
    for name in ("records", "dead_letters", "partials", "late_partials", "corrections", "idle_closes",
                 "app_failures", "window_failures", "store_retries", "windows_refused_by_store",
                 "notification_failures", "windows_written", "alert_activations"):
        assert f"flink_taskmanager_job_task_operator_{name}" in grafana_metric_names(), name
