"""The local job's JVM options (jobs/flink_env.py)."""

import os

from streamdrift.jobs.flink_env import ignore_empty_java_home, use_job_jvm_options


def test_local_jvm_gets_the_job_options_beside_the_users_options(monkeypatch):
    monkeypatch.setenv("JVM_ARGS", "-Xmx1g")
    use_job_jvm_options()
    use_job_jvm_options()  # once only
    assert os.environ["JVM_ARGS"].split() == ["-Xmx1g", "-XX:+UseParallelGC", "-XX:CompileThresholdScaling=5"]


def test_a_collector_or_compile_threshold_chosen_by_the_user_is_kept(monkeypatch):
    monkeypatch.setenv("JVM_ARGS", "-XX:+UseG1GC -Xmx2g -XX:CompileThresholdScaling=1")
    use_job_jvm_options()
    assert os.environ["JVM_ARGS"] == "-XX:+UseG1GC -Xmx2g -XX:CompileThresholdScaling=1"


def test_an_empty_java_home_is_dropped_and_a_set_one_kept(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "")
    ignore_empty_java_home()
    assert "JAVA_HOME" not in os.environ  # PyFlink would run "bin/java"
    monkeypatch.setenv("JAVA_HOME", "/usr/lib/jvm/java-17")
    ignore_empty_java_home()
    assert os.environ["JAVA_HOME"] == "/usr/lib/jvm/java-17"
