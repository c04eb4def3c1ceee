# The two commands of the README: `make demo` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SD     := $(VENV)/bin/streamdrift

.PHONY: demo test venv jars services-up services-down unit integration bench bench-verdict clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,demo,evidently,bench]'
	touch $@

venv: $(VENV)/.installed

.jars/.fetched: jars/pom.xml $(wildcard jars/src/main/java/io/streamdrift/flink/*.java)
	mvn -q -B -f jars/pom.xml package
	touch $@

jars: .jars/.fetched

demo: venv jars
	$(SD) demo
	@echo "dashboard on the demo's stores: $(SD) ui --data-dir .streamdrift-demo --project demo  ->  http://127.0.0.1:8765/"

# Starts Kafka, MariaDB and Flink, runs every test, always stops the services, fails on any failure.
test: venv jars
	@$(SD) services up; up=$$?; \
	if [ $$up -eq 0 ]; then $(PY) -m pytest tests -ra; rc=$$?; else rc=$$up; fi; \
	$(SD) services down; exit $$rc

unit: venv
	$(PY) -m pytest tests/unit -q

# Benchmarks print tables; the statistics one runs beside Evidently in its own .venv-bench/
bench: venv
	bash tests/benchmarks/run_stats_bench.sh

# The drift verdict (feature_drift): false alarms, power and cost beside MLRun's rule (~30 s)
bench-verdict: venv
	$(PY) -m tests.benchmarks.bench_verdict

services-up: venv jars
	$(SD) services up

services-down: venv
	$(SD) services down

clean: services-down
	rm -rf .run .jars $(VENV)
