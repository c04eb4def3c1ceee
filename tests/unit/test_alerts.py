"""Alerts without Flink: events from window outputs, criteria, reset policies, cooldown, dedupe of
replays and corrections (streamdrift.udfs.alerts), and the ``streamdrift alerts`` command on a SQLite store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json

import hypothesis
import hypothesis.strategies as st
import pytest

from streamdrift.jobs import alerts_cli
from streamdrift.jobs.alerts_wiring import load_alerts, lookup_activation
from streamdrift.udfs.alerts import AlertState, Recorded, evaluate, event_kind, events_from_output, settle
from streamdrift.udfs.alert_config import (EVENT_KINDS, AlertBook, AlertEvent, AlertSpec, format_period, parse_period,
                                           render_summary)
from streamdrift.udfs.monitor import WindowOutput
from streamdrift.udfs.records import ErrorRecord, ResultKindApp, ResultRecord
from tests.unit.clikit import run_command

UTC = dt.timezone.utc
MIN = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
EP = "ep1"
APP = "histogram-data-drift"


def _utc(ms):
    return dt.datetime.fromtimestamp(ms / 1000, UTC)


def _spec(**kw) -> AlertSpec:
    config = {"project": "shop", "name": "drift", "summary": "{{name}}: {{entity}} at {{value}}",
              "severity": "high", "entities": "*", "trigger_kinds": ["data-drift-detected"],
              "criteria": {"count": 1}, "reset_policy": "auto", "notifications": [], "version": 1}
    config.update(kw)
    return AlertSpec.from_config(config)


def _event(end_min, kind="data-drift-detected", value=0.8, endpoint=EP, result="general_drift", revision=0,
           window_min=10):
    end = T0 + end_min * MIN
    return AlertEvent("shop", endpoint, APP, result, kind, value, end - window_min * MIN, end, revision)


def _run(spec, events, state=None, now=0):
    """Feed events to one (alert, entity) state as the operator does; returns (state, steps)."""
    state = state or AlertState()
    steps = []
    for e in events:
        step = evaluate(spec, AlertState.from_bytes(state.to_bytes()), e, now)  # through bytes, as in Flink
        state = step.state
        steps.append(step)
    return state, steps


def _fired(steps):
    return [s.activation for s in steps if s.activation is not None]


# --------------------------------------------------------------------------------- events


def _result(kind, status, name="r", value=0.9):
    return ResultRecord("shop", EP, "app", name, kind, status, value, _utc(T0), _utc(T0 + 10 * MIN))


def test_event_kinds_are_mlruns_model_monitoring_kinds():
    assert set(EVENT_KINDS) == {
        "data-drift-detected", "data-drift-suspected", "concept-drift-detected", "concept-drift-suspected",
        "model-performance-detected", "model-performance-suspected", "system-performance-detected",
        "system-performance-suspected", "mm-app-anomaly-detected", "mm-app-anomaly-suspected", "mm-app-failed"}
    names = {ResultKindApp.data_drift: "data-drift", ResultKindApp.concept_drift: "concept-drift",
             ResultKindApp.model_performance: "model-performance",
             ResultKindApp.system_performance: "system-performance", ResultKindApp.mm_app_anomaly: "mm-app-anomaly"}
    for kind, name in names.items():
        assert event_kind(kind, 2) == f"{name}-detected"
        assert event_kind(kind, 1) == f"{name}-suspected"
        assert event_kind(kind, 0) is None and event_kind(kind, -1) is None


def test_a_window_output_raises_one_event_per_detection_and_failed_app():
    out = WindowOutput("shop", EP, T0, T0 + 10 * MIN, 0, 0, None,
                       results=(_result(0, 2, "general_drift", 0.81), _result(1, 1, "concept", 0.55),
                                _result(2, 0, "accuracy"), _result(3, -1, "latency")),
                       errors=(ErrorRecord("shop", EP, "flaky", "mm-app-failed", "RuntimeError: boom",
                                           _utc(T0 + 10 * MIN)),))
    events = events_from_output(out)
    assert [(e.kind, e.entity, e.value) for e in events] == [
        ("data-drift-detected", f"{EP}.app.result.general_drift", 0.81),
        ("concept-drift-suspected", f"{EP}.app.result.concept", 0.55),
        ("mm-app-failed", f"{EP}.flaky", None)]
    assert events[2].message == "RuntimeError: boom"
    assert all(e.end_ms == T0 + 10 * MIN for e in events)
    late = dataclasses.replace(out, revision=-1)
    assert events_from_output(late) == []


@pytest.mark.parametrize("verdict, raised", [(None, ["general_drift", "feature_drift", "mine"]),
                                              ("feature_drift", ["feature_drift", "mine"]),
                                              ("general_drift", ["general_drift", "mine"])])
def test_only_the_verdict_of_the_default_application_raises_data_drift_events(verdict, raised):
    def result(app, name):
        return ResultRecord("shop", EP, app, name, 0, 2, 0.9, _utc(T0), _utc(T0 + 10 * MIN))

    out = WindowOutput("shop", EP, T0, T0 + 10 * MIN, 0, 0, None,
                       results=(result("histogram-data-drift", "general_drift"),
                                result("histogram-data-drift", "feature_drift"), result("my-app", "mine")))
    assert [e.result_name for e in events_from_output(out, verdict)] == raised


@pytest.mark.parametrize("pattern, matched", [
    ("*", {"a.histogram-data-drift.result.general_drift", "a.histogram-data-drift.result.other",
           "b.histogram-data-drift.result.general_drift", "a.flaky"}),
    ("a", {"a.histogram-data-drift.result.general_drift", "a.histogram-data-drift.result.other", "a.flaky"}),
    ("a.histogram-data-drift.result.general_drift", {"a.histogram-data-drift.result.general_drift"}),
    ("*.*.result.general_drift", {"a.histogram-data-drift.result.general_drift",
                                  "b.histogram-data-drift.result.general_drift"}),
    ("a.flaky", {"a.flaky"}),
])
def test_entities_select_endpoints_and_results(pattern, matched):
    spec = _spec(entities=pattern, trigger_kinds=["data-drift-detected", "mm-app-failed"])
    events = [_event(10, endpoint="a"), _event(10, endpoint="a", result="other"), _event(10, endpoint="b"),
              AlertEvent("shop", "a", "flaky", None, "mm-app-failed", None, T0, T0 + 10 * MIN, 0)]
    assert {e.entity for e in events if spec.matches(e)} == matched
    assert not spec.matches(dataclasses.replace(_event(10, endpoint="a"), project="other"))
    assert not spec.matches(_event(10, endpoint="a", kind="data-drift-suspected"))


# --------------------------------------------------------------------------------- configuration


def test_periods():
    assert parse_period("30m") == 30 * MIN
    assert parse_period("1h30m") == 90 * MIN
    assert parse_period("15s") == 15_000 and parse_period("1d") == 86_400_000 and parse_period(90) == 90_000
    assert parse_period(None) is None and parse_period("") is None
    for bad in ("30 minutes", "m", "-5m", "0s", True):
        with pytest.raises(ValueError, match="period"):
            parse_period(bad)


@pytest.mark.parametrize("ms, text", [(5_400_000, "1h30m"), (90_000, "1m30s"), (3_600_000, "1h"),
                                      (86_400_000 + 1, "1d1ms"), (1_500, "1s500ms"), (7 * 86_400_000, "7d")])
def test_a_period_is_shown_in_the_units_a_user_writes(ms, text):
    assert format_period(ms) == text


@hypothesis.given(st.integers(min_value=1, max_value=10**13))
def test_a_shown_period_reads_back_as_itself(ms):
    assert parse_period(format_period(ms)) == ms


def test_summary_template():
    spec = _spec(summary="[{{severity}}] {{project}}/{{name}}: {{entity}} {{kind}} = {{value}} "
                         "in {{window_start}}..{{window_end}} ({{count}} events, {{result_name}})")
    (act,) = _fired(_run(spec, [_event(10, value=0.812345)])[1])
    assert act.summary == (f"[high] shop/drift: {EP}.{APP}.result.general_drift data-drift-detected = 0.8123 "
                           "in 2024-01-01T00:00:00Z..2024-01-01T00:10:00Z (1 events, general_drift)")
    assert render_summary("{{value}} {{nope}}", {"value": None}) == "- {{nope}}"


@pytest.mark.parametrize("change, message", [
    ({"severity": "urgent"}, "severity 'urgent' is not one of low, medium, high"),
    ({"reset_policy": "sometimes"}, "reset policy 'sometimes'"),
    ({"trigger_kinds": ["data-drift"]}, "unknown event kind"),
    ({"trigger_kinds": []}, "at least one trigger"),
    ({"criteria": {"count": 0}}, "count 0 must be an integer from 1"),
    ({"criteria": {"count": 2, "period": "soon"}}, "period 'soon' is not a period"),
    ({"summary": "{{model}} drifts"}, "unknown placeholder"),
    ({"notifications": [{"kind": "webhook"}]}, "needs a 'url'"),
    ({"notifications": [{"kind": "pager", "url": "http://x"}]}, "kind 'pager'"),
    ({"notifications": [{"kind": "console"}, {"kind": "console"}]}, "two notifications are the same"),
    ({"entities": []}, "entities must be"),
])
def test_bad_configurations_say_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _spec(**change)


def test_mlrun_shaped_configuration_is_accepted():
    spec = AlertSpec.from_config({
        "project": "shop", "name": "a", "summary": "Model {{project}}/{{entity}} is drifting.", "severity": "low",
        "entities": {"kind": "model-endpoint-result", "project": "shop", "ids": [f"{EP}.{APP}.result.general_drift"]},
        "trigger": {"events": ["data-drift-detected"]}, "criteria": {"count": 3, "period": "10m"},
        "notifications": [{"notification": {"kind": "slack", "name": "s",
                                            "secret_params": {"webhook": "https://hooks.slack.com/x"}},
                           "cooldown_period": "1h"}]})
    assert spec.entities == (f"{EP}.{APP}.result.general_drift",) and spec.count == 3 and spec.period_ms == 10 * MIN
    (target,) = spec.notifications
    assert (target.kind, target.params["webhook"], target.cooldown_ms, target.id) == \
        ("slack", "https://hooks.slack.com/x", 3_600_000, "s")


# --------------------------------------------------------------------------------- criteria and dedupe


def test_count_within_period_of_event_time():
    spec = _spec(criteria={"count": 3, "period": "30m"})
    # drift at window ends 10, 20, 40, 50 (not 3 within 30 minutes), then 60: 40, 50, 60
    state, steps = _run(spec, [_event(m) for m in (10, 20, 40, 50, 60)])
    assert [s.reason for s in steps] == ["counted", "counted", "counted", "counted", "activated"]
    (act,) = _fired(steps)
    assert act.window_end_ms == T0 + 60 * MIN and act.count == 3
    assert state.counted == () and state.settled_ms == T0 + 60 * MIN


def test_count_without_period_and_auto_reset_counts_again():
    spec = _spec(criteria={"count": 2})
    _, steps = _run(spec, [_event(m) for m in (10, 100, 110, 400)])
    assert [a.window_end_ms for a in _fired(steps)] == [T0 + 100 * MIN, T0 + 400 * MIN]


def test_a_replayed_or_corrected_window_does_not_count_again():
    spec = _spec(criteria={"count": 2})
    # window 10 seen three times (replay, then a correction by late data): still one event
    state, steps = _run(spec, [_event(10), _event(10), _event(10, revision=1, value=0.95)])
    assert [s.reason for s in steps] == ["counted", "already counted", "already counted"] and not _fired(steps)
    state, steps = _run(spec, [_event(20)], state)
    assert len(_fired(steps)) == 1
    # after the activation both windows are settled: replaying them raises nothing
    _, steps = _run(spec, [_event(10), _event(20), _event(20, revision=2)], state)
    assert [s.reason for s in steps] == ["settled"] * 3


def test_manual_reset_policy_holds_until_reset():
    spec = _spec(reset_policy="manual")
    state, steps = _run(spec, [_event(m) for m in (10, 20, 30)])
    assert [s.reason for s in steps] == ["activated", "held", "held"] and state.held
    reset = dataclasses.replace(spec, version=spec.version + 1)  # `streamdrift alerts reset` advances it
    state, steps = _run(reset, [_event(40), _event(50)], state)
    assert [s.reason for s in steps] == ["activated", "held"]
    assert _fired(steps)[0].window_end_ms == T0 + 40 * MIN


def test_cooldown_suppresses_repeats_per_notification():
    spec = _spec(notifications=[{"kind": "webhook", "url": "http://h/x", "cooldown": "30m", "name": "hook"},
                                {"kind": "slack", "webhook": "http://h/s", "name": "chat"}])
    _, steps = _run(spec, [_event(m) for m in (10, 20, 30, 40, 50)])
    acts = _fired(steps)
    assert len(acts) == 5  # every activation is recorded
    assert [[t.name for t in a.send] for a in acts] == [["hook", "chat"], ["chat"], ["chat"], ["hook", "chat"], ["chat"]]
    assert [(t.name, until) for t, until in acts[1].suppressed] == [("hook", T0 + 40 * MIN)]


def test_cooldown_outlives_a_manual_reset():
    spec = _spec(reset_policy="manual", notifications=[{"kind": "console", "cooldown": "1h"}])
    state, steps = _run(spec, [_event(10)])
    state, steps2 = _run(dataclasses.replace(spec, version=2), [_event(20)], state)
    assert [len(a.send) for a in _fired(steps + steps2)] == [1, 0]


def test_state_survives_bytes():
    spec = _spec(criteria={"count": 3, "period": "1h"}, reset_policy="manual",
                 notifications=[{"kind": "console", "cooldown": "1h"}])
    state, _ = _run(spec, [_event(10), _event(20), _event(30), _event(40)])
    assert AlertState.from_bytes(state.to_bytes()) == state
    assert AlertState.from_bytes(None) == AlertState()


def test_settle_follows_the_record_of_a_replayed_activation():
    spec = _spec(reset_policy="manual", notifications=[{"kind": "console", "name": "c"},
                                                       {"kind": "webhook", "url": "http://h/x", "name": "w"}])
    before = AlertState()
    step = evaluate(spec, before, _event(10), 0)
    sent = [{"id": "c", "status": "sent"}, {"id": "w", "status": "failed"}]
    done = settle(spec, before, step, Recorded(7, reset=False, notified=sent))
    assert done.activation is None and done.state.held  # recorded, not reset: still held, nothing sent
    released = settle(spec, before, step, Recorded(7, reset=True, notified=sent))
    assert released.activation is None and not released.state.held
    assert _run(spec, [_event(20)], released.state)[1][0].reason == "activated"
    pending = settle(spec, before, step, Recorded(7, reset=False, notified=[{"id": "c", "status": "sent"},
                                                                            {"id": "w", "status": "pending"}]))
    assert pending.activation.resend_id == 7 and [t.name for t in pending.activation.send] == ["w"]


def test_alert_book_skips_bad_configurations_and_keeps_specs_when_the_store_fails():
    now = [0.0]
    configs = [{"project": "shop", "name": "good", "summary": "s", "severity": "low", "entities": "*",
                "trigger_kinds": ["data-drift-detected"]},
               {"project": "shop", "name": "bad", "summary": "s", "severity": "low", "entities": "*",
                "trigger_kinds": ["nope"]}]
    calls = []

    def load():
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionError("store down")
        return configs

    book = AlertBook(load, refresh_seconds=30, clock=lambda: now[0])
    assert [s.name for s in book.matching(_event(10))] == ["good"]
    assert "unknown event kind" in book.errors[("shop", "bad")]
    now[0] = 29
    book.matching(_event(10))
    assert len(calls) == 1  # not before the refresh period
    now[0] = 31
    assert [s.name for s in book.matching(_event(10))] == ["good"] and len(calls) == 2


# --------------------------------------------------------------------------------- the command line


run_cli = functools.partial(run_command, alerts_cli.register)


@pytest.fixture()
def store_flags(tmp_path, monkeypatch):
    for name in ("STREAMDRIFT_ENDPOINT_STORE_CONNECTION", "STREAMDRIFT_PROJECT", "STREAMDRIFT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path}/alerts.sqlite"
    return url, ["--endpoint-store-connection", url, "--project", "shop"]


SLACK = "https://hooks.slack.com/services/T000/B000/SECRETSECRET"
HOOK = "http://127.0.0.1:9/hook?token=TOPSECRET"


def test_cli_add_list_show_delete(store_flags, capsys):
    url, flags = store_flags
    rc, out, err = run_cli(["alerts", "add", "drift-ep1", *flags, "--endpoint", EP, "--result", "general_drift",
                            "--trigger", "data-drift-detected,data-drift-suspected", "--count", "3",
                            "--period", "30m", "--severity", "high", "--reset-policy", "manual",
                            "--summary", "{{entity}} drifts ({{value}})", "--webhook", HOOK, "--slack", SLACK,
                            "--cooldown", "1h"], capsys)
    assert rc == 0, err
    assert "TOPSECRET" not in out and "SECRETSECRET" not in out and "https://hooks.slack.com/***" in out
    rc, out, _ = run_cli(["alerts", "list", *flags], capsys)
    assert rc == 0
    line = next(x for x in out.splitlines() if x.startswith("drift-ep1"))
    assert "high" in line and "3 in 30m" in line and "manual" in line and "webhook/1h,slack/1h" in line
    rc, out, _ = run_cli(["alerts", "show", "drift-ep1", *flags, "--json"], capsys)
    shown = json.loads(out)
    assert shown["entities"] == [f"{EP}.*.result.general_drift"] and shown["criteria"] == {"count": 3, "period": "30m"}
    assert shown["notifications"][0]["url"] == "http://127.0.0.1:9/***" and shown["activations"] == []
    assert "SECRET" not in out
    # the job's loader reads what the command wrote, secrets and all (the job needs them)
    (config,) = load_alerts(url, "shop")
    spec = AlertSpec.from_config(config)
    assert spec.notifications[0].params["url"] == HOOK and spec.reset_policy == "manual"
    rc, out, _ = run_cli(["alerts", "delete", "drift-ep1", *flags], capsys)
    assert rc == 0 and load_alerts(url, "shop") == []
    rc, _, err = run_cli(["alerts", "delete", "drift-ep1", *flags], capsys)
    assert rc == alerts_cli.EXIT_NOT_FOUND and "no alert 'drift-ep1'" in err


def test_cli_refuses_a_bad_alert_without_writing_it(store_flags, capsys):
    url, flags = store_flags
    rc, _, err = run_cli(["alerts", "add", "x", *flags, "--trigger", "drift", "--webhook", HOOK], capsys)
    assert rc == alerts_cli.EXIT_ERROR and "unknown event kind(s) 'drift'" in err
    rc, _, err = run_cli(["alerts", "add", "x", *flags, "--trigger", "mm-app-failed", "--notification", "{bad"], capsys)
    assert rc == alerts_cli.EXIT_ERROR and "--notification is not valid JSON" in err
    assert load_alerts(url, "shop") == []


def test_manual_alert_is_held_until_streamdrift_alerts_reset(store_flags, capsys):
    """The job's path on a real store: loader → book → evaluate; activations recorded as the
    dispatcher records them; `alerts reset` releases the held alert at the entity's next event."""
    from streamdrift.connectors.sql_store import SqlStore

    url, flags = store_flags
    assert run_cli(["alerts", "add", "held", *flags, "--trigger", "data-drift-detected",
                    "--reset-policy", "manual", "--console"], capsys)[0] == 0
    store = SqlStore(url)
    book = AlertBook(lambda: load_alerts(url, "shop"), refresh_seconds=3600)
    state, fired = AlertState(), []

    def feed(minutes):
        nonlocal state
        for m in minutes:
            (spec,) = book.matching(_event(m))
            step = evaluate(spec, state, _event(m), 0)
            state = step.state
            if step.activation is not None:
                a = step.activation
                store.add_activation("shop", a.alert_name, activated_at=_utc(T0), entity=a.entity,
                                     event_kind=a.event_kind, severity=a.severity, summary=a.summary,
                                     window_end=_utc(a.window_end_ms))
                fired.append(m)

    feed([10, 20, 30])
    assert fired == [10]
    rc, out, _ = run_cli(["alerts", "list", *flags], capsys)
    assert " active " in out.splitlines()[1]
    rc, out, _ = run_cli(["alerts", "reset", "held", *flags], capsys)
    assert rc == 0 and "1 open activation(s) closed" in out
    feed([40])
    assert fired == [10]  # the job has not reloaded the configurations yet
    book.refresh(force=True)
    feed([50, 60])
    assert fired == [10, 50]
    rc, out, _ = run_cli(["alerts", "show", "held", *flags], capsys)
    rows = out.split("\n\n")[1].splitlines()[1:]
    assert len(rows) == 2 and rows[0].split()[7] != "-"  # the first one reset, the second not
    assert lookup_activation(url, "shop", "held", _event(50).entity, T0 + 50 * MIN) is not None
    assert lookup_activation(url, "shop", "held", _event(50).entity, T0 + 20 * MIN) is None


def test_records_do_not_show_secrets_in_their_repr():
    spec = _spec(notifications=[{"kind": "webhook", "url": "https://ops.example.com/hook?token=TOPSECRET"}])
    (act,) = _fired(_run(spec, [_event(10)])[1])
    assert "TOPSECRET" not in repr(spec) and "TOPSECRET" not in repr(act)
    assert act.send[0].params["url"].endswith("TOPSECRET")  # the sender still has it
