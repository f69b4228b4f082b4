"""Export the top-k trials of a search as one ensemble: ONNX graph + a card describing it.

Steps: pick the k best finished trials from MLflow, download their best checkpoints (refusing one
that fails its checksums), rebuild the models (checking each reproduces the test logits it
recorded), average their softmax outputs, evaluate members and ensemble on the held-out test
split, export to ONNX and check onnxruntime against PyTorch. Files appear in ``out`` only when
every check passed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.tracking import MlflowClient

from tunefleet.spaces import DataSpec, SpecError
from tunefleet.spaces import records as rec
from tunefleet.trainables import (
    CorruptCheckpoint,
    classification_metrics,
    load_data,
    load_logits,
    load_model,
    verify_checkpoint,
)

from ._ensemble import Normalized, SoftmaxAverage, batched
from ._onnx import OPSET, export_onnx, onnx_outputs
from ._runs import open_experiment, ranking, search_run, top_trials, trials_frame

PARITY_TOL = 1e-4
# A rebuilt member must reproduce the test logits its trial recorded to this tolerance.
REPRODUCE_TOL = 1e-3


@dataclass
class ExportResult:
    out: Path
    card: dict[str, Any]


def _test_inputs(meta: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    settings = meta["settings"]
    data = load_data(DataSpec.model_validate(settings["data"]))
    images = torch.from_numpy(data.test.images).float() / 255.0
    x = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    return x.contiguous(), torch.from_numpy(data.test.labels)


def _same_input(metas: list[dict[str, Any]]) -> None:
    keys = ("image_size", "in_chans", "class_names")
    first = {k: metas[0][k] for k in keys}
    for meta in metas[1:]:
        if {k: meta[k] for k in keys} != first:
            raise SpecError("--top-k", "the chosen trials disagree on input size, channels or classes")


def _verify_member(client: MlflowClient, run_id: str, name: str, local: Path) -> None:
    """Refuse a member whose downloaded checkpoint fails its checksums (or is empty, or incomplete),
    naming the file where MLflow stores it: the local copy is gone once the export ends."""
    try:
        verify_checkpoint(local)
    except CorruptCheckpoint as err:
        stored = f"{client.get_run(run_id).info.artifact_uri}/{rec.CHECKPOINT_ARTIFACT_DIR}"
        if err.path != local and err.path.is_relative_to(local):
            stored += f"/{err.path.relative_to(local).as_posix()}"
        raise SpecError(f"trial {name}", f"{stored}: {err.problem}; its checkpoint is corrupt, not exporting") from err


def export_ensemble(uri: str, experiment: str, top_k: int, out: Path, search_run_id: str | None = None) -> ExportResult:
    """Build, check and write ``out/ensemble.onnx`` and ``out/card.json``; return the card."""
    client, exp = open_experiment(uri, experiment)
    parent = search_run(client, exp, search_run_id)
    metric, mode = ranking(parent)
    picked = top_trials(trials_frame(client, parent), metric, mode, top_k)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        members, metas, member_cards = [], [], []
        x_test = y_test = None
        for row in picked.itertuples():
            local = client.download_artifacts(
                row.run_id, rec.CHECKPOINT_ARTIFACT_DIR, str(staging / "members" / row.run_id)
            )
            _verify_member(client, row.run_id, str(row.name), Path(local))
            model, meta = load_model(local)
            if x_test is None or y_test is None:
                x_test, y_test = _test_inputs(meta)
            member = Normalized(model, meta["mean"], meta["std"])
            logits = batched(member, x_test)
            recorded = load_logits(local)["test_logits"]
            drift = float((logits - recorded).abs().max())
            if drift > REPRODUCE_TOL:
                raise RuntimeError(
                    f"trial {row.name} does not reproduce its recorded test logits (max diff {drift:.2e})"
                )
            members.append(member)
            metas.append(meta)
            member_cards.append(
                {
                    "run_id": row.run_id,
                    "name": row.name,
                    "recipe": meta["recipe"],
                    "epoch": meta["epoch"],
                    metric: meta["metrics"].get(metric),
                    "test": classification_metrics(logits, y_test, prefix="test"),
                }
            )
        assert x_test is not None and y_test is not None
        _same_input(metas)
        ensemble = SoftmaxAverage(members).eval()
        probs = batched(ensemble, x_test)
        ens_metrics = classification_metrics(torch.log(probs.clamp_min(1e-12)), y_test, prefix="test")

        onnx_path = staging / "ensemble.onnx"
        export_onnx(ensemble, x_test[:2], onnx_path)
        ort_probs = onnx_outputs(onnx_path, x_test)
        diff = float(np.abs(ort_probs - probs.numpy()).max())
        if diff >= PARITY_TOL:
            raise RuntimeError(f"ONNX output differs from PyTorch by {diff:.2e} (tolerance {PARITY_TOL:.0e})")

        meta0 = metas[0]
        card = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "experiment": experiment,
            "search_run_id": parent.info.run_id,
            "tracking_uri": uri,
            "metric": metric,
            "mode": mode,
            "method": "softmax_average",
            "input": {
                "name": "image",
                "shape": ["batch", meta0["in_chans"], meta0["image_size"], meta0["image_size"]],
                "dtype": "float32",
                "scale": "[0, 1]; normalization is inside the graph",
            },
            "output": {"name": "probs", "meaning": "class probabilities, mean over members"},
            "class_names": meta0["class_names"],
            "members": member_cards,
            "ensemble": {**ens_metrics, "test_size": len(y_test)},
            "onnx": {"file": "ensemble.onnx", "opset": OPSET, "max_abs_diff_vs_torch": diff},
        }
        (staging / "card.json").write_text(json.dumps(card, indent=2))
        shutil.rmtree(staging / "members")
        out.mkdir(parents=True, exist_ok=True)
        for path in staging.iterdir():  # the graph, any external-data file beside it, the card
            os.replace(path, out / path.name)
        return ExportResult(out=out, card=card)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
