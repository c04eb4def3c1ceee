"""The writer's bucket keys spread the windows evenly over its subtasks, in a real Flink job."""

from __future__ import annotations

import collections

import pytest


def _subtask_of_each_key(keys: list[int], parallelism: int) -> dict[int, set[int]]:
    """Run a Flink job keyed as the job keys the writer (``keyed_by_first_field``, INT keys) and
    return, per key, the subtasks its records reached."""
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction

    from streamdrift.jobs.flink_env import stream_env
    from streamdrift.jobs.pyflink_internals import keyed_by_first_field

    class Where(KeyedProcessFunction):
        def open(self, runtime_context):
            self.subtask = runtime_context.get_index_of_this_subtask()

        def process_element(self, value, ctx):
            yield Row(int.from_bytes(value, "big"), self.subtask)

    env = stream_env(parallelism)
    value = Types.PRIMITIVE_ARRAY(Types.BYTE())
    rows = env.from_collection([Row(k, k.to_bytes(4, "big")) for k in keys for _ in range(3)],
                               type_info=Types.ROW([Types.INT(), value]))
    keyed = keyed_by_first_field(rows, value, Types.INT())
    seen: dict[int, set[int]] = collections.defaultdict(set)
    with keyed.process(Where(), output_type=Types.ROW([Types.INT(), Types.INT()])).execute_and_collect() as results:
        for key, subtask in results:
            seen[key].add(subtask)
    return seen


@pytest.mark.parametrize("parallelism, per_subtask", [(2, 4), (3, 4), (2, "job"), (3, "job")])
def test_each_writer_subtask_gets_the_same_number_of_bucket_keys(parallelism, per_subtask):
    from streamdrift.jobs.monitoring_job import WRITER_BUCKETS_PER_SUBTASK
    from streamdrift.jobs.pyflink_internals import balanced_int_keys

    per_subtask = WRITER_BUCKETS_PER_SUBTASK if per_subtask == "job" else per_subtask
    keys = balanced_int_keys(parallelism, per_subtask)
    assert len(set(keys)) == per_subtask * parallelism
    seen = _subtask_of_each_key(keys, parallelism)
    assert all(len(subtasks) == 1 for subtasks in seen.values()), seen  # a key is on one subtask
    per = collections.Counter(next(iter(seen[k])) for k in keys)
    assert per == {s: per_subtask for s in range(parallelism)}
    # and as planned: the i-th key on subtask i % parallelism
    assert [next(iter(seen[k])) for k in keys] == [i % parallelism for i in range(len(keys))]


def test_the_first_integers_as_keys_leave_the_writer_subtasks_unequal():
    """Why the keys are chosen: 8 keys 0..7 (one bucket each) put 5 and 3 on the 2 subtasks."""
    seen = _subtask_of_each_key(list(range(8)), 2)
    per_subtask = collections.Counter(next(iter(s)) for s in seen.values())
    assert sorted(per_subtask.values()) != [4, 4]
