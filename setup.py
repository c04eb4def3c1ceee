from setuptools import setup

PACKAGES = ["jobs", "operators", "udfs", "connectors", "connectors.sql_store", "connectors.tsdb", "ui"]

setup(
    name="streamdrift",
    version="0.1.0",
    description="Model monitoring as one Apache Flink job in Python: drift, metrics and alerts per endpoint",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # the repository's folders are the subpackages of one package, so that installing streamdrift
    # claims only the top-level name `streamdrift` (a namespace package: it has no folder of its own)
    packages=[f"streamdrift.{name}" for name in PACKAGES] + ["streamdrift.jars"],
    package_dir={f"streamdrift.{name}": name.replace(".", "/") for name in PACKAGES} | {"streamdrift.jars": "jars"},
    package_data={"streamdrift.ui": ["templates/*.html", "static/*.css", "static/*.js", "static/*.svg"],
                  # `streamdrift jars` of an installed package fetches what this file declares
                  "streamdrift.jars": ["pom.xml", "src/main/java/io/streamdrift/flink/*.java"]},
    install_requires=[
        "apache-flink>=2.2.0,<2.3",
        "numpy>=1.24,<2.3",
        "scipy>=1.11,<1.18",
        "pyarrow>=14,<21",
        "pandas>=2.0,<2.3",
        "kafka-python>=2.0.2,<4",
        # kafka-python checksums every record batch (CRC32C) in pure Python without it: the producer
        # SDK sent 2.5x (1-row events) to 11x (10-row events) fewer events/s (tests/benchmarks/bench_producer.py)
        "crc32c>=2.3,<3",
        "taospy>=2.7,<3",
        "taos-ws-py>=0.3,<1",
        "pymysql>=1.1,<2",
        "SQLAlchemy>=2.0,<3",
        "PyYAML>=6,<7",
        "orjson>=3.9,<4",
        # the dashboard (streamdrift ui); Plotly.js is served from the plotly package
        "starlette>=1.0,<2",
        "uvicorn>=0.29,<1",
        "Jinja2>=3.1,<4",
        "plotly>=5.18,<7",
        # /metrics of the dashboard and the producer SDK's counters
        "prometheus-client>=0.20,<1",
    ],
    extras_require={
        # playwright drives Debian's chromium (no browser download): tests/integration/test_dashboard.py
        # httpx2: starlette.testclient (tests/unit/test_ui.py)
        "test": ["pytest>=8,<10", "hypothesis>=6.100,<7", "scikit-learn>=1.4,<2", "playwright>=1.45,<2",
                 "httpx2>=2,<3",
                 # deploy/kubernetes/ against the Flink Kubernetes Operator's CRD schema
                 "jsonschema>=4.18,<5"],
        "demo": ["scikit-learn>=1.4,<2"],
        # EvidentlyModelMonitoringApplicationBase (udfs/evidently_app.py); 0.7 is the API MLRun supports
        "evidently": ["evidently>=0.7.5,<0.8"],
        # the paced producers of tests/benchmarks/bench_scale.py --live (librdkafka: a few µs of CPU per
        # event, on the cores the job runs on)
        "bench": ["confluent-kafka>=2.3,<3"],
    },
    entry_points={"console_scripts": ["streamdrift=streamdrift.jobs.cli:main"]},
)
