"""``tunefleet spaces`` prints the built-in spaces readably, and every invalid space is refused by
``tunefleet search`` with one line naming the path, exit code 2, before Ray or MLflow start."""

from __future__ import annotations

import pytest
import yaml

from tunefleet.spaces import BUILTIN_SPACES, builtin_space, validate_space


def test_spaces_list_names_every_builtin(run_cli):
    result = run_cli("spaces", "list")
    assert result.returncode == 0, result.stderr
    for name in BUILTIN_SPACES:
        assert name in result.stdout


def test_spaces_show_default_prints_every_knob_with_its_domain(run_cli):
    result = run_cli("spaces", "show", "default")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "loguniform [0.0001, 0.1]" in out and "optimizer.sgd.momentum" in out
    assert "uniform [0.8, 0.99]" in out and "momentum factor" in out
    assert "augmentation.hflip" in out and "regularization.drop_path_rate" in out


@pytest.mark.parametrize("name", sorted(BUILTIN_SPACES))
def test_spaces_show_yaml_round_trips(run_cli, name):
    result = run_cli("spaces", "show", name, "--yaml")
    assert result.returncode == 0, result.stderr
    assert validate_space(yaml.safe_load(result.stdout)["space"]) == builtin_space(name)


def test_spaces_show_reads_a_spec_file_and_refuses_unknown_names(run_cli, write_spec, small_spec):
    shown = run_cli("spaces", "show", str(write_spec(small_spec)))
    assert shown.returncode == 0 and "optimizer.sgd.momentum" in shown.stdout
    bad = run_cli("spaces", "show", "defualt")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: spaces show: unknown space 'defualt'; did you mean 'default'?"


# (where in the spec, value) -> the path the one-line error must name
CASES = {
    "empty choice": (("space", "batch_size", {"choice": []}), "space.batch_size: choice needs at least one"),
    "empty option map": (("space", "loss", {"choice": {}}), "space.loss: choice needs at least one"),
    "log range touching 0": (("space", "weight_decay", {"loguniform": [0.0, 0.1]}), "space.weight_decay: a log range"),
    "nested low >= high": (
        ("space", "optimizer", {"choice": {"sgd": {"momentum": {"uniform": [0.99, 0.8]}}}}),
        "space.optimizer.sgd.momentum: uniform needs low < high, got [0.99, 0.8]",
    ),
    "unknown key with typo": (("space", "wieght_decay", 0.1), "did you mean 'weight_decay'?"),
    "unknown option knob": (
        ("space", "optimizer", {"choice": {"adamw": {"momentum": 0.9}}}),
        "space.optimizer.adamw.momentum: adamw has no knob 'momentum'",
    ),
    "unknown group knob": (("space", "augmentation", {"mixup": 0.2}), "space.augmentation.mixup: unknown"),
    "unknown schedule": (("space", "schedule", "cosin"), "space.schedule: unknown schedule 'cosin'"),
    "unknown base": (("space", "base", "defualt"), "space.base: unknown built-in space 'defualt'"),
    "odd batch with mixup": (
        ("space", "augmentation", {"mixup_alpha": 0.2}),
        "space.batch_size: MixUp/CutMix need even batch sizes",
    ),
    "knob out of range": (("space", "regularization", {"drop_rate": 1.5}), "space.regularization.drop_rate: must be"),
    "unknown lr rule": (("resources", "lr_scaling", "cubic"), "resources.lr_scaling: unknown lr scaling 'cubic'"),
    "grid too large for the budget": (
        ("search", "searcher", "grid"),
        "search.num_samples: the grid has 16 points, more than num_samples=4",
    ),
}


def _assert_refused(result, needle: str, tmp_path) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "tunefleet-runs").exists()
    assert "Started a local Ray instance" not in result.stderr + result.stdout


@pytest.mark.parametrize("case", sorted(CASES))
def test_search_refuses_invalid_space(case, run_cli, write_spec, small_spec, tmp_path):
    (section, key, value), needle = CASES[case]
    if case == "odd batch with mixup":
        small_spec["space"]["batch_size"] = {"choice": [33, 64]}
    if case == "grid too large for the budget":  # 2 x 2 x 4 points, 4 trials allowed
        small_spec["space"] = {
            "lr": {"grid": [0.01, 0.1]},
            "batch_size": {"choice": [32, 64]},
            "optimizer": {"choice": {"sgd": {"momentum": {"grid": [0.8, 0.9, 0.95]}}, "adamw": {}}},
        }
    small_spec.setdefault(section, {})[key] = value
    _assert_refused(run_cli("search", str(write_spec(small_spec))), needle, tmp_path)
