"""Ways to combine a pool of trained classifiers into one, fit on validation predictions only.

Every fit function takes the pool's validation logits (M, N, C) and labels (N,) and nothing else,
so no choice made here (method, members, weights) can have seen the test split. The pool is
ordered best first by the search metric; members are referred to by their index in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold

from tunefleet.spaces import SpecError

from ._checks import METHODS
from ._metrics import PROB_FLOOR, nll

CARUANA_ROUNDS = 25  # auto-sklearn's and AutoGluon's default ensemble size
MIN_WEIGHT = 1e-3  # a member weighted less changes no prediction measurably but costs a forward pass
STACK_C = 1.0  # sklearn's default L2 strength: enough to keep M*C features from memorising a small split
STACK_MAX_ITER = 1000
CV_FOLDS = 5


@dataclass(frozen=True, eq=False)  # eq would compare arrays elementwise and fail
class Combination:
    """A fitted way to turn the pool's logits into one set of class probabilities."""

    method: str  # "mean" | "weighted" | "caruana" | "stacking"
    members: tuple[int, ...]  # pool indices used, ascending
    weights: np.ndarray | None  # (len(members),) on the simplex, on member probabilities; None for stacking
    stack_weight: np.ndarray | None  # stacking: (C, len(members) * C) on member-major concatenated logits
    stack_bias: np.ndarray | None  # stacking: (C,)
    detail: dict[str, Any]  # JSON-serialisable facts about the fit

    def predict_proba(self, pool_logits: np.ndarray) -> np.ndarray:
        """(M, N', C) logits of the whole pool -> (N', C) class probabilities."""
        logits = np.asarray(pool_logits, dtype=np.float64)
        pool = self.detail.get("pool_size", max(self.members) + 1)
        if logits.ndim != 3 or logits.shape[0] != pool:
            raise SpecError("pool_logits", f"expected ({pool}, images, classes) logits of the pool, got {logits.shape}")
        chosen = logits[list(self.members)]
        if self.stack_weight is not None and self.stack_bias is not None:
            features = concat_members(chosen)
            if features.shape[1] != self.stack_weight.shape[1]:
                raise SpecError("pool_logits", f"{logits.shape[2]} classes, but the stacker was fit on another count")
            return softmax(features @ self.stack_weight.T.astype(np.float64) + self.stack_bias, axis=1)
        if self.weights is None:
            raise ValueError("a Combination needs either weights or a stacking layer")
        return np.tensordot(self.weights, softmax(chosen, axis=2), axes=1)


def concat_members(logits: np.ndarray) -> np.ndarray:
    """(k, N, C) -> (N, k*C), member-major: row n is member 0's C logits, then member 1's, ..."""
    return logits.transpose(1, 0, 2).reshape(logits.shape[1], -1)


def _check(val_logits: np.ndarray, val_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits, labels = np.asarray(val_logits), np.asarray(val_labels)
    if logits.ndim != 3 or min(logits.shape) < 1:
        raise SpecError("val_logits", f"expected (members, images, classes) logits, got shape {logits.shape}")
    if logits.shape[2] < 2:
        raise SpecError("val_logits", f"a classifier needs at least 2 classes, got {logits.shape[2]}")
    if not np.isfinite(logits).all():
        raise SpecError("val_logits", "contains NaN or infinite logits")
    if labels.shape != (logits.shape[1],):
        raise SpecError("val_labels", f"shape {labels.shape} does not match the {logits.shape[1]} images in val_logits")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= logits.shape[2]:
        raise SpecError("val_labels", f"must be integer class indices in [0, {logits.shape[2]}), got {labels.dtype}")
    return logits.astype(np.float64), labels.astype(np.int64)


def _true_class_probs(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(M, N): each member's probability of each image's true class, the only thing NLL of a mixture needs."""
    return softmax(logits, axis=2)[:, np.arange(len(labels)), labels]


def _finish(
    method: str,
    members: np.ndarray,
    weights: np.ndarray | None,
    logits: np.ndarray,
    labels: np.ndarray,
    stack: tuple[np.ndarray, np.ndarray] | None = None,
    **facts: Any,
) -> Combination:
    if weights is not None:  # drop members too light to matter, then put the rest back on the simplex
        keep = weights >= MIN_WEIGHT
        keep[np.argmax(weights)] = True
        members, weights = members[keep], weights[keep] / weights[keep].sum()
    comb = Combination(
        method=method,
        members=tuple(int(m) for m in members),
        weights=weights,
        stack_weight=None if stack is None else stack[0],
        stack_bias=None if stack is None else stack[1],
        detail={"pool_size": logits.shape[0], "n_classes": logits.shape[2], **facts},
    )
    probs = comb.predict_proba(logits)
    comb.detail.update(val_nll=nll(probs, labels), val_acc=float((probs.argmax(1) == labels).mean()))
    return comb


def fit_mean(val_logits: np.ndarray, val_labels: np.ndarray, seed: int = 0, top: int | None = None) -> Combination:
    """Equal-weight softmax average of the ``top`` best members (all of them by default). ``seed`` is unused."""
    logits, labels = _check(val_logits, val_labels)
    k = logits.shape[0] if top is None else top
    if not 1 <= k <= logits.shape[0]:
        raise SpecError("top", f"must be between 1 and the pool size {logits.shape[0]}, got {k}")
    return _finish("mean", np.arange(k), np.full(k, 1.0 / k), logits, labels, top=k)


def fit_weighted(val_logits: np.ndarray, val_labels: np.ndarray, seed: int = 0) -> Combination:
    """Simplex weights on member probabilities minimising validation NLL. ``seed`` is unused (deterministic).

    The mixture's NLL is convex in the weights, so SLSQP from equal weights finds the optimum; working on
    the simplex itself (not a softmax of free parameters) lets useless members reach exactly zero.
    """
    logits, labels = _check(val_logits, val_labels)
    true = _true_class_probs(logits, labels)
    m = len(true)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        mix = np.clip(w @ true, PROB_FLOOR, None)
        return float(-np.log(mix).mean()), -(true / mix).mean(axis=1)

    result = minimize(
        objective,
        np.full(m, 1.0 / m),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
    )
    weights = np.clip(result.x, 0.0, None)
    facts: dict[str, Any] = {"converged": bool(result.success), "iterations": int(result.nit)}
    return _finish("weighted", np.arange(m), weights / weights.sum(), logits, labels, **facts)


def fit_caruana(
    val_logits: np.ndarray, val_labels: np.ndarray, seed: int = 0, rounds: int = CARUANA_ROUNDS
) -> Combination:
    """Greedy ensemble selection with replacement (Caruana et al. 2004). ``seed`` is unused (deterministic).

    Each round adds the member (repeats allowed, ties to the lowest index) that minimises the validation
    NLL of the averaged probabilities; the weights are the pick counts over ``rounds``.
    """
    logits, labels = _check(val_logits, val_labels)
    if rounds < 1:
        raise SpecError("rounds", f"caruana needs at least 1 round, got {rounds}")
    true = _true_class_probs(logits, labels)
    total = np.zeros(true.shape[1])
    picks: list[int] = []
    round_nll: list[float] = []
    for r in range(1, rounds + 1):
        scores = -np.log(np.clip((total + true) / r, PROB_FLOOR, None)).mean(axis=1)
        best = int(np.argmin(scores))  # argmin returns the first minimum: ties go to the better-ranked member
        picks.append(best)
        round_nll.append(float(scores[best]))
        total += true[best]
    counts = np.bincount(picks, minlength=len(true)).astype(np.float64)
    facts: dict[str, Any] = {"picks": picks, "round_nll": round_nll, "rounds": rounds}
    return _finish("caruana", np.arange(len(true)), counts / rounds, logits, labels, **facts)


def fit_stacking(val_logits: np.ndarray, val_labels: np.ndarray, seed: int = 0, c: float = STACK_C) -> Combination:
    """Multinomial logistic regression on the members' concatenated validation logits.

    Refuses validation labels that miss a class: the stacker would learn nothing about it and give it
    ~zero probability, which is a confident wrong answer rather than an honest fit.
    """
    logits, labels = _check(val_logits, val_labels)
    n_classes = logits.shape[2]
    missing = sorted(set(range(n_classes)) - {int(y) for y in labels})
    if missing:
        raise SpecError("val_labels", f"stacking needs every class in the validation labels; absent: {missing}")
    model = LogisticRegression(C=c, max_iter=STACK_MAX_ITER, random_state=seed).fit(concat_members(logits), labels)
    weight, bias = model.coef_, model.intercept_
    if n_classes == 2:  # sklearn fits one logit for class 1; softmax([0, z]) is the same sigmoid
        weight, bias = np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
    stack = (weight.astype(np.float32), bias.astype(np.float32))
    iterations = int(np.max(model.n_iter_))
    facts: dict[str, Any] = {"C": c, "iterations": iterations, "converged": iterations < STACK_MAX_ITER}
    return _finish("stacking", np.arange(logits.shape[0]), None, logits, labels, stack=stack, **facts)


def _folds(labels: np.ndarray, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    if len(labels) < 2:
        raise SpecError(
            "val_labels", f"auto cross-validates over validation images and needs 2 or more, got {len(labels)}"
        )
    k = min(CV_FOLDS, len(labels))
    counts = np.bincount(labels)
    # Stratify only when every present class can appear in every fold: below that sklearn warns (or
    # fails when every class is too small), so plain shuffled folds are the fallback.
    stratify = counts[counts > 0].min() >= k
    splitter = (
        StratifiedKFold(k, shuffle=True, random_state=seed) if stratify else KFold(k, shuffle=True, random_state=seed)
    )
    return list(splitter.split(np.zeros(len(labels)), labels)), type(splitter).__name__


def fit_auto(val_logits: np.ndarray, val_labels: np.ndarray, seed: int = 0) -> Combination:
    """Choose method and members by K-fold cross-validation over the validation images alone.

    Candidates: the mean of the best j members for every j, weighted, caruana and stacking. Each is fit
    on the training folds and scored by NLL on the held-out fold; the lowest mean wins (ties to the
    simpler, earlier candidate) and is refit on all validation images. The signature holds only
    validation arrays, so the choice cannot depend on the test split. A candidate that cannot be fit
    on some fold (stacking when a class is missing from its training folds) is left out and reported.
    """
    logits, labels = _check(val_logits, val_labels)
    candidates: dict[str, Callable[..., Combination]] = {
        f"mean_top{j}": partial(fit_mean, top=j) for j in range(1, logits.shape[0] + 1)
    }
    candidates |= {"weighted": fit_weighted, "caruana": fit_caruana, "stacking": fit_stacking}
    folds, splitter = _folds(labels, seed)
    cv_nll: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name, fit in candidates.items():
        try:
            scores = [
                nll(fit(logits[:, tr], labels[tr], seed).predict_proba(logits[:, te]), labels[te]) for tr, te in folds
            ]
        except SpecError as err:
            skipped[name] = str(err)
            continue
        cv_nll[name] = float(np.mean(scores))
    chosen = min(cv_nll, key=cv_nll.__getitem__)  # min keeps the first of equal scores
    best = candidates[chosen](logits, labels, seed)
    facts = {"chosen": chosen, "cv_nll": cv_nll, "cv_skipped": skipped, "cv_folds": len(folds), "cv_splitter": splitter}
    return replace(best, detail={**best.detail, "selected_by": "auto", **facts})


COMBINERS: dict[str, Callable[..., Combination]] = {
    "mean": fit_mean,
    "weighted": fit_weighted,
    "caruana": fit_caruana,
    "stacking": fit_stacking,
    "auto": fit_auto,
}
assert tuple(COMBINERS) == METHODS, "analysis/_checks.py names the methods COMBINERS implements"


def fit_combination(method: str, val_logits: np.ndarray, val_labels: np.ndarray, seed: int = 0) -> Combination:
    """Fit the combiner named ``method`` on the pool's validation logits (M, N, C) and labels (N,)."""
    if method not in COMBINERS:
        raise SpecError("--method", f"unknown method {method!r}; one of: {', '.join(sorted(COMBINERS))}")
    return COMBINERS[method](val_logits, val_labels, seed)
