"""The outside world: Kafka, TDengine, the SQL store, Parquet, notifications, settings, local services."""
