"""compare_peers compares like with like: tunefleet's searcher, on the spec as the benchmark writes
it, proposes the same configs as the peers' seeded TPE (../shared/peers: lr, batch_size, opt and
smoothing suggested in that order), so ASHA starts from the same trials in every runner."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import optuna

from tunefleet.search.run._experiment import _searcher
from tunefleet.spaces import load_spec

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _peer_configs(trials: int, seed: int) -> list[tuple[float, int, str, float]]:
    """What the peers' objective suggests, in its order, from TPESampler(seed)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), direction="maximize")
    configs = []
    for _ in range(trials):
        trial = study.ask()
        configs.append((
            trial.suggest_float("lr", 1e-4, 1e-1, log=True),
            trial.suggest_categorical("batch_size", [32, 64, 128]),
            trial.suggest_categorical("opt", ["sgd", "adamw"]),
            trial.suggest_float("smoothing", 0.0, 0.2),
        ))  # fmt: skip
        study.tell(trial, 0.5)
    return configs


def test_tunefleet_and_the_peers_try_the_same_configs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    loaded = importlib.util.spec_from_file_location("compare_peers", BENCHMARKS / "compare_peers.py")
    assert loaded is not None and loaded.loader is not None
    compare_peers = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(compare_peers)
    monkeypatch.setitem(sys.modules, "compare_peers", compare_peers)

    doc = compare_peers.bench_doc(num_samples=8, max_epochs=10, grace_period=2, scheduler="asha")
    spec = load_spec(compare_peers.write_spec(doc, tmp_path / "spec.yaml"))
    searcher = _searcher(spec)
    searcher.set_search_properties(spec.search.metric, spec.search.mode, {})
    ours = []
    for index in range(8):
        config = searcher.suggest(f"t{index}")
        ours.append((config["lr"], config["batch_size"], config["optimizer"], config["loss.label_smoothing.smoothing"]))
    peers = _peer_configs(8, spec.search.seed)
    assert ours == peers  # exactly: the same draws from the same seeded generator
