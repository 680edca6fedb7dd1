"""The console's overview: today's and the last 30 days' activity, and its charts.

The charts are SVG drawn on the server from the same figures as the tables beside them: no script, no
file or font from elsewhere, and only presentation attributes (the CSP refuses inline styles).
Everything here is geometry; the counting is in ivr.console.overview.
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

# Both charts are drawn in a 720-wide box that the page scales to its column.
CHART_WIDTH = 720
ACTIVITY_HEIGHT = 300
ACTIVITY_PLOT = (48, 40, 712, 256)  # left, top, right, bottom of the bars' area
DAY_LABEL_EVERY = 7  # days, counted back from today
FUNNEL_ROW_HEIGHT = 56
FUNNEL_BAR_HEIGHT = 24
FUNNEL_BAR_LEFT = 8
FUNNEL_BAR_LONGEST = 560  # room is left on the right for the count


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    title: str  # what the bar shows, in words (a tooltip)


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class ActivityChart:
    calls: list[Bar]
    texts: list[Bar]
    gridlines: list[Label]  # y is the line's height, text the count it marks
    day_labels: list[Label]
    plot: tuple[int, int, int, int]
    width: int = CHART_WIDTH
    height: int = ACTIVITY_HEIGHT


@dataclass(frozen=True)
class FunnelChart:
    bars: list[Bar]
    stage_labels: list[Label]
    count_labels: list[Label]
    width: int = CHART_WIDTH

    @property
    def height(self) -> int:
        return FUNNEL_ROW_HEIGHT * len(self.bars) + 8


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
    left, top, right, bottom = ACTIVITY_PLOT
    largest = max((max(day.calls, day.texts) for day in activity), default=0)
    step = axis_step(largest)
    axis_top = max(step * math.ceil(largest / step), step)
    scale = (bottom - top) / axis_top
    slot = (right - left) / len(activity)
    bar_width = round(slot * 0.38, 1)

    def bar(x: float, value: int, title: str) -> Bar:
        height = round(value * scale, 1)
        return Bar(round(x, 1), round(bottom - height, 1), bar_width, height, value, title)

    calls, texts, day_labels = [], [], []
    for number, day in enumerate(activity):
        start = left + number * slot
        when = day.day.strftime("%-d %B")
        calls.append(bar(start + slot * 0.1, day.calls, f"{when}: {_count(day.calls, 'call')}"))
        texts.append(bar(start + slot * 0.52, day.texts, f"{when}: {_count(day.texts, 'text conversation')}"))
        if (len(activity) - 1 - number) % DAY_LABEL_EVERY == 0:
            day_labels.append(Label(round(start + slot / 2, 1), bottom + 20, day.day.strftime("%-d %b")))
    gridlines = [Label(left, round(bottom - value * scale, 1), str(value)) for value in range(0, axis_top + 1, step)]
    return ActivityChart(calls, texts, gridlines, day_labels, ACTIVITY_PLOT)


def funnel_chart(stages: list[FunnelStage], counted: str) -> FunnelChart:
    """One bar per stage, as long as its share of the first stage, with the count and share beside it."""
    first = stages[0].count if stages else 0
    bars, stage_labels, count_labels = [], [], []
    for number, stage in enumerate(stages):
        row_top = number * FUNNEL_ROW_HEIGHT
        width = round(FUNNEL_BAR_LONGEST * stage.count / first, 1) if first else 0.0
        share = f" ({stage.of_first}%)" if stage.of_first is not None else ""
        words = f"{stage.label}: {stage.count:,} {counted}{share}"
        bars.append(Bar(FUNNEL_BAR_LEFT, row_top + 24, width, FUNNEL_BAR_HEIGHT, stage.count, words))
        stage_labels.append(Label(FUNNEL_BAR_LEFT, row_top + 18, stage.label))
        count_labels.append(Label(round(FUNNEL_BAR_LEFT + width + 8, 1), row_top + 41, f"{stage.count:,}{share}"))
    return FunnelChart(bars, stage_labels, count_labels)


def _count(number: int, thing: str) -> str:
    return f"{number:,} {thing}" if number == 1 else f"{number:,} {thing}s"
