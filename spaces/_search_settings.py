"""The spec's ``search`` section: searcher, scheduler, budget, and what trials are ranked by.

Split from ``_sections`` (the other sections) because it carries most of the cross-field rules:
each raises ``_field_error`` naming the one field a user must change.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema, field_validator, model_validator

from ._objectives import check_objectives, parse_objectives
from ._section_base import Mode, Section, _field_error
from .records import METRIC_MODES

# Ray Tune keeps every trial in the driver's memory and rewrites all of them into the experiment
# state file at each checkpoint of the search, so that file and each save grow with the trial
# count; past ten thousand a search spends its time on bookkeeping (and one MLflow run per trial
# floods the experiment). A bigger search is better split into several, or its space narrowed.
MAX_NUM_SAMPLES = 10_000


def parse_duration(raw: Any, info: ValidationInfo) -> Any:
    """``90`` (seconds), ``"90s"``, ``"30m"``, ``"2h"`` -> seconds; anything else passes to the type check."""
    if isinstance(raw, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh])\s*", raw)
        if not match:
            field = info.field_name or "duration"
            raise _field_error(field, f"expected seconds or a duration like 90s, 30m, 2h; got {raw!r}")
        return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    if isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    return raw


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smh]\s*$"},
        {"type": "null"},
    ]
}
Duration = Annotated[
    Annotated[float, Field(gt=0)] | None, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)
]
Metric = Literal["val_acc", "val_loss", "val_f1", "val_precision", "val_recall", "train_loss"]
# The names of search.run._schedulers' tables (SCHEDULERS, SAMPLERS); a test keeps them equal.
SchedulerName = Literal["asha", "hyperband", "median", "pbt", "fifo"]
SamplerName = Literal["tpe", "gp", "cmaes", "nsga2"]
# Where a metric can reach: a search.stop_at outside it would never stop the search.
_METRIC_RANGES: dict[str, tuple[float, float]] = {"val_loss": (0.0, math.inf), "train_loss": (0.0, math.inf)}


def _as_tuple(raw: Any) -> Any:
    """A YAML list (or one name) as a tuple: sections are frozen and hashable."""
    if isinstance(raw, str):
        return (raw,)
    return tuple(raw) if isinstance(raw, list) else raw


def _mode_of(metric: str) -> Mode:
    return "min" if METRIC_MODES[metric] == "min" else "max"


class SearchSettings(Section):
    """How the search runs: searcher, scheduler, budget, and what it ranks trials by."""

    searcher: Literal["grid", "random", "optuna"] = Field(
        "optuna", description="optuna: TPE (conditional spaces define-by-run); random; grid: every grid point"
    )
    sampler: SamplerName = Field(
        "tpe",
        description="optuna searcher only: tpe (parallel-aware TPE); gp (Gaussian process, best for small "
        "numeric spaces); cmaes (CMA-ES over the numeric knobs; categorical knobs are sampled independently); "
        "nsga2 (NSGA-II, the genetic multi-objective sampler)",
    )
    scheduler: SchedulerName = Field(
        "asha",
        description="asha: async successive halving stops weak trials early; hyperband: synchronous brackets "
        "(pauses and resumes trials); median: stops a trial below the median of the others at the same epoch; "
        "pbt: population-based training (random searcher), weak trials continue from a strong one's "
        "checkpoint with a perturbed lr and augmentation; fifo: every trial runs to the end",
    )
    num_samples: int = Field(
        8, ge=1, le=MAX_NUM_SAMPLES, description="trials to run (grid: at least the grid size); at most 10000"
    )
    metric: Metric = Field("val_acc", description="what trials are ranked by (reported every epoch)")
    # A missing mode follows the (already validated) metric: ranking by val_loss minimizes it.
    mode: Mode = Field(
        default_factory=lambda data: _mode_of(data["metric"]),
        description="max or min; follows the metric (val_loss/train_loss: min, the rest: max)",
    )
    max_epochs: int = Field(10, ge=1, description="epochs of a trial that is never stopped early")
    grace_period: int = Field(2, ge=1, description="asha, median: epochs every trial runs before it may be stopped")
    reduction_factor: int = Field(
        3, ge=2, description="asha, hyperband: keep 1/reduction_factor of trials at each rung"
    )
    perturbation_interval: int = Field(
        2, ge=1, description="pbt: epochs between two exploit/explore steps of a trial (< max_epochs)"
    )
    stop_at: float | None = Field(
        None,
        description="end the search (no new trials, running ones stopped) once a trial reports the metric at "
        "or beyond this value (>= for mode max, <= for min)",
    )
    max_concurrent: int | None = Field(None, ge=1, description="at most this many trials at once (default: fill)")
    seed: int = Field(0, description="seed of the searcher and of every trial's training")
    time_budget: Duration = Field(None, description="stop starting trials after this long: 90s, 30m, 2h")
    max_failures: int = Field(
        2,
        ge=0,
        description="times a failed trial is restarted from its last checkpoint before it counts as failed "
        "(worker lost, out of memory, preemption)",
    )
    checkpoint_every: int = Field(
        1,
        ge=1,
        description="epochs between a trial's last/ checkpoints, which resume and restarts start from (best/ and "
        "the final epoch are always saved): fewer saves per epoch, and a restarted trial repeats up to this many",
    )
    trial_timeout: Duration = Field(
        None,
        description="stop a trial that reports nothing for this long (a hung worker): 90s, 30m, 2h; "
        "it ends failed as timed_out",
    )
    start_with: Annotated[tuple[dict[str, Any], ...], BeforeValidator(_as_tuple)] = Field(
        (),
        description="configs the optuna searcher runs first, before proposing its own: each maps the space's "
        "knob names (a conditional knob's own knobs as knob.option.name) to values inside their domains; "
        "knobs left out are sampled",
    )
    warm_start: Annotated[tuple[str, ...], BeforeValidator(_as_tuple)] = Field(
        (),
        description="MLflow experiments (same store) whose completed trials this search learns from: "
        "their configs that fit this space are the searcher's history, and the best run first",
    )

    objectives: Annotated[tuple[str, ...], BeforeValidator(parse_objectives)] = Field(
        (),
        description="two or more to trade off, first search.metric: [val_acc, latency_ms] or {val_acc: max, "
        "latency_ms: min} (latency_ms, latency_ms_batch, model_mb: serving cost; latency_gpu_ms, latency_gpu_ms_batch "
        "on GPU trials); the optuna searcher's sampler "
        "(tpe, nsga2, gp) trades them, the scheduler stops trials on the first alone",
    )
    measure_serving: bool = Field(
        False,
        description="measure each trial's serving cost (its ONNX export in onnxruntime, CPU: latency_ms, "
        "latency_ms_batch, model_mb; and its GPU, where it has one: latency_gpu_ms, latency_gpu_ms_batch) even if "
        "no objective names it; a few seconds per trial",
    )
    serving_batch: int = Field(32, ge=1, description="the batch size latency_ms_batch is measured at")

    @field_validator("num_samples", mode="before")
    @classmethod
    def _not_huge(cls, value: Any) -> Any:
        # Before pydantic's own ``le`` check (which stays, for the JSON Schema), to say why.
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_NUM_SAMPLES:
            raise _field_error(
                "num_samples",
                f"must be <= {MAX_NUM_SAMPLES}, got {value}: Ray Tune keeps every trial in the driver and "
                "its experiment state file; split the search or narrow the space",
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchSettings:
        expected = METRIC_MODES[self.metric]
        if self.mode != expected:
            raise _field_error("mode", f"{self.metric} is ranked with mode {expected}, got {self.mode!r}")
        if self.scheduler in ("asha", "median") and self.grace_period > self.max_epochs:
            raise _field_error("grace_period", f"must be <= max_epochs ({self.max_epochs}), got {self.grace_period}")
        self._check_sampler_and_scheduler()
        self._check_stop_at()
        check_objectives(self.objectives, self.metric, self.searcher, self.sampler)
        return self

    def _check_sampler_and_scheduler(self) -> None:
        if self.sampler != "tpe" and self.searcher != "optuna":
            raise _field_error(
                "sampler", f"{self.sampler!r} is an Optuna sampler; searcher {self.searcher!r} has none (use optuna)"
            )
        # Ray's PBT picks each trial's next config itself (a strong trial's, perturbed) and refuses a
        # searcher that proposes configs (OptunaSearch); a grid's points would be overwritten.
        if self.scheduler == "pbt" and self.searcher != "random":
            raise _field_error(
                "scheduler", f"pbt needs searcher 'random' (it draws the population), got {self.searcher!r}"
            )
        if self.scheduler == "pbt" and self.perturbation_interval % self.checkpoint_every:
            raise _field_error(
                "checkpoint_every",
                f"pbt exploits a trial's checkpoint every perturbation_interval ({self.perturbation_interval}) "
                f"epochs, so it must divide that, got {self.checkpoint_every}",
            )
        if self.scheduler == "pbt" and self.perturbation_interval >= self.max_epochs:
            raise _field_error(
                "perturbation_interval",
                f"must be < max_epochs ({self.max_epochs}) for pbt to perturb, got {self.perturbation_interval}",
            )

    def _check_stop_at(self) -> None:
        if self.stop_at is None:
            return
        low, high = _METRIC_RANGES.get(self.metric, (0.0, 1.0))
        if not low <= self.stop_at <= high:
            reach = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
            raise _field_error("stop_at", f"{self.metric} is {reach}, so {self.stop_at:g} is never reached")
