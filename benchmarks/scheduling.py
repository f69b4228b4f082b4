"""Scheduling overhead: N trials of a sleep trainable on 2 slots through tunefleet's run_experiment.

Each trial sleeps ``--sleep`` seconds and reports once; the floor is trials x sleep / slots
(200 x 1 s / 2 = 100 s). Runs the real driver path: tunefleet's local Ray, its searcher (Optuna
TPE by default), FIFO, reused actors, the ledger and the MLflow callback on a SQLite store.
Variants (``--variants``) change one setting for an A/B without touching tunefleet's code:

- ``default``: tunefleet as it is.
- ``state-sync-60s``: ``TUNE_GLOBAL_CHECKPOINT_S=60`` (Tune saves experiment state at most once a minute).
- ``no-reuse``: ``reuse_actors=False`` (a fresh actor per trial), patched into ``tune.TuneConfig``.
- ``no-mlflow``: the MLflow callback left out (ledger only).
- ``no-limit``: no ``max_concurrent`` (Tune queues suggested trials ahead instead of asking the
  searcher only when a slot frees).

The MLflow callback writes on its own background thread (98c5692), so the callback every
variant but ``no-mlflow`` uses is the one the CLI uses.

    python benchmarks/scheduling.py [--trials 200] [--sleep 1] [--variants default,state-sync-60s] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import append, bench_doc, heading, quiet_ray, verdict

VARIANTS = ("default", "state-sync-60s", "no-reuse", "no-mlflow", "no-limit")


def sleep_trainable(seconds: float) -> Callable[[dict[str, Any], Any], None]:
    """A function trainable ``(config, settings)`` that sleeps and reports one final epoch."""

    def trial(config: dict[str, Any], settings: Any) -> None:
        from ray import tune

        from tunefleet.spaces import records as rec

        time.sleep(seconds)
        acc = float(config.get("lr", 0.0))
        tune.report({"epoch": 1.0, "val_acc": acc, "test_acc": acc, rec.IS_LAST: 1.0})

    return trial


@contextlib.contextmanager
def variant_settings(name: str) -> Iterator[None]:
    """Apply one variant's change for the duration of a run."""
    if name == "state-sync-60s":
        old = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S")
        os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = "60"
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("TUNE_GLOBAL_CHECKPOINT_S", None)
            else:
                os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = old
    elif name == "no-reuse":
        from ray import tune

        original = tune.TuneConfig.__init__

        def patched(self: Any, *args: Any, **kwargs: Any) -> None:
            kwargs["reuse_actors"] = False
            original(self, *args, **kwargs)

        tune.TuneConfig.__init__ = patched  # type: ignore[method-assign]
        try:
            yield
        finally:
            tune.TuneConfig.__init__ = original  # type: ignore[method-assign]
    else:
        yield


def run_once(trials: int, seconds: float, slots: int, searcher: str, variant: str, profile: bool) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from tunefleet.search import MlflowTrialCallback, TrialLedger, finish_search_run, run_experiment, start_search_run
    from tunefleet.spaces import records as rec
    from tunefleet.spaces import spec_from_dict

    doc = bench_doc(num_samples=trials, max_epochs=1, scheduler="fifo", searcher=searcher, grace_period=1)
    doc["search"]["max_concurrent"] = None if variant == "no-limit" else slots
    doc["name"] = f"bench-scheduling-{variant}"
    spec = spec_from_dict(doc)
    with tempfile.TemporaryDirectory(prefix="tf-sched-") as tmp:
        ledger = TrialLedger(spec.search.metric, spec.search.mode)
        callbacks: list[Any] = [ledger]
        client = parent = None
        if variant != "no-mlflow":
            uri = f"sqlite:///{tmp}/mlflow.db"
            client = MlflowClient(tracking_uri=uri)
            parent = start_search_run(client, spec)
            callbacks.append(MlflowTrialCallback(uri, parent, spec, ledger))
        prof = cProfile.Profile() if profile else None
        with variant_settings(variant):
            start = time.perf_counter()
            if prof:
                prof.enable()
            run_experiment(spec, callbacks, Path(tmp) / "runs", trials, trainable=sleep_trainable(seconds))
            for cb in callbacks:  # queued MLflow writes count: wait for them as the CLI does
                if hasattr(cb, "close"):
                    cb.close()
            if prof:
                prof.disable()
            wall = time.perf_counter() - start
        if client is not None and parent is not None:
            finish_search_run(client, parent, ledger, wall, "FINISHED")
        done = sum(1 for r in ledger.records.values() if r.epochs >= 1)
        logged = -1
        if client is not None and parent is not None:
            exp_id = client.get_run(parent).info.experiment_id
            trial_runs = f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'"
            runs = client.search_runs([exp_id], trial_runs, max_results=5000)
            logged = sum(1 for r in runs if r.info.status == "FINISHED" and spec.search.metric in r.data.metrics)
    floor = trials * seconds / slots
    row = {
        "variant": variant,
        "searcher": searcher,
        "trials": trials,
        "completed": done,
        "mlflow_runs_finished": logged,
        "wall_s": round(wall, 1),
        "floor_s": round(floor, 1),
        "overhead_per_trial_s": round((wall - floor) * slots / trials, 3),
    }
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(35)
        row["profile"] = buf.getvalue()
    return row


def table(rows: list[dict[str, Any]], target: float, trials: int, seconds: float) -> str:
    lines = [
        "| variant | searcher | trials done | MLflow runs FINISHED | wall s | floor s | wall / floor | "
        "overhead per trial (slot-s) | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        scaled_target = target * r["floor_s"] / 100.0
        ok = r["wall_s"] <= scaled_target and r["completed"] == r["trials"]
        lines.append(
            f"| {r['variant']} | {r['searcher']} | {r['completed']}/{r['trials']} | "
            f"{'-' if r['mlflow_runs_finished'] < 0 else r['mlflow_runs_finished']} | {r['wall_s']:.1f} | "
            f"{r['floor_s']:.0f} | {r['wall_s'] / r['floor_s']:.2f} | {r['overhead_per_trial_s']:.3f} | "
            f"<= {scaled_target:.0f} s {verdict(ok)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--sleep", type=float, default=1.0, help="seconds each trial sleeps")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--searcher", default="optuna", choices=["optuna", "random"])
    ap.add_argument("--variants", default="default", help=f"comma-separated, from {', '.join(VARIANTS)}")
    ap.add_argument("--target", type=float, default=115.0, help="target wall for a 100 s floor (scaled)")
    ap.add_argument("--profile", action="store_true", help="cProfile the driver (top 35 by cumulative time)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        sys.exit(f"error: --variants: unknown {bad}; choose from {VARIANTS}")
    quiet_ray()
    rows = []
    for v in variants:
        row = run_once(a.trials, a.sleep, a.slots, a.searcher, v, a.profile)
        if "profile" in row:
            print(row.pop("profile"), file=sys.stderr)
        print(json.dumps(row), flush=True)
        rows.append(row)
    head = heading(
        "scheduling: sleep trials through run_experiment",
        f"{a.trials} trials x {a.sleep:g} s, {a.slots} slots, FIFO, MLflow on (except `no-mlflow`)",
    )
    append(head + "\n" + table(rows, a.target, a.trials, a.sleep), not a.no_write)


if __name__ == "__main__":
    main()
