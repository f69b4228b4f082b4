from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from scipy.special import softmax

from tunefleet.analysis._combine import COMBINERS, METHODS, Combination, fit_combination
from tunefleet.analysis._metrics import nll
from tunefleet.spaces import SpecError

CLASSES = 10


def _labels(n: int, rng: np.random.Generator, classes: int = CLASSES) -> np.ndarray:
    # Every class present, so stacking can always be fit.
    return rng.permutation(np.arange(n) % classes).astype(np.int64)


def _member(
    labels: np.ndarray, right: np.ndarray, rng: np.random.Generator, sure: float, wrong_by: float
) -> np.ndarray:
    """Logits that favour the true class by ``sure`` where ``right``, else a random wrong class by ``wrong_by``."""
    n, classes = len(labels), CLASSES
    pred = np.where(right, labels, (labels + rng.integers(1, classes, n)) % classes)
    logits = rng.normal(0.0, 0.1, (n, classes))
    logits[np.arange(n), pred] += np.where(right, sure, wrong_by)
    return logits


def complementary(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pool [A, A_copy, B, C]: A right on 70%; B and C each right on a different half of A's mistakes."""
    rng = np.random.default_rng(seed)
    y = _labels(n, rng)
    region = rng.choice(4, n, p=[0.35, 0.35, 0.15, 0.15])  # regions 2 and 3 are where A is wrong
    a = _member(y, region <= 1, rng, 4.0, 2.0)
    b = _member(y, (region == 0) | (region == 2), rng, 4.0, 2.0)
    c = _member(y, (region == 1) | (region == 3), rng, 4.0, 2.0)
    return np.stack([a, a.copy(), b, c]), y


def with_noise(n: int, seed: int, good: int = 1, noise: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Pool of ``good`` decent members (best first) followed by ``noise`` members with random logits."""
    rng = np.random.default_rng(seed)
    y = _labels(n, rng)
    pool = [_member(y, rng.random(n) < 0.8 - 0.05 * i, rng, 3.0, 1.0) for i in range(good)]
    pool += [rng.normal(0.0, 3.0, (n, CLASSES)) for _ in range(noise)]
    return np.stack(pool), y


def acc(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())


@pytest.mark.parametrize("method", sorted(COMBINERS))
def test_every_combiner_keeps_the_contract(method):
    val, y_val = complementary(150, 0)
    test, _ = complementary(37, 1)
    comb = fit_combination(method, val, y_val, seed=3)
    probs = comb.predict_proba(test)
    assert probs.shape == (37, CLASSES)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    assert (probs >= 0).all()
    assert comb.method in {"mean", "weighted", "caruana", "stacking"}
    assert list(comb.members) == sorted(set(comb.members)) and comb.members[0] >= 0 and comb.members[-1] < 4
    if comb.method == "stacking":
        assert comb.weights is None and comb.stack_weight is not None and comb.stack_bias is not None
        assert comb.stack_weight.shape == (CLASSES, len(comb.members) * CLASSES) and comb.stack_bias.shape == (CLASSES,)
    else:
        assert comb.weights is not None and comb.weights.shape == (len(comb.members),)
        assert (comb.weights > 0).all() and comb.weights.sum() == pytest.approx(1.0)
    json.dumps(comb.detail)
    assert comb.detail["val_nll"] == pytest.approx(nll(comb.predict_proba(val), y_val))
    again = fit_combination(method, val, y_val, seed=3)
    assert again.members == comb.members and again.detail == comb.detail
    np.testing.assert_array_equal(again.predict_proba(test), probs)


def test_methods_are_the_registry():
    assert set(METHODS) == set(COMBINERS) == {"mean", "weighted", "caruana", "stacking", "auto"}


def test_mean_averages_member_probabilities():
    val, y_val = complementary(60, 0)
    comb = fit_combination("mean", val, y_val)
    assert comb.members == (0, 1, 2, 3)
    np.testing.assert_allclose(comb.predict_proba(val), softmax(val, axis=2).mean(0), atol=1e-12)


def test_caruana_prefers_complementary_members_over_a_copy_of_the_best():
    val, y_val = complementary(300, 0)
    test, y_test = complementary(300, 1)
    comb = fit_combination("caruana", val, y_val)
    assert comb.detail["picks"][0] == 0  # A first; its identical copy loses every tie to it
    assert {2, 3} <= set(comb.members) and 1 not in comb.members
    best_alone = softmax(test[0], axis=1)
    copies = fit_combination("mean", val[:2], y_val).predict_proba(test[:2])
    probs = comb.predict_proba(test)
    for rival in (best_alone, copies):
        assert nll(probs, y_test) < nll(rival, y_test) - 0.1
        assert acc(probs, y_test) > acc(rival, y_test) + 0.1


def test_weighted_drops_a_noise_member_and_beats_the_mean():
    val, y_val = with_noise(300, 0, good=2, noise=1)
    test, y_test = with_noise(300, 1, good=2, noise=1)
    comb = fit_combination("weighted", val, y_val)
    assert comb.members == (0, 1)  # the noise member's weight fell below the cut and was dropped
    assert comb.weights is not None and comb.weights.min() > 0.2
    mean = fit_combination("mean", val, y_val)
    assert nll(comb.predict_proba(test), y_test) < nll(mean.predict_proba(test), y_test) - 0.1


def _shifted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One member that always names the class after the true one: confidently, consistently wrong."""
    rng = np.random.default_rng(seed)
    y = _labels(n, rng, 5)
    logits = rng.normal(0.0, 0.5, (n, 5))
    logits[np.arange(n), (y + 1) % 5] += 4.0
    return logits[None], y


def test_stacking_learns_a_permutation_of_the_classes():
    val, y_val = _shifted(200, 0)
    test, y_test = _shifted(200, 1)
    assert acc(fit_combination("mean", val, y_val).predict_proba(test), y_test) < 0.05
    stacked = fit_combination("stacking", val, y_val)
    assert acc(stacked.predict_proba(test), y_test) > 0.97
    assert stacked.detail["converged"]


def test_stacking_weights_are_member_major():
    val, y_val = _shifted(200, 0)
    stacked = fit_combination("stacking", np.concatenate([val, np.zeros_like(val)]), y_val)
    assert stacked.stack_weight is not None
    # Member 0's block is the first C columns and holds the permutation; member 1 (all zeros) adds nothing.
    assert (stacked.stack_weight[:, :5].argmax(1) == (np.arange(5) + 1) % 5).all()
    np.testing.assert_allclose(stacked.stack_weight[:, 5:], 0.0, atol=1e-6)


def test_stacking_with_two_classes_matches_sklearn():
    rng = np.random.default_rng(0)
    y = _labels(80, rng, 2)
    val = rng.normal(0, 1, (2, 80, 2)) + 1.5 * np.eye(2)[y]
    comb = fit_combination("stacking", val, y)
    assert comb.stack_weight is not None and comb.stack_weight.shape == (2, 4)
    from sklearn.linear_model import LogisticRegression

    feats = val.transpose(1, 0, 2).reshape(80, 4)
    expected = LogisticRegression(C=1.0, max_iter=1000).fit(feats, y).predict_proba(feats)
    np.testing.assert_allclose(comb.predict_proba(val), expected, atol=1e-5)


def test_stacking_refuses_a_class_missing_from_validation():
    val, y_val = complementary(100, 0)
    y_val = np.where(y_val == 7, 0, y_val)
    with pytest.raises(SpecError, match=r"val_labels: stacking needs every class.*absent: \[7\]"):
        fit_combination("stacking", val, y_val)
    auto = fit_combination("auto", val, y_val)  # auto still works; it reports why stacking was left out
    assert "stacking" in auto.detail["cv_skipped"] and "stacking" not in auto.detail["cv_nll"]


def test_auto_keeps_the_single_member_when_the_rest_is_noise():
    val, y_val = with_noise(300, 0, good=1, noise=2)
    comb = fit_combination("auto", val, y_val)
    assert comb.members == (0,)
    assert comb.detail["chosen"] == "mean_top1" and comb.method == "mean"
    assert comb.detail["cv_nll"]["mean_top1"] < comb.detail["cv_nll"]["mean_top3"]
    assert comb.detail["cv_splitter"] == "StratifiedKFold" and comb.detail["cv_folds"] == 5


def test_auto_builds_an_ensemble_when_members_complement_each_other():
    val, y_val = complementary(300, 0)
    test, y_test = complementary(300, 1)
    comb = fit_combination("auto", val, y_val)
    assert {2, 3} <= set(comb.members)
    assert comb.detail["cv_nll"][comb.detail["chosen"]] == min(comb.detail["cv_nll"].values())
    assert nll(comb.predict_proba(test), y_test) < nll(softmax(test[0], axis=1), y_test) - 0.1


def test_auto_sees_only_validation_arrays_and_ignores_their_order():
    assert list(inspect.signature(COMBINERS["auto"]).parameters) == ["val_logits", "val_labels", "seed"]
    val, y_val = with_noise(300, 0, good=1, noise=2)
    order = np.random.default_rng(5).permutation(len(y_val))
    first = fit_combination("auto", val, y_val)
    shuffled = fit_combination("auto", val[:, order], y_val[order])
    assert shuffled.detail["chosen"] == first.detail["chosen"] and shuffled.members == first.members
    # The refit uses every validation image, so it is the same fit whatever the row order.
    assert shuffled.detail["val_nll"] == pytest.approx(first.detail["val_nll"])


def test_unknown_method_is_refused_with_the_choices():
    val, y_val = complementary(20, 0)
    with pytest.raises(SpecError) as err:
        fit_combination("x", val, y_val)
    assert str(err.value) == "--method: unknown method 'x'; one of: auto, caruana, mean, stacking, weighted"


@pytest.mark.parametrize(
    ("logits_shape", "labels", "field"),
    [
        ((4, 20), np.zeros(20, np.int64), "val_logits"),
        ((4, 20, 1), np.zeros(20, np.int64), "val_logits"),
        ((4, 20, 3), np.zeros(19, np.int64), "val_labels"),
        ((4, 20, 3), np.full(20, 3, np.int64), "val_labels"),
        ((4, 20, 3), np.zeros(20, np.float32), "val_labels"),
    ],
)
def test_bad_shapes_and_labels_are_refused(logits_shape, labels, field):
    with pytest.raises(SpecError, match=f"^{field}: "):
        fit_combination("mean", np.zeros(logits_shape), labels)


def test_predicting_with_another_pool_is_refused():
    val, y_val = complementary(40, 0)
    comb: Combination = fit_combination("weighted", val, y_val)
    with pytest.raises(SpecError, match=r"^pool_logits: expected \(4, images, classes\)"):
        comb.predict_proba(val[:3])
