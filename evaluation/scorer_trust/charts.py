"""Kappa bars for the judge leaderboard: positions in percent of a fixed axis, so every chart
reads the same (-0.2 .. 1.0; kappa below -0.2 is drawn at the edge)."""
from __future__ import annotations

from dataclasses import dataclass

AXIS_LOW, AXIS_HIGH = -0.2, 1.0
TICKS = (-0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def position(value: float) -> float:
    clipped = min(max(value, AXIS_LOW), AXIS_HIGH)
    return round(100 * (clipped - AXIS_LOW) / (AXIS_HIGH - AXIS_LOW), 2)


@dataclass
class Bar:
    cell: object
    start: float  # percent from the left where the bar starts (at kappa 0 or at the value)
    width: float
    ci_start: float | None
    ci_width: float | None


def bars(cells, ceiling: float | None) -> dict:
    zero = position(0.0)
    out = []
    for cell in cells:
        if cell.kappa is None:
            out.append(Bar(cell, zero, 0.0, None, None))
            continue
        end = position(cell.kappa)
        start, width = (zero, end - zero) if end >= zero else (end, zero - end)
        ci_start = ci_width = None
        if cell.ci_low is not None and cell.ci_high is not None:
            ci_start = position(cell.ci_low)
            ci_width = max(position(cell.ci_high) - ci_start, 0.3)
        out.append(Bar(cell, start, round(width, 2), ci_start, ci_width))
    return {
        "bars": out,
        "ceiling": None if ceiling is None else position(ceiling),
        "ceiling_value": ceiling,
        "good": position(0.4),
        "ticks": [(tick, position(tick)) for tick in TICKS],
    }
