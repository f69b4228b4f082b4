"""fit's final phase, planned from a search's trials: which configs run again, for how long."""

from __future__ import annotations

import pandas as pd
import pytest

from tunefleet.search.fit import final_phase, final_search, fit_spec, measured_epoch_s, plan_fit
from tunefleet.search.fit._budget import FINAL_FILL, FINAL_START_S, SETUP_S, WORKER_START_S
from tunefleet.spaces import PRESETS, spec_from_dict
from tunefleet.spaces import records as rec

from .test_fit_command import scan_of


def _plan():
    plan = plan_fit(scan_of(5_000, typical_px=64), "balanced", 1800, 0, "val_acc", 2)
    assert plan.final_epochs and plan.slots == 2
    return plan


def _trials() -> pd.DataFrame:
    # resnet18: 2 s an epoch once set up; lcnet: 1 s; the third trial was stopped early.
    return pd.DataFrame(
        {
            "params.model": ["resnet18", "lcnet_050", "resnet18", "lcnet_050"],
            "params.lr": ["0.01", "0.02", "0.03", "0.04"],
            "best_val_acc": [0.91, 0.95, 0.50, 0.93],
            "epochs_trained": [6, 6, 2, 6],
            "duration_s": [15.0, 6.0, 4.0, 7.5],
            rec.SETUP_TIME: [3.0, float("nan"), 0.0, 1.5],  # NaN: a trial that logged no set-up
            "outcome": [rec.COMPLETED, rec.COMPLETED, rec.STOPPED, rec.COMPLETED],
        }
    )


def _ranked(trials: pd.DataFrame) -> pd.DataFrame:
    done = trials[trials["outcome"] == rec.COMPLETED]
    return done.sort_values("best_val_acc", ascending=False)


def test_measured_epoch_seconds_per_model_leave_the_set_up_out():
    rates = measured_epoch_s(_trials())  # wall less set-up over epochs: 12 / 6 and 4 / 2; 6 / 6 and 6 / 6
    assert rates.to_dict() == pytest.approx({"resnet18": 2.0, "lcnet_050": 1.0})
    one_model = measured_epoch_s(_trials().drop(columns="params.model"), "resnet18")
    assert list(one_model.index) == ["resnet18"]


def test_the_best_completed_configs_run_again_for_the_time_left():
    plan, trials = _plan(), _trials()
    final = final_phase(plan, _ranked(trials), trials, seconds_left=80)
    assert final is not None
    assert final.models == ("lcnet_050", "lcnet_050") and final.configs == plan.slots  # the two best, both lcnet
    assert final.epoch_s == pytest.approx(1.0) and final.time_budget == int(80 - FINAL_START_S)
    fits = int(FINAL_FILL * final.time_budget - WORKER_START_S - SETUP_S)  # at 1 s an epoch
    assert final.epochs == min(PRESETS["balanced"]["final_epochs"], fits)
    slow = final_phase(plan, _ranked(trials).iloc[[1, 2]], trials, seconds_left=80)  # resnet18 is the slowest
    assert slow is not None and slow.epoch_s == pytest.approx(2.0) and slow.epochs < final.epochs


def test_no_final_phase_without_time_to_train_longer_or_without_a_completed_trial():
    plan, trials = _plan(), _trials()
    # resnet18 at 2 s an epoch: max_epochs exactly is not longer; one epoch more is
    just = FINAL_START_S + (WORKER_START_S + SETUP_S + 2.0 * plan.max_epochs + 1) / FINAL_FILL
    assert final_phase(plan, _ranked(trials).iloc[[1, 2]], trials, seconds_left=just) is None
    longer = final_phase(plan, _ranked(trials).iloc[[1, 2]], trials, seconds_left=just + 2.0 / FINAL_FILL + 1)
    assert longer is not None and longer.epochs == plan.max_epochs + 1
    assert final_phase(plan, _ranked(trials).iloc[:0], trials, seconds_left=1000) is None


def test_the_final_spec_warm_starts_from_the_search_and_trains_without_early_stopping():
    plan, trials = _plan(), _trials()
    final = final_phase(plan, _ranked(trials), trials, seconds_left=300)
    spec = spec_from_dict(final_search(plan, final, fit_spec(plan)))
    assert spec.name == f"{plan.name}-final" and spec.tracking.experiment == plan.name
    assert spec.search.warm_start == (plan.name,) or list(spec.search.warm_start) == [plan.name]
    assert (spec.search.scheduler, spec.search.num_samples) == ("fifo", final.configs)
    assert (spec.search.max_epochs, spec.search.time_budget) == (final.epochs, final.time_budget)
    assert spec.space == spec_from_dict(fit_spec(plan)).space  # the same space: the configs fit it
