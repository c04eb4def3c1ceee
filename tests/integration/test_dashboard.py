"""The dashboard (``streamdrift ui``) in a real headless browser, on stores written by the real job.

Once for the module: a project with two endpoints on MariaDB (SQL store, under a user whose password
must never show) and SQLite (TSDB); a stream of four one-minute windows with drift injected in the
last two, error events and bad records; a manual alert that the drift fires; a failing application;
the monitoring job run on it (``streamdrift run --bounded``); then ``streamdrift ui`` serving it,
driven by Debian's chromium through Playwright (installed by ``streamdrift.connectors.local_services``, never
downloaded). Expected numbers come from the rows the test sent (hand counts, numpy histograms on the
reference edges) and from the stores read directly, not from the dashboard's code.

Screenshots of every view go to ``tests/artifacts/dashboard/``; with STREAMDRIFT_UPDATE_SCREENSHOTS=1
the Metrics and Features-analysis ones are also copied to ``docs/img/`` (the README's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streamdrift.connectors import local_services
from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.settings import load_settings, topic_names
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from tests.integration.jobkit import drop_mariadb_user, mariadb_user

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "dashboard"
FEATURES = [f"f{i}" for i in range(6)]
EVENTS_PER_WINDOW = 200
ERRORS_PER_WINDOW = 3  # failed requests (no outputs), counted as events and errors
HOSTILE = "<script>alert(1)</script>"
HOSTILE_FUNCTION = '"><img src=x onerror=alert(2)>'
HOSTILE_ALERT = "<img src=x onerror=alert(3)>"
TOKEN = "ui-token-" + uuid.uuid4().hex[:12]
HOOK_SECRET = "hook-secret-" + uuid.uuid4().hex[:12]
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STATUS_CLASS = {2: "detected", 1: "potential", 0: "ok", -1: "irrelevant"}
COLORS = {"detected": "#d62728", "potential": "#f39c12", "ok": "#2ca02c"}


@dataclasses.dataclass
class Stores:
    project: str
    settings: object
    env: dict  # the settings as STREAMDRIFT_* variables (the password stays out of process arguments)
    password: str
    drifting: str  # endpoint ids
    hostile: str
    windows: list  # (start, end) of each window of `drifting`, oldest first
    rows: dict  # window end -> DataFrame of the good rows sent
    errors: dict  # window end -> error events sent
    reference: pd.DataFrame

    def store(self) -> SqlStore:
        return SqlStore(self.settings.endpoint_store_connection)

    def tsdb(self):
        return open_tsdb(self.settings.tsdb_connection)


# --------------------------------------------------------------------------------- the stores


def _window_rows(rng, w: int) -> pd.DataFrame:
    rows = pd.DataFrame(rng.normal(size=(EVENTS_PER_WINDOW, len(FEATURES))).round(5), columns=FEATURES)
    channels, p = ["web", "app", "store"], [0.5, 0.3, 0.2]
    if w == 2:  # potential drift
        rows[FEATURES[:4]] += 3.0
        channels, p = ["web", "app", "store", "kiosk"], [0.2, 0.2, 0.2, 0.4]
    elif w == 3:  # drift detected
        rows[FEATURES] += 4.0
        channels, p = ["web", "app", "store", "kiosk"], [0.2, 0.2, 0.2, 0.4]
    rows["channel"] = rng.choice(channels, size=EVENTS_PER_WINDOW, p=p)
    return rows


@pytest.fixture(scope="module")
def stores(tmp_path_factory, mysql):
    suffix = uuid.uuid4().hex[:8]
    project, database, user = f"dash-{suffix}", f"streamdrift_ui_{suffix}", f"ui_{suffix}"
    password = "Pw-" + uuid.uuid4().hex
    store_url = mariadb_user(mysql, database, user, password)
    data_dir = tmp_path_factory.mktemp("dashboard")
    # MLRun's rule as the project's verdict: the manual alert below watches general_drift, which then
    # raises the data-drift events (with the default, feature_drift, it is stored and not alerted on)
    env = {"STREAMDRIFT_PROJECT": project, "STREAMDRIFT_DATA_DIR": str(data_dir), "STREAMDRIFT_BASE_PERIOD": "1",
           "STREAMDRIFT_ENDPOINT_STORE_CONNECTION": store_url, "STREAMDRIFT_DRIFT_VERDICT": "mlrun"}
    settings = load_settings({}, env=env)
    rng = np.random.default_rng(17)
    reference = pd.DataFrame(rng.normal(size=(2000, len(FEATURES))).round(5), columns=FEATURES)
    reference["channel"] = rng.choice(["web", "app", "store"], size=2000, p=[0.5, 0.3, 0.2])
    drifting = get_or_create_model_endpoint(project, "fraud-scorer", "serving", reference=reference,
                                            output_names=["score"], model_version="v2", function_tag="prod",
                                            store=store_url).endpoint_id
    hostile = get_or_create_model_endpoint(project, HOSTILE, HOSTILE_FUNCTION, reference=reference[FEATURES],
                                           model_version="</td><b>v</b>", store=store_url).endpoint_id
    with SqlStore(store_url) as store:
        store.add_application(project, "data-quality", "streamdrift.udfs.example_apps:DataQualityApplication", {})
        store.add_application(project, "broken-app", "no_such_module_for_the_dashboard:Nope", {})
        store.add_alert_config(
            project, "drift-held", summary="{{entity}} drifts: {{value}}", severity="high",
            entities=[f"{drifting}.histogram-data-drift.result.general_drift"],
            trigger_kinds=["data-drift-detected"], criteria={"count": 1}, reset_policy="manual",
            notifications=[{"kind": "webhook", "url": f"http://127.0.0.1:9/hooks/{HOOK_SECRET}", "timeout": 1,
                            "retries": 0}])
        store.add_alert_config(project, HOSTILE_ALERT, summary="x", severity="low", entities=[hostile],
                               trigger_kinds=["data-drift-detected"], criteria={"count": 5}, reset_policy="auto")

    start_ms = (int(time.time() * 1000) // 60_000 - 5) * 60_000
    lines, windows, rows, errors = [], [], {}, {}
    for w in range(4):
        w_start = start_ms + w * 60_000
        frame = _window_rows(rng, w)
        end = dt.datetime.fromtimestamp((w_start + 60_000) / 1000, dt.timezone.utc)
        windows.append((dt.datetime.fromtimestamp(w_start / 1000, dt.timezone.utc), end))
        rows[end], errors[end] = frame, ERRORS_PER_WINDOW
        for i, row in enumerate(frame.to_dict("records")):
            lines.append(json.dumps({"endpoint_id": drifting, "timestamp": w_start + i * 250, "request_id": f"r{w}-{i}",
                                     "inputs": [[row[f] for f in FEATURES] + [row["channel"]]],
                                     "outputs": [round(float(rng.uniform()), 4)], "latency_us": 500 + i}))
        for i in range(ERRORS_PER_WINDOW):
            lines.append(json.dumps({"endpoint_id": drifting, "timestamp": w_start + 59_000 + i, "request_id": f"e{w}-{i}",
                                     "inputs": [[0.0] * len(FEATURES) + ["web"]], "error": "model crashed",
                                     "latency_us": 10}))
    # the hostile endpoint: one quiet window, read before the later windows move the watermark on
    lines[:0] = [json.dumps({"endpoint_id": hostile, "timestamp": start_ms + i * 1000, "request_id": f"h{i}",
                             "inputs": [rng.normal(size=len(FEATURES)).round(5).tolist()]}) for i in range(50)]
    # bad records: two that name no endpoint, one the drifting endpoint's (counted on it)
    lines += ["{not json", json.dumps({"hello": "world"}),
              json.dumps({"endpoint_id": drifting, "timestamp": start_ms,
                          "inputs": [[0.0] * len(FEATURES) + ["web"]] * 2, "outputs": [1, 2, 3]})]
    stream = Path(settings.stream_path.removeprefix("file://")) / topic_names(project)["events"]
    stream.mkdir(parents=True, exist_ok=True)
    (stream / "events-0.jsonl").write_text("\n".join(lines) + "\n")

    job = subprocess.run([sys.executable, "-m", "streamdrift.jobs.cli", "run", "--bounded", "--checkpoint-interval-seconds", "5"],
                         env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=600)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "job.log").write_text(job.stdout + job.stderr)
    assert job.returncode == 0, job.stderr[-3000:]
    yield Stores(project, settings, env, password, drifting, hostile, windows, rows, errors, reference)
    drop_mariadb_user(mysql, database, user)


# --------------------------------------------------------------------------------- the server and the browser


def _free_port(start: int = 28700) -> int:
    """A port no socket holds, below Linux's ephemeral ports (32768-60999): one of those can be the
    local end of any client's connection, which nothing listens on (a connect finds it free) and
    the server then cannot bind."""
    for port in range(start, start + 100):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + 99}")


class Server:
    """``streamdrift ui`` in a subprocess, its output in a log file."""

    def __init__(self, stores: Stores, name: str, *args: str, token: str | None = None):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = ARTIFACTS / f"{name}.log"
        env = {**os.environ, **stores.env}
        env.pop("STREAMDRIFT_UI_TOKEN", None)
        if token:
            env["STREAMDRIFT_UI_TOKEN"] = token
        self.args = [sys.executable, "-m", "streamdrift.jobs.cli", "ui", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(self.args, env=env, cwd=ROOT, stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/static/app.css", timeout=2).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.2)
        raise RuntimeError(f"the dashboard did not answer: {self.log.read_text()}")

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        return self.log.read_text()


def http(method: str, url: str, data: dict | None = None, headers: dict | None = None):
    """(status, body text) of a request (no redirect followed)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


SEEN: list[str] = []  # every page and API answer of the module, searched for secrets at the end


@pytest.fixture(scope="module")
def server(stores, flink):
    srv = Server(stores, "ui-server", "--flink-rest", flink.address, token=TOKEN)
    yield srv
    SEEN.append(srv.stop())


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = local_services.ensure_chromium()
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(profile, executable_path=executable, headless=True,
                                                       args=BROWSER_ARGS, viewport={"width": 1500, "height": 1000})
        yield context
        context.close()


class Visit:
    """A page loaded in the browser, with what its console said."""

    def __init__(self, browser, url: str, shot: str | None = None):
        self.page = browser.new_page()
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.response = self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        SEEN.append(self.page.content())
        if shot:
            self.page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector).strip()

    def attr(self, selector: str, name: str) -> str | None:
        return self.page.get_attribute(selector, name)

    def close(self) -> None:
        self.page.close()


def visit(browser, url, shot=None) -> Visit:
    return Visit(browser, url, shot)


def page_url(server: Server, stores: Stores, *segments, **query) -> str:
    from streamdrift.ui.app import url

    return server.base + url("projects", stores.project, *segments, **query)


def iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------- independent numbers


def padded_edges(stats) -> np.ndarray:
    from streamdrift.udfs.reference import pad_hist

    return np.asarray(pad_hist(stats["hist"][0], stats["hist"][1])[1])


def column_drift(stats: dict, values) -> tuple[float, float, float]:
    """(TVD, Hellinger, (TVD + Hellinger) / 2) of window values against a reference column, with numpy:
    numeric columns counted on the reference's padded edges, categorical ones on its categories + other."""
    if "categories" in stats:
        cats = list(stats["categories"])
        counts = np.zeros(len(cats) + 1)
        for v in values:
            counts[cats.index(v) if v in cats else len(cats)] += 1
        ref = np.asarray([*stats["category_counts"], stats.get("other_count", 0)], dtype=float)
    else:
        counts = np.histogram(np.asarray(values, dtype=float), bins=padded_edges(stats))[0].astype(float)
        ref = np.asarray(pad_histogram_counts(stats), dtype=float)
    p, q = counts / counts.sum(), ref / ref.sum()
    tvd = float(np.abs(p - q).sum() / 2)
    hellinger = float(np.sqrt(max(1 - np.sqrt(p * q).sum(), 0)))
    return tvd, hellinger, (tvd + hellinger) / 2


def pad_histogram_counts(stats) -> list:
    from streamdrift.udfs.reference import pad_hist

    return pad_hist(stats["hist"][0], stats["hist"][1])[0]


def expected_drift(stores: Stores, end: dt.datetime) -> dict[str, tuple[float, float, float]]:
    with stores.store() as store:
        stats = store.get_endpoint(stores.drifting).feature_stats
    rows = stores.rows[end]
    return {name: column_drift(stats[name], rows[name]) for name in [*FEATURES, "channel"]}


def status_of(value: float) -> int:
    return 2 if value >= 0.7 else 1 if value >= 0.5 else 0


# --------------------------------------------------------------------------------- the job wrote what we sent


def test_the_job_wrote_one_result_per_window_with_the_drift_of_the_rows_sent(stores):
    """The premise of every page check: the stores hold the drift of the rows sent (numpy, offline)."""
    with stores.tsdb() as tsdb:
        results = {r.end_infer_time: r for r in tsdb.query_results(stores.project, stores.drifting,
                                                                   result_name="general_drift")}
    assert sorted(results) == [end for _, end in stores.windows]
    for _, end in stores.windows:
        per_column = expected_drift(stores, end)
        assert results[end].value == pytest.approx(np.mean([d for _, _, d in per_column.values()]), abs=1e-9)
    assert [results[end].status for _, end in stores.windows] == [0, 0, 1, 2]


# --------------------------------------------------------------------------------- every view


def _views(stores: Stores, last_end: dt.datetime) -> dict[str, tuple]:
    e, h = stores.drifting, stores.hostile
    return {
        "overview": (), "endpoints": ("endpoints",), "endpoint-overview": ("endpoints", e),
        "features": ("endpoints", e, "features"), "metrics": ("endpoints", e, "metrics"),
        "window": ("endpoints", e, "windows", iso(last_end)), "endpoint-alerts": ("endpoints", e, "alerts"),
        "alerts": ("alerts",), "applications": ("applications",),
        "hostile-overview": ("endpoints", h), "hostile-features": ("endpoints", h, "features"),
        "hostile-metrics": ("endpoints", h, "metrics"), "hostile-alerts": ("endpoints", h, "alerts"),
    }


@pytest.mark.parametrize("view", ["overview", "endpoints", "endpoint-overview", "features", "metrics", "window",
                                  "endpoint-alerts", "alerts", "applications", "hostile-overview", "hostile-features",
                                  "hostile-metrics", "hostile-alerts"])
def test_every_view_loads_without_console_errors(stores, server, browser, view):
    segments = _views(stores, stores.windows[-1][1])[view]
    v = visit(browser, page_url(server, stores, *segments) + ("/" if not segments else ""), shot=view)
    try:
        assert v.response.status == 200, v.page.content()[:2000]
        assert v.problems == [] and v.dialogs == []
        if view == "metrics":
            assert v.attr("#metrics", "data-drawn") == "true"  # the charts were drawn from the API
    finally:
        v.close()
    if view in ("metrics", "features") and os.environ.get("STREAMDRIFT_UPDATE_SCREENSHOTS") == "1":
        page = browser.new_page()
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(page_url(server, stores, *segments))
        page.wait_for_load_state("networkidle")
        docs = ROOT / "docs" / "img"
        docs.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(docs / f"dashboard-{view}.png"))
        page.close()


# --------------------------------------------------------------------------------- numbers on the pages


def test_endpoints_list_shows_the_counts_sent_and_the_stored_verdict(stores, server, browser):
    with stores.tsdb() as tsdb:
        latest = {r.result_name: r for r in tsdb.latest_status(stores.project, stores.drifting)
                  if r.application_name == "histogram-data-drift"}
    with stores.store() as store:
        endpoint = store.get_endpoint(stores.drifting)
    verdict = latest.get("feature_drift") or latest["general_drift"]
    status = endpoint.drift_status if endpoint.drift_status is not None else verdict.status
    value = endpoint.drift_measure if endpoint.drift_status is not None else verdict.value
    v = visit(browser, page_url(server, stores, "endpoints"))
    try:
        row = f'tr[data-endpoint="{stores.drifting}"]'
        sent = sum(len(r) for r in stores.rows.values()) + sum(stores.errors.values())
        assert v.text(f"{row} [data-field=events]") == f"{sent:,}"
        assert v.text(f"{row} [data-field=errors]") == f"{sum(stores.errors.values()):,}"
        assert v.attr(f"{row} .badge", "class") == f"badge {STATUS_CLASS[status]}"
        assert v.text(f"{row} [data-field=drift]") == f"{value:.3f}"
        assert v.text(f"{row} [data-field=open_alerts]") == "1"  # the manual alert the drift fired
        assert v.page.locator(f"{row} svg.sparkline circle").count() == 4
        # filtering by status keeps only the endpoints of that status
        v.page.select_option("select[name=status]", STATUS_CLASS[status])
        v.page.click("form.filters button")
        v.page.wait_for_load_state("networkidle")
        shown = v.page.locator("tr[data-endpoint]").evaluate_all("rows => rows.map(r => r.dataset.endpoint)")
        assert stores.drifting in shown and stores.hostile not in shown
        assert f"status={STATUS_CLASS[status]}" in v.page.url
    finally:
        v.close()


def test_endpoint_overview_shows_each_windows_rows_and_general_drift(stores, server, browser):
    v = visit(browser, page_url(server, stores, "endpoints", stores.drifting))
    try:
        for _, end in stores.windows:
            row = f'#recent-windows tr[data-window="{iso(end)}"]'
            assert v.text(f"{row} [data-field=rows]") == f"{len(stores.rows[end]):,}"  # errors carry no row
            expected = np.mean([d for _, _, d in expected_drift(stores, end).values()])
            assert v.text(f"{row} [data-field=general_drift]") == f"{expected:.3f}"
        assert v.text("#endpoint-fields [data-field=reference_rows]") == "2,000"
        assert v.text("[data-field=dead_letters] .value") == "1"  # the bad record that named it
    finally:
        v.close()


def test_features_analysis_of_the_drifted_window(stores, server, browser):
    end = stores.windows[-1][1]
    drift = expected_drift(stores, end)
    most = max(drift, key=lambda n: drift[n][0])
    v = visit(browser, page_url(server, stores, "endpoints", stores.drifting, "features", sort="tvd"))
    try:
        first = v.page.locator("#features tbody tr").first
        assert first.get_attribute("data-column") == most
        assert float(first.locator("[data-field=tvd]").get_attribute("data-value")) == pytest.approx(drift[most][0],
                                                                                                   abs=1e-9)
        assert first.locator("[data-field=tvd]").inner_text().strip() == f"{drift[most][0]:.3f}"
        assert first.locator("[data-field=hellinger]").inner_text().strip() == f"{drift[most][1]:.3f}"
        rows = stores.rows[end]
        for name in FEATURES:
            row = v.page.locator(f'#features tr[data-column="{name}"]')
            assert row.locator("[data-field=actual_count]").inner_text().strip() == f"{len(rows):,}"
            assert row.locator("[data-field=expected_count]").inner_text().strip() == "2,000"
            assert row.locator("[data-field=actual_mean]").inner_text().strip() == f"{rows[name].mean():.4g}"
            assert row.locator("[data-field=expected_mean]").inner_text().strip() == \
                f"{stores.reference[name].mean():.4g}"
            assert row.locator("svg.hist rect").count() > 0
        general = np.mean([d for _, _, d in drift.values()])
        assert v.text("#window-summary [data-field=rows] .value") == f"{len(rows):,}"
        assert v.attr("#window-summary [data-field=general_drift] .badge", "class") == \
            f"badge {STATUS_CLASS[status_of(general)]}"
        assert v.text("#window-summary [data-field=general_drift] .value").startswith(f"{general:.3f}")
        assert "score" in v.text("#unmonitored")  # the output has no reference statistics
    finally:
        v.close()


def test_metrics_card_badge_threshold_lines_and_status_colours(stores, server, browser):
    values = {end: np.mean([d for _, _, d in expected_drift(stores, end).values()]) for _, end in stores.windows}
    statuses = {end: status_of(value) for end, value in values.items()}
    worst_end = max(values, key=lambda t: (statuses[t], t))
    v = visit(browser, page_url(server, stores, "endpoints", stores.drifting, "metrics", range="all"))
    try:
        card = 'section[data-app="histogram-data-drift"] article[data-series="general_drift"]'
        assert v.attr(f"{card} .corner .badge", "class") == f"badge {STATUS_CLASS[statuses[worst_end]]}"
        assert v.text(f"{card} [data-field=worst]") == \
            f"{values[worst_end]:.3f} at {worst_end.strftime('%Y-%m-%d %H:%M:%S')}"
        line = v.page.locator(f"{card} .chart.line")
        plot = line.evaluate("el => ({layout: el.layout, data: el.data.map(t => ({x: t.x, y: t.y, "
                             "color: t.marker && t.marker.color, name: t.name}))})")
        lines = {(round(s["y0"], 6), s["line"]["color"]) for s in plot["layout"]["shapes"] if s.get("xref") == "paper"}
        assert {(0.5, COLORS["potential"]), (0.7, COLORS["detected"])} <= lines
        series = plot["data"][0]
        assert series["color"] == [COLORS[STATUS_CLASS[statuses[end]]] for _, end in stores.windows]
        assert series["y"] == pytest.approx([values[end] for _, end in stores.windows], abs=1e-9)
        # the activation of the manual alert, marked on the time axis at its window end
        marks = [s for s in plot["layout"]["shapes"] if s.get("xref") == "x"]
        assert [m["x0"] for m in marks] == [iso(stores.windows[-1][1])]
        # a metric card of the other application, and its chart
        assert v.page.locator('section[data-app="data-quality"] article[data-kind="metric"]').count() >= 1
        # a click on the first window's point opens that window
        x, y = line.evaluate("""el => { const fl = el._fullLayout, box = el.getBoundingClientRect(), t = el.data[0];
            return [box.left + fl._size.l + fl.xaxis.d2p(t.x[0]), box.top + fl._size.t + fl.yaxis.d2p(t.y[0])]; }""")
        with v.page.expect_navigation():
            v.page.mouse.click(x, y)
        assert urllib.parse.unquote(v.page.url).endswith(f"/windows/{iso(stores.windows[0][1])}")
        assert v.text("#window-title").startswith(f"Window {stores.windows[0][0].strftime('%Y-%m-%d %H:%M:%S')}")
    finally:
        v.close()


def test_window_drill_down_lists_its_rows_most_drifted_columns_first(stores, server, browser):
    end = stores.windows[-1][1]
    drift = expected_drift(stores, end)
    v = visit(browser, page_url(server, stores, "endpoints", stores.drifting, "windows", iso(end)))
    try:
        assert v.text(".tile[data-field=rows] .value") == f"{len(stores.rows[end]):,}"
        chips = v.page.locator("#drifted-columns .chip").evaluate_all(
            "cs => cs.map(c => [c.dataset.column, c.className.replace('chip ', '')])")
        rank = {"detected": 2, "potential": 1, "ok": 0}
        assert [c for c, _ in chips] == sorted(drift, key=lambda n: (-rank[dict(chips)[n]], -drift[n][2]))
        chips = [c for c, _ in chips]
        headers = v.page.locator("#raw-rows thead th").all_inner_texts()
        assert headers[:2] == ["timestamp", "request_id"] and headers[2] == chips[0]
        # every good row sent in the window, and the failed requests, are in Parquet
        sent = len(stores.rows[end]) + stores.errors[end]
        assert f"{sent} rows in Parquet" in v.page.inner_text("main")
    finally:
        v.close()


def test_deep_links_reproduce_the_same_view(stores, server, browser):
    """Choosing a window and a range in the page changes the URL; that URL, opened afresh, shows the same."""
    older = stores.windows[1][1]
    v = visit(browser, page_url(server, stores, "endpoints", stores.drifting, "features"))
    try:
        with v.page.expect_navigation():
            v.page.select_option("#window-picker select[name=window]", iso(older))
        v.page.wait_for_load_state("networkidle")
        link = v.page.url
        assert urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["window"] == [iso(older)]
        shown = v.text("#features")
        again = visit(browser, link)
        assert again.text("#features") == shown and again.text("#window-summary") == v.text("#window-summary")
        again.close()
        with v.page.expect_navigation():
            v.page.click("nav.tabs >> text=Metrics")
        with v.page.expect_navigation():
            v.page.click('#range-picker a[data-range="all"]')
        v.page.wait_for_load_state("networkidle")
        cards = v.text("#metrics")
        again = visit(browser, v.page.url)
        assert "range=all" in v.page.url and again.text("#metrics") == cards
        again.close()
    finally:
        v.close()


def test_hostile_names_render_as_text(stores, server, browser):
    for segments in [("endpoints",), ("endpoints", stores.hostile), ("alerts",)]:
        v = visit(browser, page_url(server, stores, *segments))
        try:
            text = v.page.inner_text("main")
            assert HOSTILE in text or HOSTILE_ALERT in text
            if segments == ("endpoints", stores.hostile):
                assert v.text("#endpoint-name").startswith(HOSTILE)
                assert HOSTILE_FUNCTION in text
            assert v.dialogs == [] and v.problems == []
            # no script but ours, no element made from a name
            sources = v.page.locator("script").evaluate_all("ss => ss.map(s => s.getAttribute('src'))")
            assert all(s and s.startswith("/static/") for s in sources)
            assert v.page.locator("img").count() == 0
        finally:
            v.close()


def test_resetting_an_alert_needs_the_token(stores, server, browser):
    reset = page_url(server, stores, "alerts", "drift-held", "reset")
    api_reset = server.base + "/api/v1" + reset[len(server.base):]
    with stores.store() as store:
        assert [a.reset_at for a in store.list_activations(stores.project, "drift-held")] == [None]
    assert http("POST", reset, {})[0] == 403
    assert http("POST", reset, {"token": "wrong-" + TOKEN})[0] == 403
    assert http("POST", api_reset, headers={"Authorization": "Bearer nope"})[0] == 403
    assert http("GET", reset)[0] == 404  # a GET changes nothing
    with stores.store() as store:
        assert [a.reset_at for a in store.list_activations(stores.project, "drift-held")] == [None]
    v = visit(browser, page_url(server, stores, "alerts"))
    try:
        row = 'tr[data-alert="drift-held"]'
        assert v.text(f"{row} [data-field=state]") == "active"
        v.page.fill(f"{row} input[name=token]", TOKEN)
        with v.page.expect_navigation():
            v.page.click(f"{row} button")
        v.page.wait_for_load_state("networkidle")
        assert v.text(f"{row} [data-field=state]") == "inactive" and v.page.locator("#reset-done").count() == 1
        assert TOKEN not in v.page.url and TOKEN not in v.page.content()
    finally:
        v.close()
    with stores.store() as store:
        activations = store.list_activations(stores.project, "drift-held")
    assert len(activations) == 1 and activations[0].reset_at is not None


def test_a_server_without_token_is_read_only_and_reports_an_unreachable_flink(stores, browser):
    srv = Server(stores, "ui-read-only", "--flink-rest", "127.0.0.1:1")
    try:
        status, body = http("POST", srv.base + f"/api/v1/projects/{stores.project}/alerts/drift-held/reset",
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 403 and "read-only" in body
        v = visit(browser, srv.base + f"/projects/{stores.project}/alerts")
        assert v.page.locator("form.reset").count() == 0 and "read-only" in v.text("footer")
        v.close()
        v = visit(browser, srv.base + f"/projects/{stores.project}/")
        assert "does not answer" in v.text("#job-health")
        v.close()
    finally:
        SEEN.append(srv.stop())


def test_overview_tiles_and_the_jobs_health_from_flink(stores, server, browser, flink):
    v = visit(browser, page_url(server, stores) + "/")
    try:
        sent_rows = sum(len(r) for r in stores.rows.values()) + 50
        assert v.text("[data-field=endpoints] .value") == "2"
        assert v.text("[data-field=rows] .value") == f"{sent_rows:,}"
        assert v.text("[data-field=errors] .value") == f"{sum(stores.errors.values()):,}"
        last = stores.windows[-1][1]
        per_second = (len(stores.rows[last]) + stores.errors[last]) / 60  # the hostile endpoint's window is older
        assert v.text("[data-field=events_per_second] .value") == f"{per_second:.1f}"
        with stores.store() as store:  # held: not reset, of a manual alert (0 once the reset test ran)
            held = [a for a in store.list_activations(stores.project) if a.reset_at is None
                    and store.get_alert_config(stores.project, a.alert_name).reset_policy == "manual"]
        assert v.text("[data-field=open_alerts] .value") == str(len(held))
        assert v.text("[data-field=dead_letters] .value") == "3"  # every bad record sent
        jobs = json.loads(urllib.request.urlopen(f"http://{flink.address}/jobs/overview", timeout=5).read())["jobs"]
        shown = v.page.locator("#job-health tr[data-job]").count()
        if jobs:
            running = [j for j in jobs if j["state"] == "RUNNING"]
            assert shown == len(running) + min(5, len(jobs) - len(running))
        else:
            assert "no job has run" in v.text("#job-health")
    finally:
        v.close()


def test_applications_show_the_failures_in_the_tsdb(stores, server, browser):
    with stores.tsdb() as tsdb:
        errors = tsdb.query_errors(stores.project, error_type="mm-app-failed", application_name="broken-app")
    assert len(errors) >= 5  # every window of both endpoints
    v = visit(browser, page_url(server, stores, "applications"))
    try:
        assert v.text('tr[data-app="broken-app"] [data-field=failures]') == str(len(errors))
        assert v.text('tr[data-app="data-quality"] [data-field=failures]') == "0"
        assert "histogram-data-drift" in v.text("#applications")
    finally:
        v.close()


def test_the_api_answers_what_the_cli_prints(stores, server):
    def cli(*args):
        out = subprocess.run([sys.executable, "-m", "streamdrift.jobs.cli", *args, "--json"], env={**os.environ, **stores.env},
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    def api(path):
        status, body = http("GET", f"{server.base}/api/v1/projects/{stores.project}/{path}")
        assert status == 200, body
        SEEN.append(body)
        return json.loads(body)

    listed = {e["endpoint_id"]: e for e in api("endpoints")}
    for e in cli("endpoints", "list"):
        assert {k: listed[e["endpoint_id"]][k] for k in e} == e
    assert api(f"endpoints/{urllib.parse.quote(stores.drifting)}") == cli("endpoints", "show", stores.drifting)
    by_name = {a["name"]: a for a in api("alerts")}
    for a in cli("alerts", "list"):
        assert {k: by_name[a["name"]][k] for k in a if k != "state"} == {k: v for k, v in a.items() if k != "state"}
    assert api("alerts/drift-held")["name"] == "drift-held"


def test_no_secret_in_pages_api_answers_or_logs(stores, server):
    for path in ["", "endpoints", "alerts", "applications"]:
        SEEN.append(http("GET", f"{server.base}/api/v1/projects/{stores.project}/{path}")[1])
    SEEN.append(Path(server.log).read_text())
    assert len(SEEN) > 20
    for text in SEEN:
        assert stores.password not in text and HOOK_SECRET not in text and TOKEN not in text
    assert any(":***@" in text for text in SEEN)  # the store's URL is shown, masked
    assert any("http://127.0.0.1:9/***" in text for text in SEEN)  # the webhook, masked
