"""Where a trial's epoch goes beyond its training steps: a breakdown, in-process and through Tune.

The workload is compare_peers' (digits at 32 px, ``test_resnet``, batch 64, SGD, one torch
thread). Two arms, each in a fresh interpreter:

- ``in-process``: ``run_trial`` called directly, its report copying each reported checkpoint
  folder into a storage folder the way Ray Tune persists it (pyarrow's ``copy_files``). The
  trial's own functions are wrapped (the code under test is not changed) to time, per epoch:
  the training steps, validation, the test pass (on an improved epoch), the checkpoint writes,
  and the copy. What is left is the rest of the loop (metrics, seeding, the loader's handover).
- ``tune``: the same trial as a one-trial search through ``run_experiment`` with the MLflow
  callback on SQLite, as ``tunefleet search`` runs it; per epoch is the gap between the
  driver's receipt of two reports, so it holds Tune's report, checkpoint persistence and the
  driver's callbacks as well.

The peer (``../shared/peers/common.py``'s ``train``) trains the same steps and validates once;
it writes no checkpoints and has no test split.

    python benchmarks/epoch_cost.py [--epochs 10] [--repeats 3] [--checkpoint-every 1] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import append, bench_doc, heading, in_fresh_process, median, parse_or_run_child, quiet_ray, recorder

RECIPE = {"model": "test_resnet", "batch_size": 64, "lr": 0.05, "optimizer": "sgd"}  # flat, as a searcher samples
PARTS = ("train steps", "validation", "test pass", "checkpoint write", "copy to storage", "rest of the loop")


def _timed(module: Any, name: str, spent: dict[str, float], key: str) -> Callable[[], None]:
    """Wrap ``module.name`` so its seconds add up in ``spent[key]``; returns the undo."""
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - start

    setattr(module, name, wrapper)
    return lambda: setattr(module, name, original)


def in_process(epochs: int, every: int) -> dict[str, float]:
    from pyarrow import fs

    import tunefleet.trainables._trial as trial
    from tunefleet.spaces import DataSpec, SearchSettings, resolve
    from tunefleet.trainables import TrialSettings, run_trial

    spent: dict[str, float] = defaultdict(float)
    undo = [
        _timed(trial, "train_epoch", spent, "train steps"),
        _timed(trial, "predict", spent, "eval"),
        _timed(trial, "_test", spent, "test pass"),
        _timed(trial, "save_checkpoint", spent, "checkpoint write"),
    ]
    local = fs.LocalFileSystem()
    storage = Path(tempfile.mkdtemp(prefix="tf-epoch-storage-"))
    marks: list[float] = []

    def report(metrics: dict[str, float], checkpoint: Path | None) -> None:
        if checkpoint is not None:
            start = time.perf_counter()
            target = storage / f"checkpoint_{len(marks):06d}"
            fs.copy_files(str(checkpoint), str(target), source_filesystem=local, destination_filesystem=local)
            spent["copy to storage"] += time.perf_counter() - start
        marks.append(time.perf_counter())
        if len(marks) == 1:  # the first epoch also holds the trial's set-up: counted from its report on
            spent.clear()

    settings = TrialSettings(
        data=DataSpec(kind="digits", image_size=32),
        search=SearchSettings(max_epochs=epochs, seed=0, checkpoint_every=every),
    )
    run_trial(resolve(RECIPE), settings, report)
    for u in undo:
        u()
    n = len(marks) - 1
    row = {k: v / n for k, v in spent.items()}  # mean per epoch after the first
    row.setdefault("test pass", 0.0)
    row["validation"] = row.pop("eval") - row["test pass"]
    row["epoch"] = (marks[-1] - marks[0]) / n
    row["rest of the loop"] = row["epoch"] - sum(row[p] for p in PARTS[:-1])
    return row


def through_tune(epochs: int, every: int) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    from tunefleet.search import MlflowTrialCallback, TrialLedger, run_experiment, start_search_run
    from tunefleet.spaces import spec_from_dict

    doc = bench_doc(
        searcher="random", scheduler="fifo", num_samples=1, max_epochs=epochs, max_concurrent=1, checkpoint_every=every
    )
    doc["space"] = {"lr": RECIPE["lr"], "batch_size": RECIPE["batch_size"], "optimizer": RECIPE["optimizer"]}
    doc["name"] = "bench-epoch-cost"
    spec = spec_from_dict(doc)
    quiet_ray()
    with tempfile.TemporaryDirectory(prefix="tf-epoch-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        parent = start_search_run(MlflowClient(tracking_uri=uri), spec)
        ledger, rec = TrialLedger(spec.search.metric, spec.search.mode), recorder()
        tracker = MlflowTrialCallback(uri, parent, spec, ledger)
        run_experiment(spec, [ledger, tracker, rec], Path(tmp) / "runs", 1)
        tracker.close()
    arrivals = [r["t"] for r in rec.rows]
    return {"epoch": (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1)}


def child(payload: dict[str, Any]) -> None:
    run = in_process if payload["arm"] == "in-process" else through_tune
    print(json.dumps(run(payload["epochs"], payload["every"])))


def table(inproc: dict[str, float], tune: dict[str, float]) -> str:
    steps = inproc["train steps"]
    lines = ["| part of an epoch | s | share of the epoch | x train steps |", "|---|---:|---:|---:|"]
    for part in PARTS:
        s = inproc[part]
        lines.append(f"| {part} | {s:.3f} | {s / inproc['epoch']:.0%} | {s / steps:.2f} |")
    lines.append(f"| **epoch, in-process** | {inproc['epoch']:.3f} | 100% | {inproc['epoch'] / steps:.2f} |")
    extra = tune["epoch"] - inproc["epoch"]
    lines.append(f"| Tune report, persistence and driver callbacks | {extra:.3f} | | {extra / steps:.2f} |")
    lines.append(f"| **epoch, through Tune + MLflow** | {tune['epoch']:.3f} | | {tune['epoch'] / steps:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--checkpoint-every", type=int, default=1, help="search.checkpoint_every: epochs between last/ saves"
    )
    a = parse_or_run_child(ap, child)
    if a is None:
        return
    runs: dict[str, list[dict[str, float]]] = {"in-process": [], "tune": []}
    for _ in range(a.repeats):  # alternated, so drift hits both arms alike
        for arm in runs:
            row = in_fresh_process(__file__, {"arm": arm, "epochs": a.epochs, "every": a.checkpoint_every})
            print(json.dumps({"arm": arm, **row}), flush=True)
            runs[arm].append(row)
    med = {arm: {k: median([r[k] for r in rows]) for k in rows[0]} for arm, rows in runs.items()}
    head = heading(
        "epoch cost: where an epoch goes beyond its training steps",
        f"digits 32 px, test_resnet, batch 64, SGD, 1 thread, {a.epochs} epochs, search.checkpoint_every "
        f"{a.checkpoint_every}, median of {a.repeats} fresh processes per arm",
    )
    append(head + "\n" + table(med["in-process"], med["tune"]), not a.no_write)


if __name__ == "__main__":
    main()
