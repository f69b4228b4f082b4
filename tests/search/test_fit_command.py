"""``tunefleet fit``: the zoo's contract, the planner's rules, the plan through the CLI, bad input,
and one real fit of digits end to end (search, report, export, registry)."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tunefleet.search.fit import (
    DataScan,
    digits_scan,
    fit_search_spec,
    fit_spec,
    loadable_weights,
    plan_fit,
    plan_lines,
    portfolio_models,
    split_counts,
)
from tunefleet.search.fit._budget import (
    FINAL_FILL,
    FINAL_SHARE,
    MIN_SEARCH_EPOCHS,
    MIN_SEARCH_TRIALS,
    MIN_STEPS,
    SETUP_S,
    WORKER_START_S,
    WORTH,
    budget,
)
from tunefleet.search.fit._plan import asha_epochs, data_epochs, image_size, plan_within
from tunefleet.search.fit._strategy import final_pays
from tunefleet.spaces import (
    BUILTIN_SPACES,
    PRESETS,
    ZOO,
    ZOO_MIN_SIZE,
    ZOO_REFERENCE_SIZE,
    DataSpec,
    SpecError,
    load_spec,
    preset_models,
    start_models,
)
from tunefleet.spaces import records as rec


def scan_of(images: int, typical_px: int = 64, channels: int = 3) -> DataScan:
    """A folder of ``images`` split 60/20/20, as ``scan_data`` would describe it."""
    train, held = split_counts({"all": images}, DataSpec(kind="imagefolder", root="/data/x"))
    return DataScan("imagefolder", "/data/x", images, 5, train, held, typical_px, channels, f"{images} images")


# ---------------------------------------------------------------- the zoo's contract, every row


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_row_is_a_timm_model_that_builds_and_runs_at_the_sizes_it_is_planned_for(name):
    import timm
    import torch

    row = ZOO[name]
    assert timm.is_model(name)
    assert row.pretrained == bool(timm.list_models(name, pretrained=True)), "recorded weights differ from timm's"
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    with torch.no_grad():
        for size in (ZOO_MIN_SIZE, ZOO_REFERENCE_SIZE):
            assert model(torch.zeros(2, 3, size, size)).shape == (2, 10)
    assert 0 < row.cpu_ms_per_img_small < row.cpu_ms_per_img  # measured, and larger images cost more
    assert row.gpu_ms_per_img is None or row.gpu_ms_per_img > 0
    assert row.cpu_ms(ZOO_MIN_SIZE) == pytest.approx(row.cpu_ms_per_img_small)
    assert row.cpu_ms(ZOO_REFERENCE_SIZE) == pytest.approx(row.cpu_ms_per_img)
    assert row.presets and set(row.presets) <= set(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_names_zoo_rows_and_builtin_spaces(preset):
    row = PRESETS[preset]
    models = preset_models(preset)
    assert models and all(m.name in ZOO for m in models)
    assert row["space"] in BUILTIN_SPACES and row["finetune_space"] in BUILTIN_SPACES
    assert all(b > 0 and b % 2 == 0 for b in row["batch_sizes"])  # MixUp/CutMix need even batches
    low, high = row["epochs"]
    assert 1 <= row["min_epochs"] <= low <= high


def test_quick_is_the_two_cheapest_models():
    cheapest = sorted(ZOO.values(), key=lambda r: r.cpu_ms_per_img)[:2]
    assert [m.name for m in preset_models("quick")] == [r.name for r in cheapest]


# ---------------------------------------------------------------- the planner, pure


@pytest.mark.parametrize(
    ("typical", "preset", "expected"),
    [(8, "quick", 32), (27, "quick", 32), (80, "best", 96), (121, "quick", 64), (121, "balanced", 128),
     (500, "balanced", 128), (500, "best", 224)],
)  # fmt: skip
def test_image_size_is_the_typical_size_rounded_within_the_presets_bounds(typical, preset, expected):
    assert image_size(typical, preset) == expected


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("images", [150, 5_000, 100_000])
@pytest.mark.parametrize("total_s", [240, 600, 1800, 4 * 3600])
def test_plan_fits_its_budget(preset, images, total_s):
    scan = scan_of(images, typical_px=200)
    try:
        plan = plan_fit(scan, preset, total_s, 0, "val_acc", 2)
    except SpecError as err:  # too short: the minimum it names must be enough, one second less not
        assert err.path == "--time"
        least = int(re.search(r"give at least (\d+)s", err.message).group(1))
        assert least > total_s
        plan_fit(scan, preset, least, 0, "val_acc", 2)
        with pytest.raises(SpecError, match="too short"):
            plan_fit(scan, preset, least - 1, 0, "val_acc", 2)
        return
    b, need = plan.budget, PRESETS[preset]["min_epochs"]
    assert b.start_s + b.searching_s + b.reserve_s <= total_s and b.search_s <= b.searching_s
    assert {m.row.name for m in plan.models} == {m.name for m in preset_models(preset)}
    for m in plan.models:  # kept: one trial of the least epochs fits the tail; left out: it does not, and says so
        assert m.epoch_s is not None and m.epoch_s > 0
        assert (SETUP_S + need * m.epoch_s <= b.tail_s) == m.kept
        assert m.kept or re.search(rf"a trial of {need} epoch\(s\) takes ~\d+s", m.reason)
    spec = fit_search_spec(plan)
    assert spec.search.time_budget == b.search_s and spec.search.max_epochs == plan.max_epochs
    assert spec.search.searcher == "optuna" and spec.data.image_size == plan.image_size
    assert set(spec.space["model"].grid_values("model")) == {m.row.name for m in plan.kept}
    assert all(bs * MIN_STEPS <= scan.train_images for bs in plan.batch_sizes) or len(plan.batch_sizes) == 1
    # the start recipe on the kept models in START_MODELS order, one per slot, inside the space
    # (spec_from_dict checked it)
    starts = spec.search.start_with
    assert [p["model"] for p in starts] == start_models([m.row.name for m in plan.kept], plan.finetune)[: plan.slots]
    assert all(p.get("optimizer") == "adamw" and "lr" in p for p in starts)
    if plan.portfolio:
        _check_portfolio(plan, spec)
    else:
        _check_search(plan, spec)


def _check_search(plan, spec):
    b, preset = plan.budget, plan.preset
    slowest = max(m.epoch_s for m in plan.kept if m.epoch_s)
    assert SETUP_S + plan.max_epochs * slowest <= b.tail_s  # a whole trial of any kept model ends in time
    if plan.final_epochs:  # a final phase only where its trials train WORTH x longer, and fit its time
        assert b.final_s > 0 and plan.final_epochs >= WORTH * plan.max_epochs >= WORTH * MIN_SEARCH_EPOCHS
        assert plan.num_samples >= MIN_SEARCH_TRIALS * plan.slots
        typical = statistics.median(m.epoch_s for m in plan.kept)
        assert WORKER_START_S + SETUP_S + plan.final_epochs * typical <= FINAL_FILL * b.final_s
        assert plan.final_epochs <= PRESETS[preset]["final_epochs"]
    else:
        assert b.final_s == 0 and b.searching_s == b.search_s
    assert 1 <= plan.max_epochs <= PRESETS[preset]["epochs"][1] and plan.grace_period <= plan.max_epochs
    assert 1 <= plan.num_samples <= PRESETS[preset]["max_trials"]
    assert plan.num_samples == plan.slots or plan.num_samples * plan.trial_s <= plan.slots * b.training_s
    assert spec.search.num_samples == PRESETS[preset]["max_trials"] and spec.search.scheduler == "asha"


def _check_portfolio(plan, spec):
    """Rule 11: no search; one start config per slot trains all of the time, short of the preset's
    cap, and longer than what would ship otherwise: the final phase's trials where one pays, else
    WORTH x what a search alone (cutting its trials short) would train. A whole trial of its
    slowest model fits the budget."""
    b, preset = plan.budget, plan.preset
    alone = plan_within(b, plan.scan, preset, plan.gpus, plan.metric, plan.cpus, plan.seed, plan.loadable)
    two = plan_within(budget(b.total_s, FINAL_SHARE), plan.scan, preset, plan.gpus, plan.metric, plan.cpus,
                      plan.seed, plan.loadable)  # fmt: skip
    assert alone is not None and not alone.portfolio and plan.max_epochs < PRESETS[preset]["final_epochs"]
    if two is not None and final_pays(two):
        assert plan.max_epochs > two.final_epochs
    else:
        assert alone.max_epochs < data_epochs(plan.scan.train_images, preset)
        assert plan.max_epochs >= WORTH * alone.max_epochs
    assert b.final_s == 0 and plan.final_epochs == 0
    seconds = {m.row.name: m.epoch_s for m in plan.kept}
    slowest = max(seconds[p["model"]] for p in spec.search.start_with)
    assert WORKER_START_S + SETUP_S + plan.max_epochs * slowest <= FINAL_FILL * b.search_s
    assert spec.search.scheduler == "fifo" and spec.search.num_samples == len(spec.search.start_with) <= plan.slots


def test_a_three_minute_digits_fit_is_a_portfolio_and_says_why():
    plan = plan_fit(digits_scan(), "balanced", 180, 0, "val_acc", 2)
    assert plan.portfolio and portfolio_models(plan) == ["resnet10t", "resnet18"]
    spec = fit_search_spec(plan)
    assert [p["augmentation.hflip"] for p in spec.search.start_with] == [False, False]  # one recipe, not a draw
    text = "\n".join(plan_lines(plan))
    assert "a portfolio, no search" in text and f"{plan.max_epochs} epochs each" in text
    # with the time for trials of their full length, fit searches
    assert not plan_fit(digits_scan(), "balanced", 3600, 0, "val_acc", 2).portfolio


def test_a_portfolio_wins_while_it_trains_longer_than_a_final_phase_would():
    """MNIST-sized (4,000 images, 28 px): at 10 minutes a search and a final phase would ship ~25
    epochs, the portfolio trains ~30; at 30 minutes the portfolio would reach the preset's cap, and
    fit searches, then trains the best configs again."""
    mnist = replace(digits_scan(), images=4000, train_images=3000, eval_images=1000, typical_px=28)
    ten = plan_fit(mnist, "balanced", 600, 0, "val_acc", 2)
    two = plan_within(budget(600, FINAL_SHARE), mnist, "balanced", 0, "val_acc", 2, 0, None)
    assert ten.portfolio and two is not None and final_pays(two) and ten.max_epochs > two.final_epochs
    thirty = plan_fit(mnist, "balanced", 1800, 0, "val_acc", 2)
    assert not thirty.portfolio and thirty.final_epochs == PRESETS["balanced"]["final_epochs"]


def test_a_short_budget_on_large_data_leaves_out_the_slow_models_with_reasons():
    plan = plan_fit(scan_of(5_000, typical_px=128), "best", 3600, 0, "val_acc", 2)
    left = {m.row.name: m.reason for m in plan.models if not m.kept}
    assert {"resnet34", "resnet50"} <= set(left) and "regnety_002" not in left
    assert all("over the" in why for why in left.values())
    text = "\n".join(plan_lines(plan))
    assert re.search(r"left out\s+resnet50 .*left out: a trial of 5 epoch\(s\) takes", text)


def test_more_time_keeps_more_models_and_runs_more_trials():
    scan = scan_of(5_000, typical_px=128)
    short, long = (plan_fit(scan, "best", t, 0, "val_acc", 2) for t in (1800, 8 * 3600))
    assert len(long.kept) > len(short.kept) and long.num_samples > short.num_samples


def test_digits_train_from_scratch_and_photos_fine_tune():
    digits = plan_fit(digits_scan(), "quick", 600, 0, "val_acc", 2)
    assert not digits.finetune and digits.image_size == 32
    spec = fit_search_spec(digits)
    assert "finetune.pretrained" not in spec.space and spec.data.kind == "digits"
    photos = plan_fit(scan_of(2_000, typical_px=256), "balanced", 3600, 0, "val_acc", 2)
    assert photos.finetune and fit_spec(photos)["space"]["base"] == "finetune"
    assert fit_search_spec(photos).space["finetune.pretrained"].grid_values("x") == [True]


def test_fine_tuning_only_where_the_weights_load_here():
    scan = scan_of(2_000, typical_px=256)
    offline = plan_fit(scan, "balanced", 3600, 0, "val_acc", 2, loadable=frozenset())
    assert not offline.finetune and all(m.kept for m in offline.models)  # from scratch, every model
    assert fit_spec(offline)["space"]["base"] == "default"
    assert any("pretrained weights can be loaded here" in line for line in plan_lines(offline))
    one = plan_fit(scan, "balanced", 3600, 0, "val_acc", 2, loadable=frozenset({"resnet18"}))
    assert one.finetune and [m.row.name for m in one.kept] == ["resnet18"]
    assert all("cannot be loaded here" in m.reason for m in one.models if not m.kept)
    names = [m.name for m in preset_models("balanced")]
    assert loadable_weights(names) <= set(names)  # this machine: whatever its cache and network allow


def test_on_gpus_the_plan_says_it_has_no_cost_figure_and_leaves_nothing_out_for_time():
    plan = plan_fit(scan_of(50_000, typical_px=224), "best", 1800, 2, "val_loss", 16)
    assert all(m.kept and m.epoch_s is None for m in plan.models)
    assert plan.trial_s is None and plan.num_samples == PRESETS["best"]["max_trials"]
    assert plan.slots == 2 and fit_spec(plan)["resources"] == {
        "workers_per_trial": 1,
        "cpus_per_worker": 8.0,
        "gpus_per_worker": 1,
    }
    assert fit_search_spec(plan).search.mode == "min"
    assert any("no measured GPU cost" in line for line in plan_lines(plan))


def test_asha_expected_epochs_and_split_counts():
    assert asha_epochs(1, 1) == 1 and asha_epochs(4, 2) == pytest.approx(2 + 2 / 3)
    assert asha_epochs(10, 2) == pytest.approx(2 + 4 / 3 + 4 / 9)
    data = DataSpec(kind="imagefolder", root="/x")
    assert split_counts({"all": 100}, data) == (60, 40)
    assert split_counts({"train": 100, "val": 30}, data) == (80, 50)  # test carved from train
    assert split_counts({"train": 100, "val": 30, "test": 20}, data) == (100, 50)
    assert budget(600).search_s == 600 - 15 - (5 + 3 * 8 + 0.05 * 600)  # start-up; report, 3 members, share


# ---------------------------------------------------------------- the CLI: plan, bad input


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def test_dry_run_on_digits_prints_the_plan_and_writes_nothing(run_cli, tmp_path):
    result = run_cli("fit", "digits", "--time", "10m", "--preset", "quick", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("fit-digits: preset quick") and "1797 images in 10 classes" in out
    assert "image_size 32" in out and "from scratch" in out
    assert re.search(r"kept\s+lcnet_050", out) and re.search(r"kept\s+mobilenetv3_small_100", out)
    budget = r"budget: 600s = 15s start-up \+ 263s search \(search.time_budget\) \+ 263s final phase \+ 59s report"
    assert re.search(budget, out) and re.search(r"final phase: the 2 best completed configs .*~30 epochs", out)
    assert re.search(r"trials: ~\d+ expected \(~\d+s each, 2 at once; num_samples is the preset's cap, 16", out)
    assert _files(tmp_path) == set() and result.stderr == ""


def test_dry_run_on_a_folder_scans_it_and_plans_from_its_images(run_cli, tmp_path, image_folder):
    image_folder(tmp_path / "pets", {"cat": 12, "dog": 12, "fox": 12})
    before = _files(tmp_path)
    result = run_cli("fit", "pets", "--time", "30m", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("fit-pets: preset balanced") and "36 images in 3 classes" in out
    # 15% val + 10% test held out
    assert re.search(r"typical size 2\d px -> image_size 32; an epoch trains on 27 images and evaluates 9", out)
    assert "training: from scratch (the images are 2" in out and "models (6 of 6 kept" in out
    assert "batch_size one of [2]" in out  # 22 training images: a batch that leaves 8 steps an epoch
    assert _files(tmp_path) == before


BAD = {
    "missing folder": (("fit", "no-such-dir"), "DATA", "no such folder"),
    "one class": (("fit", "one"), "DATA", "need at least 2"),
    "unknown preset": (("fit", "digits", "--preset", "fastest"), "--preset", "unknown preset 'fastest'"),
    "too short": (
        ("fit", "digits", "--time", "30s", "--preset", "quick"),
        "--time",
        "is too short for 1 epoch(s) of the cheapest model, lcnet_050",
    ),
    "bad time": (("fit", "digits", "--time", "soon"), "--time", "like 90s"),
    "negative gpus": (("fit", "digits", "--gpus", "-1"), "--gpus", "must be >= 0"),
    "unknown metric": (("fit", "digits", "--metric", "acc"), "--metric", "did you mean 'val_acc'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, run_cli, tmp_path, image_folder):
    args, field, needle = BAD[case]
    image_folder(tmp_path / "one", {"cat": 5})
    before = _files(tmp_path)
    result = run_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: ") and needle in lines[0], result.stderr
    assert _files(tmp_path) == before


# ---------------------------------------------------------------- one real fit, end to end


@pytest.mark.slow
def test_fit_searches_trains_the_best_again_reports_exports_and_registers(cli, tmp_path, image_folder):
    """One whole fit, from Python (``tunefleet.fit``: what ``tunefleet fit`` runs after parsing
    its options; the command's own parsing and plan are the dry-run and bad-input tests above)."""
    from mlflow.tracking import MlflowClient

    image_folder(tmp_path / "digits", {"cat": 60, "dog": 60, "fox": 60, "owl": 60})  # small: a final phase pays
    # 300 s: on a loaded CI machine a 180 s fit spent 75 s searching and its report and export
    # the rest, leaving 47 s, too little for a final phase; fixed costs weigh less in a longer one.
    script = (
        "import tunefleet\n"
        "model = tunefleet.fit('digits/', time='300s', preset='quick', register='fit-digits')\n"
        "print('shipped', model.source, model.card.search_run_id, len(model.predict('digits/')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # From Python too, no MLflow download bar for each artifact read back, nor its warning that
    # this CPU-only onnxruntime lacks the CUDA provider the registered model lists first.
    noise = ("Downloading artifacts", "declares execution providers")
    assert not [n for n in noise if n in result.stdout + result.stderr], result.stderr[-3000:]
    folder = tmp_path / "reports" / "fit-digits"
    written, final_written = folder / "fit-digits.yaml", folder / "fit-digits-final.yaml"
    assert final_written.is_file(), result.stdout[-3000:]  # the final phase ran: why not, if it did not
    spec, final = load_spec(written), load_spec(final_written)  # the files a user edits and reruns
    assert spec.name == "fit-digits" and spec.data.image_size == 32 and spec.search.time_budget
    assert set(spec.space["model"].grid_values("model")) <= {m.name for m in preset_models("quick")}
    # the final phase: the search's best configs again, longer, warm-started from the search
    assert final.space == spec.space and list(final.search.warm_start) == ["fit-digits"]
    assert final.search.scheduler == "fifo" and final.search.max_epochs > spec.search.max_epochs
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fit-digits")
    searches = client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    assert [r.info.status for r in searches] == ["FINISHED", "FINISHED"]  # the final phase first: newest
    assert searches[0].data.tags[rec.WARM_START_TAG] == "fit-digits"
    for run, path in zip(searches, (final_written, written), strict=True):  # each spec, as its run logged it
        logged = Path(client.download_artifacts(run.info.run_id, rec.SPEC_ARTIFACT, str(tmp_path / run.info.run_id)))
        assert yaml.safe_load(logged.read_text()) == yaml.safe_load(path.read_text())
    assert (folder / "report.html").is_file()
    assert (tmp_path / "exports" / "fit-digits" / rec.ONNX_FILE).is_file()
    card = json.loads((tmp_path / "exports" / "fit-digits" / rec.CARD_FILE).read_text())
    final_id = searches[0].info.run_id
    in_final = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{final_id}'")
    assert card["search_run_id"] == final_id  # shipped from the final phase's trials
    assert f"shipped exports/fit-digits {final_id} 240" in result.stdout  # the Ensemble fit returned
    assert card["members"] and {m["run_id"] for m in card["members"]} <= {r.info.run_id for r in in_final}
    assert [int(v.version) for v in client.search_model_versions("name = 'fit-digits'")] == [1]
    again = cli("search", str(written), "--dry-run")  # it runs again as a plain search
    assert again.returncode == 0 and "fit-digits:" in again.stdout, again.stderr
