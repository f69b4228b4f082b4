from __future__ import annotations

import json

import numpy as np
import pytest

from tunefleet.analysis._metrics import classifier_metrics, expected_calibration_error
from tunefleet.spaces import SpecError

# Four images, three classes, class 2 never the true label. Worked by hand below.
PROBS = np.array(
    [
        [0.8, 0.1, 0.1],  # true 0, predicted 0
        [0.6, 0.3, 0.1],  # true 0, predicted 0
        [0.3, 0.2, 0.5],  # true 1, predicted 2
        [0.1, 0.5, 0.4],  # true 1, predicted 1
    ]
)
LABELS = np.array([0, 0, 1, 1])


def test_metrics_of_a_worked_example():
    m = classifier_metrics(PROBS, LABELS, ["a", "b", "c"])
    assert m["n"] == 4 and m["acc"] == pytest.approx(0.75)
    assert "top5_acc" not in m  # 3 classes: top-5 is always right
    # Class 0: both positives (0.8, 0.6) above both negatives (0.3, 0.1): AUC 1.
    # Class 1: positives (0.2, 0.5) vs negatives (0.1, 0.3): 3 of 4 pairs ordered: AUC 0.75.
    # Class 2 never occurs, so it has no AUC and is left out.
    assert m["roc_auc"] == pytest.approx((1.0 + 0.75) / 2) and m["roc_auc_classes"] == 2
    assert m["nll"] == pytest.approx(-np.mean(np.log([0.8, 0.6, 0.2, 0.5])))
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]  # rows are the true classes
    # Macro over classes seen in labels or predictions (0, 1, 2): precision (1 + 1 + 0) / 3,
    # recall (1 + 0.5 + 0) / 3, F1 (1 + 2/3 + 0) / 3.
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx((1 + 2 / 3) / 3)
    assert [c["support"] for c in m["per_class"]] == [2, 2, 0] and m["per_class"][1]["name"] == "b"
    # Confidences 0.8, 0.6 (right), 0.5 (wrong), 0.5 (right): bins hold {0.8}, {0.6}, {0.5, 0.5}, so
    # ECE = (|1 - 0.8| + |1 - 0.6| + |0.5 - 0.5| * 2) / 4.
    assert m["ece"] == pytest.approx((0.2 + 0.4) / 4)
    json.dumps(m)


def test_ece_of_a_constructed_case():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.7, 0.3], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # conf 0.9 twice, half right: |0.5 - 0.9| * 2/4 = 0.2; conf 0.7 twice, all right: |1 - 0.7| * 2/4 = 0.15.
    assert expected_calibration_error(probs, labels) == pytest.approx(0.35)
    # A confidence on a bin edge (8/15) belongs to the bin below it, (7/15, 8/15]; another just above
    # it to the next bin, so the two errors do not cancel.
    edge = np.linspace(0.0, 1.0, 16)[8]  # the same float the function's bin edges hold
    probs = np.array([[edge, 1 - edge], [edge + 1e-6, 1 - edge - 1e-6]])
    assert expected_calibration_error(probs, np.array([0, 1])) == pytest.approx((abs(1 - edge) + edge + 1e-6) / 2)


def test_perfectly_calibrated_predictions_have_zero_ece():
    probs = np.tile([0.75, 0.25], (8, 1))
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)


def test_top5_only_with_more_than_five_classes():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), 50)
    labels = rng.integers(0, 6, 50)
    m = classifier_metrics(probs, labels, list("abcdef"))
    worst = probs.argmin(1)  # the one class outside the top five of six
    assert m["top5_acc"] == pytest.approx(np.mean(labels != worst))
    assert "top5_acc" not in classifier_metrics(
        probs[:, :5] / probs[:, :5].sum(1, keepdims=True), labels % 5, list("abcde")
    )


def test_roc_auc_of_one_present_class_is_none():
    m = classifier_metrics(PROBS[:2], LABELS[:2], ["a", "b", "c"])
    assert m["roc_auc"] is None and m["roc_auc_classes"] == 0
    json.dumps(m)


@pytest.mark.parametrize(
    ("probs", "labels", "names", "field"),
    [
        (PROBS[0], LABELS, ["a", "b", "c"], "probs"),
        (PROBS, LABELS[:3], ["a", "b", "c"], "labels"),
        (PROBS, LABELS, ["a", "b"], "class_names"),
        (PROBS, np.array([0, 0, 1, 3]), ["a", "b", "c"], "labels"),
        (PROBS[:0], LABELS[:0], ["a", "b", "c"], "labels"),
    ],
)
def test_bad_input_is_refused(probs, labels, names, field):
    with pytest.raises(SpecError, match=f"^{field}: "):
        classifier_metrics(probs, labels, names)
