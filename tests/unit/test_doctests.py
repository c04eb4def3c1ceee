"""The examples in the docstrings of the project's modules (``streamdrift.udfs`` above all) run, as
the test command runs them (``make test`` and ``make unit`` collect this file). The modules are
imported by their package names: ``pytest --doctest-modules udfs/`` would import the files a second
time under their bare folder name (``udfs.drift``, a copy of every module beside
``streamdrift.udfs.drift``)."""

from __future__ import annotations

import doctest
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted("streamdrift." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                 for package in ("udfs", "operators", "connectors", "jobs", "ui") for p in (ROOT / package).rglob("*.py"))
# every public function of these modules shows how it is called
WITH_EXAMPLES = ["drift", "partitions", "naming", "endpoint_id", "contract", "events", "verdict", "histogram_drift",
                 "window", "batch", "applications", "alerts", "alert_config", "reference", "accumulator",
                 "monitor", "records", "drift_batch"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_each_module_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in finder.find(module, name, globs=dict(vars(module))):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"


def test_the_examples_are_found():
    examples = sum(len(t.examples) for name in MODULES
                   for t in doctest.DocTestFinder().find(importlib.import_module(name), name))
    assert examples >= 600


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_every_public_function_has_an_example(name):
    module = importlib.import_module(f"streamdrift.udfs.{name}")
    public = [f for n, f in vars(module).items()
              if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == module.__name__]
    assert public
    missing = [f.__name__ for f in public if ">>>" not in (f.__doc__ or "")]
    assert not missing, f"{name}: no example in {missing}"
