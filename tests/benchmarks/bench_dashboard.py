"""Benchmark of the dashboard's big pages in a headless browser (issue 17).

Run from the project root (Debian's chromium is installed by ``streamdrift.connectors.local_services`` when missing)::

    .venv/bin/python -m tests.benchmarks.bench_dashboard                 # 7 loads per page
    .venv/bin/python -m tests.benchmarks.bench_dashboard --loads 15

What it does:

1. writes two synthetic projects through ``connectors`` (SQLite store and TSDB, as the job writes
   them; drift computed by ``udfs``): ``many``, 1,000 endpoints of 20 columns with 12 one-minute
   windows each, and ``wide``, one endpoint of 2,000 columns with 3 windows;
2. serves each with ``streamdrift ui`` (a subprocess, as a user runs it);
3. loads each page in headless chromium (Playwright, Debian's binary) once to warm up, then
   ``--loads`` times, and reads the Navigation Timing entry of each load: navigation start to the
   end of the load event (the target: under 1 s), and to the end of the HTML response (the
   server's part);
4. prints one row per page: median, min and max, the HTML's size and what the page shows.

The endpoints list shows 100 endpoints a page (sparklines of the last 12 windows included), Features
analysis 100 columns a page (histograms included); the rows at ``per_page=500`` show what a bigger
page costs. Not collected by pytest (no ``test_`` names).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from streamdrift.connectors import local_services  # noqa: E402
from tests.dashboard_stores import write_project  # noqa: E402

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMING = """() => { const n = performance.getEntriesByType('navigation')[0];
                    return {load: n.loadEventEnd - n.startTime, response: n.responseEnd - n.startTime,
                            size: n.decodedBodySize}; }"""


def serve(data_dir: Path, project: str, written, port: int):
    env = {**os.environ, "STREAMDRIFT_PROJECT": project, "STREAMDRIFT_DATA_DIR": str(data_dir),
           "STREAMDRIFT_ENDPOINT_STORE_CONNECTION": written.store_url, "STREAMDRIFT_TSDB_CONNECTION": written.tsdb_url,
           "STREAMDRIFT_BASE_PERIOD": "1"}
    env.pop("STREAMDRIFT_UI_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "streamdrift.jobs.cli", "ui", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/static/app.css", timeout=2).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"streamdrift ui on port {port} did not answer")


def measure(context, url: str, loads: int) -> dict:
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")  # warm-up: server caches, browser's static files
    samples = []
    for _ in range(loads):
        page.goto(url, wait_until="load")
        samples.append(page.evaluate(TIMING))
    rows = page.locator("tbody tr").count()
    page.close()
    if errors:
        raise RuntimeError(f"{url}: {errors}")
    load = [s["load"] for s in samples]
    return {"median": statistics.median(load), "min": min(load), "max": max(load),
            "response": statistics.median(s["response"] for s in samples), "size": samples[-1]["size"], "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=7, help="measured loads per page (after one warm-up)")
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--columns", type=int, default=2000)
    parser.add_argument("--port", type=int, default=28790, help="first of the two ports used (below the "
                        "ephemeral ports, which clients' connections take)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    executable = local_services.ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        tmp = Path(tmp)
        began = time.monotonic()
        many = write_project(tmp / "many", "many", endpoints=args.endpoints, columns=20, windows=12)
        wide = write_project(tmp / "wide", "wide", endpoints=1, columns=args.columns, windows=3)
        print(f"stores written in {time.monotonic() - began:.0f} s: {args.endpoints} endpoints x 20 columns x 12 windows; "
              f"1 endpoint x {args.columns} columns x 3 windows", file=sys.stderr)
        servers = [serve(tmp / "many", "many", many, args.port), serve(tmp / "wide", "wide", wide, args.port + 1)]
        try:
            base_many, base_wide = f"http://127.0.0.1:{args.port}", f"http://127.0.0.1:{args.port + 1}"
            features = f"{base_wide}/projects/wide/endpoints/{wide.endpoint_ids[0]}/features"
            cases = [
                (f"endpoints list, {args.endpoints:,} endpoints (100 a page)", f"{base_many}/projects/many/endpoints"),
                (f"endpoints list, {args.endpoints:,} endpoints (500 a page)",
                 f"{base_many}/projects/many/endpoints?per_page=500"),
                (f"features analysis, {args.columns:,} columns (100 a page)", features),
                (f"features analysis, {args.columns:,} columns (500 a page)", features + "?per_page=500"),
                ("project overview, 1,000 endpoints", f"{base_many}/projects/many/"),
            ]
            with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
                context = p.chromium.launch_persistent_context(profile, executable_path=executable, headless=True,
                                                               args=BROWSER_ARGS,
                                                               viewport={"width": 1500, "height": 1000})
                results = [(name, measure(context, url, args.loads)) for name, url in cases]
                context.close()
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=20)
    print(f"\ndashboard page loads in headless chromium ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores), navigation start to load event end, {args.loads} loads after a warm-up\n")
    print(f"{'page':48} {'median ms':>9} {'min':>6} {'max':>6} {'HTML ms':>8} {'HTML KB':>8} {'rows':>5}")
    for name, r in results:
        print(f"{name:48} {r['median']:9.0f} {r['min']:6.0f} {r['max']:6.0f} {r['response']:8.0f} "
              f"{r['size'] / 1024:8.0f} {r['rows']:5d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
