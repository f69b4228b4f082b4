"""The command line in this process, through ``tunefleet.search.cli.run``: bad input is one
``error:`` line on stderr with exit code 2, whatever finds it (click's parser or a command), and
``export --register`` takes its NAME or, without one, the experiment's. Nothing here starts Ray."""

from __future__ import annotations

import pytest
import typer

from tunefleet.search.cli import app, run


@pytest.fixture(autouse=True)
def _scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _refused(argv: list[str], capsys) -> str:
    """Run ``argv``; it must exit 2 with one ``error:`` line on stderr, which is returned."""
    code = run(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["trials"], "error: Missing argument 'experiment'. (see: tunefleet trials --help)"),
        (["search", "spec.yaml", "--num-samples", "many"], "error: Invalid value for '--num-samples'"),
        (["trials", "x", "--bogus"], "error: No such option: --bogus (see: tunefleet trials --help)"),
        (["spaces", "show"], "error: Missing argument 'name'. (see: tunefleet spaces show --help)"),
        (["nope"], "error: No such command 'nope'. (see: tunefleet --help)"),
    ],
)
def test_usage_errors_are_one_line(argv, line, capsys):
    assert _refused(argv, capsys).startswith(line)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["search", "missing.yaml"], "error: spec: no such file: missing.yaml"),
        (["spaces", "show", "nope"], "error: spaces show: unknown space 'nope'"),
        (["trials", "x", "--format", "xml"], "error: --format: unknown format 'xml'; one of: table, csv, json"),
    ],
)
def test_spec_errors_from_commands_are_one_line(argv, line, capsys, tmp_path):
    assert _refused(argv, capsys).startswith(line)
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_spec_is_refused_before_ray_or_mlflow(capsys, tmp_path):
    (tmp_path / "bad.yaml").write_text("name: x\nspace: {lr: {uniform: [0.9, 0.1]}}\n")
    assert _refused(["search", "bad.yaml"], capsys) == "error: space.lr: uniform needs low < high, got [0.9, 0.1]"


def _register_value(*args: str) -> str | None:
    """What ``export`` receives as ``--register``, parsed as ``tunefleet export ARGS`` is (nothing runs)."""
    export = typer.main.get_command(app).commands["export"]
    return export.make_context("export", list(args)).params["register_as"]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["exp"], None),
        (["exp", "--register"], "exp"),  # alone: the experiment's name
        (["exp", "--register", "--out", "x"], "exp"),  # another option next: still alone
        (["--register", "--", "exp"], "exp"),  # `--` ends the options
        (["exp", "--register", "model-a"], "model-a"),
        (["--register", "model-a", "exp"], "model-a"),
        (["exp", "--register=model-a", "--top-k", "2"], "model-a"),
        (["exp", "--register", "model-a", "--register"], "exp"),  # the last one wins
        (["exp", "--register", "--register", "model-a"], "model-a"),
    ],
)
def test_register_takes_an_optional_name(args, name):
    assert _register_value(*args) == name


def test_register_alone_names_the_model_after_the_experiment(capsys):
    # The model name is checked before anything is read: an experiment named so cannot be a model.
    line = _refused(["export", "bad name!", "--register", "--out", "never"], capsys)
    assert line.startswith("error: --register: model name 'bad name!'")
    line = _refused(["export", "ok", "--register", "bad name!"], capsys)
    assert line.startswith("error: --register: model name 'bad name!'")
    assert _refused(["export", "ok", "--register", "--top-k", "0"], capsys) == "error: --top-k: must be >= 1, got 0"


def test_output_goes_to_the_current_stdout(capsys):
    assert run(["spaces", "list"]) == 0
    captured = capsys.readouterr()
    assert "built-in spaces" in captured.out and not captured.err


def test_no_command_prints_the_help_and_no_error_line(capsys):
    assert run([]) == 2
    captured = capsys.readouterr()
    assert "Usage: tunefleet [OPTIONS] COMMAND" in captured.out and not captured.err
