"""The local job's JVM options (jobs/flink_env.py)."""

import os

from streamdrift.jobs.flink_env import use_job_jvm_options


def test_local_jvm_gets_the_job_options_beside_the_users_options(monkeypatch):
    monkeypatch.setenv("JVM_ARGS", "-Xmx1g")
    use_job_jvm_options()
    use_job_jvm_options()  # once only
    assert os.environ["JVM_ARGS"].split() == ["-Xmx1g", "-XX:+UseParallelGC", "-XX:CompileThresholdScaling=5"]


def test_a_collector_or_compile_threshold_chosen_by_the_user_is_kept(monkeypatch):
    monkeypatch.setenv("JVM_ARGS", "-XX:+UseG1GC -Xmx2g -XX:CompileThresholdScaling=1")
    use_job_jvm_options()
    assert os.environ["JVM_ARGS"] == "-XX:+UseG1GC -Xmx2g -XX:CompileThresholdScaling=1"
