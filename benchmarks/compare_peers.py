"""tunefleet vs the plain alternatives on one workload; appends a dated table to RESULTS.md.

Runs, one after another on this machine: tunefleet's search (MLflow + checkpoints on), the plain
Ray Tune script (default, and with --reuse-actors), and plain in-process Optuna, all with the same
trials, epochs, model and image size. The peers live in ../shared/peers and are run from there.

    python benchmarks/compare_peers.py [--trials 8] [--epochs 10] [--peers ../shared/peers] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def _run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return wall, proc.stdout


def run_tunefleet(trials: int, epochs: int) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    doc = yaml.safe_load((HERE / "digits_bench.yaml").read_text())
    doc["search"].update(num_samples=trials, max_epochs=epochs, grace_period=max(1, epochs // 5))
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(yaml.safe_dump(doc))
        cli = [sys.executable, "-m", "tunefleet.search.cli", "search", str(spec)]
        wall, _ = _run(cli, Path(tmp))
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
        exp = client.get_experiment_by_name(doc["name"])
        assert exp is not None
        runs = client.search_runs([exp.experiment_id], filter_string="tags.`tunefleet.role` = 'trial'")
        return {
            "peer": "tunefleet",
            "trials": len(runs),
            "epochs_trained": int(sum(r.data.metrics.get("epochs_trained", 0) for r in runs)),
            "best_val_acc": round(max(r.data.metrics.get("best_val_acc", 0.0) for r in runs), 4),
            "wall_s": round(wall, 2),
        }


def run_peer(peers: Path, script: str, trials: int, epochs: int, *extra: str) -> dict[str, object]:
    cmd = [sys.executable, script, "--trials", str(trials), "--epochs", str(epochs), "--model", "test_resnet", *extra]
    wall, out = _run(cmd, peers)
    row: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    row["wall_s_outside"] = round(wall, 2)
    return row


def table(rows: list[dict[str, object]], trials: int, epochs: int) -> str:
    by = {str(r["peer"]): r for r in rows}
    ours = float(by["tunefleet"]["wall_s"])  # type: ignore[arg-type]
    lines = [
        f"### {time.strftime('%Y-%m-%d')} · {platform.machine()} · {os.cpu_count()} cores · "
        f"{trials} trials x {epochs} max epochs, test_resnet 32x32, 2 slots",
        "",
        "| runner | wall s | epochs trained | best val_acc | tunefleet / runner |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        wall = float(r["wall_s"])  # type: ignore[arg-type]
        lines.append(f"| {r['peer']} | {wall:.1f} | {r['epochs_trained']} | {r['best_val_acc']} | {ours / wall:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--peers", type=Path, default=HERE.parent.parent / "shared" / "peers")
    ap.add_argument("--no-write", action="store_true", help="print the table, do not append to RESULTS.md")
    a = ap.parse_args()
    peers = a.peers.resolve()
    if not (peers / "raytune_plain.py").is_file():
        sys.exit(f"error: --peers: no raytune_plain.py in {peers}")
    rows = [
        run_tunefleet(a.trials, a.epochs),
        run_peer(peers, "raytune_plain.py", a.trials, a.epochs),
        run_peer(peers, "raytune_plain.py", a.trials, a.epochs, "--reuse-actors"),
        run_peer(peers, "optuna_plain.py", a.trials, a.epochs, "--jobs", "2"),
    ]
    text = table(rows, a.trials, a.epochs)
    print(text)
    if not a.no_write:
        with open(HERE / "RESULTS.md", "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
