"""Small charts as inline SVG, drawn on the server: a sparkline of a drift value over recent windows
and a reference-vs-window histogram per column. No script, so a table of hundreds of them costs
the browser only their markup. Every text that reaches the markup is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from streamdrift.ui.data import STATUS_COLORS, status_of

REFERENCE_COLOR = "#9aa5b1"
WINDOW_COLOR = "#1f77b4"


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline(points: Sequence[Mapping[str, Any]], width: int = 110, height: int = 24) -> Markup:
    """A line of the values ``points[i]["v"]`` (y from 0 to max(1, largest value)), each point a dot
    coloured by its status ``points[i]["s"]``; an empty string without a value."""
    values = [(i, p["v"], p.get("s")) for i, p in enumerate(points) if p.get("v") is not None]
    if not values:
        return Markup("")
    top = max(1.0, max(v for _, v, _ in values))
    pad = 3
    step = (width - 2 * pad) / max(1, len(points) - 1)

    def xy(i: int, v: float) -> tuple[str, str]:
        return _num(pad + i * step), _num(height - pad - (height - 2 * pad) * v / top)

    line = " ".join(",".join(xy(i, v)) for i, v, _ in values)
    dots = "".join(
        f'<circle cx="{xy(i, v)[0]}" cy="{xy(i, v)[1]}" r="2" fill="{STATUS_COLORS[status_of(s)["class"]]}"/>'
        for i, v, s in values)
    title = escape(", ".join(f"{v:.3f}" for _, v, _ in values))
    return Markup(f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                  f'role="img"><title>{title}</title><polyline points="{line}" fill="none" stroke="#555" '
                  f'stroke-width="1"/>{dots}</svg>')


def histogram(reference: Sequence[float], window: Sequence[float] | None, labels: Sequence[str] = (),
              width: int = 150, height: int = 36) -> Markup:
    """Reference and window probabilities per bin side by side (reference grey, window blue), each
    normalised to its own total; the window's bars are left out when ``window`` is None. Bins empty on
    both sides at either end (the padding bins, most of the time) are not drawn."""
    ref = [float(c) for c in reference]
    win = [float(c) for c in window] if window is not None and len(window) == len(ref) else None
    used = [i for i in range(len(ref)) if ref[i] > 0 or (win is not None and win[i] > 0)]
    if not used:
        return Markup("")
    lo, hi = used[0], used[-1] + 1
    ref_total, win_total = sum(ref) or 1.0, (sum(win) if win else 0.0) or 1.0
    p = [c / ref_total for c in ref[lo:hi]]
    q = [c / win_total for c in win[lo:hi]] if win is not None else None
    top = max(p + (q or [])) or 1.0
    bin_width = width / len(p)
    bar = bin_width / (2 if q is not None else 1)
    parts = []
    for j, share in enumerate(p):
        label = escape(labels[lo + j]) if lo + j < len(labels) else ""
        h = (height - 1) * share / top
        tip = f"{label}: reference {share:.1%}" + (f", window {q[j]:.1%}" if q is not None else "")
        parts.append(f'<rect x="{_num(j * bin_width)}" y="{_num(height - h)}" width="{_num(bar)}" '
                     f'height="{_num(h)}" fill="{REFERENCE_COLOR}"><title>{tip}</title></rect>')
        if q is not None:
            h = (height - 1) * q[j] / top
            parts.append(f'<rect x="{_num(j * bin_width + bar)}" y="{_num(height - h)}" width="{_num(bar)}" '
                         f'height="{_num(h)}" fill="{WINDOW_COLOR}"><title>{tip}</title></rect>')
    return Markup(f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                  f'role="img">{"".join(parts)}</svg>')
