"""The local job's JVM options (jobs/flink_env.py)."""

import os

from jobs.flink_env import use_parallel_gc


def test_local_jvm_gets_the_parallel_collector_beside_the_users_options(monkeypatch):
    monkeypatch.setenv("JVM_ARGS", "-Xmx1g")
    use_parallel_gc()
    use_parallel_gc()  # once only
    assert os.environ["JVM_ARGS"].split() == ["-Xmx1g", "-XX:+UseParallelGC"]


def test_a_collector_chosen_by_the_user_is_kept(monkeypatch):
    monkeypatch.setenv("JVM_ARGS", "-XX:+UseG1GC -Xmx2g")
    use_parallel_gc()
    assert os.environ["JVM_ARGS"] == "-XX:+UseG1GC -Xmx2g"
