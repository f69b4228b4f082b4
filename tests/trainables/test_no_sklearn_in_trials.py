"""A trial process never imports scikit-learn (about 1.3 s of CPU at its start): its macro
precision/recall/F1 and the digits data set are computed and read without it, and equal what
scikit-learn gives (contract tests against scikit-learn itself)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tunefleet.trainables._digits import digits_arrays
from tunefleet.trainables._loop import macro_precision_recall_f1


def _cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(0)
    labels = torch.as_tensor(rng.integers(0, 10, 300))
    noisy = labels.clone()
    flip = torch.as_tensor(rng.random(300) < 0.4)
    noisy[flip] = torch.as_tensor(rng.integers(0, 10, int(flip.sum())))
    return {
        "noisy, ten classes": (noisy, labels),
        "perfect": (labels, labels),
        "one class predicted": (torch.full_like(labels, 3), labels),
        "classes never predicted": (labels.clamp(max=4), labels),
        "a class only predicted": (torch.where(labels == 0, 11, labels), labels),
        "one true class": (torch.as_tensor([1, 1, 2, 1]), torch.as_tensor([1, 1, 1, 1])),
        "a single image": (torch.as_tensor([2]), torch.as_tensor([5])),
    }


@pytest.mark.parametrize("case", sorted(_cases()))
def test_macro_scores_equal_scikit_learns(case) -> None:
    from sklearn.metrics import precision_recall_fscore_support

    pred, labels = _cases()[case]
    expected = precision_recall_fscore_support(labels, pred, average="macro", zero_division=0)[:3]
    assert macro_precision_recall_f1(pred, labels) == pytest.approx(expected, abs=1e-12)


def test_the_digits_are_scikit_learns() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, targets = digits_arrays()
    assert images.shape == (1797, 8, 8) and np.array_equal(images, bunch.images)
    assert np.array_equal(targets, bunch.target)


NO_SKLEARN = """
import sys
import torch
from tunefleet.spaces import DataSpec
from tunefleet.trainables._digits import decode_digits
from tunefleet.trainables._loop import classification_metrics
from tunefleet.trainables._trial import run_trial

data = decode_digits(DataSpec(kind="digits", image_size=8))
labels = torch.as_tensor(data.val.labels)
scores = classification_metrics(torch.randn(len(labels), 10), labels)
assert set(scores) == {"val_acc", "val_loss", "val_precision", "val_recall", "val_f1"}, scores
loaded = sorted(m for m in sys.modules if m == "sklearn" or m.startswith("sklearn."))
assert not loaded, loaded[:5]
print("ok")
"""


def test_a_trial_on_digits_imports_no_scikit_learn() -> None:
    """In a fresh interpreter, so that "imported" means imported by the trial's code."""
    result = subprocess.run([sys.executable, "-c", NO_SKLEARN], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
