"""The search report: figures from made-up data, then a whole report from a real search in MLflow."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow.artifacts
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from mlflow.tracking import MlflowClient

from tunefleet.analysis import _runs
from tunefleet.analysis._case_plots import bad_cases_figure, confident_mistakes, confusion_matrix_figure
from tunefleet.analysis._importance import Knob
from tunefleet.analysis._plots import (
    learning_curves_figure,
    parallel_coordinates_figure,
)
from tunefleet.analysis._report import (
    ARTIFACT_PATH,
    BAD_CASES_PREFIX,
    CONFUSION_PNG,
    CURVES_PNG,
    FIGURE_NAMES,
    HTML_NAME,
    LIVE_NOTE,
    PARETO_PNG,
    build_report,
)
from tunefleet.spaces import Conditional, Float, SpecError
from tunefleet.spaces import records as rec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_confident_mistakes_are_wrong_predictions_most_confident_first():
    logits = np.array([[5.0, 0.0], [0.0, 1.0], [0.0, 9.0], [3.0, 0.0], [0.0, 0.1]])
    labels = np.array([0, 0, 0, 1, 1])
    cases = confident_mistakes(logits, labels)
    assert [index for index, _, _ in cases] == [2, 3, 1]  # index 0 and 4 are right
    assert [pred for _, pred, _ in cases] == [1, 0, 1]
    assert cases[0][2] == pytest.approx(1 / (1 + np.exp(-9.0)))
    assert len(confident_mistakes(logits, labels, limit=1)) == 1


def test_bad_cases_are_titled_and_shown_in_gray_or_absent_when_all_right():
    images = np.random.default_rng(0).integers(0, 255, size=(20, 8, 8), dtype=np.uint8)
    labels = np.arange(20) % 2
    logits = np.zeros((20, 2))
    logits[np.arange(20), 1 - labels] = 3.0  # every prediction wrong
    figure = bad_cases_figure(images, labels, logits, ["cat", "dog"], "t01")
    assert figure is not None
    titled = [ax for ax in figure.axes if ax.get_title()]
    assert len(titled) == 16  # at most 16, though 20 are wrong
    assert titled[0].get_title() == "true cat / pred dog (p=0.95)"
    assert titled[0].images[0].get_cmap().name == "gray"
    logits = -logits  # now every prediction right
    assert bad_cases_figure(images, labels, logits, ["cat", "dog"], "t01") is None


def test_confusion_matrix_counts_each_true_and_predicted_pair():
    logits = np.eye(3)[[0, 1, 2, 2, 1]]
    labels = np.array([0, 1, 2, 1, 1])
    figure = confusion_matrix_figure(logits, labels, ["a", "b", "c"], "best")
    counts = figure.axes[0].images[0].get_array()
    assert np.array_equal(counts, [[1, 0, 0], [0, 2, 1], [0, 0, 1]])
    assert "accuracy 0.800" in figure.axes[0].get_title()


def test_learning_curves_mark_stopped_and_failed_trials():
    trials = pd.DataFrame(
        {"run_id": ["a", "b", "c", "d"], "name": ["t1", "t2", "t3", "t4"],
         "outcome": [rec.COMPLETED, rec.STOPPED, rec.FAILED, rec.FAILED]}
    )  # fmt: skip
    history = pd.DataFrame(
        {"run_id": ["a"] * 4 + ["b"] * 2 + ["c"], "step": [1, 2, 3, 4, 1, 2, 1], "value": np.linspace(0.1, 0.9, 7)}
    )
    ax = learning_curves_figure(history, trials, "val_acc", best_run_id="a").axes[0]
    curves = {lines.get_label(): lines for lines in ax.collections}  # one artist per outcome, and the best
    assert len(curves["best"].get_segments()) == 1 and rec.COMPLETED not in curves  # a, the one completed
    assert curves["best"].get_zorder() > max(line.get_zorder() for line in ax.lines)  # over every mark
    for outcome, style in ((rec.STOPPED, "--"), (rec.FAILED, ":")):  # stopped dashed, failed dotted
        assert curves[outcome].get_linestyle() == LineCollection([], linestyles=style, linewidths=1.2).get_linestyle()
    marked = [(x, y) for line in ax.lines if line.get_marker() == "x" for x, y in line.get_xydata()]
    assert sorted(marked) == [(1, pytest.approx(0.9)), (2, pytest.approx(0.7667, abs=1e-3))]  # last of c and b
    assert ax.get_xlim()[0] <= 1 and ax.get_xlim()[1] >= 4  # the collections set the axis limits
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("stopped early" in text for text in legend)
    assert any(text.startswith("failed") and "1 with no epoch" in text for text in legend)
    assert "best: t1" in legend


def test_parallel_coordinates_bridge_a_knob_the_trials_option_lacks():
    knobs = [
        Knob("optimizer", "optimizer", Conditional({"sgd": {}, "adamw": {}})),
        Knob("optimizer.sgd.momentum", "optimizer.momentum", Float(0.0, 1.0), option=("optimizer", "sgd")),
        Knob("lr", "lr", Float(1e-4, 1e-1, log=True)),
    ]
    trials = pd.DataFrame(
        {"outcome": [rec.COMPLETED, rec.STOPPED, rec.FAILED], "best_val_acc": [0.9, 0.5, 0.7],
         "params.optimizer": ["sgd", "adamw", "sgd"], "params.optimizer.momentum": ["0.5", None, "0.1"],
         "params.lr": ["0.01", "0.001", "0.1"]}
    )  # fmt: skip
    ax = parallel_coordinates_figure(trials, knobs, "val_acc").axes[0]
    collections = {c.get_label(): c for c in ax.collections}
    lines, bridges = collections["trials"], collections["bridges"]
    assert np.allclose(bridges.get_segments(), [[[0, 1], [2, 1 / 3]]])  # adamw: bridged over momentum
    segments = lines.get_segments()  # in row order, worst first: the best is drawn last, on top
    assert np.allclose(segments[0], [[2, 1 / 3], [3, 0]]) and np.allclose(
        segments[1], [[0, 0], [1, 0.5], [2, 2 / 3], [3, 1]]
    )
    dashed, solid = (LineCollection([], linestyles=s, linewidths=1.4).get_linestyle()[0] for s in ("--", "-"))
    assert lines.get_linestyle() == [dashed, solid]  # stopped dashed, completed solid; the failed trial not drawn


def test_metric_histories_in_bulk_match_the_per_run_histories(tmp_path, monkeypatch):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("histories", artifact_location=str(tmp_path / "artifacts"))
    run_ids = [client.create_run(experiment).info.run_id for _ in range(3)]
    for n, run_id in enumerate(run_ids):  # run n logs n points of val_acc (the first run none)
        for step in range(n):
            client.log_metric(run_id, "val_acc", 0.1 * (n + step), step=step + 1)
        client.log_metric(run_id, "val_loss", 1.0, step=1)
    per_run = sorted((r, m.step, m.value) for r in run_ids for m in client.get_metric_history(r, "val_acc"))
    monkeypatch.setattr(_runs, "_BULK_IDS", 2)  # two bulk queries: ids from both chunks are read
    bulk = sorted((r, m.step, m.value) for r, m in _runs.metric_histories(client, run_ids, "val_acc"))
    assert bulk == per_run and len(bulk) == 3
    store = client._tracking_client.store
    monkeypatch.delattr(type(store), "get_metric_history_bulk")  # as the REST store of a server
    one_by_one = sorted((r, m.step, m.value) for r, m in _runs.metric_histories(client, run_ids, "val_acc"))
    assert one_by_one == per_run


@pytest.mark.slow
def test_report_of_a_real_search_has_every_figure_in_png_html_and_mlflow(searched, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / f"{BAD_CASES_PREFIX}9.png").write_bytes(PNG_MAGIC)  # from an earlier, bigger report
    (out / "mine.txt").write_text("not the report's")
    report = build_report(searched.uri, "small", out)
    names = {path.name for path in report.files}
    # no Pareto front: this search measured no serving cost (test_objectives_search.py draws one)
    expected = {*FIGURE_NAMES, *(f"{BAD_CASES_PREFIX}{i}.png" for i in (1, 2, 3))} - {PARETO_PNG}
    # a trial that gets every validation image right has no bad cases, and says so
    right = {
        f"{BAD_CASES_PREFIX}{i}.png"
        for i in (1, 2, 3)
        if any(f"top {i} trial" in n and "right" in n for n in report.notes)
    }
    assert names == expected - right
    assert {p.name for p in out.iterdir()} == names | {HTML_NAME, "mine.txt"}  # stale figure gone, other files kept
    page = report.html.read_text()
    for path in report.files:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) < 400_000
        assert base64.b64encode(data).decode() in page  # embedded: the one file works anywhere
    assert report.html == out / HTML_NAME and report.search_run_id in page
    assert "Parameter importance" in page and "all finished trials" in page and "Top 3 finished trials" in page
    # quality against cost: the one model of the search, its four trials, epochs and seconds
    assert "Quality against cost per model" in page and "<td>test_resnet</td>" in page
    client = MlflowClient(tracking_uri=searched.uri)
    logged = {Path(a.path).name for a in client.list_artifacts(report.search_run_id, ARTIFACT_PATH)}
    assert logged == names | {HTML_NAME} and report.artifact_path == ARTIFACT_PATH
    assert client.get_run(report.search_run_id).data.tags[rec.ROLE_TAG] == rec.ROLE_SEARCH
    assert LIVE_NOTE not in report.summary and report.summary in page  # the search has ended


@pytest.mark.slow
def test_the_report_refreshed_while_the_search_ran(searched):
    """``searched`` refreshes its report after every ended trial (``tracking.report_every: 1``, no interval): at
    least one refresh ran to its end while the search was still running, and said so."""
    log = (searched.folder / "reports" / "small" / "live-report.log").read_text()
    assert LIVE_NOTE in log, log
    assert "logged as artifacts report/ of search run" in log


@pytest.mark.slow
def test_a_report_of_a_running_search_says_it_is_a_snapshot(searched, tmp_path):
    copy = tmp_path / "mlflow.db"  # the runs' artifacts stay where the copy's records point
    shutil.copy(searched.folder / "mlflow.db", copy)
    uri = f"sqlite:///{copy}"
    client = MlflowClient(tracking_uri=uri)
    parent = _search_run_id(client)
    client.update_run(parent, status="RUNNING")
    # In a fresh process, to see what it loads: reading logits and metadata back needs no torch.
    script = (
        "import sys\n"
        "from tunefleet.analysis import build_report\n"
        f"report = build_report({uri!r}, 'small', {str(tmp_path / 'out')!r}, log_artifacts=False)\n"
        "assert report.summary in report.html.read_text()\n"
        "print(report.summary, sorted(p.name for p in report.files), 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert LIVE_NOTE in result.stdout and f"'{CONFUSION_PNG}'" in result.stdout, result.stdout
    assert result.stdout.rstrip().endswith("False"), result.stdout  # torch never imported


@pytest.mark.slow
def test_a_missing_checkpoint_is_a_note_not_a_failure(searched, tmp_path, monkeypatch):
    real = mlflow.artifacts.download_artifacts

    def no_logits(*args, **kwargs):
        if kwargs["artifact_uri"].endswith(rec.LOGITS):
            raise OSError(f"{kwargs['artifact_uri']}: gone")
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", no_logits)
    report = build_report(searched.uri, "small", tmp_path / "r", top=2, log_artifacts=False)
    names = {path.name for path in report.files}
    assert CURVES_PNG in names and not {CONFUSION_PNG, f"{BAD_CASES_PREFIX}1.png"} & names
    assert sum("cannot read its checkpoint" in note for note in report.notes) == 2
    assert report.artifact_path is None


@pytest.mark.slow
def test_unknown_experiment_or_search_run_writes_nothing(searched, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SpecError, match="no experiment 'nope'"):
        build_report(searched.uri, "nope", out)
    with pytest.raises(SpecError, match="not a search run"):
        build_report(searched.uri, "small", out, search_run_id=_a_trial_run(searched.uri))
    assert not out.exists()


def _search_run_id(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name("small")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    return str(runs[0].info.run_id)


def _a_trial_run(uri: str) -> str:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("small")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")
    return str(runs[0].info.run_id)


def test_search_without_finished_trials_is_refused_before_writing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("broken", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment, tags={rec.ROLE_TAG: rec.ROLE_SEARCH}).info.run_id
    client.log_param(parent, rec.SEARCH_METRIC_PARAM, "val_acc")
    client.log_param(parent, rec.SEARCH_MODE_PARAM, "max")
    for outcome in (rec.FAILED, rec.STOPPED):
        tags = {rec.ROLE_TAG: rec.ROLE_TRIAL, rec.PARENT_RUN_TAG: parent, rec.OUTCOME_TAG: outcome}
        trial = client.create_run(experiment, tags=tags).info.run_id
        client.log_metric(trial, rec.best_key("val_acc"), 0.5)
        client.set_terminated(trial, rec.OUTCOME_STATUS[outcome])
    out = tmp_path / "out"
    with pytest.raises(SpecError, match="no finished trials") as err:
        build_report(uri, "broken", out)
    assert err.value.path == "experiment"
    assert not out.exists()
    assert client.list_artifacts(parent) == []
