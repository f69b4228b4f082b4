"""tunefleet vs the plain alternatives on one workload; appends a dated table to RESULTS.md.

Runs, one after another on this machine: tunefleet's search CLI (MLflow + checkpoints on) with
ASHA as the peers use it (grace = epochs // 5, reduction 4) and with FIFO (every trial its full
epochs), the plain Ray Tune script (default, and with --reuse-actors) and plain in-process Optuna
(2 threads), all with the same trials, max epochs, model, image size, space and TPE seed. The
peers live in ../shared/peers and are run from there. ``tunefleet-service`` submits the same
search to a local service that is already up (``tunefleet up`` and one short warm-up job are not
timed) and times ``tunefleet submit --wait`` from its start to the search's end.

All three runners try the same configs: the spec keeps digits_bench.yaml's order of its space (lr,
batch_size, optimizer, loss), which is the order the peers suggest theirs in, and a seeded TPE's
first proposals (random until its tenth trial) follow the order of the draws, not the names
(tests/benchmarks/test_bench_smoke.py checks this). A spec written with its keys sorted drew
batch_size first and proposed other points. ASHA's cuts can still differ (tunefleet splits digits
into train, validation and test, the peers into train and validation): the table gives the whole
process wall time (imports included, for everyone) and the time per trained epoch.

    python benchmarks/compare_peers.py [--trials 8] [--epochs 10] [--peers ../shared/peers] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import DEFAULT_PEERS, append, bench_doc, heading, verdict


def write_spec(doc: dict[str, Any], path: Path) -> Path:
    """A spec for tunefleet, its keys in the document's order (the module doc says why)."""
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return wall, proc.stdout


def run_tunefleet(trials: int, epochs: int, scheduler: str) -> dict[str, object]:
    """The CLI on the peers' workload; ``scheduler`` asha (as the peers) or fifo (every trial full length)."""
    doc = bench_doc(num_samples=trials, max_epochs=epochs, grace_period=max(1, epochs // 5), scheduler=scheduler)
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        spec = write_spec(doc, Path(tmp) / "spec.yaml")
        wall, out = _run([sys.executable, "-m", "tunefleet.search.cli", "search", str(spec)], Path(tmp))
        return _trial_row(f"tunefleet ({scheduler})", f"sqlite:///{tmp}/mlflow.db", doc["name"], wall, out)


def _trial_row(name: str, uri: str, experiment: str, wall: float, out: str) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    from tunefleet.spaces import records as rec

    inner = re.search(r"wall time ([0-9.]+)s", out)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")
    return {
        "peer": name,
        "trials": len(runs),
        "epochs_trained": int(sum(r.data.metrics.get(rec.EPOCHS_TRAINED, 0) for r in runs)),
        "best_val_acc": round(max(r.data.metrics.get(rec.best_key("val_acc"), 0.0) for r in runs), 4),
        "wall_s": round(float(inner.group(1)), 2) if inner else float("nan"),
        "process_s": round(wall, 2),
    }


def run_service(trials: int, epochs: int) -> dict[str, object]:
    """The same search submitted to an already running local service (``tunefleet up``, not timed),
    timed from the ``tunefleet submit --wait`` command's start to the search's end."""
    import socket

    def port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    doc = bench_doc(num_samples=trials, max_epochs=epochs, grace_period=max(1, epochs // 5), scheduler="asha")
    tunefleet = [sys.executable, "-m", "tunefleet.search.cli"]
    with tempfile.TemporaryDirectory(prefix="tf-bench-svc-") as tmp:
        folder = Path(tmp)
        write_spec(doc, folder / "spec.yaml")
        ports = ["--ray-port", str(port()), "--dashboard-port", str(port()), "--mlflow-port", str(port())]
        _run([*tunefleet, "up", *ports], folder)
        # A short first job, not timed: a service that has already run a search (as it would have).
        warm = bench_doc(num_samples=2, max_epochs=1, scheduler="fifo") | {"name": "warm-up"}
        write_spec(warm, folder / "warm.yaml")
        try:
            _run([*tunefleet, "submit", "warm.yaml", "--wait"], folder)
            wall, out = _run([*tunefleet, "submit", "spec.yaml", "--wait"], folder)
            uri = json.loads((folder / ".tunefleet" / "service.json").read_text())["tracking_uri"]
            return _trial_row("tunefleet (service)", uri, doc["name"], wall, out)
        finally:
            _run([*tunefleet, "down"], folder)


def run_peer(peers: Path, script: str, trials: int, epochs: int, *extra: str) -> dict[str, object]:
    cmd = [sys.executable, script, "--trials", str(trials), "--epochs", str(epochs), "--model", "test_resnet", *extra]
    wall, out = _run(cmd, peers)
    row: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    row["process_s"] = round(wall, 2)
    return row


def targets(by: dict[str, dict[str, Any]], ours: dict[str, Any], per_epoch: dict[str, float]) -> list[str]:
    """Issue 22's goals: per trained epoch <= 1.15x optuna_plain; whole process <= 1.2x
    optuna_plain and <= 0.5x raytune_plain; the service's submit-to-end <= 1.6x optuna_plain."""
    notes = []
    if "optuna_plain" in by:
        optuna = by["optuna_plain"]
        pe = per_epoch[str(ours["peer"])] / per_epoch["optuna_plain"]
        notes.append(f"per trained epoch <= 1.15x optuna_plain: {pe:.2f} {verdict(pe <= 1.15)}")
        wall = float(ours["process_s"]) / float(optuna["process_s"])
        notes.append(f"whole process <= 1.2x optuna_plain: {wall:.2f} {verdict(wall <= 1.2)}")
    if "raytune_plain" in by:
        wall = float(ours["process_s"]) / float(by["raytune_plain"]["process_s"])
        notes.append(f"whole process <= 0.5x raytune_plain: {wall:.2f} {verdict(wall <= 0.5)}")
    service = by.get("tunefleet (service)")
    if service is not None and "optuna_plain" in by:
        wall = float(service["process_s"]) / float(by["optuna_plain"]["process_s"])
        notes.append(f"service submit-to-end <= 1.6x optuna_plain: {wall:.2f} {verdict(wall <= 1.6)}")
    return notes


def table(rows: list[dict[str, Any]], trials: int, epochs: int) -> str:
    ours = rows[0]
    by = {str(r["peer"]): r for r in rows}
    lines = [
        heading(
            "tunefleet vs the plain alternatives",
            f"{trials} trials x {epochs} max epochs, digits, test_resnet 32x32, 2 slots, single run each",
        ),
        "| runner | process wall s | own wall s | epochs trained | process s / epoch | best val_acc | "
        "tunefleet (asha) / runner, wall | per epoch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    per_epoch = {str(r["peer"]): float(r["process_s"]) / max(int(r["epochs_trained"]), 1) for r in rows}
    for r in rows:
        name = str(r["peer"])
        lines.append(
            f"| {name} | {float(r['process_s']):.1f} | {float(r['wall_s']):.1f} | {r['epochs_trained']} | "
            f"{per_epoch[name]:.2f} | {r['best_val_acc']} | {float(ours['process_s']) / float(r['process_s']):.2f} | "
            f"{per_epoch[str(ours['peer'])] / per_epoch[name]:.2f} |"
        )
    notes = targets(by, ours, per_epoch)
    return "\n".join(lines) + "\n\n" + "; ".join(notes) + ".\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--peers", type=Path, default=DEFAULT_PEERS)
    ap.add_argument(
        "--runners",
        default="tunefleet-asha,tunefleet-fifo,tunefleet-service,raytune_plain,raytune_plain+reuse,optuna_plain",
        help="comma-separated, tunefleet-asha first (the ratios are against it)",
    )
    ap.add_argument("--no-write", action="store_true", help="print the table, do not append to RESULTS.md")
    a = ap.parse_args()
    peers = a.peers.resolve()
    if not (peers / "raytune_plain.py").is_file():
        sys.exit(f"error: --peers: no raytune_plain.py in {peers}")
    runners = {
        "tunefleet-asha": lambda: run_tunefleet(a.trials, a.epochs, "asha"),
        "tunefleet-fifo": lambda: run_tunefleet(a.trials, a.epochs, "fifo"),
        "tunefleet-service": lambda: run_service(a.trials, a.epochs),
        "raytune_plain": lambda: run_peer(peers, "raytune_plain.py", a.trials, a.epochs),
        "raytune_plain+reuse": lambda: run_peer(peers, "raytune_plain.py", a.trials, a.epochs, "--reuse-actors"),
        "optuna_plain": lambda: run_peer(peers, "optuna_plain.py", a.trials, a.epochs, "--jobs", "2"),
    }
    chosen = [r.strip() for r in a.runners.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in runners]
    if unknown or not chosen or chosen[0] != "tunefleet-asha":
        sys.exit(f"error: --runners: tunefleet-asha first, then any of {list(runners)}; got {chosen}")
    rows = [runners[name]() for name in chosen]
    for r in rows:
        print(json.dumps(r), flush=True)
    append(table(rows, a.trials, a.epochs), not a.no_write)


if __name__ == "__main__":
    main()
