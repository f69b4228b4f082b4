"""Scale: 200, 1,000 and 2,000 short trials through tunefleet's driver path, and the CLI on them.

Each size runs in a fresh interpreter: tunefleet's local Ray, ``run_experiment`` with a sleep
trainable (``--sleep`` s, one report), the searcher (Optuna TPE by default), FIFO on ``--slots``
slots, and the driver's callbacks as ``tunefleet search`` has them: the ledger, the MLflow
callback on a SQLite store, and the keeper of Ray Tune's saved state. Per size it reports

- overhead per trial: (wall - trials x sleep / slots) x slots / trials, in slot-seconds;
- the driver's peak RSS, and the RSS each trial added since the size before;
- MLflow rows (runs, params, tags, metric rows) written per second of the search;

and on the largest search, how long ``tunefleet trials`` and ``tunefleet report`` take (each in
its own process, from its start to its exit). Targets (issue 22): the overhead per trial at the
largest size within 10 % of the smallest, and so the RSS per added trial (last step against the
first); ``trials`` and ``report`` under 10 s each.

With ``--cluster`` the same runs on a real 2-node Ray cluster on loopback (``_cluster.py``: ``ray
start`` processes, 1 CPU per node, token authentication on), the driver joining it by address;
with ``--address HOST:PORT``, on a cluster already running (the cluster tests' shared one).

    python benchmarks/scale.py [--sizes 200,1000,2000] [--sleep 0.1] [--slots 2] [--cluster | --address A] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _cluster import loopback_cluster
from _common import PeakRss, append, bench_doc, heading, in_fresh_process, parse_or_run_child, quiet_ray, verdict
from scheduling import sleep_trainable

ROW_TABLES = ("runs", "params", "tags", "metrics")


def mlflow_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return sum(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ROW_TABLES)


def child(payload: dict[str, Any]) -> None:
    """One search of ``payload['trials']`` sleep trials in ``payload['folder']``; prints its row."""
    from mlflow.tracking import MlflowClient

    from tunefleet.search import MlflowTrialCallback, TrialLedger, finish_search_run, run_experiment, start_search_run
    from tunefleet.search.run._experiment import experiment_path
    from tunefleet.search.run._keeper import StateKeeper
    from tunefleet.spaces import spec_from_dict

    trials, seconds, slots, folder = payload["trials"], payload["sleep"], payload["slots"], Path(payload["folder"])
    doc = bench_doc(num_samples=trials, max_epochs=1, scheduler="fifo", searcher=payload["searcher"], grace_period=1)
    doc["search"]["max_concurrent"] = slots
    doc["name"] = payload["name"]
    spec = spec_from_dict(doc)
    os.chdir(folder)  # MLflow's artifact root (./mlruns) of a new SQLite store is the working folder
    if payload.get("address"):  # the driver joins the loopback cluster, as a submitted search's does
        from tunefleet.search import start_ray

        start_ray(payload["address"])
    else:
        quiet_ray()
    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    parent = start_search_run(client, spec)
    ledger = TrialLedger(spec.search.metric, spec.search.mode)
    storage = folder / "runs"
    tracker = MlflowTrialCallback(uri, parent, spec, ledger)
    callbacks = [ledger, tracker] + ([StateKeeper(experiment_path(storage, spec.name))] if payload["keeper"] else [])
    rows_before = mlflow_rows(folder / "mlflow.db")
    peak = PeakRss()
    start = time.perf_counter()
    run_experiment(spec, callbacks, storage, trials, trainable=sleep_trainable(seconds), name=spec.name)
    tracker.close()  # queued MLflow writes count: the CLI waits for them too
    wall = time.perf_counter() - start
    rss = peak.stop()
    finish_search_run(client, parent, ledger, wall, "FINISHED")
    done = sum(1 for r in ledger.records.values() if r.epochs >= 1)
    floor = trials * seconds / slots
    print(
        json.dumps(
            {
                "trials": trials,
                "completed": done,
                "wall_s": round(wall, 1),
                "overhead_per_trial_s": round((wall - floor) * slots / trials, 4),
                "peak_rss_mib": round(rss["peak_main_mib"], 1),
                "mlflow_rows_per_s": round((mlflow_rows(folder / "mlflow.db") - rows_before) / wall, 1),
            }
        )
    )


def time_cli(folder: Path, name: str, *args: str) -> float:
    """Seconds from a tunefleet command's start to its exit, in a new process."""
    uri = f"sqlite:///{folder}/mlflow.db"
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "tunefleet.search.cli", *args, name, "--tracking-uri", uri],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"tunefleet {' '.join(args)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return seconds


def table(rows: list[dict[str, Any]], cli: dict[str, float]) -> str:
    lines = [
        "| trials | completed | wall s | overhead per trial (slot-s) | driver peak RSS MiB | "
        "RSS per added trial KiB | MLflow rows / s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    marginal: list[float] = []  # the driver's peak RSS per trial added since the size before
    for before, r in zip([None, *rows], rows, strict=False):
        added = "-"
        if before is not None:
            marginal.append((r["peak_rss_mib"] - before["peak_rss_mib"]) * 1024 / (r["trials"] - before["trials"]))
            added = f"{marginal[-1]:.1f}"
        lines.append(
            f"| {r['trials']} | {r['completed']} | {r['wall_s']:.1f} | {r['overhead_per_trial_s']:.3f} | "
            f"{r['peak_rss_mib']:.0f} | {added} | {r['mlflow_rows_per_s']:.0f} |"
        )
    small, large = rows[0], rows[-1]
    overhead = large["overhead_per_trial_s"] / small["overhead_per_trial_s"] - 1
    lines += [
        "",
        f"overhead per trial at {large['trials']} vs {small['trials']}: {overhead:+.1%} (target within 10 %) ",
    ]
    lines[-1] += verdict(overhead <= 0.10)
    if len(marginal) >= 2 and marginal[0] <= 0:
        lines[-1] += "; RSS per added trial: the first step added none (sizes too small to tell)"
    elif len(marginal) >= 2:
        # Memory that grows with the trial count is expected (Tune keeps every trial); per trial
        # it must not grow: the last step's RSS per added trial against the first step's.
        growth = marginal[-1] / marginal[0] - 1
        lines[-1] += f"; RSS per added trial, last step vs first: {growth:+.1%} (target within 10 %) "
        lines[-1] += verdict(growth <= 0.10)
    for command, seconds in cli.items():
        ok = verdict(seconds < 10)
        lines.append(f"`tunefleet {command}` on {large['trials']} trials: {seconds:.1f} s (target < 10 s) {ok}")
    return "\n".join(lines) + "\n"


def run_sizes(
    a: argparse.Namespace, sizes: list[int], address: str | None
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One search per size, each in a fresh driver process; then the CLI on the largest."""
    rows: list[dict[str, Any]] = []
    cli: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tf-scale-") as tmp:
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            payload = {
                "trials": n,
                "sleep": a.sleep,
                "slots": a.slots,
                "searcher": a.searcher,
                "keeper": not a.no_keeper,
                "address": address,
            }
            row = in_fresh_process(__file__, {**payload, "folder": str(folder), "name": f"bench-scale-{n}"})
            print(json.dumps(row), flush=True)
            rows.append(row)
        largest = Path(tmp) / f"n{sizes[-1]}"
        cli["trials"] = time_cli(largest, f"bench-scale-{sizes[-1]}", "trials")
        cli["report"] = time_cli(largest, f"bench-scale-{sizes[-1]}", "report", "--out", str(largest / "report"))
    return rows, cli


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200,1000,2000", help="comma-separated trial counts, smallest first")
    ap.add_argument("--sleep", type=float, default=0.1, help="seconds each trial sleeps")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--searcher", default="optuna", choices=["optuna", "random"])
    ap.add_argument("--no-keeper", action="store_true", help="leave the state keeper out (an A/B of its cost)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--cluster", action="store_true", help="on a 2-node loopback Ray cluster, 1 CPU per node")
    where.add_argument("--address", help="on the running Ray cluster at HOST:PORT, the driver joining it")
    a = parse_or_run_child(ap, child)
    if a is None:
        return
    sizes = sorted(int(s) for s in a.sizes.split(",") if s.strip())
    with loopback_cluster() if a.cluster else contextlib.nullcontext(a.address) as address:
        rows, cli = run_sizes(a, sizes, address)
    where = ", local Ray"
    if address:
        where = f", on {'a 2-node loopback' if a.cluster else 'the'} Ray cluster at {address}"
        where += " (1 CPU per node, token auth)" if a.cluster else ""
    head = heading(
        "scale: sleep trials through the driver path",
        f"{a.sleep:g} s trials, {a.slots} slots, {a.searcher}, FIFO, MLflow on SQLite, state keeper "
        f"{'off' if a.no_keeper else 'on'}{where}",
    )
    append(head + "\n" + table(rows, cli), not a.no_write)


if __name__ == "__main__":
    main()
