"""What the job graph needs of Flink that PyFlink's Python API does not offer, through the Java
objects behind PyFlink's wrappers (``_j_table``, ``_j_tenv``, ``_j_data_stream``, the Py4J gateway).

Each of these keeps records in the JVM where the public API would take them through Python or
convert every field (the job benchmark's numbers are in the functions' docs): a table as a stream
of Flink's internal rows and back (:func:`internal_stream`, :func:`from_internal_stream`,
:func:`through_stream`), the union of several such streams (:func:`union`), and a stream keyed by
its first field in the JVM (:func:`keyed_by_first_field`) with keys spread evenly over its
subtasks (:func:`balanced_int_keys`). They depend on PyFlink internals of the
version setup.py pins (2.2): a PyFlink upgrade checks them first (the integration tests of the job
exercise every one).
"""

from __future__ import annotations

__all__ = ["internal_stream", "from_internal_stream", "union", "through_stream", "keyed_by_first_field",
           "balanced_int_keys"]


def internal_stream(t_env, table):
    """``table`` as a Java DataStream of Flink's internal rows, translated now (with the table
    configuration of this moment). ``to_data_stream`` would convert every field of every record to
    a Java object and back (strings decoded, then encoded again: ~15 % of the reading thread in a
    JFR profile)."""
    from pyflink.java_gateway import get_gateway

    row_data = get_gateway().jvm.org.apache.flink.table.data.RowData._java_lang_class
    internal = table._j_table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(row_data)
    return t_env._j_tenv.toDataStream(table._j_table, internal)


def from_internal_stream(t_env, j_stream, schema=None):
    """The table of a Java DataStream of internal rows (:func:`internal_stream`), with the
    computed columns and watermark of ``schema`` when given (its physical columns are the
    stream's). SQL puts watermarks only on a source: this is how a table gets them later."""
    from pyflink.table import Table

    j_tenv = t_env._j_tenv
    return Table(j_tenv.fromDataStream(j_stream) if schema is None else j_tenv.fromDataStream(j_stream, schema._j_schema),
                 t_env)


def union(j_streams: list):
    """The union of Java DataStreams (Java's varargs ``union`` takes an array)."""
    from pyflink.java_gateway import get_gateway

    if len(j_streams) == 1:
        return j_streams[0]
    gateway = get_gateway()
    others = gateway.new_array(gateway.jvm.org.apache.flink.streaming.api.datastream.DataStream, len(j_streams) - 1)
    for i, stream in enumerate(j_streams[1:]):
        others[i] = stream
    return j_streams[0].union(others)


def through_stream(t_env, table):
    """``table`` through a DataStream and back: the tables made from it share its one source
    (every table translated on its own from a source table would read that source again)."""
    return from_internal_stream(t_env, internal_stream(t_env, table))


def keyed_by_first_field(stream, value_type, key_type=None, declare: bool = True):
    """``stream`` (rows of a key, a string unless ``key_type`` says otherwise, and a value of
    ``value_type``) keyed by its first field in the JVM, as PyFlink's ``key_by`` keys what its
    Python key selector returns, without that Python step (for a Python operator's output: one
    more pass through Python per record). ``declare``: declare the rows' type as the plain row type
    that PyFlink's keyed Python operators read (for rows of the Table API, whose own type of the
    same rows is not one); a Python operator's output already has it."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedStream
    from pyflink.java_gateway import get_gateway

    key_type = key_type or Types.STRING()
    j_stream = stream._j_data_stream
    if declare:
        j_stream.getTransformation().setOutputType(Types.ROW([key_type, value_type]).get_java_type_info())
    j_keyed = j_stream.keyBy(get_gateway().jvm.KeyByKeySelector(), Types.ROW([key_type]).get_java_type_info())
    return KeyedStream(j_keyed, value_type, stream)


def balanced_int_keys(parallelism: int, per_subtask: int, max_parallelism: int | None = None) -> list[int]:
    """``parallelism × per_subtask`` INT keys for :func:`keyed_by_first_field` (``key_type`` INT),
    the i-th of them on subtask ``i % parallelism``, so that keys used equally load every subtask
    equally. Flink puts a key on the subtask of its key group (a hash of the key: a few keys picked
    at random leave subtasks unequal, e.g. 5 and 3 of 8 keys). The subtasks are asked of Flink's
    own ``KeyGroupRangeAssignment`` for the key object ``keyed_by_first_field`` keys by, a row of
    the integer; ``max_parallelism`` None is Flink's default for ``parallelism``. The keys are the
    smallest non-negative integers that fill each subtask's share, in order."""
    from pyflink.java_gateway import get_gateway

    if parallelism < 1 or per_subtask < 1:
        raise ValueError(f"parallelism and keys per subtask must be >= 1, got {parallelism} and {per_subtask}")
    jvm = get_gateway().jvm
    assignment = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    if max_parallelism is None:
        max_parallelism = assignment.computeDefaultMaxParallelism(parallelism)
    if max_parallelism < parallelism:
        raise ValueError(f"max parallelism {max_parallelism} is below the parallelism {parallelism}")
    chosen: list[list[int]] = [[] for _ in range(parallelism)]
    key = 0
    while any(len(keys) < per_subtask for keys in chosen):
        row = jvm.org.apache.flink.types.Row(1)
        row.setField(0, key)
        keys = chosen[assignment.assignKeyToParallelOperator(row, max_parallelism, parallelism)]
        if len(keys) < per_subtask:
            keys.append(key)
        key += 1
    return [chosen[i % parallelism][i // parallelism] for i in range(parallelism * per_subtask)]
