"""The dashboard's app and views on synthetic SQLite stores (written through ``connectors`` as the job
writes them), served in-process (Starlette's TestClient): escaping of any name, paging and sorting,
the token rule, bad parameters, and the small SVG charts. The browser tests on stores written by
the real job are in ``tests/integration/test_dashboard.py``."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import string
from html.parser import HTMLParser

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from streamdrift.connectors.settings import load_settings
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from tests.dashboard_stores import write_project
from streamdrift.udfs.records import PredictionRecord, ResultRecord
from streamdrift.ui.app import create_app, fmt_time, url
from streamdrift.ui.data import adjusted_p_values, column_status, parse_time
from streamdrift.ui.svg import histogram, sparkline

PROJECT = "shop"
TOKEN = "t0ken-for-tests"


def _settings(tmp_path, written):
    return load_settings({"data_dir": str(tmp_path), "project": PROJECT, "base_period": 1,
                          "endpoint_store_connection": written.store_url, "tsdb_connection": written.tsdb_url}, env={})


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """30 endpoints of 12 columns, 5 windows each; endpoint i's events per window: 200 + i % 7."""
    path = tmp_path_factory.mktemp("shop")
    written = write_project(path, PROJECT, endpoints=30, columns=12, windows=5)
    app = create_app(_settings(path, written), token=TOKEN, host="testserver")
    with TestClient(app) as client:
        yield written, client


def test_every_page_answers(shop):
    written, client = shop
    e, end = written.endpoint_ids[3], written.window_ends[-1].isoformat()
    for path in [url("projects", PROJECT) + "/", url("projects", PROJECT, "endpoints"),
                 url("projects", PROJECT, "endpoints", e), url("projects", PROJECT, "endpoints", e, "features"),
                 url("projects", PROJECT, "endpoints", e, "metrics"), url("projects", PROJECT, "endpoints", e, "alerts"),
                 url("projects", PROJECT, "endpoints", e, "windows", end), url("projects", PROJECT, "alerts"),
                 url("projects", PROJECT, "applications")]:
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert client.get("/api/v1" + path).status_code == 200, path


def test_pages_refresh_themselves_every_30_seconds(shop):
    _, client = shop
    for path in [f"/projects/{PROJECT}/", f"/projects/{PROJECT}/endpoints", f"/projects/{PROJECT}/alerts"]:
        assert '<meta http-equiv="refresh" content="30">' in client.get(path).text


def test_empty_states_say_what_to_do(tmp_path):
    written = write_project(tmp_path, PROJECT, endpoints=1, columns=3, windows=0)
    now = dt.datetime(2026, 11, 26, 12, 0, 40, tzinfo=dt.timezone.utc)
    app = create_app(_settings(tmp_path, written))
    app.state.dashboard.clock = lambda: now
    with TestClient(app, base_url="http://127.0.0.1") as client:
        empty = client.get("/projects/nothing-here/").text
        assert "streamdrift endpoints create --project nothing-here --model MODEL" in empty
        assert "streamdrift endpoints create --project nothing-here" in client.get("/projects/nothing-here/endpoints").text
        e = written.endpoint_ids[0]
        for path in ["/", f"/endpoints/{e}", f"/endpoints/{e}/features", f"/endpoints/{e}/metrics"]:
            page = client.get(f"/projects/{PROJECT}{path}").text
            # the current one-minute window closes at the next whole minute
            assert "closes at 2026-11-26 12:01:00 UTC" in page, path
        # staggered (--stagger-windows): the endpoint's window starts at its offset after whole minutes
        offset = int(hashlib.md5(e.encode()).hexdigest()[:2], 16) * 60_000 // 256
        end_ms = (int(now.timestamp() * 1000) - offset) // 60_000 * 60_000 + offset + 60_000
        staggered = dt.datetime.fromtimestamp(end_ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        for path in [f"/endpoints/{e}", f"/endpoints/{e}/features", f"/endpoints/{e}/metrics"]:
            assert f"(at {staggered} UTC if the job staggers windows" in client.get(f"/projects/{PROJECT}{path}").text


def test_the_overview_rate_counts_each_endpoints_last_window_when_they_end_at_different_times(tmp_path):
    """Staggered windows (--stagger-windows) end at different times: the overview's events per
    second sums each endpoint's last window, not only those ending at the latest end."""
    last = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc)
    written = write_project(tmp_path, PROJECT, endpoints=2, columns=2, windows=2, first_end=last - dt.timedelta(minutes=1))
    later = last + dt.timedelta(seconds=20)  # a third window of the second endpoint, 20 s later than the other's last
    e = written.endpoint_ids[1]
    extra = PredictionRecord(PROJECT, e, later - dt.timedelta(minutes=1), later, 90, 95, 5, 90, 800.0, 700.0, 1500.0,
                             2500.0, later - dt.timedelta(minutes=1), later)
    with SqlStore(written.store_url) as store, open_tsdb(written.tsdb_url) as tsdb:
        store.record_window([], [], extra)
        tsdb.write_window([], [], [], [extra])
    app = create_app(_settings(tmp_path, written))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        overview = client.get(f"/api/v1/projects/{PROJECT}").json()
    # the first endpoint's last window ends at 12:00, the second's at 12:00:20 (not its 12:00 one too)
    assert overview["events_per_second"] == pytest.approx((written.events[written.endpoint_ids[0]] + 95) / 60)
    assert overview["last_window"]["events"] == written.events[written.endpoint_ids[0]] + 95


def test_endpoints_are_sorted_filtered_and_paged(shop):
    written, client = shop
    by_events = client.get(f"/api/v1/projects/{PROJECT}/endpoints?sort=events&order=asc").json()
    expected = sorted(written.endpoint_ids, key=lambda i: (written.events[i] * 5, i))
    assert [e["endpoint_id"] for e in by_events] == expected
    assert [e["events_count"] for e in by_events] == [written.events[i] * 5 for i in expected]
    page = client.get(f"/projects/{PROJECT}/endpoints?sort=events&order=asc&per_page=7&page=2").text
    shown = re.findall(r'<tr data-endpoint="([^"]+)"', page)
    assert shown == expected[7:14] and "page 2 of 5" in page
    labelled = client.get(f"/api/v1/projects/{PROJECT}/endpoints?label=lab").json()
    assert sorted(e["endpoint_id"] for e in labelled) == [i for n, i in enumerate(written.endpoint_ids) if n % 4 == 0]
    status = written.reports[-1].status  # every endpoint has the same last window here
    css = {2: "detected", 1: "potential", 0: "ok"}[int(status)]
    assert len(client.get(f"/api/v1/projects/{PROJECT}/endpoints?status={css}").json()) == 30
    assert client.get(f"/api/v1/projects/{PROJECT}/endpoints?status=ok-ish").status_code == 400


def test_features_are_paged_most_drifted_first(shop):
    written, client = shop
    e = written.endpoint_ids[0]
    columns = written.reports[-1].to_dict()["columns"]
    order = sorted(columns, key=lambda n: (-columns[n]["status"], -columns[n]["drift"], n))
    view = client.get(f"/api/v1/projects/{PROJECT}/endpoints/{e}/features?per_page=5&page=2").json()
    assert [c["name"] for c in view["columns"]] == order[5:10]
    assert view["paging"] == {"page": 2, "pages": 3, "per_page": 5, "total": 12}
    assert [c["tvd"] for c in view["columns"]] == [columns[n]["tvd"] for n in order[5:10]]
    older = written.window_ends[1]
    view = client.get(f"/api/v1/projects/{PROJECT}/endpoints/{e}/features?window={older.isoformat()}").json()
    assert view["window"]["end"] == older.isoformat().replace("+00:00", "Z")
    assert view["window"]["general_drift"]["value"] == written.reports[1].general_drift
    found = client.get(f"/api/v1/projects/{PROJECT}/endpoints/{e}/features?q=0007").json()["columns"]
    assert [c["name"] for c in found] == ["feature_0007"]


def _bh_by_hand(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: q_(i) = min over j >= i of p_(j) m / j."""
    order = np.argsort(p)
    scaled = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.empty_like(p)
    q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1)
    return q


def test_the_per_feature_tests_verdict_per_column(tmp_path):
    """With a feature_drift result (the per-feature test), a column's verdict is the test's: detected
    when its adjusted p-value is within FDR 0.1 %, potential within 1 %."""
    written = write_project(tmp_path, PROJECT, endpoints=1, columns=12, windows=2)
    names = sorted(written.stats)
    p_values = np.array([1e-6, 2e-4, 8e-4, 0.002, 0.004, 0.03, 0.2, 0.5, 0.6, 0.7, 0.9, 1.0])
    q = _bh_by_hand(p_values)
    rejected = q <= 0.01
    columns = {n: {"p_value": float(pv), "rejected": bool(r), "n": 200, "N": 500, "effect": 1.0}
               for n, pv, r in zip(names, p_values, rejected)}
    end, e = written.window_ends[-1], written.endpoint_ids[0]
    record = ResultRecord(PROJECT, e, "histogram-data-drift", "feature_drift", 0, 2, float(rejected.mean()),
                          end - dt.timedelta(minutes=1), end, {"columns": columns})
    with SqlStore(written.store_url) as store, open_tsdb(written.tsdb_url) as tsdb:
        store.upsert_latest_results([record])
        tsdb.write_results([record])
    with TestClient(create_app(_settings(tmp_path, written)), base_url="http://127.0.0.1") as client:
        view = client.get(f"/api/v1/projects/{PROJECT}/endpoints/{e}/features").json()
        assert view["column_verdict"] == "test"
        got = {c["name"]: (c["status"]["status"], c["q_value"]) for c in view["columns"]}
        expected = np.where(q <= 0.001, 2, np.where(q <= 0.01, 1, 0))
        assert {n: got[n][0] for n in names} == dict(zip(names, expected.tolist()))
        assert [got[n][1] for n in names] == pytest.approx(q.tolist())
        assert [c["status"]["status"] for c in view["columns"]] == sorted(expected.tolist(), reverse=True)
        metrics = client.get(f"/api/v1/projects/{PROJECT}/endpoints/{e}/metrics?range=all").json()
        (series,) = [s for a in metrics["applications"] for s in a["results"] if s["name"] == "feature_drift"]
        assert [lv["fdr"] for lv in series["levels"]] == [0.01, 0.001]
        assert series["points"][-1]["q"] == pytest.approx(q.min())
        page = client.get(f"/projects/{PROJECT}/endpoints/{e}/features").text
        assert "Verdict per column: the per-feature test" in page


def test_metrics_range_and_worst_status(shop):
    written, client = shop
    e = written.endpoint_ids[0]
    view = client.get(f"/api/v1/projects/{PROJECT}/endpoints/{e}/metrics?range=all").json()
    (general,) = [s for a in view["applications"] for s in a["results"] if s["name"] == "general_drift"]
    statuses = [int(r.status) for r in written.reports]
    worst = max(range(len(statuses)), key=lambda w: (statuses[w], w))
    assert general["worst"]["status"] == statuses[worst]
    assert general["worst"]["time"] == written.window_ends[worst].isoformat().replace("+00:00", "Z")
    assert [t["value"] for t in general["thresholds"]] == [0.5, 0.7]
    start = written.window_ends[1].isoformat()
    end = written.window_ends[2].isoformat()
    custom = client.get(f"/api/v1/projects/{PROJECT}/endpoints/{e}/metrics",
                        params={"range": "custom", "start": start, "end": end}).json()
    (general,) = [s for a in custom["applications"] for s in a["results"] if s["name"] == "general_drift"]
    assert len(general["points"]) == 2
    bad = client.get(f"/api/v1/projects/{PROJECT}/endpoints/{e}/metrics", params={"range": "custom", "start": "soon"})
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]


def test_an_endpoints_problems_are_shown(tmp_path):
    written = write_project(tmp_path, PROJECT, endpoints=1, columns=2, windows=1)
    e = written.endpoint_ids[0]
    with SqlStore(written.store_url) as store:
        for _ in range(3):
            store.record_problem(PROJECT, e, "store-write-failed", "Data too long for column 'x' at row 1")
    with TestClient(create_app(_settings(tmp_path, written)), base_url="http://127.0.0.1") as client:
        page = client.get(f"/projects/{PROJECT}/endpoints/{e}").text
        row = re.search(r'<tr data-problem="store-write-failed">(.*?)</tr>', page, re.S).group(1)
        assert ">3<" in row and "Data too long for column &#39;x&#39; at row 1" in row
        (problem,) = client.get(f"/api/v1/projects/{PROJECT}/endpoints/{e}").json()["problems"]
        assert (problem["kind"], problem["occurrences"]) == ("store-write-failed", 3)


def test_missing_things_are_404_with_a_message(shop):
    _, client = shop
    page = client.get(f"/projects/{PROJECT}/endpoints/nope/features")
    assert page.status_code == 404 and "no model endpoint &#39;nope&#39;" in page.text
    assert client.get(f"/api/v1/projects/{PROJECT}/alerts/nope").status_code == 404
    assert client.get(f"/projects/{PROJECT}/whatever").status_code == 404


def test_untrusted_host_is_refused(tmp_path):
    written = write_project(tmp_path, PROJECT, endpoints=1, columns=2, windows=1)
    app = create_app(_settings(tmp_path, written), host="127.0.0.1")
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        assert client.get(f"/projects/{PROJECT}/").status_code == 200
        assert client.get(f"/projects/{PROJECT}/", headers={"host": "localhost:8765"}).status_code == 200
        # a name that resolves to this machine only by a rebinding trick is not served
        assert client.get(f"/projects/{PROJECT}/", headers={"host": "evil.example"}).status_code == 400


def _add_held_alert(store_url: str) -> None:
    with SqlStore(store_url) as store:
        store.add_alert_config(PROJECT, "held", summary="s", severity="high", entities=["*"],
                               trigger_kinds=["data-drift-detected"], criteria={"count": 1}, reset_policy="manual",
                               notifications=[{"kind": "slack", "webhook": "https://hooks.slack.com/services/T/B/SECRET1"}])
        store.add_activation(PROJECT, "held", activated_at=dt.datetime.now(dt.timezone.utc), entity="ep-00000",
                             event_kind="data-drift-detected", severity="high", summary="s")


def test_an_action_needs_the_token(tmp_path):
    written = write_project(tmp_path, PROJECT, endpoints=1, columns=2, windows=1)
    _add_held_alert(written.store_url)
    reset = f"/projects/{PROJECT}/alerts/held/reset"
    with TestClient(create_app(_settings(tmp_path, written)), base_url="http://127.0.0.1",
                    follow_redirects=False) as read_only:
        answer = read_only.post(reset, data={"token": TOKEN})
        assert answer.status_code == 403 and "read-only" in answer.text
        assert 'name="token"' not in read_only.get(f"/projects/{PROJECT}/alerts").text
    with TestClient(create_app(_settings(tmp_path, written), token=TOKEN), base_url="http://127.0.0.1",
                    follow_redirects=False) as client:
        page = client.get(f"/projects/{PROJECT}/alerts").text
        assert 'name="token"' in page and "SECRET1" not in page and "https://hooks.slack.com/***" in page
        assert client.post(reset).status_code == 403
        assert client.post(reset, data={"token": TOKEN + "x"}).status_code == 403
        assert client.post(f"/api/v1{reset}", headers={"Authorization": "Bearer nope"}).status_code == 403
        with SqlStore(written.store_url) as store:
            assert [a.reset_at for a in store.list_activations(PROJECT, "held")] == [None]
        done = client.post(reset, data={"token": TOKEN})
        assert done.status_code == 303 and done.headers["location"] == f"/projects/{PROJECT}/alerts?reset=held"
        with SqlStore(written.store_url) as store:
            assert store.list_activations(PROJECT, "held")[0].reset_at is not None
        answer = client.post(f"/api/v1{reset}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.json() == {"reset": "held", "activations_reset": []}


NAMES = st.text(alphabet=string.printable.strip() + "äø€<>&\"'", min_size=1, max_size=40).filter(str.strip)
OUR_TAGS = {"html", "head", "meta", "title", "link", "body", "header", "a", "nav", "span", "b", "main", "h1", "h2",
            "h3", "div", "form", "input", "select", "option", "button", "table", "thead", "tbody", "tr", "th", "td",
            "svg", "polyline", "circle", "rect", "section", "p", "pre", "code", "footer", "script", "label"}


class _Page(HTMLParser):
    """The tags of a page and its text, as a browser would parse them."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = set(), []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def one_endpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("names")
    written = write_project(path, PROJECT, endpoints=1, columns=2, windows=1)
    with TestClient(create_app(_settings(path, written)), base_url="http://127.0.0.1") as client:
        yield written, client


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=NAMES, function=NAMES)
def test_any_name_renders_as_text(one_endpoint, model, function):
    written, client = one_endpoint
    with SqlStore(written.store_url) as store:
        endpoint = store.get_endpoint(written.endpoint_ids[0])
        store.upsert_endpoint(endpoint.endpoint_id, project=PROJECT, model_name=model, function_name=function,
                              model_version=model, feature_names=endpoint.feature_names,
                              feature_stats=endpoint.feature_stats)
    for path in [f"/projects/{PROJECT}/endpoints", url("projects", PROJECT, "endpoints", written.endpoint_ids[0])]:
        page = _Page(client.get(path).text)
        assert page.tags <= OUR_TAGS  # no element made of a name
        text = "".join(page.text)
        assert model in text and function in text
    listed = client.get(f"/api/v1/projects/{PROJECT}/endpoints").json()
    assert (listed[0]["model_name"], listed[0]["function_name"]) == (model, function)


# --------------------------------------------------------------------------------- pieces


def test_parse_time_takes_iso_and_epoch_ms():
    utc = dt.timezone.utc
    assert parse_time("2026-11-26T12:00:00Z", "t") == dt.datetime(2026, 11, 26, 12, tzinfo=utc)
    assert parse_time("2026-11-26 13:00:00+01:00", "t") == dt.datetime(2026, 11, 26, 12, tzinfo=utc)
    assert parse_time("2026-11-26T12:00", "t") == dt.datetime(2026, 11, 26, 12, tzinfo=utc)  # naive is UTC
    assert parse_time("1795694400000", "t") == dt.datetime(2026, 11, 26, 12, tzinfo=utc)
    assert parse_time("", "t") is None
    with pytest.raises(ValueError, match="window='tomorrow' is not a time"):
        parse_time("tomorrow", "window")


def test_fmt_time_is_utc_seconds():
    assert fmt_time("2026-11-26T13:01:02.5+01:00") == "2026-11-26 12:01:02"
    assert fmt_time(None) == "-"


def test_adjusted_p_values_are_benjamini_hochberg():
    p = {"a": 0.001, "b": 0.02, "c": 0.03, "d": 0.5}
    ordered = np.array(sorted(p.values()))
    m = len(ordered)
    by_hand = np.minimum.accumulate((ordered * m / np.arange(1, m + 1))[::-1])[::-1]  # step-up, monotone
    q = adjusted_p_values(p)
    assert [q[k] for k in sorted(p, key=p.get)] == pytest.approx(list(by_hand))
    assert adjusted_p_values({"a": None}) == {}
    assert [column_status(False, 0.5), column_status(True, 0.004), column_status(True, 0.0009)] == [0, 1, 2]


def test_histogram_bars_are_the_shares_of_each_side():
    svg = histogram([0, 10, 30, 0], [5, 5, 0, 0], ["<a>", "b", "c", "d"], width=80, height=41)
    heights = [float(h) for h in re.findall(r'height="([\d.]+)"', svg)[1:]]  # the first is the svg's
    # bins 0-2 drawn (the last is empty on both sides); reference shares 0, 1/4, 3/4, window 1/2, 1/2, 0;
    # the tallest (3/4) is 40 px high
    shares = [0, 0.5, 0.25, 0.5, 0.75, 0]  # reference, window, per bin
    assert heights == pytest.approx([40 * s / 0.75 for s in shares], abs=0.06)
    assert "&lt;a&gt;" in svg and "<a>" not in svg
    assert histogram([0, 0], None) == ""


def test_sparkline_colours_points_by_status():
    svg = sparkline([{"v": 0.1, "s": 0}, {"v": None, "s": None}, {"v": 0.9, "s": 2}])
    assert re.findall(r'fill="(#[0-9a-f]+)"', svg) == ["#2ca02c", "#d62728"]
    assert sparkline([]) == ""
