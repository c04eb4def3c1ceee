from setuptools import setup

setup(
    name="streamdrift",
    version="0.1.0",
    description="Model monitoring as one Apache Flink job in Python: drift, metrics and alerts per endpoint",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["jobs", "operators", "udfs", "connectors", "connectors.tsdb"],
    install_requires=[
        "apache-flink>=2.2.0,<2.3",
        "numpy>=1.24,<2.3",
        "scipy>=1.11,<1.18",
        "pyarrow>=14,<21",
        "pandas>=2.0,<2.3",
        "kafka-python>=2.0.2,<4",
        "taospy>=2.7,<3",
        "taos-ws-py>=0.3,<1",
        "pymysql>=1.1,<2",
        "SQLAlchemy>=2.0,<3",
        "PyYAML>=6,<7",
        "orjson>=3.9,<4",
    ],
    extras_require={
        "test": ["pytest>=8,<10", "hypothesis>=6.100,<7", "scikit-learn>=1.4,<2"],
        "demo": ["scikit-learn>=1.4,<2"],
        # EvidentlyModelMonitoringApplicationBase (udfs/evidently_app.py); 0.7 is the API MLRun supports
        "evidently": ["evidently>=0.7.5,<0.8"],
    },
    entry_points={"console_scripts": ["streamdrift=jobs.cli:main"]},
)
