"""A search's report: figures as PNG files plus one self-contained HTML page, logged to the search run.

Runs at the end of every search, so it reads only what is small (run data, metric histories, the
spec, and the top trials' ``meta.json`` and logits, never weights) and decodes the validation
images once. Anything missing (no checkpoint, too few trials for fANOVA) becomes a note in the
report rather than a failure: a finished search must not fail because its report is partial.
"""

from __future__ import annotations

import base64
import html
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tunefleet.spaces import CheckpointMeta, DataSpec, Domain, SpecError, load_spec
from tunefleet.spaces import records as rec

from . import _case_plots as case_plots
from . import _plots as plots
from ._cost import cost_by_model, cost_figure
from ._importance import param_importances, searched_knobs
from ._page import Draft, page_html, render_png
from ._pareto import front_objectives, pareto_figure
from ._runs import finished_trials, history_frame, open_experiment, ranking, search_run, trials_frame

if TYPE_CHECKING:
    from tunefleet.trainables import FileSplit, ImageData, Split

ARTIFACT_PATH = rec.REPORT_ARTIFACT_DIR
LIVE_NOTE = "the search is still running: this report is a snapshot"
HTML_NAME = "report.html"
BAD_CASES = 16  # images per bad-case grid
BAD_CASES_PREFIX = "bad_cases_top"
# File names of the figures (each top trial's bad cases: BAD_CASES_PREFIX + rank + ".png").
IMPORTANCE_PNG, PARALLEL_PNG = "importance.png", "parallel_coordinates.png"
CURVES_PNG, BEST_SO_FAR_PNG, CONFUSION_PNG = "learning_curves.png", "best_so_far.png", "confusion_matrix.png"
COST_PNG, PARETO_PNG = "quality_vs_cost.png", "pareto_front.png"
FIGURE_NAMES = (IMPORTANCE_PNG, PARALLEL_PNG, CURVES_PNG, BEST_SO_FAR_PNG, CONFUSION_PNG, COST_PNG, PARETO_PNG)


@dataclass(frozen=True)
class Report:
    """What ``build_report`` wrote: the PNGs (``files``), the page, and what it had to leave out."""

    out_dir: Path
    files: list[Path]
    html: Path
    search_run_id: str
    experiment_id: str
    artifact_path: str | None  # where the files are on the search run; None when not logged
    notes: list[str]
    summary: str = ""  # the page's first line: the search run, its ranking and its trials

    def _repr_html_(self) -> str:
        """Jupyter shows a report inline: its summary, its notes, then every figure."""
        parts = [f"<p><b>{html.escape(self.summary)}</b></p>"]
        parts += [f"<p>note: {html.escape(note)}</p>" for note in self.notes]
        for png in (f for f in self.files if f.suffix == ".png"):
            data = base64.b64encode(png.read_bytes()).decode()
            parts.append(f'<figure><img src="data:image/png;base64,{data}" style="max-width:100%">'
                         f"<figcaption>{html.escape(png.name)}</figcaption></figure>")  # fmt: skip
        return "\n".join(parts)


def _download(uri: str, run: Run, path: str, tmp: Path) -> Path:
    """One artifact file of ``run``, read from the run's artifact store itself.

    Not ``client.download_artifacts``: MLflow resolves its ``runs:/`` address by also searching the
    run's logged models, a query per file that costs more than the file (about 0.1 s each).
    """
    from mlflow.artifacts import download_artifacts

    tmp.mkdir(parents=True, exist_ok=True)
    return Path(download_artifacts(artifact_uri=f"{run.info.artifact_uri}/{path}", dst_path=str(tmp), tracking_uri=uri))


def _space(uri: str, parent: Run, tmp: Path, draft: Draft) -> dict[str, Domain] | None:
    try:
        return load_spec(_download(uri, parent, rec.SPEC_ARTIFACT, tmp)).space
    except Exception as err:  # no such artifact (MlflowException), or a spec this version no longer reads
        draft.notes.append(
            f"no importance or parallel coordinates: cannot read the search's {rec.SPEC_ARTIFACT}: {err}"
        )
        return None


def _search_figures(
    draft: Draft,
    trials: pd.DataFrame,
    space: dict[str, Domain] | None,
    history: pd.DataFrame,
    ranked: tuple[str, str],
    start_ms: float,
    best_run_id: str,
) -> None:
    """Figures about the search as a whole: importance, parallel coordinates, curves, best so far."""
    metric, mode = ranked
    if space is not None:
        importance = param_importances(trials, space, metric, mode)
        draft.notes += importance.notes
        if len(importance.frame):
            table = importance.frame.to_html(index=False, float_format=lambda v: f"{v:.3f}")
            draft.tables.append(("Parameter importance (fANOVA)", table))
            caption = f"fANOVA importance of each searched parameter for best {metric}, per scope of trials"
            draft.add(IMPORTANCE_PNG, caption, plots.importance_figure(importance.frame))
        knobs = searched_knobs(space)
        caption = (
            f"each trial's searched values, coloured by best {metric}; dashed: stopped early; dotted: not applicable"
        )
        draft.add(PARALLEL_PNG, caption, plots.parallel_coordinates_figure(trials, knobs, metric, mode))
    if not len(history):
        draft.notes.append(f"no learning curves: no trial logged {metric} per epoch")
        return
    caption = f"{metric} per epoch of every trial; dashed with x: stopped early, dotted: failed or interrupted"
    draft.add(CURVES_PNG, caption, plots.learning_curves_figure(history, trials, metric, best_run_id))
    caption = f"best {metric} reported so far, over wall-clock time and over epochs spent by all trials"
    draft.add(BEST_SO_FAR_PNG, caption, plots.best_so_far_figure(history, metric, mode, start_ms))


def _checkpoint(client: MlflowClient, uri: str, run_id: str, tmp: Path) -> tuple[CheckpointMeta, dict[str, np.ndarray]]:
    """A trial's best-checkpoint metadata and logits, downloading just those two small files."""
    # Torch-free readers: a report that imported torch (for a tensor it turns into NumPy at once)
    # would spend more on the import than on everything it reads.
    from tunefleet.trainables import logits_arrays, read_meta

    run = client.get_run(run_id)
    meta, logits = (
        _download(uri, run, f"{rec.CHECKPOINT_ARTIFACT_DIR}/{name}", tmp) for name in (rec.META, rec.LOGITS)
    )
    return read_meta(meta.parent), logits_arrays(logits.parent)


class _SplitImages:
    """A split's images as uint8 arrays, each read when indexed: a bad-case grid needs a few
    images, never a decoded split (a streamed search's folder may not fit in memory)."""

    def __init__(self, split: Split | FileSplit) -> None:
        self.split = split

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.split.image(index))


def _val_images(meta: CheckpointMeta, labels: np.ndarray, cache: dict[DataSpec, ImageData]) -> _SplitImages:
    """The validation images in the order of the trial's logits (opened once per data spec, on
    the path its search chose)."""
    from tunefleet.trainables import open_data

    spec = meta.settings.data
    if spec not in cache:
        cache[spec] = open_data(spec)[0]
    val = cache[spec].val
    if not np.array_equal(val.labels, labels):
        raise ValueError("its validation split is not the one opened now (has the data changed?)")
    return _SplitImages(val)


def _trial_figures(client: MlflowClient, uri: str, draft: Draft, best: pd.DataFrame, tmp: Path) -> None:
    """The best trial's confusion matrix and each top trial's most confident mistakes."""
    cache: dict[DataSpec, ImageData] = {}
    for rank, (run_id, name) in enumerate(zip(best["run_id"], best["name"], strict=True), start=1):
        try:
            meta, logits = _checkpoint(client, uri, run_id, tmp / run_id)
            logits_val, labels = logits["val_logits"], logits["val_labels"]
            classes = list(meta.class_names)
        except Exception as err:  # no checkpoint uploaded, or a damaged one: this trial's figures only
            draft.notes.append(f"no figures for top {rank} trial {name}: cannot read its checkpoint: {err!r}")
            continue
        if rank == 1:
            title = f"best trial {name}, validation split"
            matrix = case_plots.confusion_matrix_figure(logits_val, labels, classes, title)
            draft.add(CONFUSION_PNG, f"confusion matrix of {title} (rows: true class)", matrix)
        try:
            if cache and meta.settings.data not in cache:
                draft.notes.append(
                    f"top {rank} trial {name} trained on other data than the trial above: opened that too"
                )
            images = _val_images(meta, labels, cache)
        except Exception as err:  # data gone or changed since the search: the other figures still stand
            draft.notes.append(f"no bad cases for top {rank} trial {name}: cannot load its validation images: {err!r}")
            continue
        title = f"top {rank}: {name}, most confident mistakes on the validation split"
        figure = case_plots.bad_cases_figure(images, labels, logits_val, classes, title, BAD_CASES)
        if figure is None:
            draft.notes.append(f"no bad cases for top {rank} trial {name}: it gets every validation image right")
        caption = f"top {rank} trial {name}: the validation images it gets most confidently wrong (up to {BAD_CASES})"
        draft.add(f"{BAD_CASES_PREFIX}{rank}.png", caption, figure)


def _top_table(best: pd.DataFrame, space: dict[str, Domain] | None, metric: str) -> str:
    params = [f"params.{k.param}" for k in searched_knobs(space)] if space is not None else []
    columns = ["name", "outcome", rec.best_key(metric), rec.BEST_EPOCH, rec.EPOCHS_TRAINED, *params]
    table = best[[c for c in columns if c in best]].rename(columns=lambda c: c.removeprefix("params."))
    return str(table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}"))


def _collect(client: MlflowClient, uri: str, parent: Run, trials: pd.DataFrame, best: pd.DataFrame) -> Draft:
    """Read what the report needs (into a scratch folder, deleted after) and draw every figure."""
    metric, mode = ranking(parent)
    draft = Draft()
    with tempfile.TemporaryDirectory(prefix="tunefleet-report-") as tmp:
        space = _space(uri, parent, Path(tmp), draft)
        history = history_frame(client, trials, metric)
        start_ms = float(parent.info.start_time or history["timestamp"].min())
        _search_figures(draft, trials, space, history, (metric, mode), start_ms, str(best["run_id"].iloc[0]))
        _trial_figures(client, uri, draft, best, Path(tmp))
    draft.tables.insert(0, (f"Top {len(best)} finished trials", _top_table(best, space, metric)))
    costs = cost_by_model(trials, metric, mode)
    table = costs.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")
    draft.tables.insert(1, (f"Quality against cost per model (best {metric}; epochs and trial seconds)", table))
    caption = f"each trial's best {metric} against its seconds, by model: was the bigger model worth its time?"
    draft.add(COST_PNG, caption, cost_figure(trials, metric))
    _pareto(draft, parent, trials)
    return draft


def _pareto(draft: Draft, parent: Run, trials: pd.DataFrame) -> None:
    """The front of a search that traded accuracy against serving cost (or measured it)."""
    try:
        objectives = front_objectives(parent, trials)
    except SpecError:  # one objective, no serving cost measured: nothing to trade
        return
    caption = (
        f"best {objectives[0]} against {objectives[1]}: filled, joined, the Pareto front over "
        f"{', '.join(objectives)} (`tunefleet trials --pareto`; `tunefleet export --pick {objectives[1]}<=X`)"
    )
    draft.add(PARETO_PNG, caption, pareto_figure(trials, objectives))


def _write(draft: Draft, out_dir: Path, title: str, summary: str) -> tuple[list[Path], Path]:
    """The PNGs and the page, in ``out_dir``; figures of an earlier report there that this one lacks
    are removed, so the folder never shows a figure the page does not."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [render_png(figure) for _, _, figure in draft.figures]
    files = [out_dir / name for name, _, _ in draft.figures]
    stale = [*(out_dir / name for name in FIGURE_NAMES), *out_dir.glob(f"{BAD_CASES_PREFIX}*.png")]
    for path in set(stale) - set(files):
        path.unlink(missing_ok=True)
    for path, data in zip(files, images, strict=True):
        path.write_bytes(data)
    page = out_dir / HTML_NAME
    page.write_text(page_html(title, summary, draft, images), encoding="utf-8")
    return files, page


def build_report(
    uri: str,
    experiment: str,
    out_dir: str | Path,
    search_run_id: str | None = None,
    top: int = 3,
    log_artifacts: bool = True,
) -> Report:
    """Write a search's figures (PNG) and ``report.html`` into ``out_dir`` and log them to the search run.

    Args:
        uri, experiment: The tracking store and experiment of the search.
        search_run_id: The search run; the experiment's latest search when None.
        top: How many of the best finished trials get a bad-case grid.
        log_artifacts: Also log the files under ``report/`` on the search run (the MLflow UI shows them).

    Raises:
        SpecError: No such store, experiment or search run, or a search without a finished trial
            (then nothing is written).
    """
    if top < 1:
        raise SpecError("--top", f"needs at least 1 trial, got {top}")
    client, found = open_experiment(uri, experiment)
    parent = search_run(client, found, search_run_id)
    run_id, (metric, mode) = parent.info.run_id, ranking(parent)
    trials = trials_frame(client, parent)
    best = finished_trials(trials, metric, mode).head(top)  # a SpecError when there is none
    draft = _collect(client, uri, parent, trials, best)
    counts = ", ".join(f"{n} {o or 'unknown'}" for o, n in trials["outcome"].value_counts().items())
    summary = f"search run {run_id}, ranked by {metric} ({mode}); {len(trials)} trials: {counts}"
    if parent.info.status == "RUNNING":  # a live refresh (or a search that died without closing its run)
        summary += f"; {LIVE_NOTE} as of {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    out_dir = Path(out_dir)
    files, page = _write(draft, out_dir, f"tunefleet report: {experiment}", summary)
    if log_artifacts:
        for path in [*files, page]:  # only our files: out_dir may hold other things
            client.log_artifact(run_id, str(path), artifact_path=ARTIFACT_PATH)
    logged = ARTIFACT_PATH if log_artifacts else None
    return Report(out_dir, files, page, run_id, found.experiment_id, logged, list(draft.notes), summary)
