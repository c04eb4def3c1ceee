"""The built wheel, installed into a fresh virtualenv with no checkout on its path: it claims only the
top-level name ``streamdrift``, its command runs, ``streamdrift jars`` fetches the connector jars, and
the demo (a bounded run of the monitoring job on the embedded defaults) runs from it.

The fresh virtualenv gets the wheel without its dependencies; a ``.pth`` line puts the project
virtualenv's site-packages after its own (PyFlink, numpy, ... are not installed twice). A ``.pth``
line only extends ``sys.path``: the ``.pth`` files of that folder, among them the project's editable
install, are not run, so nothing of the checkout is importable there (checked below).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from streamdrift.connectors.settings import ENV_PREFIX

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jobs", "operators", "udfs", "connectors", "ui")
WINDOW_LINE = re.compile(r"^[0-9a-f]{8}\s+\d\d:\d\d-\d\d:\d\d\s+(\d+)\s")


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (no build/ or egg-info left in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (*PACKAGES, "jars"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore if name != "jars" else shutil.ignore_patterns("target"))
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
         cwd=src, timeout=300)
    (built,) = out.glob("streamdrift-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", str(folder)], timeout=300)
    python = folder / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], timeout=300)
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(site) / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return folder


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(ENV_PREFIX) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env[f"{ENV_PREFIX}JARS_DIR"] = str(tmp_path / "jars")
    env[f"{ENV_PREFIX}RUN_DIR"] = str(tmp_path / "run")
    return env


def test_the_wheel_installs_only_the_streamdrift_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (record,) = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        files = [row[0] for row in csv.reader(io.StringIO(archive.read(record).decode()))]
        (top_level,) = [n for n in archive.namelist() if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["streamdrift"]
    installed = {f.split("/")[0] for f in files if ".dist-info/" not in f}
    assert installed == {"streamdrift"}
    for name in ("streamdrift/udfs/drift.py", "streamdrift/jobs/monitoring_job.py", "streamdrift/connectors/tsdb/base.py",
                 "streamdrift/operators/parse.py", "streamdrift/ui/templates/base.html", "streamdrift/jars/pom.xml",
                 "streamdrift/jars/src/main/java/io/streamdrift/flink/ByteLength.java"):
        assert name in files, name


def test_the_installed_command_runs_and_no_checkout_is_importable(venv, tmp_path):
    python = venv / "bin" / "python"
    probe = ("import importlib.util, json, streamdrift.jobs.cli as cli; "
             "print(json.dumps([cli.__file__] + [importlib.util.find_spec(n) is not None for n in "
             f"{list(PACKAGES)!r}]))")
    out = _run([str(python), "-c", probe], cwd=tmp_path, env=_env(tmp_path)).stdout
    where, *found = __import__("json").loads(out)
    assert Path(where).is_relative_to(venv) and found == [False] * len(PACKAGES)
    help_text = _run([str(venv / "bin" / "streamdrift"), "--help"], cwd=tmp_path, env=_env(tmp_path)).stdout
    assert "usage: streamdrift" in help_text
    for command in ("run", "submit", "demo", "jars", "apps", "endpoints"):
        assert command in help_text


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_installed_the_run_and_jars_folders_are_in_the_users_home(venv, tmp_path):
    env = {k: v for k, v in _env(tmp_path).items() if k not in (f"{ENV_PREFIX}JARS_DIR", f"{ENV_PREFIX}RUN_DIR")}
    env["HOME"] = str(tmp_path / "user")
    probe = "from streamdrift.connectors.local_services import run_dir, jars_dir; print(run_dir()); print(jars_dir())"
    out = _run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=env).stdout.split()
    assert out == [str(tmp_path / "user" / ".streamdrift" / "run"), str(tmp_path / "user" / ".streamdrift" / "jars")]


def test_a_bounded_run_from_the_wheel_with_the_jars_it_fetched(venv, tmp_path):
    env = {k: v for k, v in _env(tmp_path).items() if k not in (f"{ENV_PREFIX}JARS_DIR", f"{ENV_PREFIX}RUN_DIR")}
    env[f"{ENV_PREFIX}HOME"] = str(tmp_path / "home")
    package = Path(_run([str(venv / "bin" / "python"), "-c", "import streamdrift.jobs, os; "
                         "print(os.path.dirname(os.path.dirname(streamdrift.jobs.__file__)))"],
                        cwd=tmp_path, env=env).stdout.strip())
    before = _files(package)
    sd = str(venv / "bin" / "streamdrift")
    _run([sd, "jars"], cwd=tmp_path, env=env, timeout=600)
    built = {p.name for p in (tmp_path / "home" / "jars" / "flink").glob("*.jar")}  # into STREAMDRIFT_HOME
    assert "streamdrift-functions.jar" in built and any(n.startswith("flink-sql-connector-kafka") for n in built)
    proc = _run([sd, "demo", "--data-dir", str(tmp_path / "demo")], cwd=tmp_path, env=env, timeout=600)
    windows = [int(m.group(1)) for m in map(WINDOW_LINE.match, proc.stdout.splitlines()) if m]
    assert windows == [250] * 8, proc.stdout[-3000:]
    assert "DRIFT DETECTED" in proc.stdout and "3 dead letters" in proc.stdout
    assert package.name == "streamdrift" and _files(package) == before  # nothing written beside the code
