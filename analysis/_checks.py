"""The export options checked before anything loads: ``tunefleet export`` (and ``Search.export``,
``fit --register``) refuse a bad value with one line, without importing torch, scikit-learn or
MLflow for it."""

from __future__ import annotations

from tunefleet.spaces import SpecError

# How the members' predictions combine (``_combine.COMBINERS`` implements each, in this order).
METHODS = ("mean", "weighted", "caruana", "stacking", "auto")
# The graph shipped: as exported, half precision, or static int8 (``_precision`` converts).
PRECISIONS = ("fp32", "fp16", "int8")
# A registered model name MLflow accepts in the UI and in ``models:/NAME/VERSION`` URIs.
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def check_model_name(name: str) -> None:
    """Refuse a name before anything is exported (one line naming the rule)."""
    if not name or not set(name) <= _NAME_CHARS:
        raise SpecError("--register", f"model name {name!r} may use only letters, digits, '-', '_' and '.'")


def check_student(name: str) -> None:
    """A STUDENT timm does not know is one line naming ``--distill`` (timm, and so torch, load for it)."""
    import timm

    if not timm.is_model(name):
        near = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        hint = f"; did you mean: {', '.join(near)}" if near else ""
        raise SpecError("--distill", f"timm has no model {name!r}{hint}")


def check_export(
    top_k: int,
    method: str,
    register_as: str | None,
    precision: str = "fp32",
    batch: int = 32,
    pick: str | None = None,
    distill: str | None = None,
    distill_epochs: int | None = None,
) -> None:
    """``tunefleet export``'s options, before anything is exported."""
    if distill:
        check_student(distill)
    if distill_epochs is not None and distill_epochs < 1:
        raise SpecError("--distill-epochs", f"must be >= 1, got {distill_epochs}")
    if distill_epochs is not None and distill is None:
        raise SpecError("--distill-epochs", "needs --distill")
    if pick is not None:
        from ._pareto import Pick

        Pick.parse(pick)
    if precision not in PRECISIONS:
        raise SpecError("--precision", f"unknown precision {precision!r}; one of: {', '.join(PRECISIONS)}")
    if batch < 1:
        raise SpecError("--batch", f"must be >= 1 (the batch size latency is measured at besides 1), got {batch}")
    if top_k < 1:
        raise SpecError("--top-k", f"must be >= 1, got {top_k}")
    if method not in METHODS:
        raise SpecError("--method", f"unknown method {method!r}; one of: {', '.join(METHODS)}")
    if register_as is not None:
        check_model_name(register_as)
