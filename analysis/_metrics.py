"""Test-split metrics of a classifier's (or an ensemble's) class probabilities, for a card.

Everything returned is a plain float, int, list or ``None`` so a card can be ``json.dumps``-ed as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score, top_k_accuracy_score

from tunefleet.spaces import SpecError

# Probabilities are clipped here before the log: one confidently wrong image then costs at most
# ~27.6 nats instead of making the whole mean infinite.
PROB_FLOOR = 1e-12
ECE_BINS = 15  # Guo et al. 2017 use 15 equal-width bins


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes under ``probs`` (N, C)."""
    true = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(true, PROB_FLOOR, None)).mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the top-1 confidence: sum over bins (lo, hi] of |accuracy - confidence| * share of images."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    # searchsorted on the inner edges puts conf in bin i when edge[i] < conf <= edge[i+1], as Guo et al. do.
    which = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], conf, side="left")
    count = np.bincount(which, minlength=bins)
    gap = np.bincount(which, weights=correct, minlength=bins) - np.bincount(which, weights=conf, minlength=bins)
    # |sum(correct) - sum(conf)| per bin equals |acc - conf| * n_bin, so dividing by N weights by bin size.
    return float(np.abs(gap).sum() / count.sum())


def _roc_auc(probs: np.ndarray, labels: np.ndarray) -> tuple[float | None, int]:
    """One-vs-rest macro AUC over the classes for which it is defined (present, and not every image)."""
    usable = [c for c in np.unique(labels) if (labels != c).any()]
    if not usable:
        return None, 0
    scores = [roc_auc_score(labels == c, probs[:, c]) for c in usable]
    return float(np.mean(scores)), len(usable)


def _check(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> None:
    if probs.ndim != 2:
        raise SpecError("probs", f"expected (images, classes) probabilities, got shape {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise SpecError("labels", f"expected {probs.shape[0]} labels (one per row of probs), got shape {labels.shape}")
    if len(labels) == 0:
        raise SpecError("labels", "the split is empty; there is nothing to evaluate")
    if len(class_names) != probs.shape[1]:
        raise SpecError("class_names", f"{len(class_names)} names for {probs.shape[1]} classes in probs")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise SpecError("labels", f"must be integer class indices in [0, {probs.shape[1]}), got {labels.dtype}")


def classifier_metrics(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, OvR ROC AUC, NLL, ECE and the confusion matrix of ``probs``.

    ``probs`` is (N, C) class probabilities, ``labels`` (N,) true class indices. Macro precision, recall
    and F1 average over the classes that occur in ``labels`` or in the predictions (sklearn's default, as
    the trials' own metrics do), so a class absent from a small test split is not scored as a failure.
    ``roc_auc`` averages the per-class one-vs-rest AUC over the ``roc_auc_classes`` classes present.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    _check(probs, labels, class_names)
    n_classes = probs.shape[1]
    everything = list(range(n_classes))
    pred = probs.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, pred, average="macro", zero_division=0)
    per_p, per_r, per_f, support = precision_recall_fscore_support(
        labels, pred, labels=everything, average=None, zero_division=0
    )
    auc, auc_classes = _roc_auc(probs, labels)
    out: dict[str, Any] = {"n": len(labels), "acc": float((pred == labels).mean())}
    if n_classes > 5:  # top-5 of 5 or fewer classes is always right, so it says nothing
        out["top5_acc"] = float(top_k_accuracy_score(labels, probs, k=5, labels=everything))
    out |= {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": auc,
        "roc_auc_classes": auc_classes,
        "nll": nll(probs, labels),
        "ece": expected_calibration_error(probs, labels),
        "class_names": list(class_names),
        "per_class": [
            {"name": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, per_p, per_r, per_f, support, strict=True)
        ],
        "confusion_matrix": confusion_matrix(labels, pred, labels=everything).tolist(),
    }
    return out
