"""The alert stage: the window stage's alert events (keyed by endpoint) → evaluation → notifications.

Thin: the logic is in :mod:`streamdrift.udfs.alerts`; what touches the store comes in as callables built in
``streamdrift.jobs.alerts_wiring``:

* ``load_alerts()`` → the alert configurations (mappings), reloaded every ``refresh_seconds``;
* ``lookup_activation(project, alert_name, entity, window_end_ms)`` → :class:`streamdrift.udfs.alerts.Recorded`
  or None: is this activation recorded already (a replay)?
* ``open_dispatcher()`` → an object with ``handle(activation) -> id | None`` and ``close()``.

State: one map per endpoint (the key), ``state_key(alert, entity)`` → :class:`AlertState` bytes.
It is Flink keyed state, so it is in every checkpoint and savepoint and restored with them.
"""

from __future__ import annotations

import json
import logging

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, MapFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from streamdrift.operators.metrics import ShowOnce
from streamdrift.udfs.alerts import AlertState, evaluate, settle, state_key
from streamdrift.udfs.alert_config import AlertBook

log = logging.getLogger("streamdrift.alerts")


class EvaluateAlerts(KeyedProcessFunction):
    """Keyed by endpoint id: each event against every alert that matches it."""

    def __init__(self, load_alerts, lookup_activation, refresh_seconds: float = 30.0):
        self.load_alerts = load_alerts
        self.lookup_activation = lookup_activation
        self.refresh_seconds = refresh_seconds

    def open(self, runtime_context: RuntimeContext):
        blob = Types.PRIMITIVE_ARRAY(Types.BYTE())
        self.states = runtime_context.get_map_state(MapStateDescriptor("alert-states", Types.STRING(), blob))
        self.book = AlertBook(self.load_alerts, self.refresh_seconds)
        self.book.refresh()
        group = runtime_context.get_metrics_group()
        self.activations = group.counter("alert_activations")
        self.replayed = group.counter("alert_activations_already_recorded")
        self.show_counters = ShowOnce(self.activations, self.replayed)

    def process_element(self, event, ctx: KeyedProcessFunction.Context):
        self.show_counters()
        now = ctx.timer_service().current_processing_time()
        for spec in self.book.matching(event):
            key = state_key(spec.name, event.entity)
            before = AlertState.from_bytes(self.states.get(key))
            step = evaluate(spec, before, event, now)
            if step.activation is not None:
                recorded = self._lookup(step.activation)
                if recorded is not None:
                    step = settle(spec, before, step, recorded)
                    self.replayed.inc()
                else:
                    self.activations.inc()
            self.states.put(key, step.state.to_bytes())
            if step.activation is not None:
                yield step.activation

    def _lookup(self, activation):
        try:
            return self.lookup_activation(activation.project, activation.alert_name, activation.entity,
                                          activation.window_end_ms)
        except Exception as exc:  # the dispatcher checks again before recording anything
            log.warning("looking up activation of alert %r failed (%s)", activation.alert_name, type(exc).__name__)
            return None


class NotifyActivations(MapFunction):
    """Records each activation and sends its notifications in the background; returns one JSON
    line per activation (``activation_id`` null when it was already recorded)."""

    def __init__(self, open_dispatcher):
        self.open_dispatcher = open_dispatcher

    def open(self, runtime_context: RuntimeContext):
        self.dispatcher = self.open_dispatcher()
        # sends finish on the dispatcher's threads: counted there, read here
        runtime_context.get_metrics_group().gauge("notification_failures", lambda: self.dispatcher.failures)

    def close(self):
        self.dispatcher.close()

    def map(self, activation) -> str:
        activation_id = self.dispatcher.handle(activation)
        return json.dumps({**activation.payload(), "activation_id": activation_id,
                           "notifications": [t.kind for t in activation.send]})
