"""The plan in words: what ``tunefleet fit`` prints (``--dry-run`` prints only this) and the
comment at the top of the spec file it writes. Plain lines, so they read the same in a terminal,
a log and a YAML comment."""

from __future__ import annotations

from tunefleet.spaces import PRESETS

from ._budget import MIN_FINETUNE_PX, REDUCTION
from ._plan import FitPlan, ModelChoice
from ._spec import space_base
from ._strategy import portfolio_models


def _machine(plan: FitPlan) -> str:
    if plan.gpus:
        return f"{plan.gpus} GPU(s), {plan.cpus} CPUs ({plan.slots} trial(s) at once, one GPU each)"
    return f"{plan.cpus} CPUs ({plan.slots} trial(s) at once, one CPU thread each)"


def _cost_basis(plan: FitPlan) -> str:
    if plan.gpus:
        return f"on {plan.gpus} GPU(s); cost per image on a GPU: not measured"
    return f"training cost per image at {plan.image_size} px on 1 CPU thread, from the zoo table"


def _training(plan: FitPlan) -> str:
    px = plan.scan.typical_px
    if plan.finetune:
        return f"fine-tune from timm's pretrained weights (finetune.pretrained; the images are {px} px)"
    if px < MIN_FINETUNE_PX:
        why = f"the images are {px} px, under {MIN_FINETUNE_PX} px: ImageNet features do not carry over"
    elif plan.loadable is not None and any(m.row.pretrained for m in plan.kept):
        why = "no kept model's pretrained weights can be loaded here (not in the local cache, the Hub unreachable)"
    else:
        why = "timm lists no pretrained weights for the models kept"
    return f"from scratch ({why})"


def _model_line(m: ModelChoice, plan: FitPlan) -> str:
    weights = "pretrained weights" if m.row.pretrained else "no pretrained weights"
    if m.epoch_s is None:
        cost = "GPU cost not measured"
    else:
        cost = f"{m.row.cpu_ms(plan.image_size):5.2f} ms/img, ~{m.epoch_s:6.1f}s an epoch"
    head = f"  {'kept' if m.kept else 'left out':<9} {m.row.name:<22} {cost}; {weights}"
    return head if m.kept else f"{head}; left out: {m.reason}"


def plan_lines(plan: FitPlan) -> list[str]:
    """The plan, one fact a line: data, training mode, models (kept and left out, with reasons),
    the space, the budget split and the expected trials."""
    s, b = plan.scan, plan.budget
    desc = PRESETS[plan.preset]["description"]
    lines = [
        f"{plan.name}: preset {plan.preset} ({desc}) · {b.total_s:g}s on {_machine(plan)}",
        f"data: {s.described}; typical size {s.typical_px} px -> image_size {plan.image_size}; "
        f"an epoch trains on {s.train_images} images and evaluates {s.eval_images}",
        f"training: {_training(plan)}",
        f"models ({len(plan.kept)} of {len(plan.models)} kept; {_cost_basis(plan)}):",
        *(_model_line(m, plan) for m in plan.models),
        f"space: base {space_base(plan)}, batch_size one of {list(plan.batch_sizes)}"
        + (", finetune.pretrained true" if plan.finetune else ""),
        f"budget: {b.total_s:g}s = {b.start_s:g}s start-up + {b.search_s:g}s search (search.time_budget) "
        + (f"+ {b.searching_s - b.search_s:g}s final phase " if b.final_s else "")
        + f"+ {b.reserve_s:.0f}s report and export",
    ]
    each = "not estimated" if plan.trial_s is None else f"~{plan.trial_s:.0f}s each"
    if plan.portfolio:
        lines.append(_portfolio_line(plan))
        return lines
    lines.append(
        f"trials: ~{plan.num_samples} expected ({each}, {plan.slots} at once; num_samples is the preset's cap, "
        f"{PRESETS[plan.preset]['max_trials']}: search.time_budget ends the search) · optuna searcher · "
        f"asha scheduler (max_epochs {plan.max_epochs}, grace_period {plan.grace_period}, reduction {REDUCTION}) · "
        f"ranked by {plan.metric}"
    )
    if plan.final_epochs:
        lines.append(
            f"final phase: the {plan.slots} best completed configs of the search trained again, side by side, "
            f"from scratch, for as long as the time left allows (~{plan.final_epochs} epochs; fifo, no early "
            f"stopping; search.time_budget {b.final_s}s); the ensemble is exported from them"
        )
    if plan.trial_s is None:
        lines.append(
            "note: the zoo has no measured GPU cost (its GPU column is empty), so epoch times on GPUs are not "
            "estimated: no model is left out for time, num_samples is the preset's cap and "
            "search.time_budget ends the search"
        )
    return lines


def _portfolio_line(plan: FitPlan) -> str:
    names = ", ".join(portfolio_models(plan))
    return (
        f"trials: a portfolio, no search (here it trains longer than a search's trials, or a final phase's, "
        f"would): the start "
        f"recipe on {names}, side by side, {plan.max_epochs} epochs each (~{plan.trial_s or 0:.0f}s; optuna "
        f"searcher running search.start_with; fifo, no early stopping) · ranked by {plan.metric}; the ensemble is "
        f"exported from them"
    )


def spec_header(plan: FitPlan, path: str) -> str:
    """The comment on top of the written spec: where it came from, how to run it again."""
    rerun = f"# Run it again (edit it first if you like): tunefleet search {path}\n"
    return (
        "# Written by `tunefleet fit`. The plan it ran:\n" + "".join(f"#   {ln}\n" for ln in plan_lines(plan)) + rerun
    )
