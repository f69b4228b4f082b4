"""Early stopping on digits: epochs ASHA spends to reach random search's full-budget best.

Two live searches through tunefleet's ``run_experiment`` with its real trial, on the same
seeded random configs (Optuna's seeded random sampler draws the same sequence whatever the
scheduler; the script checks that the configs match): FIFO (every trial trains ``--epochs``)
and ASHA (``time_attr=epoch``, ``--grace``, ``--reduction``). Random search's full-budget best
is the best ``val_acc`` any of its trials reported; ASHA's cost is the number of epochs trained,
in the order results reached the driver, up to its first report at least that good.
Target: ASHA epochs <= 1/3 of random search's epochs.

    python benchmarks/early_stopping.py [--trials 16] [--epochs 9] [--image-size 16] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import append, bench_doc, heading, quiet_ray, recorder, verdict


def search(scheduler: str, a: argparse.Namespace) -> dict[str, Any]:
    from tunefleet.search import TrialLedger, run_experiment
    from tunefleet.spaces import spec_from_dict

    doc = bench_doc(
        searcher="random",
        scheduler=scheduler,
        num_samples=a.trials,
        max_epochs=a.epochs,
        grace_period=a.grace,
        reduction_factor=a.reduction,
        max_concurrent=2,
        seed=a.seed,
    )
    doc["data"]["image_size"] = a.image_size
    doc["name"] = f"bench-early-stopping-{scheduler}"
    spec = spec_from_dict(doc)
    ledger = TrialLedger(spec.search.metric, spec.search.mode)
    rec = recorder()
    with tempfile.TemporaryDirectory(prefix="tf-asha-") as tmp:
        start = time.perf_counter()
        run_experiment(spec, [ledger, rec], Path(tmp) / "runs", a.trials)
        wall = time.perf_counter() - start
    rows = sorted((r for r in rec.rows if "val_acc" in r), key=lambda r: r["t"])
    configs = sorted(json.dumps(r.recipe, sort_keys=True, default=str) for r in ledger.records.values())
    return {"rows": rows, "wall": wall, "configs": configs, "epochs": sum(r.epochs for r in ledger.records.values())}


def epochs_to_reach(rows: list[dict[str, Any]], level: float) -> int | None:
    """Epochs trained (results in arrival order) until the first ``val_acc >= level``."""
    for i, r in enumerate(rows):
        if float(r["val_acc"]) >= level - 1e-9:
            return i + 1
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=9, help="max epochs (random search trains every trial this long)")
    ap.add_argument("--grace", type=int, default=1)
    ap.add_argument("--reduction", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=0.005, help="also report reaching best - tolerance")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    quiet_ray()
    fifo = search("fifo", a)
    asha = search("asha", a)
    best = max(float(r["val_acc"]) for r in fifo["rows"])
    exact = epochs_to_reach(asha["rows"], best)
    near = epochs_to_reach(asha["rows"], best - a.tolerance)
    asha_best = max(float(r["val_acc"]) for r in asha["rows"])
    same = fifo["configs"] == asha["configs"]
    summary = {
        "random_epochs": fifo["epochs"],
        "random_best": round(best, 4),
        "random_wall_s": round(fifo["wall"], 1),
        "asha_epochs_total": asha["epochs"],
        "asha_best": round(asha_best, 4),
        "asha_wall_s": round(asha["wall"], 1),
        "asha_epochs_to_best": exact,
        "asha_epochs_to_near": near,
        "same_configs": same,
    }
    print(json.dumps(summary), flush=True)

    def ratio(n: int | None) -> str:
        return "not reached" if n is None else f"{n} ({n / fifo['epochs']:.2f} of random's)"

    ok = exact is not None and exact <= fifo["epochs"] / 3
    lines = [
        "| search | epochs trained | best val_acc | wall s |",
        "|---|---:|---:|---:|",
        f"| random, FIFO (full budget) | {fifo['epochs']} | {best:.4f} | {fifo['wall']:.1f} |",
        f"| random, ASHA | {asha['epochs']} | {asha_best:.4f} | {asha['wall']:.1f} |",
        "",
        f"ASHA epochs to reach random's full-budget best ({best:.4f}): {ratio(exact)}; target <= 1/3: {verdict(ok)}. "
        f"To within {a.tolerance:g}: {ratio(near)}. "
        f"Same {a.trials} configs in both searches: {'yes' if same else 'NO'}.",
    ]
    head = heading(
        "early stopping: ASHA vs full-budget random search on digits (live runs)",
        f"{a.trials} seeded random trials, max {a.epochs} epochs, ASHA grace {a.grace} reduction {a.reduction}, "
        f"2 slots, test_resnet {a.image_size}x{a.image_size}",
    )
    append(head + "\n" + "\n".join(lines) + "\n", not a.no_write)


if __name__ == "__main__":
    main()
