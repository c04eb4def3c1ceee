"""Wiring: builds streamdrift's Flink job graphs from settings, and the ``streamdrift`` command line."""
