"""Export the best trials of a search as one ensemble: an ONNX graph and a card describing it.

Steps: rank the finished trials from MLflow, load a candidate pool of the ``k`` best (see
``_members``), fit the combination on their saved *validation* logits only, evaluate every member
and the ensemble on the held-out test split, export members plus combination as one ONNX graph
and check onnxruntime against PyTorch. Files appear in ``out`` only when every check passed.
The card is a ``tunefleet.spaces.ExportCard``, written here as ``card.json``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tunefleet.spaces import SpecError
from tunefleet.spaces import artifacts as art
from tunefleet.spaces import records as rec
from tunefleet.trainables import RESIZE

from ._combine import Combination, fit_combination
from ._distill import distill_ensemble
from ._ensemble import ensemble_module
from ._members import EvalData, Member, load_pool
from ._metrics import classifier_metrics
from ._onnx import OPSET, export_onnx, onnx_session
from ._pareto import Pick, front_objectives, picked
from ._precision import ship_precision
from ._runs import finished_trials, open_experiment, ranking, search_run, trials_frame

PARITY_TOL = 1e-4


@dataclass
class ExportResult:
    out: Path
    card: art.ExportCard
    example: np.ndarray  # two test images as the graph takes them (the registry's input example)


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def _scores(probs: np.ndarray, y_test: np.ndarray, classes: list[str]) -> art.Scores:
    return art.Scores.model_validate(classifier_metrics(probs, y_test, classes))


def _member_card(
    member: Member, weight: float | None, metric: str, y_test: np.ndarray, classes: list[str]
) -> art.MemberCard:
    return art.MemberCard(
        run_id=member.run_id,
        name=member.name,
        weight=weight,
        recipe=member.meta.recipe,
        epoch=member.meta.epoch,
        epochs_trained=member.epochs_trained,
        score=member.meta.metrics.get(metric),
        test=_scores(_softmax(member.test_logits), y_test, classes),
    )


def _weights(combination: Combination, pool: int) -> list[float | None]:
    """Each candidate's share of the averaged probabilities (0 for one left out); None for the
    members of a stack, whose logits all feed one learned linear layer."""
    if combination.weights is None:
        return [None if i in combination.members else 0.0 for i in range(pool)]
    weights: list[float | None] = [0.0] * pool
    for index, share in zip(combination.members, combination.weights, strict=True):
        weights[index] = float(share)
    return weights


def _check_parity(module: torch.nn.Module, data: EvalData, path: Path) -> tuple[np.ndarray, float]:
    """The ensemble's test probabilities from PyTorch, after checking onnxruntime gives them too
    (both run on each test batch as it is read)."""
    run_onnx = onnx_session(path)
    both = data.over_test(lambda x: np.stack([module(x).numpy(), run_onnx(x)], axis=1))
    probs, diff = both[:, 0], float(np.abs(both[:, 1] - both[:, 0]).max())
    if diff >= PARITY_TOL:
        raise RuntimeError(f"ONNX output differs from PyTorch by {diff:.2e} (tolerance {PARITY_TOL:.0e})")
    return probs, diff


def preprocessing(meta: art.CheckpointMeta) -> art.Preprocessing:
    """How to turn an image file into the graph's input, as the search's loaders did."""
    return art.Preprocessing(mode="L" if meta.in_chans == 1 else "RGB", size=meta.image_size, resize=RESIZE)


def _card(
    origin: art.CardOrigin,
    members: list[Member],
    combination: Combination,
    data: EvalData,
    probs: np.ndarray,
    diff: float,
    variants: list[art.Variant],
    distilled: art.Distilled | None = None,
) -> art.ExportCard:
    meta = members[0].meta
    classes = list(meta.class_names)
    assert data.y_test is not None, "the members were scored on the test split first"
    weights = _weights(combination, len(members))
    cards = [_member_card(m, w, origin.metric, data.y_test, classes) for m, w in zip(members, weights, strict=True)]
    meaning = f"class probabilities of the {combination.method} ensemble"
    if distilled is not None:
        meaning = f"class probabilities of {distilled.student}, distilled from the {combination.method} ensemble"
    return art.ExportCard(
        **dict(origin),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        method="distilled" if distilled is not None else combination.method,
        combination=combination.detail,
        input=art.GraphInput(
            name="image", shape=("batch", meta.in_chans, meta.image_size, meta.image_size), dtype="float32"
        ),
        preprocessing=preprocessing(meta),
        output=art.GraphOutput(name="probs", meaning=meaning),
        class_names=classes,
        members=cards,
        ensemble=_scores(probs, data.y_test, classes),
        onnx=art.OnnxParity(file=rec.ONNX_FILE, opset=OPSET, max_abs_diff_vs_torch=diff),
        precision=variants[-1].precision,
        variants=variants,
        distilled=distilled,
    )


def _pool(
    client: Any, parent: Any, ranks: tuple[str, str], stopped: bool, pick: str | None, top_k: int
) -> tuple[pd.DataFrame, int]:
    """The candidates, best first (trials with a best epoch, or with ``stopped`` false those that
    ran all their epochs), and how many to ensemble; with ``pick``, exactly the Pareto trials
    within its budget (maybe fewer than ``top_k``)."""
    ranked = finished_trials(trials_frame(client, parent), *ranks, stopped)
    if pick is not None:
        budget = Pick.parse(pick)
        chosen = picked(ranked, budget, front_objectives(parent, ranked, budget.metric), top_k)
        return chosen, len(chosen)
    if top_k > len(ranked):
        what = "trials with a best epoch" if stopped else "finished trials"
        raise SpecError("--top-k", f"asked for {top_k} trials but the search has {len(ranked)} {what}")
    return ranked, top_k


def export_ensemble(
    uri: str,
    experiment: str,
    top_k: int,
    out: Path,
    search_run_id: str | None = None,
    method: str = "auto",
    say: Any = print,
    stopped: bool = True,
    precision: str = "fp32",
    batch: int = 32,
    pick: str | None = None,
    distill: str | None = None,
    distill_epochs: int | None = None,
) -> ExportResult:
    """Build, check and write ``out/ensemble.onnx`` and ``out/card.json``; return the card.

    ``method`` chooses how the pool of the ``top_k`` best trials is combined; every method, and
    ``auto`` choosing among them, sees validation predictions only. The pool is every trial with
    a best epoch, stopped early by the scheduler or the time budget or not: its best checkpoint is
    a real model, and ``auto`` weighs members on validation. ``stopped=False`` keeps to the trials
    that ran all their epochs. ``precision`` is the graph shipped (``_precision``: fp16 or int8
    converted from the checked fp32 graph), measured at batch 1 and ``batch``. ``pick``
    (``latency_ms<=5``): only Pareto trials, best first while their summed cost fits (``_pareto``).
    ``distill`` (a timm name, or "" for the fastest member's architecture): one student trained
    on the ensemble's soft targets is shipped in its place (``_distill``).
    """
    client, exp = open_experiment(uri, experiment)
    parent = search_run(client, exp, search_run_id)
    metric, mode = ranking(parent)
    ranked, top_k = _pool(client, parent, (metric, mode), stopped, pick, top_k)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    data: EvalData | None = None
    try:
        members, data = load_pool(client, ranked, top_k, staging / "members", say)
        val_logits = np.stack([m.val_logits for m in members])
        combination = fit_combination(method, val_logits, data.y_val)
        module = ensemble_module(combination, [m.module for m in members]).eval()
        distilled = None
        if distill is not None:
            module, distilled = distill_ensemble(client, parent, module, combination.method, members, ranked, data,
                                                 (distill, distill_epochs), staging, say)  # fmt: skip
        onnx_path = staging / rec.ONNX_FILE
        example = data.example()
        export_onnx(module, example, onnx_path)
        probs, diff = _check_parity(module, data, onnx_path)
        probs, variants = ship_precision(onnx_path, precision, probs, data, batch)
        origin = art.CardOrigin(
            experiment=experiment,
            experiment_id=exp.experiment_id,
            search_run_id=parent.info.run_id,
            tracking_uri=uri,
            metric=metric,
            mode=mode,
        )
        card = _card(origin, members, combination, data, probs, diff, variants, distilled)
        (staging / rec.CARD_FILE).write_text(card.model_dump_json(indent=2))
        shutil.rmtree(staging / "members")
        out.mkdir(parents=True, exist_ok=True)
        for path in staging.iterdir():  # the graph, any external-data file beside it, the card
            os.replace(path, out / path.name)
        return ExportResult(out=out, card=card, example=example.numpy())
    finally:
        if data is not None:
            data.feed.close()
        shutil.rmtree(staging, ignore_errors=True)
