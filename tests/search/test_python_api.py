"""``import tunefleet``: every public name resolves, the import loads nothing heavy, and bad input
from Python raises the CLI's own one-line ``SpecError`` (same field, same words) before anything
starts or is written. The API on a real search: tests/analysis/test_api_after_search.py; on a
cluster (``submit``, ``Job``): tests/search/test_cluster.py."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from PIL import Image

import tunefleet
from tunefleet.search.api._search import ended
from tunefleet.search.run._driver import SearchEnd


@pytest.fixture(autouse=True)
def _scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.mark.parametrize("name", tunefleet.__all__)
def test_every_public_name_resolves(name):
    assert getattr(tunefleet, name) is not None
    assert name in dir(tunefleet)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tunefleet.nope  # noqa: B018


def test_importing_tunefleet_loads_nothing_but_itself():
    """No torch, Ray, MLflow, pandas or pydantic: ``import tunefleet`` is its one small module (and
    the standard library's ``importlib`` and ``typing``), so a notebook's first cell answers at once."""
    code = (
        "import sys; before = set(sys.modules); import tunefleet; "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['tunefleet']"


def _cli_line(run_cli, *argv: str) -> str:
    result = run_cli(*argv)
    assert result.returncode == 2, result.stdout + result.stderr
    return result.stderr.strip().removeprefix("error: ")


def _bad_specs(small_spec):
    unknown_section = copy.deepcopy(small_spec) | {"serach": {}}
    bad_range = copy.deepcopy(small_spec)
    bad_range["space"]["lr"] = {"loguniform": [0.1, 0.01]}
    unknown_model = copy.deepcopy(small_spec) | {"model": "resnet_nope"}
    return {"unknown section": unknown_section, "impossible range": bad_range, "unknown model": unknown_model}


@pytest.mark.parametrize("case", ["unknown section", "impossible range", "unknown model"])
def test_a_bad_spec_raises_the_cli_s_error(case, small_spec, write_spec, run_cli, tmp_path):
    doc = _bad_specs(small_spec)[case]
    line = _cli_line(run_cli, "search", str(write_spec(doc)))
    for given in (doc, tmp_path / "spec.yaml"):  # the document, and the same YAML file
        with pytest.raises(tunefleet.SpecError) as err:
            tunefleet.tune(given)
        assert str(err.value) == line and "\n" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # no store, no runs, no Ray state


def test_keywords_are_checked_as_the_cli_s_flags(small_spec, write_spec, run_cli):
    path = write_spec(small_spec)
    line = _cli_line(run_cli, "search", str(path), "--searcher", "nope")
    with pytest.raises(tunefleet.SpecError, match=r"^search\.searcher: ") as err:
        tunefleet.tune(small_spec, searcher="nope")
    assert str(err.value) == line
    with pytest.raises(tunefleet.SpecError, match=r"^--tracking-uri: directory .*missing does not exist"):
        tunefleet.tune(small_spec, tracking_uri="sqlite:///missing/mlflow.db")


def test_a_missing_experiment_or_model_is_the_cli_s_error(run_cli, tmp_path):
    line = _cli_line(run_cli, "trials", "nope")
    with pytest.raises(tunefleet.SpecError) as err:
        tunefleet.open("nope")
    assert str(err.value) == line
    Image.new("L", (8, 8)).save(tmp_path / "one.png")
    line = _cli_line(run_cli, "predict", "no-such-export", "one.png")
    with pytest.raises(tunefleet.SpecError) as err:
        tunefleet.load("no-such-export")
    assert str(err.value) == line
    assert [p.name for p in tmp_path.iterdir()] == ["one.png"]  # neither made a store


def test_a_spec_is_built_in_python_and_round_trips(small_spec):
    spec = tunefleet.read_spec(small_spec, {"search": {"num_samples": 2}})
    assert isinstance(spec, tunefleet.SearchSpec) and spec.search.num_samples == 2
    again = tunefleet.read_spec(spec, {"tracking": {"experiment": "other"}})
    assert again.search == spec.search and again.tracking.experiment == "other"
    with pytest.raises(tunefleet.SpecError, match=r"^spec: expected a YAML path, a dict or a SearchSpec, got int$"):
        tunefleet.read_spec(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "raised"),
    [(1, tunefleet.SearchFailed), (130, tunefleet.SearchInterrupted)],
    ids=["every trial failed", "interrupted"],
)
def test_a_search_that_did_not_finish_raises_as_the_cli_exits(code, raised):
    """The CLI exits 1 (every trial failed) or 130 (Ctrl-C, a stop); Python raises, naming the run
    (a ``RuntimeError``, a ``KeyboardInterrupt``: what Python code catches for those)."""
    assert issubclass(tunefleet.SearchFailed, RuntimeError) and issubclass(
        tunefleet.SearchInterrupted, KeyboardInterrupt
    )
    with pytest.raises(raised, match=r"search_run='r1'|search run r1 failed"):
        ended(SearchEnd(code, "r1"), "x", "sqlite:///m.db")
    assert ended(SearchEnd(0, "r1"), "x", "sqlite:///m.db").run_id == "r1"


@pytest.mark.parametrize(
    "cli_args, kwargs",
    [
        (["--preset", "fastest"], {"preset": "fastest"}),
        (["--time", "20s"], {"time": "20s"}),
        (["--register", "no spaces"], {"register": "no spaces"}),
    ],
    ids=["unknown preset", "too short for one epoch", "bad model name"],
)
def test_fit_refuses_what_the_cli_refuses(cli_args, kwargs, run_cli, tmp_path):
    """``tunefleet.fit`` runs ``tunefleet fit``'s own plan and checks (the run after them is the
    CLI's too: tests/search/test_fit_command.py runs one whole fit)."""
    line = _cli_line(run_cli, "fit", "digits", *cli_args)
    with pytest.raises(tunefleet.SpecError) as err:
        tunefleet.fit("digits", **kwargs)
    assert str(err.value) == line and not list(tmp_path.iterdir())
