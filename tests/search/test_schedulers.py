"""The scheduler and sampler tables: every name does what it says, through our own wiring.

Each scheduler runs a real, tiny Ray Tune experiment through ``run_experiment`` (searcher,
scheduler, stopper and checkpoint settings as a search builds them) with a function trainable
whose synthetic metric makes bad trials clearly bad; each sampler runs a real seeded Optuna study
over a spec's space. Slow searches through the CLI check PBT's hand-off in MLflow, and that
HyperBand and median stopping run a whole search.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, get_args

import pytest

from tunefleet.spaces import SearchSettings, contains, define_by_run, spec_from_dict
from tunefleet.spaces._search_settings import SamplerName, SchedulerName

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from tunefleet.search.run._experiment import run_experiment  # noqa: E402
from tunefleet.search.run._schedulers import SAMPLERS, SCHEDULERS, reached_target  # noqa: E402

LR = (0.01, 0.1)
EPOCHS = 4


@pytest.fixture(scope="module")
def local_ray():
    """One quiet local Ray for this file's experiments (no other test file shares one)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


class Collect(tune.Callback):
    """What the driver saw: every result, and which trials started and completed."""

    def __init__(self) -> None:
        self.results: list[tuple[str, dict[str, Any]]] = []
        self.started: list[str] = []
        self.completed: list[str] = []

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.append(trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.append((trial.trial_id, dict(result)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.completed.append(trial.trial_id)

    def epochs(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for trial_id, result in self.results:
            out[trial_id] = max(out.get(trial_id, 0), int(result["epoch"]))
        return out


def synthetic(config: dict[str, Any], settings: Any) -> None:
    """val_acc grows with the epoch, in proportion to lr (a high lr is a good trial). Each epoch's
    checkpoint names the trial that wrote it, so a trial restarted from another's checkpoint
    (PBT's exploit) says so in its reports (``from_other``, the donor's lr)."""
    me = tune.get_context().get_trial_id()
    lr, epoch, score, donor_lr, from_other = float(config["lr"]), 0, 0.0, 0.0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = json.loads((Path(folder) / "state.json").read_text())
        epoch, score = state["epoch"], state["score"]
        from_other, donor_lr = float(state["trial"] != me), state["lr"]
    while epoch < settings.search.max_epochs:
        epoch += 1
        score += lr / LR[1] / settings.search.max_epochs
        with tempfile.TemporaryDirectory() as folder:
            state = {"trial": me, "epoch": epoch, "score": score, "lr": lr}
            (Path(folder) / "state.json").write_text(json.dumps(state))
            metrics = {"epoch": epoch, "val_acc": score, "lr": lr, "from_other": from_other, "donor_lr": donor_lr}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _spec(scheduler: str, **search: Any) -> Any:
    settings = {"searcher": "random", "scheduler": scheduler, "num_samples": 6, "max_epochs": EPOCHS, "seed": 3}
    settings |= {"grace_period": 1, "reduction_factor": 2, **search}
    doc = {"name": f"contract-{scheduler}", "space": {"lr": {"loguniform": list(LR)}}, "search": settings}
    return spec_from_dict(doc)


def _run(spec: Any, tmp_path: Path) -> Collect:
    seen = Collect()
    run_experiment(spec, [seen], tmp_path / "tune", spec.search.num_samples, trainable=synthetic)
    return seen


def test_spec_names_are_the_table_names():
    assert set(get_args(SchedulerName)) == set(SCHEDULERS)
    assert set(get_args(SamplerName)) == set(SAMPLERS)
    assert SearchSettings.model_fields["scheduler"].annotation is SchedulerName
    assert SearchSettings.model_fields["sampler"].annotation is SamplerName


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_contract(name, local_ray, tmp_path):
    spec = _spec(name, **({"perturbation_interval": 1, "num_samples": 4} if name == "pbt" else {}))
    seen = _run(spec, tmp_path)
    epochs = seen.epochs()
    assert len(epochs) == spec.search.num_samples and sorted(seen.completed) == sorted(epochs)
    assert {int(r["epoch"]) for _, r in seen.results} <= set(range(1, EPOCHS + 1))  # epochs, not seconds
    best = max(epochs, key=lambda t: max(r["lr"] for i, r in seen.results if i == t))
    if name in ("fifo", "pbt"):  # nobody stopped early
        assert set(epochs.values()) == {EPOCHS}
    else:  # some weak trials stopped early; the strongest ran to the end
        assert min(epochs.values()) < EPOCHS and epochs[best] == EPOCHS, epochs
    if name == "pbt":
        exploits = [r for _, r in seen.results if r["from_other"]]
        assert exploits, "no trial continued from another trial's checkpoint"
        # it went on from the donor's epoch and score, with a perturbed (or resampled) lr
        assert any(r["lr"] != r["donor_lr"] and LR[0] <= r["lr"] <= LR[1] for r in exploits)
    else:
        assert not any(r["from_other"] for _, r in seen.results)


def test_stop_at_ends_the_search_and_completes_its_trials(local_ray, tmp_path):
    spec = _spec("fifo", stop_at=0.5, num_samples=30, max_concurrent=2)
    seen = _run(spec, tmp_path)
    reached = [(t, r) for t, r in seen.results if reached_target(spec.search, r["val_acc"])]
    assert reached, "no trial reached the target"
    assert len(seen.started) < 30  # no new trials once reached
    # the running trials stopped at their next report at the latest
    assert max(r["epoch"] for _, r in seen.results) <= reached[0][1]["epoch"] + 1
    # every trial that started was completed for the callbacks (none left looking interrupted)
    assert sorted(seen.completed) == sorted(seen.started)


def slow_synthetic(config: dict[str, Any], settings: Any) -> None:
    """Half a second an epoch: trials that outlast a short time budget."""
    for epoch in range(1, settings.search.max_epochs + 1):
        time.sleep(0.5)
        tune.report({"epoch": epoch, "val_acc": epoch / settings.search.max_epochs})


def test_the_time_budget_ends_the_search_and_completes_its_trials(local_ray, tmp_path):
    """A search out of time finished: the trials it cut close as completed for the callbacks (the
    driver's ledger then calls them stopped), not as interrupted, which would fail the search."""
    # 30 s: on a loaded machine starting the trials' workers alone took over 20 s.
    spec = _spec("fifo", time_budget=30, num_samples=4, max_concurrent=2, max_epochs=200)
    seen = Collect()
    started = time.monotonic()
    run_experiment(spec, [seen], tmp_path / "tune", 4, trainable=slow_synthetic)
    assert time.monotonic() - started < 90  # a trial alone takes 100 s
    assert seen.started and max(seen.epochs().values()) < 200
    assert sorted(seen.completed) == sorted(seen.started)


def test_reached_target_follows_the_mode():
    assert reached_target(SearchSettings(stop_at=0.9), 0.9)
    assert not reached_target(SearchSettings(stop_at=0.9), 0.89)
    assert reached_target(SearchSettings(metric="val_loss", stop_at=0.2), 0.19)
    assert not reached_target(SearchSettings(metric="val_loss", stop_at=0.2), 0.21)
    assert not reached_target(SearchSettings(), 1.0)  # no target


SAMPLER_SPACE = {
    "lr": {"loguniform": [1e-4, 1e-1]},
    "weight_decay": {"uniform": [0.0, 0.1]},
    "batch_size": {"choice": [32, 64]},
    "optimizer": {"choice": {"sgd": {"momentum": {"uniform": [0.8, 0.99]}}, "adamw": {}}},
}


def _study(name: str, seed: int) -> list[dict[str, Any]]:
    import optuna

    from tunefleet.search import optuna_sampler

    space = spec_from_dict({"name": "s", "space": SAMPLER_SPACE}).space
    suggest = define_by_run(space)
    study = optuna.create_study(direction="minimize", sampler=optuna_sampler("optuna", seed, name))

    def objective(trial: Any) -> float:
        suggest(trial)
        return (trial.params["lr"] - 0.01) ** 2 + trial.params["weight_decay"]

    study.optimize(objective, n_trials=12)
    assert all(contains(space, trial.params) for trial in study.trials), "a proposal outside the space"
    return [trial.params for trial in study.trials]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_contract(name):
    first = _study(name, seed=7)
    assert first == _study(name, seed=7)  # seeded: the same proposals again
    assert first != _study(name, seed=8)
    assert len({p["lr"] for p in first}) == len(first)  # it explores, no point repeated
    assert (
        type(SAMPLERS[name](0)).__name__
        == {"tpe": "TPESampler", "gp": "GPSampler", "cmaes": "CmaEsSampler", "nsga2": "NSGAIISampler"}[name]
    )


BAD = {
    "unknown scheduler": ({"scheduler": "bohb"}, "search.scheduler"),
    "unknown sampler": ({"sampler": "qmc"}, "search.sampler"),
    "sampler without optuna": ({"searcher": "random", "sampler": "gp"}, "search.sampler"),
    "pbt with optuna": ({"scheduler": "pbt"}, "search.scheduler"),
    "pbt interval too long": (
        {"searcher": "random", "scheduler": "pbt", "perturbation_interval": 4},
        "search.perturbation_interval",
    ),
    "accuracy target above 1": ({"stop_at": 1.5}, "search.stop_at"),
    "negative loss target": ({"metric": "val_loss", "stop_at": -0.1}, "search.stop_at"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_settings_are_one_line(case, run_cli, write_spec, small_spec):
    search, field = BAD[case]
    small_spec["search"] |= search
    result = run_cli("search", str(write_spec(small_spec)))
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}"), result.stderr


def test_pbt_needs_single_worker_trials(run_cli, write_spec, small_spec):
    small_spec["search"] |= {"searcher": "random", "scheduler": "pbt"}
    small_spec["resources"] = {"workers_per_trial": 2}
    result = run_cli("search", str(write_spec(small_spec)))
    assert result.returncode == 2, result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line == "error: resources.workers_per_trial: scheduler pbt needs single-worker trials (1)"


@pytest.mark.slow
def test_pbt_search_hands_a_checkpoint_on_with_a_perturbed_lr(cli, write_spec, small_spec, tmp_path):
    """Through the CLI on digits: a trial's recorded best checkpoint (MLflow artifact) holds the
    epochs of another trial (its lr, its val_acc as that trial's run logged them), then epochs at
    a perturbed lr; ``schedule: constant`` makes the lr of each epoch the trial's config lr."""
    from mlflow.artifacts import download_artifacts

    from tunefleet.analysis._runs import open_experiment, search_run, trial_runs
    from tunefleet.spaces.records import CHECKPOINT_ARTIFACT_DIR, META

    small_spec["space"] |= {"schedule": "constant", "optimizer": "adamw"}
    small_spec["search"] = {"searcher": "random", "scheduler": "pbt", "perturbation_interval": 1}
    # 6 epochs: PBT exploits a bottom trial only from a top one it checkpointed earlier, and which
    # trials report first varies with load (a loaded suite once saw 4 epochs end with no exploit).
    small_spec["search"] |= {"num_samples": 4, "max_epochs": 6, "seed": 1}
    write_spec(small_spec)
    result = cli("search", "spec.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment = open_experiment(uri, "small")
    runs = trial_runs(client, search_run(client, experiment))
    assert len(runs) == 4
    first_acc = {
        r.info.run_id: [m.value for m in client.get_metric_history(r.info.run_id, "val_acc") if m.step == 1]
        for r in runs
    }
    handed_on, perturbed = [], []
    for run in runs:
        own_lr = float(run.data.params["lr"])  # constant schedule: every epoch of its own logs this lr
        if any(m.value != pytest.approx(own_lr) for m in client.get_metric_history(run.info.run_id, "lr")):
            perturbed.append(run.info.run_id)
        folder = download_artifacts(run_id=run.info.run_id, artifact_path=CHECKPOINT_ARTIFACT_DIR, tracking_uri=uri)
        first = json.loads((Path(folder) / META).read_text())["history"][0]
        if first["lr"] != pytest.approx(own_lr):  # its best weights began as another trial's epoch 1
            donors = [i for i, acc in first_acc.items() if i != run.info.run_id and first["val_acc"] in acc]
            handed_on.append((run.info.run_id, donors))
    assert handed_on and all(donors for _, donors in handed_on), handed_on
    assert perturbed and {run for run, _ in handed_on} <= set(perturbed), (handed_on, perturbed)


@pytest.mark.slow
# median runs end to end in test_objectives_search.py (stopping on the first of two objectives)
@pytest.mark.parametrize("scheduler", ["hyperband"])
def test_early_stopping_schedulers_run_a_search_end_to_end(scheduler, cli, write_spec, small_spec, tmp_path):
    """Through the CLI on digits: the search ends, every trial closes completed or stopped early,
    at least one runs to the end, and the search run's logged spec names the scheduler."""
    from mlflow.tracking import MlflowClient

    from tunefleet.analysis._runs import open_experiment, search_run, trials_frame
    from tunefleet.spaces import records as rec

    small_spec["search"] |= {"scheduler": scheduler, "num_samples": 3, "max_epochs": 2, "grace_period": 1}
    write_spec(small_spec)
    result = cli("search", "spec.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{scheduler} scheduler" in result.stdout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment = open_experiment(uri, "small")
    parent = search_run(client, experiment)
    trials = trials_frame(client, parent)
    assert parent.info.status == "FINISHED" and len(trials) == 3
    assert set(trials["outcome"]) <= {rec.COMPLETED, rec.STOPPED} and (trials["outcome"] == rec.COMPLETED).any()
    completed = trials[trials["outcome"] == rec.COMPLETED]
    assert (completed[rec.EPOCHS_TRAINED] == 2).all()
    logged = MlflowClient(uri).download_artifacts(parent.info.run_id, rec.SPEC_ARTIFACT, str(tmp_path))
    assert f"scheduler: {scheduler}" in Path(logged).read_text()
