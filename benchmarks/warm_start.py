"""Warm start: does a second search of the same spec, warm-started from the first, reach the first
search's final best in at most half its trials?

    python benchmarks/warm_start.py [--seeds 3] [--trials 12] [--no-write]

Per seed: search A runs the peers' digits workload (``digits_bench.yaml``: TPE, here every trial
to the end, so trials compare at equal epochs); search B runs the same spec with
``--warm-start A`` (A's trials become B's history, A's best configs run first). The measure is
the first trial of B (in trial order, t01, t02, ...) whose best val_acc reaches A's best over all
its trials, as a share of B's trials (a B that never reaches it counts as 1 + 1/N). Goal: the
median share over the seeds is at most 0.5. Each search is the real CLI in a subprocess, one
SQLite store per seed.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from _common import append, bench_doc, heading, verdict

BIN = Path(sys.executable).parent
MAX_EPOCHS = 4


def _search(folder: Path, uri: str, experiment: str, extra: list[str]) -> None:
    command = [str(BIN / "tunefleet"), "search", "spec.yaml", "--tracking-uri", uri, "--experiment", experiment]
    done = subprocess.run([*command, *extra], cwd=folder, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command + extra)} exited {done.returncode}:\n{done.stdout[-2000:]}")


def _bests(uri: str, experiment: str) -> list[float]:
    """Each trial's best val_acc, in trial order (t01, t02, ...)."""
    from tunefleet.analysis import open_experiment, search_run, trials_frame

    client, found = open_experiment(uri, experiment)
    frame = trials_frame(client, search_run(client, found, None))
    frame["index"] = frame["name"].map(lambda n: int(re.match(r"t(\d+)", str(n)).group(1)))  # type: ignore[union-attr]
    return [float(v) for v in frame.sort_values("index")["best_val_acc"].fillna(0.0)]


def one_seed(seed: int, trials: int, root: Path) -> dict[str, Any]:
    folder = root / f"seed{seed}"
    folder.mkdir(parents=True)
    doc = bench_doc(seed=seed, num_samples=trials, scheduler="fifo", max_epochs=MAX_EPOCHS)
    for key in ("grace_period", "reduction_factor"):
        doc["search"].pop(key, None)
    (folder / "spec.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    _search(folder, uri, "first", [])
    _search(folder, uri, "warm", ["--warm-start", "first"])
    first, warm = _bests(uri, "first"), _bests(uri, "warm")
    target = max(first)
    reached = next((i + 1 for i, v in enumerate(warm) if v >= target), None)
    share = (reached if reached is not None else trials + 1) / trials
    return {"seed": seed, "first_best": target, "first_reached_at": first.index(target) + 1, "warm_reached_at": reached,
            "share": share, "warm_first": warm[0]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--no-write", action="store_true", help="print the table; leave RESULTS.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunefleet-warm-") as tmp:
        rows = [one_seed(seed, args.trials, Path(tmp)) for seed in range(args.seeds)]
    median = statistics.median(r["share"] for r in rows)
    lines = [
        "| seed | first search's best val_acc (its trial) | warm search reaches it at trial | share of trials |",
        "|---|---|---|---|",
        *(
            f"| {r['seed']} | {r['first_best']:.4f} (t{r['first_reached_at']:02d}) | "
            f"{'never' if r['warm_reached_at'] is None else r['warm_reached_at']} | {r['share']:.2f} |"
            for r in rows
        ),
    ]
    detail = (
        f"digits_bench.yaml, TPE, fifo, {MAX_EPOCHS} epochs a trial, {args.trials} trials a search; "
        f"median share {median:.2f}, goal <= 0.5: {verdict(median <= 0.5)}"
    )
    title = heading("Warm start: a second search reaches the first one's best", detail)
    append(title + "\n" + "\n".join(lines) + "\n", not args.no_write)


if __name__ == "__main__":
    main()
