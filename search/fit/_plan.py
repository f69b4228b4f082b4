"""The planner: from the data, a preset, the time and the machine to a search plan and its spec.

Pure functions (no I/O, no torch): the same inputs give the same plan, so tests run it over
presets x data sizes x budgets. The rules, in order:

1. **Image size**: the images' typical size (median shorter side) rounded to a multiple of 32,
   at least ``ZOO_MIN_SIZE`` (every zoo model takes it), at most the preset's cap.
2. **Slots**: trials at once. CPU: one per core, each with one torch thread (the zoo's costs are
   per thread). ``--gpus N``: one trial per GPU, the cores shared among them.
3. **Budget**: ``--time`` less the search's start (imports, Ray, the search run) and a reserve
   for the report and the export of the top trials; the rest is ``search.time_budget``. Of that,
   the first workers' start is lost, ``UTILIZATION`` is planned full of trials and the rest is
   the *tail*: a trial still running at the time budget is cut short, so a whole trial of any
   kept model must fit in the tail.
4. **Epoch time** per model: (training images + a third for each val/test image, a forward pass
   being about a third of a training step) x the zoo's ms/img at the image size x
   ``TRAINING_OVERHEAD``. On GPUs the zoo has no measured figure: the plan says so and leaves no
   model out for time.
5. **Models**: a preset's model is left out when one trial of it cannot run the preset's
   ``min_epochs`` (plus a trial's set-up) within the tail, or, when the plan fine-tunes, when
   timm lists no weights for it. None left: ``--time`` is too short, and the error says the
   least time that keeps the cheapest model.
6. **Fine-tune or scratch**: fine-tune (``finetune.pretrained``, the preset's fine-tuning space)
   when the images are at least ``MIN_FINETUNE_PX`` (ImageNet features do not carry over to
   thumbnails such as the 8 px digits) and timm lists weights for a kept model.
7. **Epochs**: ``max_epochs`` so a trial sees the preset's ``target_images`` (within its epoch
   bounds), lowered until a whole trial of the slowest kept model fits the tail. ASHA's grace
   period: 1 epoch below 3, else 2; reduction factor 3.
8. **Trials**: the expected trials (``num_samples`` here; the spec's is the preset's cap, so
   the time budget, not a count, ends the search and no time is left over when trials run
   faster than the zoo says) = the slots' planned time over the expected time of one trial
   (set-up + ASHA's expected epochs per trial x the kept models' mean epoch time), at least one
   per slot (the first wave starts together and fits the tail), at most the preset's
   ``max_trials``.
9. **Batch sizes**: the preset's choices that leave at least ``MIN_STEPS`` steps per epoch.
10. **Final phase** (``_final``): ``FINAL_SHARE`` of the searching time is kept for training the
    best configs again, longer, once the search has found them; rules 3-8 then plan the search in
    the rest. Kept only when a final trial would train at least ``WORTH`` x the search's
    ``max_epochs`` (estimated here from the zoo, for the kept models' median epoch; decided from
    the measured epoch times of the configs chosen, after the search), and only where the search
    phase still runs ``MIN_SEARCH_EPOCHS`` a trial and ``MIN_SEARCH_TRIALS`` a slot; otherwise the
    search has all the time.
11. **Portfolio** (``_strategy``): where the search alone would cut its trials short of rule 7's
    epochs and one trial per slot of the start recipes (``spaces.START_RECIPES`` on
    ``spaces.start_models``) could train ``WORTH`` x as long, the time goes to those trials, side
    by side, with no search: at this budget one longer training of a known-good recipe beats many
    short trials (issue 21 measured it: ``benchmarks/RESULTS.md``).

``plan_fit`` (in ``_strategy``) applies rules 10 and 11 to the plans ``plan_within`` makes.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass

from tunefleet.spaces import PRESETS, ZOO_MIN_SIZE, SpecError, ZooModel, preset_models, suggest

from ._budget import (
    EVAL_SHARE,
    GRID,
    MIN_FINETUNE_PX,
    MIN_STEPS,
    REDUCTION,
    RESERVE_SHARE,
    SETUP_S,
    TRAINING_OVERHEAD,
    UTILIZATION,
    WORKER_START_S,
    Budget,
    budget,
    final_epochs,
)
from ._scan import DataScan


@dataclass(frozen=True)
class ModelChoice:
    """One preset model, its estimated epoch time here, and why it was left out ("" if kept)."""

    row: ZooModel
    epoch_s: float | None  # None: no cost measured for this device
    reason: str = ""

    @property
    def kept(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class FitPlan:
    """Everything ``tunefleet fit`` decided, and why; ``fit_spec`` makes it the search it runs."""

    scan: DataScan
    preset: str
    metric: str
    gpus: int
    cpus: int
    slots: int
    image_size: int
    batch_sizes: tuple[int, ...]
    finetune: bool
    models: tuple[ModelChoice, ...]
    budget: Budget
    max_epochs: int
    grace_period: int
    trial_s: float | None  # expected seconds of one trial (None: not estimable on GPUs)
    num_samples: int
    seed: int = 0
    final_epochs: int = 0  # the final phase's estimated epochs (0: no final phase)
    portfolio: bool = False  # rule 11: the start recipes trained for max_epochs, no search
    loadable: frozenset[str] | None = None  # models whose weights load here (None: not checked)

    @property
    def name(self) -> str:
        return "fit-" + re.sub(r"[^a-z0-9_-]+", "-", self.scan.name.lower()).strip("-")

    @property
    def kept(self) -> list[ModelChoice]:
        return [m for m in self.models if m.kept]


def image_size(typical_px: int, preset: str) -> int:
    """Rule 1: the typical size to a multiple of ``GRID``, within [ZOO_MIN_SIZE, the preset's cap]."""
    cap = int(PRESETS[preset]["max_image_size"])
    return max(ZOO_MIN_SIZE, min(cap, GRID * math.floor(typical_px / GRID + 0.5)))  # halves up


def slots(cpus: int, gpus: int) -> tuple[int, float]:
    """Rule 2: (trials at once, CPUs per trial)."""
    if gpus:
        return gpus, float(max(1, cpus // gpus))
    return max(1, cpus), 1.0


def epoch_seconds(row: ZooModel, scan: DataScan, size: int, gpus: int) -> float | None:
    """Rule 4: one epoch (train + val/test passes) of ``row`` on ``scan`` at ``size`` px."""
    if gpus:
        if row.gpu_ms_per_img is None:
            return None
        ms = row.gpu_ms_per_img  # a measured GPU figure would come with its own size rule
    else:
        ms = row.cpu_ms(size)
    return TRAINING_OVERHEAD * (scan.train_images + EVAL_SHARE * scan.eval_images) * ms / 1000


def data_epochs(train_images: int, preset: str) -> int:
    """Rule 7, first half: epochs for a trial to see the preset's ``target_images``."""
    low, high = PRESETS[preset]["epochs"]
    return int(min(high, max(low, math.ceil(PRESETS[preset]["target_images"] / max(1, train_images)))))


def asha_epochs(max_epochs: int, grace: int, eta: int = REDUCTION) -> float:
    """Expected epochs per trial under ASHA: every trial runs to the grace period, 1/eta of them
    to the next rung (grace x eta), and so on up to max_epochs."""
    rungs = [grace]
    while rungs[-1] * eta < max_epochs:
        rungs.append(rungs[-1] * eta)
    rungs.append(max_epochs)
    return float(
        sum((end - start) * eta**-i for i, (start, end) in enumerate(zip([0, *rungs[:-1]], rungs, strict=True)))
    )


def batch_sizes(train_images: int, preset: str) -> tuple[int, ...]:
    """Rule 9: the preset's batch sizes that leave ``MIN_STEPS`` steps an epoch (at least the
    largest power of two that does)."""
    fit = tuple(b for b in PRESETS[preset]["batch_sizes"] if b * MIN_STEPS <= train_images)
    return fit or (max(2, 2 ** int(math.log2(max(2, train_images // MIN_STEPS)))),)


def choose_models(
    rows: list[ZooModel],
    scan: DataScan,
    size: int,
    gpus: int,
    split: Budget,
    preset: str,
    loadable: frozenset[str] | None = None,
) -> tuple[tuple[ModelChoice, ...], bool]:
    """Rules 5 and 6: each preset model kept or left out with its reason; and whether to fine-tune.
    ``loadable``: the models whose weights can be loaded here (``_weights``); None: all that timm
    lists weights for."""
    need = PRESETS[preset]["min_epochs"]
    timed = []
    for row in rows:
        epoch = epoch_seconds(row, scan, size, gpus)
        trial = None if epoch is None else SETUP_S + need * epoch
        why = ""
        if trial is not None and trial > split.tail_s:
            why = f"a trial of {need} epoch(s) takes ~{trial:.0f}s, over the {max(0.0, split.tail_s):.0f}s one may take"
        timed.append(ModelChoice(row, epoch, why))

    def weights(row: ZooModel) -> bool:
        return row.pretrained and (loadable is None or row.name in loadable)

    finetune = scan.typical_px >= MIN_FINETUNE_PX and any(m.kept and weights(m.row) for m in timed)
    if finetune:
        timed = [m if m.reason or weights(m.row) else ModelChoice(m.row, m.epoch_s, _no_weights(m.row)) for m in timed]
    return tuple(timed), finetune


def _no_weights(row: ZooModel) -> str:
    if row.pretrained:
        return "its pretrained weights cannot be loaded here (not cached, no Hub), and this plan fine-tunes"
    return "timm lists no pretrained weights for it, and this plan fine-tunes"


def too_short(choices: tuple[ModelChoice, ...], total_s: float, preset: str) -> SpecError:
    """``--time`` keeps no model (or, on GPUs, leaves no time for a trial): the least time that would."""
    cheapest = min(choices, key=lambda m: m.epoch_s or 0.0)
    need = PRESETS[preset]["min_epochs"]
    fixed = budget(0.0)  # start-up and the reserve's fixed part
    trial = SETUP_S + need * (cheapest.epoch_s or 0.0)
    # The least total whose (whole seconds of) search budget holds the trial in its tail.
    search = math.ceil(WORKER_START_S + trial / (1 - UTILIZATION))
    minimum = math.ceil((fixed.start_s + fixed.reserve_s + search) / (1 - RESERVE_SHARE))
    what = (
        "a trial"
        if cheapest.epoch_s is None
        else f"{need} epoch(s) of the cheapest model, {cheapest.row.name} (~{cheapest.epoch_s:.1f}s an epoch here)"
    )
    return SpecError(
        "--time",
        f"{total_s:g}s is too short for {what} besides {fixed.start_s + WORKER_START_S:.0f}s of start-up "
        f"and {budget(minimum).reserve_s:.0f}s for the report and export; give at least {minimum}s",
    )


def epochs_and_trials(
    kept: list[ModelChoice], scan: DataScan, preset: str, split: Budget, n_slots: int
) -> tuple[int, int, float | None]:
    """Rules 7 and 8: (max_epochs, num_samples, expected seconds per trial)."""
    epochs = data_epochs(scan.train_images, preset)
    cap = int(PRESETS[preset]["max_trials"])
    timed = [m.epoch_s for m in kept if m.epoch_s is not None]
    if len(timed) < len(kept) or not timed:  # no figure for this device: the time budget alone bounds it
        return epochs, cap, None
    fits_whole = int((split.tail_s - SETUP_S) // max(timed))  # a whole trial of the slowest kept model
    epochs = max(1, min(epochs, fits_whole))
    per_trial = SETUP_S + asha_epochs(epochs, grace(epochs)) * sum(timed) / len(timed)
    # The first `n_slots` trials start together and each fits the tail; later ones fill the rest.
    trials = max(n_slots, int(n_slots * UTILIZATION * split.training_s // per_trial))
    return epochs, min(cap, trials), per_trial


def grace(max_epochs: int) -> int:
    """ASHA's first rung: after 2 epochs where a trial has 3 or more (on small data, one epoch's
    validation score is mostly noise: every config is near chance)."""
    return 1 if max_epochs < 3 else 2


def check_options(preset: str, gpus: int) -> None:
    """The options that need no data: a known preset, GPUs >= 0."""
    if preset not in PRESETS:
        raise SpecError("--preset", f"unknown preset {preset!r}" + suggest(preset, tuple(PRESETS)))
    if gpus < 0:
        raise SpecError("--gpus", f"must be >= 0, got {gpus}")


def plan_within(
    split: Budget,
    scan: DataScan,
    preset: str,
    gpus: int,
    metric: str,
    cpus: int,
    seed: int,
    loadable: frozenset[str] | None,
) -> FitPlan | None:
    """The plan within ``split``; None when it keeps no model."""
    size = image_size(scan.typical_px, preset)
    n_slots, _ = slots(cpus, gpus)
    choices, finetune = choose_models(preset_models(preset), scan, size, gpus, split, preset, loadable)
    kept = [m for m in choices if m.kept]
    if not kept or split.tail_s < SETUP_S:
        return None
    epochs, trials, per_trial = epochs_and_trials(kept, scan, preset, split, n_slots)
    timed = [m.epoch_s for m in kept if m.epoch_s is not None]
    if not split.final_s:
        final = 0
    elif not timed:  # no cost figure (GPUs): the measured epochs decide after the search
        final = int(PRESETS[preset]["final_epochs"])
    else:  # the best configs may be of any kept model: the typical one's epochs
        final = final_epochs(split.final_s, statistics.median(timed), preset)
    return FitPlan(
        scan=scan,
        preset=preset,
        metric=metric,
        gpus=gpus,
        cpus=cpus,
        slots=n_slots,
        image_size=size,
        batch_sizes=batch_sizes(scan.train_images, preset),
        finetune=finetune,
        models=choices,
        budget=split,
        max_epochs=epochs,
        grace_period=grace(epochs),
        trial_s=per_trial,
        num_samples=trials,
        seed=seed,
        final_epochs=final,
        loadable=loadable,
    )
