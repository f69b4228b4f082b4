"""The Pareto front of a search that traded accuracy against serving cost, and export's ``--pick``.

A trial is on the front when no other trial is at least as good on every objective and better on
one. Accuracy-like objectives are read at each trial's best epoch (``best_val_acc``: the weights
an export ships); serving costs are the trial's measured ``latency_ms``/``model_mb``. The front
is over the search's ``search.objectives``; for a one-objective search that measured serving
cost (``search.measure_serving``), over its metric and the cost asked about.

``--pick latency_ms<=X`` ships Pareto trials best first (by the search's metric) while their
summed cost stays within X: an ensemble's members run one after another, so its latency and size
are about the sum of theirs (the card then measures the real graph).
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from tunefleet.spaces import OBJECTIVE_MODES, SERVING_MODES, SpecError, objective_key
from tunefleet.spaces import records as rec

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.entities import Run

SEARCH_OBJECTIVES_PARAM = "search.objectives"
_PICK = re.compile(r"^\s*([a-z_]+)\s*<=\s*([0-9.eE+-]+)\s*$")


class Pick(NamedTuple):
    """``--pick NAME<=LIMIT``: a budget on a serving cost."""

    metric: str
    limit: float

    @staticmethod
    def parse(text: str) -> Pick:
        """``latency_ms<=5`` (or ``latency_ms_batch``, ``model_mb``); one line naming ``--pick`` else."""
        found = _PICK.match(text)
        costs = ", ".join(SERVING_MODES)
        if not found:
            raise SpecError("--pick", f"expected NAME<=LIMIT with NAME one of {costs}, got {text!r}")
        name, raw = found.groups()
        if name not in SERVING_MODES:
            raise SpecError("--pick", f"unknown serving cost {name!r}; one of: {costs}")
        try:
            limit = float(raw)
        except ValueError:
            raise SpecError("--pick", f"the limit must be a number, got {raw!r}") from None
        if not limit > 0:
            raise SpecError("--pick", f"the limit must be > 0, got {raw}")
        return Pick(name, limit)


def search_objectives(parent: Run) -> list[str]:
    """The objectives a search recorded (``search.objectives``), or its one metric."""
    raw = parent.data.params.get(SEARCH_OBJECTIVES_PARAM)
    names = list(ast.literal_eval(raw)) if raw else []
    return names or [parent.data.params[rec.SEARCH_METRIC_PARAM]]


def front_objectives(parent: Run, frame: pd.DataFrame, cost: str | None = None) -> list[str]:
    """What the front trades: the search's objectives, with ``cost`` added; a one-objective search
    trades its metric against ``cost`` (default ``latency_ms``) when its trials measured it."""
    names = search_objectives(parent)
    if cost and cost not in names:
        names.append(cost)
    if len(names) == 1:
        names.append(rec.LATENCY_MS)
    missing = [n for n in names[1:] if n in SERVING_MODES and n not in frame]
    if missing:
        raise SpecError(
            "--pareto" if cost is None else "--pick",
            f"the trials measured no {missing[0]}; search with search.objectives naming it or search.measure_serving",
        )
    return names


def pareto_front(frame: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """The rows of ``frame`` no other row dominates on ``objectives`` (rows missing one are out),
    in ``frame``'s order."""
    columns = [objective_key(n) for n in objectives]
    if frame.empty or any(c not in frame for c in columns):
        return frame.iloc[0:0]
    scored = frame.dropna(subset=columns)
    signs = np.array([-1.0 if OBJECTIVE_MODES[n] == "max" else 1.0 for n in objectives])
    costs = scored[columns].to_numpy(dtype=float) * signs  # every objective as lower is better
    kept = [
        not np.any(np.all(costs <= row, axis=1) & np.any(costs < row, axis=1))  # no row dominates this one
        for row in costs
    ]
    return scored[np.array(kept, dtype=bool)]


def picked(ranked: pd.DataFrame, pick: Pick, objectives: list[str], top_k: int) -> pd.DataFrame:
    """Up to ``top_k`` Pareto trials of ``ranked`` (best first), best first while their summed
    ``pick.metric`` stays within ``pick.limit``; a SpecError naming the fastest (smallest) there is if none fits."""
    front = pareto_front(ranked, objectives)
    if front.empty:
        raise SpecError("--pick", f"no trial with a best epoch measured {pick.metric}")
    chosen: list[int] = []
    total = 0.0
    for position, cost in enumerate(front[pick.metric].to_numpy(dtype=float)):
        if len(chosen) < top_k and total + cost <= pick.limit:
            chosen.append(position)
            total += cost
    if not chosen:
        cheapest = front.loc[front[pick.metric].idxmin()]
        word = "smallest" if pick.metric == rec.MODEL_MB else "fastest"
        raise SpecError(
            "--pick",
            f"no Pareto trial has {pick.metric} <= {pick.limit:g}; the {word} there is: "
            f"{pick.metric}={cheapest[pick.metric]:.4g} ({cheapest['name']})",
        )
    return front.iloc[chosen]


def pareto_figure(trials: pd.DataFrame, objectives: list[str]) -> Figure | None:
    """Every trial's first objective (at its best epoch) against the next one, the Pareto trials
    (over all ``objectives``) filled and joined; None when no trial has both values."""
    y_name, x_name = objectives[0], objectives[1]
    x, y = objective_key(x_name), objective_key(y_name)
    if trials.empty or x not in trials or y not in trials or trials[[x, y]].dropna().empty:
        return None
    from matplotlib.figure import Figure  # here, not at import: ``tunefleet trials`` stays cheap

    scored = trials.dropna(subset=[x, y])
    front = pareto_front(scored, objectives).sort_values(x)
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.scatter(scored[x], scored[y], s=24, facecolors="none", edgecolors="tab:gray", label="trials")
    ax.plot(front[x], front[y], "o-", color="tab:blue", label=f"Pareto front ({len(front)} trials)")
    for _, row in front.iterrows():
        ax.annotate(
            str(row.get("name", ""))[:18], (row[x], row[y]), fontsize=6, xytext=(3, 3), textcoords="offset points"
        )
    where = "GPU" if x_name in rec.GPU_SERVING_METRICS else "CPU"
    ax.set_xlabel(x_name + (f" (onnxruntime, {where})" if x_name in SERVING_MODES else ""))
    ax.set_ylabel(f"best {y_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig
