"""Pure logic of streamdrift: no Flink, no I/O beyond reading a training-data file."""
