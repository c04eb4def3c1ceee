"""What the embedded stores (the SQLite TSDB and the SQLite SQL store) set on each connection to
their files."""

SYNCHRONOUS = "NORMAL"
"""How a commit waits for the disk (SQLite's ``synchronous``), set on files in WAL mode only: the
WAL is synced at its checkpoints, not at each commit, so a batch's commit does not wait for a
sync of its own while Flink's checkpoints and the Parquet files load the same disk. A crash or a
kill of the job loses nothing and the file is not corrupted; a power loss or an OS crash may
undo the last commits (use TDengine and MySQL where that matters)."""
