"""Deploy: a search that trades accuracy against latency, and the cheaper graphs export ships.

    python benchmarks/deploy.py [--data digits shapes] [--trials 12] [--epochs 4] [--no-write]

Per data set (``_automl_data``: digits, or the generated hard shapes folder), through the CLI:

1. a two-objective search (``search.objectives: [val_acc, latency_ms]``, multi-objective TPE, FIFO
   so trials compare at equal epochs) over four zoo models of different cost;
2. ``tunefleet trials --pareto``: the front's size (goal: at least three trials);
3. ``tunefleet export --pick latency_ms<=B`` with B the front's median latency: the members must be
   Pareto trials whose summed latency fits B; the card's measured batch-1 latency is reported;
4. ``tunefleet export --precision int8`` and ``--precision fp16`` of the top-3 ensemble: test
   accuracy beside fp32 (goal: int8 within 1 point), latency at batch 1 and 32 (goal: int8 faster
   at batch 32), file size; fp16's probabilities within the export's 1e-2 of fp32 (export refuses
   a graph that drifts further);
5. ``tunefleet export --distill`` of the top-3 ensemble (the fastest member's architecture, from
   its weights, ``--distill-epochs`` as many as the search's): the student's test accuracy against
   the ensemble's (goal on digits: at least 99 %) and its batch-1 latency against the ensemble
   graph's (goal: at least k = 3 times faster).

Latency is onnxruntime on this CPU, median of repeated runs; the machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from _automl_data import write_dataset
from _common import append, heading, verdict

BIN = Path(sys.executable).parent
MODELS = ["lcnet_050", "mobilenetv3_small_100", "resnet10t", "resnet18"]
BATCH_N = 32


def _cli(folder: Path, *args: str) -> str:
    done = subprocess.run([str(BIN / "tunefleet"), *args], cwd=folder, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"tunefleet {' '.join(args)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def _spec(name: str, data: Path, trials: int, epochs: int) -> dict[str, Any]:
    return {
        "name": name,
        "data": {"kind": "imagefolder", "root": str(data), "image_size": 32},
        "space": {
            "model": {"choice": MODELS},
            "lr": {"loguniform": [1e-3, 3e-2]},
            "batch_size": 64,
            "optimizer": "adamw",
        },
        "search": {
            "searcher": "optuna", "scheduler": "fifo", "num_samples": trials, "max_epochs": epochs,
            "max_concurrent": 2, "seed": 0, "objectives": ["val_acc", "latency_ms"], "serving_batch": BATCH_N,
        },
        "resources": {"cpus_per_worker": 1},
    }  # fmt: skip


def _card(folder: Path, out: str) -> dict[str, Any]:
    return dict(json.loads((folder / out / "card.json").read_text()))


def one_data_set(name: str, trials: int, epochs: int, root: Path) -> dict[str, Any]:
    folder = root / name
    data, _ = write_dataset(name, 0, folder / "images")
    if not (folder / "searched").exists():  # with --work, a rerun goes on from the finished search
        (folder / "spec.yaml").write_text(yaml.safe_dump(_spec(name, data, trials, epochs), sort_keys=False))
        _cli(folder, "search", "spec.yaml")
        (folder / "searched").write_text("done\n")
    everyone = [t for t in json.loads(_cli(folder, "trials", name, "--format", "json")) if t["latency_ms"]]
    front = json.loads(_cli(folder, "trials", name, "--pareto", "--format", "json"))
    budget = statistics.median(t["latency_ms"] for t in front)
    _cli(folder, "export", name, "--pick", f"latency_ms<={budget:.4f}", "--out", "pick")
    picked = _card(folder, "pick")
    members = {m["run_id"] for m in picked["members"]}
    summed = sum(t["latency_ms"] for t in front if t["run_id"] in members)
    variants = {}
    for precision in ("int8", "fp16"):
        args = ["--top-k", "3", "--precision", precision, "--batch", str(BATCH_N), "--out", precision]
        _cli(folder, "export", name, *args)
        variants[precision] = _card(folder, precision)["variants"]
    _cli(folder, "export", name, "--top-k", "3", "--distill", "--distill-epochs", str(epochs), "--out", "student")
    return {
        "data": name, "trials": len(everyone), "front": front, "budget": budget, "picked": picked,
        "pick_ok": members <= {t["run_id"] for t in front} and summed <= budget, "summed": summed,
        "int8": variants["int8"], "fp16": variants["fp16"], "student": _card(folder, "student"),
    }  # fmt: skip


def _rows(r: dict[str, Any]) -> list[str]:
    front = ", ".join(f"{t['params.model']} {t['best_val_acc']:.3f} @ {t['latency_ms']:.2f} ms" for t in r["front"])
    pick = r["picked"]
    lines = [
        f"| {r['data']} | Pareto front ({len(r['front'])} of {r['trials']} trials) | {front} |",
        f"| {r['data']} | `--pick latency_ms<={r['budget']:.2f}` | {len(pick['members'])} member(s), summed "
        f"{r['summed']:.2f} ms, ensemble test acc {pick['ensemble']['acc']:.4f}, measured "
        f"{pick['variants'][0]['latency_ms_batch_1']:.2f} ms at batch 1 |",
    ]
    fp32, int8 = r["int8"]
    fp16 = r["fp16"][1]
    d, shipped = r["student"]["distilled"], r["student"]["variants"][0]
    lines.append(
        f"| {r['data']} | `--distill` ({d['student']} from {d['initialized_from']}, {d['epochs']} epochs, best "
        f"{d['best_epoch']}) | test acc {shipped['test_acc']:.4f} against the ensemble's "
        f"{d['teacher_test']['acc']:.4f} "
        f"({_kept(r):.1%}); {shipped['latency_ms_batch_1']:.2f} ms at batch 1 against "
        f"{d['teacher_latency_ms_batch_1']:.2f} ms ({_speedup(r):.1f}x); "
        f"{shipped['file_bytes'] / 1e6:.2f} MB against {d['teacher_file_bytes'] / 1e6:.2f} MB |"
    )
    for v in (fp32, int8, fp16):
        lines.append(
            f"| {r['data']} | top-3 ensemble, {v['precision']} | test acc {v['test_acc']:.4f}, agrees with fp32 "
            f"{v['agreement_with_fp32']:.4f}, max abs diff {v['max_abs_diff_vs_fp32']:.1e}, "
            f"{v['latency_ms_batch_1']:.2f} ms at 1 / {v['latency_ms_batch_n']:.2f} ms at {v['batch_n']}, "
            f"{v['file_bytes'] / 1e6:.2f} MB |"
        )
    return lines


def _kept(r: dict[str, Any]) -> float:
    d = r["student"]["distilled"]
    return float(r["student"]["variants"][0]["test_acc"] / d["teacher_test"]["acc"])


def _speedup(r: dict[str, Any]) -> float:
    d = r["student"]["distilled"]
    return float(d["teacher_latency_ms_batch_1"] / r["student"]["variants"][0]["latency_ms_batch_1"])


def _goals(r: dict[str, Any]) -> dict[str, bool]:
    fp32, int8 = r["int8"]
    kept = {"student keeps >= 99 %": _kept(r) >= 0.99} if r["data"] == "digits" else {}
    return {
        **kept,
        "student >= 3x faster": _speedup(r) >= 3,
        "front >= 3": len(r["front"]) >= 3,
        "pick within budget": r["pick_ok"],
        "int8 within 1 point": fp32["test_acc"] - int8["test_acc"] <= 0.01,
        f"int8 faster at batch {BATCH_N}": int8["latency_ms_batch_n"] < fp32["latency_ms_batch_n"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits", "shapes"], choices=["digits", "shapes", "mnist"])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--work", type=Path, help="keep the searches here, to rerun the exports (default: a temporary folder)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the table; leave RESULTS.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunefleet-deploy-") as tmp:
        root = args.work or Path(tmp)
        results = [one_data_set(name, args.trials, args.epochs, root) for name in args.data]
    lines = ["| data | what | result |", "|---|---|---|", *(row for r in results for row in _rows(r))]
    goals = [f"{r['data']}: " + ", ".join(f"{g} {verdict(ok)}" for g, ok in _goals(r).items()) for r in results]
    detail = (
        f"{args.trials} trials x {args.epochs} epochs, FIFO, objectives [val_acc, latency_ms], models "
        f"{', '.join(MODELS)} at 32 px; latency: onnxruntime, this CPU. " + "; ".join(goals)
    )
    title = heading("Deploy: accuracy against latency, --pick, int8, fp16, a distilled student", detail)
    append(title + "\n" + "\n".join(lines) + "\n", not args.no_write)


if __name__ == "__main__":
    main()
