"""The Flink functions of the job graph: thin, each hands its records to ``udfs``."""
