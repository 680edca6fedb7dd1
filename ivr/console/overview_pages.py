"""The console's overview: today's and the last 30 days' activity, and its charts.

The charts are SVG drawn on the server from the same figures as the tables beside them: no script, no
file or font from elsewhere, and only presentation attributes (the CSP refuses inline styles).
Everything here is geometry; the counting is in ivr.console.overview.

A chart is as wide as its column and a fixed height: across, it is laid out in per cent of its width;
down, in pixels. Nothing scales its text, so labels are the body text's size (console.css) on a phone
as on a desktop, where a chart drawn in a fixed box and shrunk to a phone's width made them half that.
"""

import itertools
import math
from dataclasses import dataclass

from flask import current_app, render_template

from ivr.console.access import requires_role
from ivr.console.blueprint import bp
from ivr.console.overview import DayActivity, FunnelStage, overview
from ivr.records.follow_ups import KIND_NAMES
from models.time import uk_today

# Across, per cent of the chart's width; down, pixels.
ACTIVITY_HEIGHT = 312
ACTIVITY_TOP, ACTIVITY_BOTTOM = 48, 264  # the bars' area
DAY_LABEL_EVERY = 7  # days, counted back from today
# The count axis's labels sit left of the bars, in room enough for them at the narrowest column a
# phone gives (288 px, a 320 px screen) at the body text's size there (16 px, about 9 px a character).
NARROWEST_CHART_PX = 288
AXIS_LABEL_CHARACTER_PX = 9
FUNNEL_ROW_HEIGHT = 72
FUNNEL_BAR_HEIGHT = 24
FUNNEL_BAR_LONGEST = 60.0  # per cent: room is left on the right for the count, even on a phone


@dataclass(frozen=True)
class Bar:
    x: float  # per cent
    y: float  # pixels
    width: float  # per cent
    height: float  # pixels
    value: int
    title: str  # what the bar shows, in words (a tooltip)


@dataclass(frozen=True)
class Label:
    x: float  # per cent
    y: float  # pixels
    text: str
    anchor: str = "start"  # where `x` is on the text: start, middle or end


@dataclass(frozen=True)
class ActivityChart:
    calls: list[Bar]
    texts: list[Bar]
    gridlines: list[Label]  # y is the line's height, text the count it marks, x where the bars begin
    day_labels: list[Label]
    height: int = ACTIVITY_HEIGHT
    bottom: int = ACTIVITY_BOTTOM


@dataclass(frozen=True)
class FunnelChart:
    bars: list[Bar]
    stage_labels: list[Label]
    count_labels: list[Label]

    @property
    def height(self) -> int:
        return FUNNEL_ROW_HEIGHT * len(self.bars)


@bp.get("/", endpoint="index")
@requires_role("viewer")
def overview_page() -> str:
    figures = overview(current_app.extensions["database"], uk_today())
    return render_template(
        "staff/overview.html",
        figures=figures,
        kind_names=KIND_NAMES,
        activity_chart=activity_chart(figures.activity),
        call_funnel_chart=funnel_chart(figures.call_funnel, "calls"),
        text_funnel_chart=funnel_chart(figures.text_funnel, "text conversations"),
    )


def axis_step(largest: int, most_steps: int = 4) -> int:
    """A round step (1, 2, 5, 10, 20 ...) that reaches `largest` in at most `most_steps` steps."""
    for power in itertools.count():
        for multiple in (1, 2, 5):
            step = multiple * 10**power
            if largest <= step * most_steps:
                return step
    raise AssertionError("unreachable")


def activity_chart(activity: list[DayActivity]) -> ActivityChart:
    """Calls and text conversations per day, side by side in each day's slot, on one count axis."""
    top, bottom = ACTIVITY_TOP, ACTIVITY_BOTTOM
    largest = max((max(day.calls, day.texts) for day in activity), default=0)
    step = axis_step(largest)
    axis_top = max(step * math.ceil(largest / step), step)
    scale = (bottom - top) / axis_top
    left = axis_room(f"{axis_top:,}")
    slot = (100 - left) / len(activity)
    bar_width = round(slot * 0.38, 2)

    def bar(x: float, value: int, title: str) -> Bar:
        height = round(value * scale, 1)
        return Bar(round(x, 2), round(bottom - height, 1), bar_width, height, value, title)

    calls, texts, day_labels = [], [], []
    for number, day in enumerate(activity):
        start = left + number * slot
        when = day.day.strftime("%-d %B")
        calls.append(bar(start + slot * 0.1, day.calls, f"{when}: {_count(day.calls, 'call')}"))
        texts.append(bar(start + slot * 0.52, day.texts, f"{when}: {_count(day.texts, 'text conversation')}"))
        if (len(activity) - 1 - number) % DAY_LABEL_EVERY == 0:
            day_labels.append(Label(round(start + slot / 2, 2), bottom + 24, day.day.strftime("%-d %b"), "middle"))
    if day_labels:
        # Today's label ends at the chart's edge: centred under its bar, it would run off a phone's screen.
        day_labels[-1] = Label(100, day_labels[-1].y, day_labels[-1].text, "end")
    gridlines = [Label(left, round(bottom - value * scale, 1), f"{value:,}", "end") for value in range(0, axis_top + 1, step)]
    return ActivityChart(calls, texts, gridlines, day_labels)


def axis_room(longest_label: str) -> float:
    """The per cent of a chart's width its count axis's labels need, and a gap, in the narrowest column."""
    return round(100 * (len(longest_label) + 1) * AXIS_LABEL_CHARACTER_PX / NARROWEST_CHART_PX, 1)


def funnel_chart(stages: list[FunnelStage], counted: str) -> FunnelChart:
    """One bar per stage, as long as its share of the first stage, with the count and share beside it."""
    first = stages[0].count if stages else 0
    bars, stage_labels, count_labels = [], [], []
    for number, stage in enumerate(stages):
        row_top = number * FUNNEL_ROW_HEIGHT
        width = round(FUNNEL_BAR_LONGEST * stage.count / first, 2) if first else 0.0
        share = f" ({stage.of_first}%)" if stage.of_first is not None else ""
        words = f"{stage.label}: {stage.count:,} {counted}{share}"
        bars.append(Bar(0, row_top + 28, width, FUNNEL_BAR_HEIGHT, stage.count, words))
        stage_labels.append(Label(0, row_top + 20, stage.label))
        count_labels.append(Label(width, row_top + 46, f"{stage.count:,}{share}"))
    return FunnelChart(bars, stage_labels, count_labels)


def _count(number: int, thing: str) -> str:
    return f"{number:,} {thing}" if number == 1 else f"{number:,} {thing}s"
