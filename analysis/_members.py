"""The candidate pool of an export: the best trials that can be ensembled together.

Each candidate's best checkpoint is downloaded, checked (checksums, and that the rebuilt model
reproduces the test logits its trial recorded) and loaded with its saved validation logits, which
is all a combination method may fit on. A trial without a checkpoint, or whose classes or input
differ from the best trial's, is left out with a line naming it, and the next best one is tried:
a pool is never a silent mix.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.tracking import MlflowClient

from tunefleet.spaces import CheckpointMeta, DataSpec, SpecError
from tunefleet.spaces import records as rec
from tunefleet.trainables import (
    CorruptCheckpoint,
    DataFeed,
    FileSplit,
    ImageData,
    Split,
    load_logits,
    load_model,
    open_data,
    unit_transforms,
    verify_checkpoint,
)

from ._ensemble import Normalized

# A rebuilt member must reproduce the test logits its trial recorded to this tolerance (times
# the largest recorded logit when that is over 1).
REPRODUCE_TOL = 1e-3
CPU = torch.device("cpu")


@dataclass
class Member:
    run_id: str
    name: str
    module: Normalized
    meta: CheckpointMeta
    val_logits: np.ndarray  # saved by the trial with its best weights: what combinations fit on
    test_logits: np.ndarray  # recomputed here, and checked against the saved ones
    epochs_trained: int | None = None  # as the trial's run recorded it


# Test images per batch while scoring members and the ensemble: memory holds one batch of images.
EVAL_BATCH = 256


class EvalData:
    """The splits members are scored on, read the way the search's data path kept them (decoded
    once, or streamed from disk a batch at a time by loader workers): no tensor ever holds a whole
    split, so an export works on any folder its search could train on."""

    def __init__(self, data: ImageData[Split] | ImageData[FileSplit], workers: int) -> None:
        self.y_val = data.val.labels
        self.y_test: np.ndarray | None = None  # the labels of the test images read (unreadable ones drop out)
        self.feed = DataFeed(data, unit_transforms(data.train.size, data.in_chans), CPU, workers=workers, seed=0)

    @torch.inference_mode()
    def over_test(self, fn: Callable[[torch.Tensor], np.ndarray]) -> np.ndarray:
        """``fn`` of each test batch ([0, 1] images, as the exported graph takes them), concatenated
        in order; every pass must read the same images."""
        outputs, labels = [], []
        for x, y in self.feed.evaluate("test", EVAL_BATCH):
            outputs.append(fn(x))
            labels.append(y.numpy())
        read = np.concatenate(labels)
        if self.y_test is not None and not np.array_equal(read, self.y_test):
            raise RuntimeError("the test split read differently between two passes (are its files changing?)")
        self.y_test = read
        return np.concatenate(outputs)

    def example(self) -> torch.Tensor:
        """The first two test images, as the graph takes them (its trace input and input example)."""
        x, _ = next(iter(self.feed.evaluate("test", 2)))
        return x


def eval_data(spec: DataSpec) -> EvalData:
    """The data a search trained on (its checkpoints' ``meta.settings.data``), on the path it chose."""
    data, plan = open_data(spec)
    # Loader workers only pay off when each image is read and resized from disk.
    workers = 0 if plan.cache == "memory" else max(1, (os.cpu_count() or 2) - 1)
    return EvalData(data, workers)


def _download(client: MlflowClient, run_id: str, staging: Path) -> Path | None:
    names = {Path(f.path).name for f in client.list_artifacts(run_id, rec.CHECKPOINT_ARTIFACT_DIR)}
    if rec.WEIGHTS not in names:
        return None
    return Path(client.download_artifacts(run_id, rec.CHECKPOINT_ARTIFACT_DIR, str(staging / run_id)))


def _verified(client: MlflowClient, run_id: str, name: str, local: Path) -> None:
    """Refuse a member whose checkpoint fails its checksums, naming the file where MLflow stores it:
    the local copy is gone once the export ends."""
    try:
        verify_checkpoint(local)
    except CorruptCheckpoint as err:
        stored = f"{client.get_run(run_id).info.artifact_uri}/{rec.CHECKPOINT_ARTIFACT_DIR}"
        if err.path != local and err.path.is_relative_to(local):
            stored += f"/{err.path.relative_to(local).as_posix()}"
        raise SpecError(f"trial {name}", f"{stored}: {err.problem}; its checkpoint is corrupt, not exporting") from err


def _load(client: MlflowClient, row: Any, local: Path, data: EvalData | None) -> tuple[Member, EvalData]:
    _verified(client, row.run_id, row.name, local)
    model, meta = load_model(local)
    data = data or eval_data(meta.settings.data)
    saved = load_logits(local)
    if not np.array_equal(saved["val_labels"].numpy(), data.y_val):
        raise SpecError(f"trial {row.name}", "its saved validation labels differ from the data it names; not exporting")
    module = Normalized(model, meta.mean, meta.std).eval()
    test_logits = data.over_test(lambda x: module(x).numpy())
    recorded = len(saved["test_logits"])
    if len(test_logits) != recorded:
        raise RuntimeError(f"trial {row.name} recorded logits for {recorded} test images; {len(test_logits)} read now")
    recorded_logits = saved["test_logits"].numpy()
    drift = float(np.abs(test_logits - recorded_logits).max())
    # float32 rounding grows with the logits' size (a diverged trial's reach 1e4), so the
    # tolerance is relative to the largest recorded logit, and absolute below 1.
    scale = max(1.0, float(np.abs(recorded_logits).max(initial=0.0)))
    if drift > REPRODUCE_TOL * scale:
        raise RuntimeError(
            f"trial {row.name} does not reproduce its recorded test logits (max diff {drift:.2e}, "
            f"over {REPRODUCE_TOL:g} x their largest {scale:.3g})"
        )
    trained = getattr(row, rec.EPOCHS_TRAINED, None)
    epochs = int(trained) if trained is not None and np.isfinite(trained) else None
    member = Member(row.run_id, row.name, module, meta, saved["val_logits"].numpy(), test_logits, epochs)
    return member, data


def _mismatch(meta: CheckpointMeta, first: CheckpointMeta) -> str | None:
    """What members of one ensemble must share: the graph takes one input and names one set of classes."""
    shared = {
        "image_size": (meta.image_size, first.image_size),
        "in_chans": (meta.in_chans, first.in_chans),
        "class_names": (meta.class_names, first.class_names),
    }
    differing = [name for name, (mine, theirs) in shared.items() if mine != theirs]
    if not differing:
        return None
    return f"its {', '.join(differing)} {'differs' if len(differing) == 1 else 'differ'} from the best trial's"


def load_pool(
    client: MlflowClient, ranked: pd.DataFrame, k: int, staging: Path, say: Any
) -> tuple[list[Member], EvalData]:
    """The ``k`` best loadable trials of ``ranked`` (best first); ``say`` gets one line per trial left out."""
    members: list[Member] = []
    data: EvalData | None = None
    left_out: list[str] = []
    for row in ranked.itertuples():
        local = _download(client, row.run_id, staging)
        if local is None:
            left_out.append(f"{row.name}: no checkpoint")
            say(f"left out trial {row.name}: it has no best checkpoint in MLflow")
            continue
        member, data = _load(client, row, local, data)
        problem = _mismatch(member.meta, members[0].meta) if members else None
        if problem:
            left_out.append(f"{row.name}: {problem}")
            say(f"left out trial {row.name}: {problem}")
            continue
        members.append(member)
        if len(members) == k:
            break
    if len(members) < k or data is None:
        why = f" (left out: {'; '.join(left_out)})" if left_out else ""
        raise SpecError("--top-k", f"asked for {k} trials but only {len(members)} of them can be ensembled{why}")
    return members, data
