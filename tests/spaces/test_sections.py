"""The settings sections: typed from their annotations, mode follows the metric, every field explained."""

from __future__ import annotations

import pytest

from tunefleet.spaces import SECTIONS, SearchSettings, SpecError, spec_from_dict
from tunefleet.spaces.records import METRIC_MODES


@pytest.mark.parametrize("metric", sorted(METRIC_MODES))
def test_mode_follows_the_metric(metric):
    spec = spec_from_dict({"name": "x", "search": {"metric": metric}})
    assert spec.search.mode == METRIC_MODES[metric]
    assert SearchSettings(metric=metric).mode == METRIC_MODES[metric]  # built in Python too


@pytest.mark.parametrize("metric", sorted(METRIC_MODES))
def test_a_mode_that_contradicts_the_metric_is_refused(metric):
    wrong = "min" if METRIC_MODES[metric] == "max" else "max"
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "x", "search": {"metric": metric, "mode": wrong}})
    assert err.value.path == "search.mode" and metric in str(err.value)
    # the agreeing mode is accepted
    assert spec_from_dict({"name": "x", "search": {"metric": metric, "mode": METRIC_MODES[metric]}})


def test_tracking_uri_is_a_string_setting():
    spec = spec_from_dict({"name": "x", "tracking": {"uri": "http://127.0.0.1:5000", "experiment": "e"}})
    assert spec.tracking.uri == "http://127.0.0.1:5000" and spec.tracking.experiment == "e"
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "x", "tracking": {"uri": 5000}})
    assert err.value.path == "tracking.uri" and "expected a string" in str(err.value)


@pytest.mark.parametrize(
    ("doc", "path", "needle"),
    [
        ({"search": {"seracher": "grid"}}, "search.seracher", "did you mean 'searcher'"),
        ({"search": {"searcher": "optunaa"}}, "search.searcher", "did you mean 'optuna'"),
        ({"search": {"max_epochs": 2.5}}, "search.max_epochs", "expected an integer"),
        ({"search": {"max_epochs": True}}, "search.max_epochs", "expected an integer"),
        ({"search": {"max_epochs": "5"}}, "search.max_epochs", "expected an integer"),
        ({"search": {"max_concurrent": 0}}, "search.max_concurrent", ">= 1"),
        ({"search": {"time_budget": 0}}, "search.time_budget", "> 0"),
        ({"search": {"time_budget": -90}}, "search.time_budget", "> 0"),
        ({"search": {"time_budget": "-5m"}}, "search.time_budget", "like 90s, 30m, 2h"),
        ({"search": {"max_failures": -1}}, "search.max_failures", "must be >= 0, got -1"),
        ({"search": {"max_failures": 1.5}}, "search.max_failures", "expected an integer"),
        ({"search": {"trial_timeout": 0}}, "search.trial_timeout", "> 0"),
        ({"search": {"trial_timeout": -30}}, "search.trial_timeout", "> 0"),
        ({"search": {"trial_timeout": "soon"}}, "search.trial_timeout", "like 90s, 30m, 2h; got 'soon'"),
        ({"search": {"num_samples": 0}}, "search.num_samples", ">= 1"),
        ({"search": {"num_samples": 10_001}}, "search.num_samples", "<= 10000, got 10001: Ray Tune keeps every"),
        ({"search": {"num_samples": 10**12}}, "search.num_samples", "split the search"),
        ({"resources": {"oom_retry": "yes"}}, "resources.oom_retry", "expected true or false"),
        ({"resources": {"oom_retry": 1}}, "resources.oom_retry", "expected true or false"),
        ({"resources": {"gpus_per_worker": -1}}, "resources.gpus_per_worker", ">= 0"),
        ({"data": {"val_fraction": 0.5, "test_fraction": 0.45}}, "data.test_fraction", "leave >= 10%"),
        ({"data": {"kind": "imagefolder"}}, "data.root", "needs a root"),
        ({"data": {"color": "cmyk"}}, "data.color", "unknown color"),
        ({"tracking": "http://x"}, "tracking", "expected a mapping"),
    ],
)
def test_settings_errors_are_one_line_with_the_path(doc, path, needle):
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "x", **doc})
    assert err.value.path == path and needle in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_reliability_settings_defaults_and_forms():
    spec = spec_from_dict({"name": "x"})
    assert spec.search.max_failures == 2 and spec.search.trial_timeout is None and spec.resources.oom_retry is True
    spec = spec_from_dict(
        {"name": "x", "search": {"max_failures": 0, "trial_timeout": "30m"}, "resources": {"oom_retry": False}}
    )
    assert spec.search.max_failures == 0 and spec.search.trial_timeout == 1800.0 and spec.resources.oom_retry is False
    assert spec_from_dict({"name": "x", "search": {"trial_timeout": 90}}).search.trial_timeout == 90.0
    assert spec_from_dict({"name": "x", "search": {"trial_timeout": "2h"}}).search.trial_timeout == 7200.0


def test_num_samples_up_to_the_bound_is_accepted():
    assert spec_from_dict({"name": "x", "search": {"num_samples": 10_000}}).search.num_samples == 10_000


def test_reliability_settings_are_logged_as_params():
    params = spec_from_dict({"name": "x", "search": {"trial_timeout": "5m"}}).params()
    assert params["search.max_failures"] == 2 and params["search.trial_timeout"] == 300.0
    assert params["resources.oom_retry"] is True
    assert "search.trial_timeout" not in spec_from_dict({"name": "x"}).params()  # unset: not logged


def test_ints_are_accepted_where_numbers_are_expected():
    spec = spec_from_dict({"name": "x", "resources": {"cpus_per_worker": 2}, "search": {"time_budget": 90}})
    assert spec.resources.cpus_per_worker == 2.0 and spec.search.time_budget == 90.0


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_setting_has_a_help_text(section):
    for name, info in SECTIONS[section].model_fields.items():
        assert info.description and len(info.description) > 10, f"{section}.{name} has no help text"


def test_params_name_each_setting_by_its_spec_path():
    # (a URI with credentials is refused at load, see test_security.py; the URI is left out anyway)
    spec = spec_from_dict({"name": "x", "search": {"metric": "val_loss"}, "tracking": {"uri": "http://h:5000"}})
    params = spec.params()
    assert params["search.metric"] == "val_loss" and params["search.mode"] == "min"
    assert params["resources.lr_scaling"] == "linear" and params["data.image_size"] == 32
    assert not any("uri" in key for key in params)
    for key in params:
        section, name = key.split(".")
        assert name in SECTIONS[section].model_fields


def test_spec_round_trips_through_yaml():
    import yaml

    spec = spec_from_dict(
        {
            "name": "x",
            "search": {"metric": "val_loss", "time_budget": "30m", "trial_timeout": "90s", "max_failures": 0},
            "resources": {"oom_retry": False},
        }
    )
    again = spec_from_dict(yaml.safe_load(spec.to_yaml()))
    assert again == spec
