"""The report's per-class figures of one trial: its confusion matrix and the validation images it
gets most confidently wrong. Drawn headless, as ``_plots`` draws the search-wide figures.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ._plots import _figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def confusion_matrix_figure(logits: np.ndarray, labels: np.ndarray, class_names: list[str], title: str) -> Figure:
    """Counts of (true class, predicted class) on the validation split, annotated in each cell."""
    classes = len(class_names)
    predicted = logits.argmax(axis=1)
    counts = np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    size = min(11.0, 2.5 + 0.35 * classes)
    fig = _figure(size + 1.2, size)
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ticks = range(classes)
    font = 8 if classes <= 20 else 5
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=font)
    ax.set_yticks(ticks, class_names, fontsize=font)
    if classes <= 30:  # beyond that the numbers would overlap; the colours still read
        for (row, col), count in np.ndenumerate(counts):
            dark = count > counts.max() / 2
            ax.text(col, row, str(count), ha="center", va="center", fontsize=font, color="white" if dark else "black")
    accuracy = float(np.trace(counts)) / max(1, int(counts.sum()))
    ax.set_title(f"{title} (accuracy {accuracy:.3f}, {int(counts.sum())} images)", fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return fig


def confident_mistakes(logits: np.ndarray, labels: np.ndarray, limit: int = 16) -> list[tuple[int, int, float]]:
    """``(index, predicted class, its probability)`` of the wrong predictions, most confident first."""
    shifted = logits - logits.max(axis=1, keepdims=True)  # softmax without overflow
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:limit]
    return [(int(i), int(predicted[i]), float(probs[i, predicted[i]])) for i in order]


class Images(Protocol):
    """Images by index, as uint8 arrays ([H, W] or [H, W, 3]): an array, or a split read lazily."""

    def __getitem__(self, index: int, /) -> np.ndarray: ...


def bad_cases_figure(
    images: Images, labels: np.ndarray, logits: np.ndarray, class_names: list[str], title: str, limit: int = 16
) -> Figure | None:
    """The validation images a trial gets most confidently wrong; None when it gets none wrong."""
    cases = confident_mistakes(logits, labels, limit)
    if not cases:
        return None
    cols = min(4, len(cases))
    rows = math.ceil(len(cases) / cols)
    width = max(4.0, 1.9 * cols)
    fig = _figure(width, 2.0 * rows + 0.6)
    fig.suptitle(textwrap.fill(title, int(width * 13)), fontsize=9)  # about 13 characters an inch at 9 pt
    axes: Any = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (index, predicted, prob) in zip(axes.flat, cases, strict=False):
        image = images[index]
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        true = class_names[int(labels[index])]
        ax.set_title(f"true {true} / pred {class_names[predicted]} (p={prob:.2f})", fontsize=7)
    return fig
