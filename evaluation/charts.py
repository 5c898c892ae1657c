"""Geometry for the charts the result pages draw as inline SVG (no JS, no chart library).

Functions here only compute coordinates and colours; the templates write the SVG, so
labels (model names are user input) go through Django's autoescaping like any other text.
"""
from __future__ import annotations

from dataclasses import dataclass

BAR_HEIGHT = 18
BAR_GAP = 10
AXIS_ROOM = 26
VALUE_ROOM = 56
CHAR_WIDTH = 7  # px per character at the chart's 12 px font, for the label column


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    value_text: str
    y: float  # top of the bar
    width: float
    ci_low_x: float | None  # whisker ends, None without a CI
    ci_high_x: float | None

    height = BAR_HEIGHT

    @property
    def mid_y(self) -> float:
        return self.y + BAR_HEIGHT / 2

    @property
    def cap_top(self) -> float:
        """Whisker end caps span the middle half of the bar."""
        return self.y + BAR_HEIGHT / 4

    @property
    def cap_bottom(self) -> float:
        return self.y + BAR_HEIGHT * 3 / 4

    @property
    def text_x(self) -> float:
        """The value label sits right of the bar or of its whisker, whichever ends later."""
        return max(self.width, self.ci_high_x or 0.0) + 6


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    ticks: list[Tick]
    label_width: int
    plot_width: int
    height: float

    @property
    def width(self) -> int:
        return self.label_width + self.plot_width + VALUE_ROOM

    @property
    def axis_y(self) -> float:
        return self.height - AXIS_ROOM + 4

    @property
    def tick_text_y(self) -> float:
        return self.height - 6


def horizontal_bar_chart(
    items: list[tuple[str, float | None, float | None, float | None]],
    *,
    title: str,
    maximum: float | None = None,
    decimals: int = 3,
    plot_width: int = 420,
) -> BarChart | None:
    """Bars for (label, value, ci_low, ci_high) items, in the given order; None when nothing has a value.

    The axis starts at 0 and ends at `maximum` (e.g. 1 for probabilities) or at the largest
    value or CI bound, so whiskers always fit.
    """
    items = [item for item in items if item[1] is not None]
    if not items:
        return None
    top = maximum if maximum is not None else max(max(v, hi if hi is not None else v) for _, v, _, hi in items)
    top = top or 1.0
    label_width = min(260, max(80, CHAR_WIDTH * max(len(label) for label, *_ in items) + 12))

    def x(value: float) -> float:
        return round(max(0.0, min(value, top)) / top * plot_width, 2)

    bars = []
    for index, (label, value, ci_low, ci_high) in enumerate(items):
        has_ci = ci_low is not None and ci_high is not None
        bars.append(
            Bar(
                label=label,
                value=value,
                value_text=f"{value:.{decimals}f}",
                y=index * (BAR_HEIGHT + BAR_GAP),
                width=x(value),
                ci_low_x=x(ci_low) if has_ci else None,
                ci_high_x=x(ci_high) if has_ci else None,
            )
        )
    ticks = [Tick(x=x(top * i / 4), text=f"{top * i / 4:.{min(decimals, 2)}f}") for i in range(5)]
    height = len(bars) * (BAR_HEIGHT + BAR_GAP) + AXIS_ROOM
    return BarChart(title=title, bars=bars, ticks=ticks, label_width=label_width, plot_width=plot_width, height=height)


# A sequential scale from pale yellow (0, harmless) to dark red (1, toxic): ColorBrewer YlOrRd.
_SCALE = [(255, 255, 204), (254, 217, 118), (253, 141, 60), (227, 26, 28), (128, 0, 38)]


def heat_colour(value: float | None) -> tuple[str, str]:
    """(background, text) colours for a value in [0, 1]; grey for a missing value.

    The text colour flips to white on dark cells so the number stays readable.
    """
    if value is None:
        return "#f1f3f5", "#6c757d"
    position = max(0.0, min(1.0, value)) * (len(_SCALE) - 1)
    low = min(int(position), len(_SCALE) - 2)
    fraction = position - low
    rgb = [round(a + (b - a) * fraction) for a, b in zip(_SCALE[low], _SCALE[low + 1])]
    # Relative luminance (sRGB, approximate): dark backgrounds get white text.
    luminance = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255
    return "#{:02x}{:02x}{:02x}".format(*rgb), "#ffffff" if luminance < 0.55 else "#1b1b1b"


def heat_legend(steps: int = 5) -> list[tuple[str, str, str]]:
    """[(value text, background, text colour)] for a legend under a heatmap."""
    return [(f"{i / (steps - 1):.2f}", *heat_colour(i / (steps - 1))) for i in range(steps)]


# --- scatter: one point per system, with intervals on both axes (toxicity against perplexity) ---
SCATTER_MARGIN_LEFT = 56
SCATTER_MARGIN_BOTTOM = 40
SCATTER_MARGIN_TOP = 12
SCATTER_MARGIN_RIGHT = 16


@dataclass(frozen=True)
class ScatterPoint:
    label: str
    x: float
    y: float
    x_low: float | None = None
    x_high: float | None = None
    y_low: float | None = None
    y_high: float | None = None


@dataclass(frozen=True)
class PlacedPoint:
    label: str
    x_text: str
    y_text: str
    cx: float
    cy: float
    x_whisker: tuple[float, float] | None  # pixel ends of the horizontal interval
    y_whisker: tuple[float, float] | None  # pixel ends of the vertical interval


@dataclass(frozen=True)
class ScatterChart:
    title: str
    x_title: str
    y_title: str
    points: list[PlacedPoint]
    x_ticks: list[Tick]
    y_ticks: list[Tick]  # Tick.x holds the y pixel here
    plot_width: int
    plot_height: int

    margin_left = SCATTER_MARGIN_LEFT
    margin_top = SCATTER_MARGIN_TOP

    @property
    def width(self) -> int:
        return SCATTER_MARGIN_LEFT + self.plot_width + SCATTER_MARGIN_RIGHT

    @property
    def height(self) -> int:
        return SCATTER_MARGIN_TOP + self.plot_height + SCATTER_MARGIN_BOTTOM

    @property
    def axis_y(self) -> int:
        return SCATTER_MARGIN_TOP + self.plot_height

    @property
    def right(self) -> int:
        return SCATTER_MARGIN_LEFT + self.plot_width


def _span(values: list[float], floor: float | None = None, ceiling: float | None = None) -> tuple[float, float]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    if floor is not None:
        low = max(low, floor)
    if ceiling is not None:
        high = min(high, ceiling)
    return low, high


def scatter_chart(points: list[ScatterPoint], *, title: str, x_title: str, y_title: str, plot_width: int = 420,
                  plot_height: int = 260, y_range: tuple[float, float] = (0.0, 1.0)) -> ScatterChart | None:
    """Pixel positions for points with optional intervals; axes span the values and interval
    ends (y clamped to y_range, e.g. [0, 1] for probabilities). None without points."""
    if not points:
        return None
    xs = [v for p in points for v in (p.x, p.x_low, p.x_high) if v is not None]
    ys = [v for p in points for v in (p.y, p.y_low, p.y_high) if v is not None]
    x_low, x_high = _span(xs, floor=0.0)
    y_low, y_high = _span(ys, *y_range)

    def px(value: float) -> float:
        return round(SCATTER_MARGIN_LEFT + (value - x_low) / (x_high - x_low) * plot_width, 2)

    def py(value: float) -> float:
        return round(SCATTER_MARGIN_TOP + (1 - (value - y_low) / (y_high - y_low)) * plot_height, 2)

    placed = [
        PlacedPoint(
            label=p.label, x_text=f"{p.x:.2f}", y_text=f"{p.y:.3f}", cx=px(p.x), cy=py(p.y),
            x_whisker=(px(p.x_low), px(p.x_high)) if p.x_low is not None and p.x_high is not None else None,
            y_whisker=(py(p.y_low), py(p.y_high)) if p.y_low is not None and p.y_high is not None else None,
        )
        for p in points
    ]
    x_ticks = [Tick(x=px(x_low + (x_high - x_low) * i / 4), text=f"{x_low + (x_high - x_low) * i / 4:.1f}")
               for i in range(5)]
    y_ticks = [Tick(x=py(y_low + (y_high - y_low) * i / 4), text=f"{y_low + (y_high - y_low) * i / 4:.2f}")
               for i in range(5)]
    return ScatterChart(title=title, x_title=x_title, y_title=y_title, points=placed, x_ticks=x_ticks,
                        y_ticks=y_ticks, plot_width=plot_width, plot_height=plot_height)
