#!/usr/bin/env bash
# Runs tests/benchmarks/bench_stats.py beside Evidently, in a virtualenv of its own
# (.venv-bench/ at the project root, git-ignored), so that Evidently never enters the
# project's own environment. Arguments are passed to the benchmark (e.g. --repeats 3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv-bench"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    numpy scipy pyarrow "pandas<3" evidently
# the project's streamdrift.* packages, without its dependencies (only the statistics are measured)
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root"

cd "$root"
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$venv/bin/python" -m tests.benchmarks.bench_stats "$@"
