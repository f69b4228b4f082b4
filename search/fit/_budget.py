"""The clock of ``tunefleet fit``: what start-up, a trial's set-up, the report and the export
cost on this machine, and how ``--time`` splits into the search, the final phase and a reserve
(rules 3 and 10 of ``_plan``). Pure arithmetic, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tunefleet.spaces import PRESETS

# Measured on this 2-core machine with `fit digits --time 2m --preset quick` (quiet: 4 s to the
# search run, 7 s more to the first trial; report 3.5 s; export of 3 members 16 s, registry 2 s)
# and, for a loaded machine, the fixed ~19 s of a search in benchmarks/RESULTS.md.
START_S = 15.0  # imports, preflight, Ray start, the search run
WORKER_START_S = 8.0  # the first trials' Ray workers start and import torch and timm (once per slot)
SETUP_S = 3.0  # a trial's set-up before its first step: 1.4-2.3 s cold (trial_setup.py), plus its actor
REPORT_S = 5.0  # the report the search ends with
EXPORT_S = 8.0  # per ensemble member: load, score, ONNX export, parity check, registry
RESERVE_SHARE = 0.05  # and a share of the time, as larger data and models take longer to score
# A trial's epoch against the zoo's bare training steps: data loading, augmentation, metrics,
# checkpoints (measured on digits, lcnet_050 and mobilenetv3_small_100 at 32 px: 1.16-1.22x).
TRAINING_OVERHEAD = 1.2
TOP_K = 3  # members of the exported ensemble, as `make demo` exports
EVAL_SHARE = 1 / 3  # a forward pass (val, test) against a training step
# The share of the search budget planned trials fill; the rest is for the last trial to end in:
# a trial still running at search.time_budget is cut short, so a whole trial of the slowest kept
# model must fit in the remaining (1 - UTILIZATION).
UTILIZATION = 0.6
MIN_FINETUNE_PX = 32
MIN_STEPS = 8  # optimizer steps per epoch a batch size must leave
GRID = 32  # image sizes are multiples of this
REDUCTION = 3
FINAL_SHARE = 0.5  # of the searching time, for the final phase
FINAL_START_S = WORKER_START_S + 2.0  # the final phase's search run, and its trials' workers starting again
WORTH = 2  # a final phase pays when its trials train this many times the search's max_epochs
# The share of the final phase's budget its epochs are planned to fill: a trial still running at
# the budget is cut short (and an export takes finished trials only), and an epoch of two trials
# side by side, each with its own data loading, runs a little slower than the search measured.
FINAL_FILL = 0.95
# A search phase too short to rank configs makes a final phase train a poor one for longer: one
# is planned only where the search phase still runs this many epochs a trial (ASHA has a rung
# past its grace period) and this many trials a slot.
MIN_SEARCH_EPOCHS = 5
MIN_SEARCH_TRIALS = 3


@dataclass(frozen=True)
class Budget:
    total_s: float
    start_s: float
    reserve_s: float  # the report and the export
    search_s: int  # search.time_budget: whole seconds
    final_s: int = 0  # the final phase's search.time_budget (0: no final phase)

    @property
    def searching_s(self) -> int:
        """All the time for searching, both phases: ``--time`` less start-up and reserve."""
        return self.search_s + (math.ceil(FINAL_START_S) + self.final_s if self.final_s else 0)

    @property
    def training_s(self) -> float:
        """The search's time once its first workers are up."""
        return self.search_s - WORKER_START_S

    @property
    def tail_s(self) -> float:
        """The longest a whole trial may take: one started as the planned trials run out must end in time."""
        return (1 - UTILIZATION) * self.training_s


def budget(total_s: float, final_share: float = 0.0) -> Budget:
    """Rule 3: the search's share of ``--time`` (may be <= 0: then nothing fits); with
    ``final_share``, that share of it goes to a final phase instead (rule 10)."""
    reserve = REPORT_S + TOP_K * EXPORT_S + RESERVE_SHARE * total_s
    searching = math.floor(total_s - START_S - reserve)
    final = math.floor(final_share * searching)
    if not final:
        return Budget(total_s, START_S, reserve, searching)
    return Budget(total_s, START_S, reserve, searching - final, final - math.ceil(FINAL_START_S))


def final_epochs(time_budget: float, epoch_s: float, preset: str) -> int:
    """Rule 10: epochs a final trial fits in ``time_budget`` once its worker is up, within the preset's cap."""
    fits = math.floor((FINAL_FILL * time_budget - WORKER_START_S - SETUP_S) / max(epoch_s, 1e-3))
    return max(0, min(int(PRESETS[preset]["final_epochs"]), fits))
