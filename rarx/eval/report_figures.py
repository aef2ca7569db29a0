"""The report's figures: one PNG per section, drawn with matplotlib's Agg backend
(imported here only, so nothing else in rarx pays for matplotlib). A section's ``plot``
picks bars (datasets along x, systems side by side) or lines (each system's values over
ordered x values) or a histogram (adjacent bars over ordered bins, systems side by side in
each); all draw the files' 95% intervals as error bars and the chance level as a dashed
line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rarx.eval.report import Score, SectionInfo, ordered, significant

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.figure import Figure

COLORS = (
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
)


# The chance level's dashed line (gid: found again in a drawn figure)
CHANCE: dict[str, Any] = {"color": "#555555", "linestyle": (0, (4, 3)), "linewidth": 1.0,
                          "zorder": 3, "gid": "chance"}  # fmt: skip
LEGEND_CHANCE: dict[str, Any] = {k: v for k, v in CHANCE.items() if k != "gid"}


def draw_section(info: SectionInfo, scores: Sequence[Score], path: Path, alpha: float) -> Path:
    """The section's figure (:func:`section_figure`) written as one PNG."""
    section_figure(info, scores, alpha).savefig(path)
    return path


def section_figure(info: SectionInfo, scores: Sequence[Score], alpha: float) -> Any:
    """A matplotlib Figure: a panel per metric; per task, each system's bars side by side (the
    with-instruction variant hatched, next to the one without), with error bars where the
    file holds a 95% interval, a dashed line at each task's chance level; ``*`` marks
    p < alpha. A ``lines`` section is drawn by :func:`line_figure`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if info.plot == "lines":
        return line_figure(info, scores, alpha)
    if info.plot == "histogram":
        return histogram_figure(info, scores)
    mine = [s for s in scores if s.section == info.key]
    metrics = ordered(s.metric for s in mine)
    tasks = ordered(s.task for s in mine)
    systems = ordered(s.system for s in mine)
    bars = ordered((s.system, s.instructions) for s in mine)  # one bar slot per variant
    bars.sort(key=lambda b: (systems.index(b[0]), b[1] is True))
    upright = len(bars) * len(tasks) <= 8  # few wide bars: labels fit horizontally
    fig_w = max(6.0, min(18.0, 1.2 + len(tasks) * (0.45 * len(bars) + 0.5)))
    fig = Figure(figsize=(fig_w, 0.6 + 3.0 * len(metrics)), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    small = 7 if len(bars) * len(tasks) <= 24 else 6
    for ax, metric in zip(axes, metrics, strict=True):
        cell = {(s.system, s.instructions, s.task): s for s in mine if s.metric == metric}
        # only the systems and tasks this metric has: no empty slots in a panel
        pbars = [b for b in bars if any(k[:2] == b for k in cell)]
        ptasks = [t for t in tasks if any(k[2] == t for k in cell)]
        width = min(0.8 / len(pbars), 0.3)
        top = max([s.ci[1] if s.ci else s.value for s in cell.values()]
                  + [s.chance for s in cell.values() if s.chance is not None], default=1.0)
        top = top if top > 0 else 1.0
        for b, (system, inst) in enumerate(pbars):
            color = COLORS[systems.index(system) % len(COLORS)]
            for x, task in enumerate(ptasks):
                s = cell.get((system, inst, task))
                if s is None:
                    continue
                pos = x + width * (b + 0.5 - len(pbars) / 2)
                ax.bar(
                    pos,
                    s.value,
                    width * 0.92,
                    color=color,
                    edgecolor="white" if not inst else color,
                    hatch="////" if inst else None,
                    alpha=0.55 if inst else 1.0,
                    linewidth=0.6,
                )
                if s.ci is not None:  # the 95% interval the results file holds
                    # (floored at 0: a mean and its interval's end can differ in the last bit)
                    err = [[max(0.0, s.value - s.ci[0])], [max(0.0, s.ci[1] - s.value)]]
                    ax.errorbar(pos, s.value, yerr=err, fmt="none", ecolor="#333333",
                                elinewidth=0.8, capsize=2)  # fmt: skip
                mark = "*" if significant(s, alpha) else ""
                ax.text(
                    pos,
                    (s.ci[1] if s.ci else s.value) + top * 0.015,
                    f"{s.value:.3f}{mark}",
                    ha="center",
                    va="bottom",
                    rotation=0 if upright else 90,
                    fontsize=small + 1 if upright else small,
                )
        for x, task in enumerate(ptasks):  # one dashed segment across the task's bars
            levels = {s.chance for s in cell.values() if s.task == task and s.chance is not None}
            for level in levels:
                ax.hlines(level, x - 0.45, x + 0.45, **CHANCE)
        ax.set_xticks(range(len(ptasks)), ptasks, fontsize=9,
                      rotation=0 if len(ptasks) < 8 else 30,
                      ha="center" if len(ptasks) < 8 else "right")  # fmt: skip
        ax.set_xlim(-0.5, len(ptasks) - 0.5)
        # the lowest interval end, so a negative difference's whole interval is drawn
        low = min(0.0, min(min(s.value, s.ci[0] if s.ci else s.value) for s in cell.values()))
        ax.set_ylim(low * 1.15, top * (1.15 if upright else 1.3) + 0.02)
        if top <= 1:  # scores no higher than 1: no ticks past 1 (room for labels only)
            limit = min(1.0, ax.get_ylim()[1]) + 1e-9
            ax.set_yticks([t for t in ax.get_yticks() if t <= limit])
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles: list[Artist] = [Patch(color=COLORS[i % len(COLORS)], label=s)
                             for i, s in enumerate(systems)]  # fmt: skip
    if any(inst for _, inst in bars):
        handles.append(
            Patch(
                facecolor="white",
                edgecolor="black",
                hatch="////",
                label="with instructions (hatched)",
            )
        )
    if any(s.chance is not None for s in mine):
        handles.append(Line2D([], [], label="chance", **LEGEND_CHANCE))
    baselines = ordered(s.baseline for s in mine if s.baseline)
    if baselines:
        against = baselines[0] if len(baselines) == 1 else "each task's first system"
        handles.append(Patch(color="none", label=f"* p < {alpha:g} vs {against}"))
    _legend(fig, handles, fig_w)
    return fig


def line_figure(info: SectionInfo, scores: Sequence[Score], alpha: float) -> Any:
    """A matplotlib Figure: a panel per metric, x the section's datasets in order (sizes, client
    counts, layers), a line with markers per system, error bars where the file holds an
    interval, the chance level dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    mine = [s for s in scores if s.section == info.key]
    metrics = ordered(s.metric for s in mine)
    xs = ordered(s.task for s in mine)
    labels = ordered(s.label for s in mine)
    fig_w = max(6.0, min(14.0, 2.0 + 0.8 * len(xs)))
    fig = Figure(figsize=(fig_w, 0.8 + 2.8 * len(metrics)), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        for i, label in enumerate(labels):
            pts = [(xs.index(s.task), s) for s in mine if s.metric == metric and s.label == label]
            if not pts:
                continue
            pts.sort(key=lambda p: p[0])
            color = COLORS[i % len(COLORS)]
            x = [p[0] for p in pts]
            y = [p[1].value for p in pts]
            ax.plot(x, y, marker="o", markersize=3.5, color=color, linewidth=1.2)
            for xi, s in pts:
                if s.ci is not None:
                    err = [[max(0.0, s.value - s.ci[0])], [max(0.0, s.ci[1] - s.value)]]
                    ax.errorbar(xi, s.value, yerr=err, fmt="none", ecolor=color,
                                elinewidth=0.8, capsize=2)  # fmt: skip
                if significant(s, alpha):
                    ax.annotate("*", (xi, s.value), textcoords="offset points", xytext=(0, 4),
                                ha="center", fontsize=9)  # fmt: skip
        levels = {s.chance for s in mine if s.metric == metric and s.chance is not None}
        for level in levels:
            ax.axhline(level, **CHANCE)
        values = [s.value for s in mine if s.metric == metric]
        if min(values) > 0 and max(values) / min(values) > 100:  # latencies, sizes: spread
            ax.set_yscale("log")
        ax.set_xticks(range(len(xs)), xs, fontsize=8, rotation=0 if len(xs) < 8 else 30,
                      ha="center" if len(xs) < 8 else "right")  # fmt: skip
        ax.set_ylabel(metric, fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles: list[Artist] = [Line2D([], [], color=COLORS[i % len(COLORS)], marker="o",
                                    label=lbl) for i, lbl in enumerate(labels)]  # fmt: skip
    if any(s.chance is not None for s in mine):
        handles.append(Line2D([], [], label="chance", **LEGEND_CHANCE))
    _legend(fig, handles, fig_w)
    return fig


def histogram_figure(info: SectionInfo, scores: Sequence[Score]) -> Any:
    """A matplotlib Figure: a panel per metric, the section's datasets as ordered bins along
    x (identifier positions A, B, ...), each system's bar in every bin side by side with no
    gap between bins, error bars where the file holds an interval, each bar's chance level
    dashed across it. Where the bars of a panel stand on different numbers of items (accuracy by
    the gold passage's position), each bar is labelled with its n; values are in the
    tables, not on the bars (too many to read)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    mine = [s for s in scores if s.section == info.key]
    metrics = ordered(s.metric for s in mine)
    bins = ordered(s.task for s in mine)
    labels = ordered(s.label for s in mine)
    fig_w = max(6.0, min(16.0, 1.5 + len(bins) * (0.22 * len(labels) + 0.12)))
    fig = Figure(figsize=(fig_w, 0.8 + 2.6 * len(metrics)), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    width = 1.0 / len(labels)
    counted = False
    for ax, metric in zip(axes, metrics, strict=True):
        cell = {(s.label, s.task): s for s in mine if s.metric == metric}
        show_n = len({s.n for s in cell.values()}) > 1
        counted |= show_n
        top = max([s.ci[1] if s.ci else s.value for s in cell.values()]
                  + [s.chance for s in cell.values() if s.chance is not None])  # fmt: skip
        top = top if top > 0 else 1.0
        chance: list[tuple[float, float, float]] = []  # level, from, to: over its own bar
        for b, label in enumerate(labels):
            color = COLORS[b % len(COLORS)]
            for x, name in enumerate(bins):
                s = cell.get((label, name))
                if s is None:
                    continue
                pos = x - 0.5 + width * (b + 0.5)
                ax.bar(pos, s.value, width, color=color, edgecolor="white", linewidth=0.4)
                if s.chance is not None:
                    chance.append((s.chance, pos - width / 2, pos + width / 2))
                if s.ci is not None:
                    err = [[max(0.0, s.value - s.ci[0])], [max(0.0, s.ci[1] - s.value)]]
                    ax.errorbar(pos, s.value, yerr=err, fmt="none", ecolor="#333333",
                                elinewidth=0.7, capsize=1.5)  # fmt: skip
                if show_n and s.n is not None:
                    ax.text(pos, (s.ci[1] if s.ci else s.value) + top * 0.02, str(s.n),
                            ha="center", va="bottom", fontsize=5.5, color="#333333")  # fmt: skip
        if chance:  # each bar's own level (systems over different numbers of windows)
            ax.hlines(*zip(*chance, strict=True), **CHANCE)
        ax.set_xticks(range(len(bins)), bins, fontsize=8)
        ax.set_xlim(-0.6, len(bins) - 0.4)
        ax.set_ylim(0, top * 1.15)
        ax.set_ylabel(metric, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles: list[Artist] = [Patch(color=COLORS[i % len(COLORS)], label=lbl)
                             for i, lbl in enumerate(labels)]  # fmt: skip
    if any(s.chance is not None for s in mine):
        handles.append(Line2D([], [], label="chance", **LEGEND_CHANCE))
    if counted:
        handles.append(Patch(color="none", label="numbers: n per bar"))
    _legend(fig, handles, fig_w)
    return fig


def _legend(fig: Figure, handles: list[Artist], width: float) -> None:
    """The figure's legend above its panels, in as many columns as fit its ``width``."""
    labels = [str(h.get_label()) for h in handles]
    fig.legend(handles=handles, labels=labels, loc="outside upper center", fontsize=8,
               frameon=False, ncols=_legend_columns(labels, width))  # fmt: skip


def _legend_columns(labels: Sequence[str], width: float) -> int:
    """The most columns whose entries (8 pt text, about 0.065 in a character, plus the
    swatch) fit in the figure's width, so the legend is never cut off."""
    for n in range(len(labels), 1, -1):
        rows, tall = divmod(len(labels), n)  # matplotlib: the first `tall` columns get one more
        sizes = [rows + 1] * tall + [rows] * (n - tall)
        starts = [sum(sizes[:i]) for i in range(n)]
        cols = [labels[a : a + k] for a, k in zip(starts, sizes, strict=True)]
        need = sum(0.55 + 0.065 * max(len(x) for x in col) for col in cols)
        if need <= width * 0.95:
            return n
    return 1
