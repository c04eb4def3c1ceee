"""What the embedded stores (the SQLite TSDB and the SQLite SQL store) set on each connection to
their files."""

SYNCHRONOUS = "NORMAL"
"""How a commit waits for the disk (SQLite's ``synchronous``): in WAL mode NORMAL syncs the WAL at
checkpoints, not at every commit. The job commits a batch of windows every second or two in a
burst, while Flink's checkpoints and the Parquet files load the same disk: waiting for the disk
at each commit made the slowest writes of a burst slower (benchmarks README). A crash of the job
loses nothing and the file is never corrupt; a power loss or an OS crash may undo the last
commits (use TDengine and MySQL where that matters)."""
