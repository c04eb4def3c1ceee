"""PyFlink with the Flink Kafka connector, locally and on the standalone cluster."""

import subprocess
import sys
import time
import uuid

from streamdrift.connectors.local_services import PROJECT_ROOT, flink_home
from streamdrift.jobs import smoke
from streamdrift.jobs.flink_env import stream_env
from tests.integration.jobkit import consume, produce

RECORDS = 500


def _produce(kafka, topic: str) -> list[dict]:
    records = [{"n": n, "feature": n * 0.5} for n in range(RECORDS)]
    produce(kafka, topic, records)
    return records


def _check_record_by_record(sent: list[dict], received: list[dict]) -> None:
    assert len(received) == len(sent)
    by_n = {record["n"]: record for record in received}
    assert sorted(by_n) == [record["n"] for record in sent]
    for record in sent:
        got = by_n[record["n"]]
        assert got["feature"] == record["feature"]
        assert got["doubled"] == 2 * record["n"]
        assert got["seen_by"] == "streamdrift-smoke"


def test_local_pyflink_job_copies_topic_transformed(kafka):
    suffix = uuid.uuid4().hex[:8]
    sent = _produce(kafka, f"it-in-{suffix}")
    smoke.build(stream_env(), kafka.bootstrap, f"it-in-{suffix}", f"it-out-{suffix}").execute("it-local")
    _check_record_by_record(sent, consume(kafka, f"it-out-{suffix}"))


def test_flink_run_on_standalone_cluster(kafka, flink):
    suffix = uuid.uuid4().hex[:8]
    job_name = f"it-cluster-{suffix}"
    sent = _produce(kafka, f"it-in-{suffix}")
    cmd = [str(flink_home() / "bin" / "flink"), "run", "-m", flink.address,
           "-py", str(PROJECT_ROOT / "jobs" / "smoke.py"), "-pyexec", sys.executable,
           "--bootstrap", kafka.bootstrap, "--input", f"it-in-{suffix}", "--output", f"it-out-{suffix}",
           "--job-name", job_name]
    proc = subprocess.run(cmd, env=dict(flink.env(), PYFLINK_CLIENT_EXECUTABLE=sys.executable),
                          capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_record_by_record(sent, consume(kafka, f"it-out-{suffix}"))

    deadline = time.monotonic() + 30
    while True:
        jobs = {job["name"]: job for job in flink.rest("/jobs/overview")["jobs"]}
        if jobs.get(job_name, {}).get("state") == "FINISHED" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert job_name in jobs, f"{job_name} not in /jobs/overview: {sorted(jobs)}"
    assert jobs[job_name]["state"] == "FINISHED"
