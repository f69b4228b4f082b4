"""How the LR tuned for one worker's batch scales with a trial's data-parallel workers
(``resources.lr_scaling``): a rule of the spec, used where a trial trains and where the driver
records a trial's effective LR, so neither the rule nor its callers need the training stack."""

from __future__ import annotations

# Factor on the LR for ``workers`` workers, per rule (linear: Goyal et al. 2017).
LR_SCALING_RULES = {
    "linear": lambda workers: float(workers),
    "sqrt": lambda workers: workers**0.5,
    "none": lambda workers: 1.0,
}


def scaled_lr(base_lr: float, workers: int, rule: str = "linear") -> float:
    """The LR for ``workers`` data-parallel workers, from the LR tuned for one."""
    return base_lr * LR_SCALING_RULES[rule](workers)
