"""``export --distill [STUDENT]``: one model trained on the ensemble's soft targets, shipped in its place.

The teacher is the ensemble module the export just built. The student is a timm model: by default
the architecture of the fastest member (the lowest measured ``latency_ms``, else the fewest
parameters), starting from that member's trained weights; a named STUDENT starts from its
recipe's initialization (pretrained weights where the recipe asks for them). It trains on the
training split through the search's own data path (``DataFeed``: decoded once or streamed, one
batch in memory), with the teacher's probabilities computed batch by batch, on Hinton's loss:
``ALPHA * T^2 * KL(teacher_T || student_T) + (1 - ALPHA) * CE(labels)`` at temperature ``T``. The
epoch with the best validation accuracy is kept. Every epoch is logged to an MLflow run of its
own under the search run (role ``distill``), which ends FINISHED or FAILED.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient
from torch import nn

from tunefleet.spaces import artifacts as art
from tunefleet.spaces import records as rec
from tunefleet.trainables import build_model, create_optimizer, normalization

from ._ensemble import Normalized, SoftmaxAverage
from ._members import EVAL_BATCH, EvalData, Member
from ._metrics import classifier_metrics
from ._onnx import export_onnx, graph_bytes, latency_ms

TEMPERATURE = 4.0
ALPHA = 0.7  # the soft targets' share of the loss; the rest is cross-entropy on the labels
WARM_LR = 0.3  # a student started from a member's weights trains at this share of the recipe's LR


@dataclass
class Student:
    module: Normalized  # images in [0, 1] -> logits, in eval mode
    model: str
    initialized_from: str  # a member's name, or "recipe"
    epochs: int
    best_epoch: int
    val_acc: float
    run_id: str


def _fastest(members: list[Member], ranked: pd.DataFrame) -> Member:
    """The member cheapest to serve: the lowest measured latency_ms, else the fewest parameters."""
    if rec.LATENCY_MS in ranked:
        latency = dict(zip(ranked["run_id"], ranked[rec.LATENCY_MS], strict=True))
        if all(np.isfinite(latency.get(m.run_id, np.nan)) for m in members):
            return min(members, key=lambda m: latency[m.run_id])
    return min(members, key=lambda m: sum(p.numel() for p in m.module.parameters()))


def _student_module(members: list[Member], ranked: pd.DataFrame, name: str) -> tuple[Normalized, Member, str]:
    """The student before training, the member whose recipe it trains with, and where it started."""
    base = _fastest(members, ranked)
    if not name or name == base.meta.model:
        return copy.deepcopy(base.module), base, base.name
    meta = base.meta
    model = build_model({**meta.recipe, "model": name}, len(meta.class_names), meta.in_chans)
    mean, std = normalization(model, meta.in_chans)
    return Normalized(model, list(mean), list(std)), base, "recipe"


def kd_loss(
    logits: torch.Tensor, teacher_probs: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Hinton's distillation loss against teacher *probabilities* (an ensemble's output): the
    tempered teacher is ``p^(1/T)`` renormalized, which is softmax(teacher logits / T) for one model."""
    tempered = torch.log_softmax(teacher_probs.clamp_min(1e-8).log() / temperature, dim=-1)
    soft = F.kl_div(torch.log_softmax(logits / temperature, dim=-1), tempered, log_target=True, reduction="batchmean")
    return ALPHA * temperature**2 * soft + (1 - ALPHA) * F.cross_entropy(logits, labels)


@torch.inference_mode()
def _val_acc(module: nn.Module, data: EvalData) -> float:
    module.eval()
    right = seen = 0
    for x, y in data.feed.evaluate("val", EVAL_BATCH):
        right += int((module(x).argmax(-1) == y).sum())
        seen += len(y)
    return right / max(seen, 1)


def _epoch(
    student: Normalized, teacher: nn.Module, data: EvalData, steps: tuple[Any, Any], epoch: int, batch: int
) -> float:
    optimizer, schedule = steps
    student.train()
    total = seen = 0.0
    for x, y in data.feed.train(epoch, batch, drop_last=False):
        with torch.no_grad():
            target = teacher(x)
        loss = kd_loss(student(x), target, y, TEMPERATURE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item() * len(y)
        seen += len(y)
    return total / max(seen, 1)


def _steps(module: Normalized, base: Member, warm: bool, epochs: int, data: EvalData) -> tuple[Any, Any]:
    """The recipe's optimizer, cosine-annealed to zero over the student's steps; a student that
    starts from a trained member takes ``WARM_LR`` of the recipe's LR (it refines, not relearns)."""
    lr = float(base.meta.recipe["lr"]) * (WARM_LR if warm else 1.0)
    optimizer = create_optimizer(module.model, base.meta.recipe, lr)
    batch = int(base.meta.recipe["batch_size"])
    steps = epochs * -(-len(data.feed.splits["train"]) // batch)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))


def _open_run(client: MlflowClient, parent: Run, student: str, base: Member, epochs: int) -> str:
    tags = {
        rec.PARENT_RUN_TAG: parent.info.run_id,
        rec.ROLE_TAG: rec.ROLE_DISTILL,
        "mlflow.runName": f"distill {student}",
    }
    run = client.create_run(parent.info.experiment_id, tags=tags)
    params = {
        "student": student,
        "recipe_from": base.name,
        "epochs": epochs,
        "temperature": TEMPERATURE,
        "alpha": ALPHA,
    }
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return str(run.info.run_id)


def distill(
    client: MlflowClient,
    parent: Run,
    teacher: nn.Module,
    members: list[Member],
    ranked: pd.DataFrame,
    data: EvalData,
    student_name: str,
    epochs: int | None,
    say: Any,
) -> Student:
    """Train the student against ``teacher`` (images -> probabilities) for ``epochs`` (default:
    the epochs the recipe's member trained), keeping its best validation epoch."""
    module, base, start = _student_module(members, ranked, student_name)
    name = student_name or base.meta.model
    epochs = epochs or base.epochs_trained or base.meta.epoch
    run_id = _open_run(client, parent, name, base, epochs)
    say(
        f"distilling the ensemble into {name} (from {start}), {epochs} epochs at T={TEMPERATURE:g}: MLflow run {run_id}"
    )
    try:
        steps = _steps(module, base, start != "recipe", epochs, data)
        batch = int(base.meta.recipe["batch_size"])
        # Epoch 0 is the start: a warm student never ships worse on validation than its member.
        best, best_epoch, best_state = _val_acc(module, data), 0, copy.deepcopy(module.state_dict())
        for epoch in range(1, epochs + 1):
            loss = _epoch(module, teacher.eval(), data, steps, epoch, batch)
            acc = _val_acc(module, data)
            now = int(time.time() * 1000)
            client.log_batch(
                run_id, metrics=[Metric("train_loss", loss, now, epoch), Metric("val_acc", acc, now, epoch)]
            )
            if acc > best:
                best, best_epoch, best_state = acc, epoch, copy.deepcopy(module.state_dict())
        module.load_state_dict(best_state)
        client.log_batch(
            run_id, metrics=[Metric("best_val_acc", best, now, 0)], tags=[RunTag("best_epoch", str(best_epoch))]
        )
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return Student(module.eval(), name, start, epochs, best_epoch, best, run_id)


def distill_ensemble(
    client: MlflowClient,
    parent: Run,
    teacher: nn.Module,
    method: str,
    members: list[Member],
    ranked: pd.DataFrame,
    data: EvalData,
    request: tuple[str, int | None],
    staging: Path,
    say: Any,
) -> tuple[nn.Module, art.Distilled]:
    """The student (images -> probabilities) that replaces ``teacher`` in the export, and what the
    card says of it; the teacher is scored on the test split and timed as its graph would run."""
    student_name, epochs = request
    student = distill(client, parent, teacher, members, ranked, data, student_name, epochs, say)
    teacher_probs = data.over_test(lambda x: teacher(x).numpy())
    assert data.y_test is not None, "over_test read the labels"
    scores = art.Scores.model_validate(
        classifier_metrics(teacher_probs, data.y_test, list(members[0].meta.class_names))
    )
    graph = staging / "teacher.onnx"
    export_onnx(teacher, data.example(), graph)
    one, _ = latency_ms(graph, data.example().numpy(), 1)
    size = graph_bytes(graph)
    for path in staging.glob(f"{graph.name}*"):  # the teacher is measured, not shipped
        path.unlink()
    card = art.Distilled(
        student=student.model, initialized_from=student.initialized_from, epochs=student.epochs,
        best_epoch=student.best_epoch, temperature=TEMPERATURE, alpha=ALPHA, val_acc=student.val_acc,
        run_id=student.run_id, teacher_method=method, teacher_test=scores,
        teacher_latency_ms_batch_1=round(one, 3), teacher_file_bytes=size,
    )  # fmt: skip
    return SoftmaxAverage([student.module]).eval(), card
