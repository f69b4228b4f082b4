"""Tracking overhead: per-epoch time of real digits trials with MLflow tracking on vs off.

Both arms run tunefleet's ``run_experiment`` with its real trial (checkpoints on) on the same
seeded random configs, FIFO, 2 slots, in one process with one Ray instance. "on" adds the
production MLflow callback (``MlflowTrialCallback`` on a SQLite store: child run per trial,
batched metrics, checkpoint artifacts logged from the driver) and the parent search run; "off"
keeps only the ledger. Runs alternate on/off/off/on... so drift hits both arms alike.

Per-epoch time is the search's wall divided by epochs trained (what a user waits for), and
alongside it the median ``epoch_time_s`` the trials report (time on the training path).
Target: on / off - 1 <= 5 %.

    python benchmarks/tracking_overhead.py [--trials 4] [--epochs 5] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import append, bench_doc, heading, median, quiet_ray, recorder, verdict


def run_arm(tracking: bool, trials: int, epochs: int, image_size: int, seed: int) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from tunefleet.search import MlflowTrialCallback, TrialLedger, finish_search_run, run_experiment, start_search_run
    from tunefleet.spaces import spec_from_dict

    doc = bench_doc(
        searcher="random",
        scheduler="fifo",
        num_samples=trials,
        max_epochs=epochs,
        grace_period=1,
        max_concurrent=2,
        seed=seed,
    )
    doc["data"]["image_size"] = image_size
    doc["name"] = "bench-tracking-" + ("on" if tracking else "off")
    spec = spec_from_dict(doc)
    with tempfile.TemporaryDirectory(prefix="tf-track-") as tmp:
        ledger = TrialLedger(spec.search.metric, spec.search.mode)
        rec = recorder()
        callbacks: list[Any] = [ledger, rec]
        client = parent = None
        if tracking:
            uri = f"sqlite:///{tmp}/mlflow.db"
            client = MlflowClient(tracking_uri=uri)
            parent = start_search_run(client, spec)
            callbacks.insert(1, MlflowTrialCallback(uri, parent, spec, ledger))
        start = time.perf_counter()
        run_experiment(spec, callbacks, Path(tmp) / "runs", trials)
        for cb in callbacks:  # queued MLflow writes count: wait for them as the CLI does
            if hasattr(cb, "close"):
                cb.close()
        if client is not None and parent is not None:
            finish_search_run(client, parent, ledger, time.perf_counter() - start, "FINISHED")
        wall = time.perf_counter() - start
    epochs_trained = sum(r.epochs for r in ledger.records.values())
    epoch_times = [float(r["epoch_time_s"]) for r in rec.rows if "epoch_time_s" in r]
    return {
        "tracking": "on" if tracking else "off",
        "wall_s": round(wall, 2),
        "epochs": epochs_trained,
        "wall_per_epoch_s": round(wall / max(epochs_trained, 1), 4),
        "trial_epoch_time_s": round(median(epoch_times), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="runs per arm, alternating")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=5.0, help="percent")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    quiet_ray()
    rows: list[dict[str, Any]] = []
    for i in range(a.repeats):
        order = (True, False) if i % 2 == 0 else (False, True)
        for tracking in order:
            row = run_arm(tracking, a.trials, a.epochs, a.image_size, a.seed)
            print(json.dumps(row), flush=True)
            rows.append(row)

    def med(arm: str, key: str) -> float:
        return median([float(r[key]) for r in rows if r["tracking"] == arm])

    lines = [
        "| tracking | runs | median wall s | epochs per run | median wall s / epoch | median trial epoch_time_s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for arm in ("off", "on"):
        n = sum(r["tracking"] == arm for r in rows)
        epochs = sorted({r["epochs"] for r in rows if r["tracking"] == arm})
        lines.append(
            f"| {arm} | {n} | {med(arm, 'wall_s'):.2f} | {'/'.join(map(str, epochs))} | "
            f"{med(arm, 'wall_per_epoch_s'):.3f} | {med(arm, 'trial_epoch_time_s'):.3f} |"
        )
    # Each repeat ran one "on" and one "off" back to back: their ratio cancels slow drift in load.
    pairs = [rows[i : i + 2] for i in range(0, len(rows) - 1, 2)]
    paired = [
        next(float(r["wall_per_epoch_s"]) for r in p if r["tracking"] == "on")
        / next(float(r["wall_per_epoch_s"]) for r in p if r["tracking"] == "off")
        for p in pairs
    ]
    wall_over = 100 * (median(paired) - 1)
    trial_over = 100 * (med("on", "trial_epoch_time_s") / med("off", "trial_epoch_time_s") - 1)
    lines += [
        "",
        f"Overhead of tracking per epoch (median of the {len(paired)} back-to-back on/off pairs' ratios, "
        f"{', '.join(f'{x:.3f}' for x in paired)}): wall {wall_over:+.1f} % (target <= {a.target:g} %: "
        f"{verdict(wall_over <= a.target)}); trial-reported epoch time, medians: {trial_over:+.1f} %.",
    ]
    head = heading(
        "tracking overhead: MLflow on vs off, real digits trials",
        f"{a.trials} random trials x {a.epochs} epochs, FIFO, 2 slots, test_resnet {a.image_size}x{a.image_size}, "
        f"{a.repeats} runs per arm alternating",
    )
    append(head + "\n" + "\n".join(lines) + "\n", not a.no_write)


if __name__ == "__main__":
    main()
