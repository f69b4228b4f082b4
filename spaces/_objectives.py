"""``search.objectives``: what a multi-objective search trades off, and which way each is better.

A spec names two or more objectives, as a list (``[val_acc, latency_ms]``: each goes the way its
name says, accuracy up and latency down) or a mapping (``{val_acc: max, latency_ms: min}``: the
direction written out, and checked). The first is the search's own ``metric``: Ray Tune's
schedulers (ASHA, median, HyperBand) rank trials on one number, so they stop early on the first
objective alone, while the optuna searcher's multi-objective sampler (TPE or NSGA-II, or GP)
proposes configs that trade all of them. Serving costs (``SERVING_MODES``) are measured once per
trial on its ONNX export (``tunefleet.trainables.serving_cost``) whenever an objective names one;
the GPU latencies (``latency_gpu_ms``) need trials that hold a GPU.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticCustomError

from ._section_base import FIELD_ERROR
from .records import BEST_PREFIX, GPU_SERVING_METRICS, LATENCY_BATCH_MS, LATENCY_MS, METRIC_MODES, MODEL_MB

FIELD = "objectives"
SERVING_MODES = {
    LATENCY_MS: "min",
    LATENCY_BATCH_MS: "min",
    MODEL_MB: "min",
    **dict.fromkeys(GPU_SERVING_METRICS, "min"),
}
OBJECTIVE_MODES = {**METRIC_MODES, **SERVING_MODES}
# Optuna's samplers that take several objectives (CMA-ES takes one).
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "nsga2", "gp")


def _error(message: str) -> PydanticCustomError:
    return PydanticCustomError(FIELD_ERROR, "{field}: {message}", {"field": FIELD, "message": message})


def _named(name: Any) -> str:
    if not isinstance(name, str) or name not in OBJECTIVE_MODES:
        raise _error(f"unknown objective {name!r}; one of: {', '.join(OBJECTIVE_MODES)}")
    return name


def parse_objectives(raw: Any) -> Any:
    """A list of names, or a mapping name -> max|min whose directions must be the names' own, as
    a tuple of names (sections are frozen). Anything else is refused naming the field."""
    if raw is None or raw == []:
        return ()
    if isinstance(raw, dict):
        for name, direction in raw.items():
            if OBJECTIVE_MODES.get(_named(name)) != direction:
                raise _error(f"{name} is better {OBJECTIVE_MODES[name]}, got {direction!r}")
        raw = list(raw)
    if not isinstance(raw, list | tuple):
        raise _error(f"a list of names or a mapping name: max|min, got {raw!r}")
    names = tuple(_named(name) for name in raw)
    if len(set(names)) != len(names):
        raise _error(f"each objective once, got {list(names)}")
    return names


def check_objectives(objectives: tuple[str, ...], metric: str, searcher: str, sampler: str) -> None:
    """The rules between ``search.objectives`` and the rest of ``search``."""
    if not objectives:
        return
    if len(objectives) < 2:
        raise _error(f"two or more to trade off, got {list(objectives)}; one objective is search.metric")
    if objectives[0] != metric:
        raise _error(
            f"the first objective is what the scheduler ranks trials by, search.metric ({metric}), got {objectives[0]}"
        )
    if searcher != "optuna":
        raise _error(f"need searcher 'optuna' (its multi-objective samplers), got {searcher!r}")
    if sampler not in MULTI_OBJECTIVE_SAMPLERS:
        raise _error(f"sampler {sampler!r} takes one objective; use one of: {', '.join(MULTI_OBJECTIVE_SAMPLERS)}")


def objective_modes(objectives: tuple[str, ...]) -> list[str]:
    """Each objective's direction, as Ray Tune's searchers take them: ``max`` or ``min``."""
    return [OBJECTIVE_MODES[name] for name in objectives]


def objective_key(name: str) -> str:
    """Where a trial run keeps an objective's value: a serving cost under its name, a metric at the
    trial's best epoch (``best_val_acc``: the weights an export ships)."""
    return name if name in SERVING_MODES else BEST_PREFIX + name


def gpu_objectives(objectives: tuple[str, ...]) -> list[str]:
    """The objectives only a trial with a GPU can measure (its latency there)."""
    return [name for name in objectives if name in GPU_SERVING_METRICS]


def measures_serving(objectives: tuple[str, ...], asked: bool) -> bool:
    """Whether trials measure their serving cost: asked for, or an objective needs it."""
    return asked or any(name in SERVING_MODES for name in objectives)
