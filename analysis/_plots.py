"""The report's figures, one function each, drawn headless.

Each function builds a ``matplotlib.figure.Figure`` directly (never pyplot), so nothing is kept in
global state, several reports may draw at once, and a figure is freed as soon as it is dropped.
matplotlib is imported inside each function: importing ``tunefleet.analysis`` stays cheap.
Inputs are plain frames and arrays (what ``_report`` read from MLflow), so each figure can be
drawn from made-up data too. The per-class figures of one trial (confusion matrix, bad cases)
are in ``_case_plots``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tunefleet.spaces import Categorical, Conditional, Domain, Float, Int
from tunefleet.spaces import records as rec

from ._importance import Knob, parse_value

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# How a trial's line looks, by how it ended: (colour, line style).
STYLES = {
    rec.COMPLETED: ("tab:blue", "-"),
    rec.STOPPED: ("tab:gray", "--"),
    rec.FAILED: ("tab:red", ":"),
    rec.TIMED_OUT: ("tab:red", ":"),
    rec.INTERRUPTED: ("tab:orange", ":"),
}
OTHER_STYLE = ("tab:orange", ":")
LABELS = {rec.COMPLETED: "completed", rec.STOPPED: "stopped early (x: where ASHA cut it)"}
BEST_COLOUR = "tab:green"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def importance_figure(frame: pd.DataFrame) -> Figure:
    """Horizontal bars of ``param_importances`` rows, one panel per scope."""
    scopes = list(dict.fromkeys(frame["scope"]))
    heights = [max(1.0, 0.28 * (frame["scope"] == s).sum() + 0.7) for s in scopes]
    fig = _figure(7.5, sum(heights) + 0.3)
    axes = fig.subplots(len(scopes), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, scope in zip(axes, scopes, strict=True):
        rows = frame[frame["scope"] == scope].sort_values("importance")
        ax.barh(rows["param"], rows["importance"], color="tab:blue")
        ax.set_xlim(0, 1)
        ax.set_title(f"{scope} ({int(rows['trials'].iloc[0])} trials)", fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("fANOVA importance (share of the metric's variance)")
    return fig


def _axis(knob: Knob, values: pd.Series) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Positions in [0, 1] of a knob's logged values (NaN where it does not apply) and its tick labels."""
    domain: Domain = knob.domain
    parsed = [parse_value(domain, v) for v in values]
    if isinstance(domain, (Categorical, Conditional)):
        choices = list(domain.choices) if isinstance(domain, Categorical) else list(domain.options)
        spread = max(1, len(choices) - 1)
        pos = [choices.index(v) / spread if v is not None else math.nan for v in parsed]
        return np.array(pos, dtype=float), [(i / spread, str(c)) for i, c in enumerate(choices)]
    if not isinstance(domain, (Float, Int)):  # searched_knobs never yields a Constant
        raise TypeError(f"{knob.path}: a constant has no axis")
    scale = math.log10 if domain.log else float
    low, high = scale(domain.low), scale(domain.high)
    pos = [(scale(v) - low) / (high - low) if v is not None else math.nan for v in parsed]
    # Labels at the ends and the middle, in the knob's own units (the middle of a log axis is the geometric mean).
    at = [low + f * (high - low) for f in (0.0, 0.5, 1.0)]
    ticks = [(f, f"{10**v if domain.log else v:.3g}") for f, v in zip((0.0, 0.5, 1.0), at, strict=True)]
    return np.array(pos, dtype=float), ticks


def _trial_lines(ax: Axes, ys: np.ndarray, colours: list[Any], outcomes: list[str]) -> None:
    """Each row of ``ys`` as one trial's line over the axes, all in one collection (one ``ax.plot``
    per trial would take seconds at 2,000 trials) with a line style per segment, so later rows are
    drawn over earlier ones whatever their style.

    A knob the trial's option lacks (NaN) leaves a gap; a faint dotted bridge over it, drawn
    beneath every line, keeps the line reaching the metric axis without giving that knob a value.
    """
    from matplotlib.collections import LineCollection

    segments: list[np.ndarray] = []
    looks: list[tuple[Any, str]] = []  # (colour, line style) per segment
    bridges: list[np.ndarray] = []
    bridge_colours: list[Any] = []
    for row, colour, outcome in zip(ys, colours, outcomes, strict=True):
        known = [(float(x), float(y)) for x, y in enumerate(row) if not math.isnan(y)]
        runs: list[list[tuple[float, float]]] = []
        for point in known:  # consecutive axes join; a skipped axis starts a new run and a bridge
            if runs and point[0] - runs[-1][-1][0] == 1:
                runs[-1].append(point)
            else:
                if runs:
                    bridges.append(np.array([runs[-1][-1], point]))
                    bridge_colours.append(colour)
                runs.append([point])
        style = "--" if outcome == rec.STOPPED else "-"
        segments += [np.array(run) for run in runs if len(run) > 1]
        looks += [(colour, style) for run in runs if len(run) > 1]
    if bridges:
        ax.add_collection(
            LineCollection(bridges, colors=bridge_colours, linestyles=":", linewidths=0.9, alpha=0.6, label="bridges")
        )
    if segments:
        colour_list, styles = zip(*looks, strict=True)
        lines = LineCollection(
            segments, colors=list(colour_list), linestyles=list(styles), linewidths=1.4, alpha=0.85, label="trials"
        )
        lines.set_zorder(2)  # over the bridges
        ax.add_collection(lines)


def parallel_coordinates_figure(trials: pd.DataFrame, knobs: list[Knob], metric: str, mode: str = "max") -> Figure:
    """One vertical axis per searched knob plus the metric; one line per trial, coloured by the metric.

    Trials that ran their planned epochs are solid, stopped-early ones dashed; a line skips the axis
    of a knob its trial's option does not have (momentum under adamw).
    """
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    column = rec.best_key(metric)
    shown = trials[trials["outcome"].isin([rec.COMPLETED, rec.STOPPED]) & trials[column].notna()]
    shown = shown.sort_values(column, ascending=mode == "max")  # the better a line, the later it is drawn: on top
    score = shown[column].astype(float).to_numpy()
    low, high = float(score.min()), float(score.max())
    span = high - low or 1.0
    columns: list[np.ndarray] = []
    tick_sets: list[list[tuple[float, str]]] = []
    for knob in knobs:
        pos, ticks = _axis(knob, shown.get(f"params.{knob.param}", pd.Series([None] * len(shown))))
        columns.append(pos)
        tick_sets.append(ticks)
    columns.append((score - low) / span)
    tick_sets.append([(f, f"{low + f * span:.3g}") for f in (0, 0.5, 1)])
    names = [k.path for k in knobs] + [column]
    fig = _figure(min(13.0, max(6.0, 1.1 * len(names) + 2)), 4.4)
    ax = fig.subplots()
    # Bright means better either way: reversed colours when lower is better.
    cmap, norm = matplotlib.colormaps["viridis" if mode == "max" else "viridis_r"], Normalize(low, low + span)
    _trial_lines(ax, np.column_stack(columns), [cmap(norm(v)) for v in score], list(shown["outcome"]))
    for x, ticks in enumerate(tick_sets):
        ax.axvline(x, color="black", lw=0.8)
        for y, text in ticks:
            ax.text(x + 0.03, y, text, fontsize=7, va="center", ha="left", alpha=0.8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(-0.2, len(names) - 0.6)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=column)
    proxies = [
        Line2D([], [], color="gray", ls="-", label="completed"),
        Line2D([], [], color="gray", ls="--", label="stopped early"),
    ]
    if any(k.option is not None for k in knobs):
        proxies.append(Line2D([], [], color="gray", ls=":", lw=0.9, label="over a knob the trial's option lacks"))
    ax.legend(handles=proxies, fontsize=7, loc="upper left", bbox_to_anchor=(0, 1.12), ncol=2, frameon=False)
    return fig


def _points_by_run(history: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each run's (step, value) points in step order: one sort for all runs, not one per run."""
    if not len(history):
        return {}
    ordered = history.sort_values(["run_id", "step"], kind="stable")
    ids = ordered["run_id"].to_numpy()
    points = ordered[["step", "value"]].to_numpy(float)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return {str(ids[a]): points[a:b] for a, b in zip(starts, [*starts[1:], len(ids)], strict=True)}


def _curves(ax: Axes, runs: list[np.ndarray], outcome: str, best: bool = False) -> None:
    """The curves of ``runs`` (all of one outcome) as one artist, plus one for their end marks:
    one ``ax.plot`` per trial costs about 1 ms to build and more to draw, seconds at 2,000 trials.
    The best trial's curve and marks go over every other trial's."""
    from matplotlib.collections import LineCollection

    colour, style = STYLES.get(outcome, OTHER_STYLE)
    colour = BEST_COLOUR if best else colour
    curves = [curve for curve in runs if len(curve)]
    if not curves:
        return
    width, z = (2.2, 5) if best else (1.2, 2)
    label = "best" if best else outcome
    lines = LineCollection(curves, colors=colour, linestyles=style, linewidths=width, alpha=0.9, label=label)
    lines.set_zorder(z)
    ax.add_collection(lines, autolim=True)
    single = np.array([curve[0] for curve in curves if len(curve) == 1]).reshape(-1, 2)
    if len(single):  # one epoch is a point, which a line does not show
        ax.plot(single[:, 0], single[:, 1], ls="none", marker="o", ms=3, color=colour, zorder=z)
    if outcome != rec.COMPLETED:
        last = np.array([curve[-1] for curve in curves])
        ax.plot(last[:, 0], last[:, 1], ls="none", marker="x", color=colour, ms=7, mew=2, zorder=z + 1)


def learning_curves_figure(history: pd.DataFrame, trials: pd.DataFrame, metric: str, best_run_id: str | None) -> Figure:
    """The metric per epoch of every trial (``history``: run_id, step, value), styled by outcome."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7.5, 4.5)
    ax = fig.subplots()
    by_run = _points_by_run(history)
    outcomes = dict(zip(trials["run_id"], trials["outcome"], strict=True))
    for outcome in dict.fromkeys(outcomes.values()):
        runs = [by_run[r] for r, o in outcomes.items() if o == outcome and r in by_run and r != best_run_id]
        _curves(ax, runs, outcome)
    if best_run_id in by_run and best_run_id in outcomes:
        _curves(ax, [by_run[best_run_id]], outcomes[best_run_id], best=True)
    ax.autoscale_view()
    handles = []
    for outcome in dict.fromkeys(outcomes.values()):
        colour, style = STYLES.get(outcome, OTHER_STYLE)
        missing = sum(o == outcome and r not in by_run for r, o in outcomes.items())
        label = LABELS.get(outcome, f"{outcome or 'unknown'} (x: last epoch it reported)")
        label += f"; {missing} with no epoch" if missing else ""
        marker = None if outcome == rec.COMPLETED else "x"
        handles.append(Line2D([], [], color=colour, ls=style, marker=marker, label=label))
    if best_run_id is not None:
        names = dict(zip(trials["run_id"], trials["name"], strict=True))
        handles.append(Line2D([], [], color=BEST_COLOUR, lw=2.2, label=f"best: {names.get(best_run_id, best_run_id)}"))
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    return fig


def best_so_far_figure(history: pd.DataFrame, metric: str, mode: str, start_ms: float) -> Figure:
    """Best ``metric`` any trial had reported so far, over wall-clock time and over epochs spent.

    ``history`` holds every trial's per-epoch points (``timestamp`` in ms); each point is one epoch
    trained, so their count in time order is the compute the search had spent by then.
    """
    from matplotlib.ticker import MaxNLocator

    points = history.sort_values("timestamp")
    values = points["value"].astype(float)
    best = values.cummax() if mode == "max" else values.cummin()
    seconds = (points["timestamp"].astype(float) - start_ms) / 1000.0
    minutes = bool(len(seconds)) and float(seconds.max()) > 300
    elapsed = seconds / 60.0 if minutes else seconds
    epochs = np.arange(1, len(points) + 1)
    fig = _figure(10, 3.8)
    left, right = fig.subplots(1, 2, sharey=True)
    clock = f"wall-clock {'minutes' if minutes else 'seconds'} since the search started"
    for ax, x, label in ((left, elapsed, clock), (right, epochs, "epochs trained, all trials together")):
        ax.scatter(x, values, s=8, color="tab:gray", alpha=0.4, label="one epoch of one trial")
        ax.step(x, best, where="post", color="tab:blue", lw=2, label=f"best {metric} so far")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel(metric)
    left.legend(fontsize=7, loc="lower right" if mode == "max" else "upper right")
    return fig
